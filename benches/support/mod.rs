//! What the benchmarks share: fixtures (tokens, verifiers, the raw `jsonwebtoken` reference),
//! routines timed by wall clock and by thread CPU time, and the side-by-side ratio report.
#![allow(dead_code)] // each bench binary uses its own part

#[path = "../../src/test_support.rs"]
pub mod common;
pub mod floor;

use std::future::Future;
use std::hint::black_box;
use std::ops::Range;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{claims_at, jwks, TestKey, AUDIENCE};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use jsonwebtoken::{jwk::Jwk, DecodingKey, Validation};
use mka1_auth::Verifier;
use serde::Deserialize;
use serde_json::json;

/// How many distinct tokens (end users) there are; two threads take half each.
pub const USERS: usize = 32;
pub const ALL: Range<usize> = 0..USERS;

/// Some work, measured like criterion's `iter_custom`: run it `n` times, return the time.
pub type Routine<'a> = Box<dyn FnMut(u64) -> Times + 'a>;

/// A routine over a range of users, for one thread of a two-thread bench.
pub type ForUsers = fn(Range<usize>) -> Routine<'static>;

/// The claims a service reads, decoded by raw `jsonwebtoken` for the reference.
#[derive(Deserialize, Clone)]
#[allow(dead_code)] // read by serde; the values themselves are not needed
pub struct ReferenceClaims {
    sub: String,
    aud: String,
    iss: String,
    exp: u64,
    iat: u64,
    permissions: Vec<String>,
}

/// The verifiers a fixture measures, all for the same key and audience.
pub struct Verifiers {
    /// Cache off: every verification as if the token were new.
    pub uncached: Verifier,
    /// Cache on, static key set.
    pub cached: Verifier,
    /// Cache on, keys from a JWKS URL (a loopback server), as most services run.
    pub remote: Verifier,
}

/// Which of a fixture's verifiers.
#[derive(Clone, Copy)]
pub enum Which {
    Fresh,
    CacheHit,
    CacheHitRemote,
}

impl Which {
    pub const ALL: [Which; 3] = [Which::Fresh, Which::CacheHit, Which::CacheHitRemote];

    pub fn name(self) -> &'static str {
        match self {
            Which::Fresh => "fresh",
            Which::CacheHit => "cache_hit",
            Which::CacheHitRemote => "cache_hit, keys from a JWKS URL",
        }
    }
}

impl Verifiers {
    fn new(key: &TestKey, jwks_url: &str) -> Verifiers {
        let verifier = |capacity| {
            Verifier::builder()
                .jwks(jwks(&[key]))
                .audience(AUDIENCE)
                .token_cache_capacity(capacity)
                .build()
                .unwrap()
        };
        Verifiers {
            uncached: verifier(0),
            cached: verifier(10_000),
            remote: Verifier::builder()
                .jwks_url(jwks_url)
                .audience(AUDIENCE)
                .build()
                .unwrap(),
        }
    }

    pub fn get(&self, which: Which) -> &Verifier {
        match which {
            Which::Fresh => &self.uncached,
            Which::CacheHit => &self.cached,
            Which::CacheHitRemote => &self.remote,
        }
    }

    /// Every verifier accepts every token (the remote one after a first fetch).
    fn check(&self, tokens: &[String]) {
        // The first verification fetches the key set, which needs a runtime; after it every
        // verification is answered from what is held, without one.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(self.remote.verify(&tokens[0])).unwrap();
        for (i, token) in tokens.iter().enumerate() {
            for which in Which::ALL {
                let verified = ready(self.get(which).verify(token)).unwrap();
                assert_eq!(verified.subject(), format!("user-{i}"));
            }
        }
    }
}

/// One signing algorithm's fixture: its tokens, our verifiers for them (and a twin set that
/// shares nothing with ours), and the raw `jsonwebtoken` reference.
pub struct Fixture {
    pub alg: &'static str,
    pub tokens: Vec<String>,
    pub ours: Verifiers,
    /// Built the same way as `ours` but sharing nothing with it (no cache, no key set): what
    /// a second thread uses when two threads should share nothing.
    pub twin: Verifiers,
    pub decoding: DecodingKey,
    pub validation: Validation,
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Fixture {
    pub fn new(key: TestKey) -> Fixture {
        let now = now_unix();
        let tokens: Vec<String> = (0..USERS)
            .map(|i| {
                let mut claims = claims_at(now);
                claims["sub"] = json!(format!("user-{i}"));
                key.sign(&claims)
            })
            .collect();
        let jwks_url = serve_jwks(jwks(&[&key]).to_string());
        let jwk: Jwk = serde_json::from_value(key.jwk()).unwrap();
        let mut validation = Validation::new(key.alg.parse().unwrap());
        validation.set_audience(&[AUDIENCE]);
        let fixture = Fixture {
            alg: key.alg,
            ours: Verifiers::new(&key, &jwks_url),
            twin: Verifiers::new(&key, &jwks_url),
            tokens,
            decoding: DecodingKey::from_jwk(&jwk).unwrap(),
            validation,
        };
        // Every side must accept every token, or the numbers mean nothing.
        fixture.ours.check(&fixture.tokens);
        fixture.twin.check(&fixture.tokens);
        for (i, token) in fixture.tokens.iter().enumerate() {
            assert_eq!(fixture.decode(token).sub, format!("user-{i}"));
        }
        fixture
    }

    pub fn decode(&self, token: &str) -> ReferenceClaims {
        jsonwebtoken::decode::<ReferenceClaims>(token, &self.decoding, &self.validation)
            .unwrap()
            .claims
    }

    /// `verify` by our verifier `which` of the tokens of `users`, in turn.
    pub fn verify(&self, which: Which, users: Range<usize>) -> Routine<'_> {
        self.verify_with(self.ours.get(which), users)
    }

    /// `verify` by `verifier` of the tokens of `users`, in turn.
    pub fn verify_with<'a>(&'a self, verifier: &'a Verifier, users: Range<usize>) -> Routine<'a> {
        let tokens = &self.tokens[users];
        Box::new(move |n| {
            timed(|| {
                for i in 0..n as usize {
                    let token = &tokens[i % tokens.len()];
                    black_box(ready(verifier.verify(black_box(token))).unwrap());
                }
            })
        })
    }

    /// Raw `jsonwebtoken::decode` of the same tokens.
    pub fn decode_raw(&self) -> Routine<'_> {
        self.decode_raw_of(ALL)
    }

    /// Raw `jsonwebtoken::decode` of the tokens of `users`, in turn.
    pub fn decode_raw_of(&self, users: Range<usize>) -> Routine<'_> {
        let tokens = &self.tokens[users];
        Box::new(move |n| {
            timed(|| {
                for i in 0..n as usize {
                    black_box(self.decode(black_box(&tokens[i % tokens.len()])));
                }
            })
        })
    }

    /// Two threads sharing our verifier `which`, each verifying its own half of the users.
    pub fn verify_two_threads(&self, which: Which) -> Routine<'_> {
        two_threads(move |users| self.verify(which, users))
    }

    /// The gate for a thread pair of verifier `which`: the same work on two threads that
    /// share nothing (the second thread verifies with the twin), against one thread.
    pub fn apart_gate(&self, which: Which) -> Gate<'_> {
        let apart = move |users: Range<usize>| {
            let verifiers = if users.start == 0 {
                &self.ours
            } else {
                &self.twin
            };
            self.verify_with(verifiers.get(which), users)
        };
        Gate {
            two: two_threads(apart),
            one: self.verify(which, ALL),
        }
    }

    /// Raw `jsonwebtoken::decode` on two threads, each of its own half of the users (it
    /// shares nothing between threads).
    pub fn decode_raw_two_threads(&self) -> Routine<'_> {
        two_threads(|users| self.decode_raw_of(users))
    }
}

/// A pair of `two` threads against `one`, in 101 rounds of blocks of about 10 ms: more,
/// shorter rounds than other pairs, so that bursts of load from elsewhere spoil fewer of
/// them. It reports wall-clock throughput over all rounds ("as loaded", for information) and
/// over the rounds `gate` lets through (`label`), judged against `goal`.
pub fn thread_pair<'a>(
    name: String,
    (two, one): (Routine<'a>, Routine<'a>),
    gate: Gate<'a>,
    label: &'static str,
    goal: Goal,
) -> Pair<'a> {
    Pair::new(name, two, one)
        .blocks(101, Duration::from_millis(10))
        .figure(
            "throughput, wall clock (as loaded)",
            wall_throughput,
            Goal::Info,
        )
        .two_cores_figure(gate, label, wall_throughput, goal)
}

/// Serve `body` as a JWKS document on loopback, from a thread of its own, for as long as the
/// bench runs; returns its URL.
pub fn serve_jwks(body: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            // The request head ends with an empty line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                &stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// `n` runs of the routine `make` builds, split over two threads, each given half the users.
/// The CPU time is both threads' own; the wall-clock time runs from the moment both threads
/// are ready (a barrier, so starting a thread is not counted) until the later one finishes.
pub fn two_threads<'a, M>(make: M) -> Routine<'a>
where
    M: Fn(Range<usize>) -> Routine<'a> + Sync + 'a,
{
    Box::new(move |n| {
        let half = n.div_ceil(2);
        let ready = std::sync::Barrier::new(2);
        let run = |users| {
            let mut routine = make(users);
            ready.wait();
            let start = Instant::now();
            let times = routine(half);
            (start, times)
        };
        std::thread::scope(|scope| {
            let other = scope.spawn(|| run(USERS / 2..USERS));
            let (start_here, here) = run(0..USERS / 2);
            let (start_there, there) = other.join().unwrap();
            let start = start_here.min(start_there);
            let end = (start_here + here.wall).max(start_there + there.wall);
            Times {
                wall: end - start,
                cpu: here.cpu + there.cpu,
            }
        })
    })
}

/// A control for the thread benches: arithmetic that shares nothing, about 1 us a run. How
/// much two threads of it gain shows how many cores the machine really gave this process.
pub fn arithmetic(_users: Range<usize>) -> Routine<'static> {
    Box::new(|n| {
        timed(|| {
            for _ in 0..n {
                let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
                for _ in 0..1000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }
                black_box(x);
            }
        })
    })
}

/// A second control: independent 64-bit multiplications, about 1 us a run, bound by the
/// multiplier's throughput as signature arithmetic is. Two vCPUs that are hyperthreads of one
/// physical core share that multiplier: the first control cannot see it, this one can.
pub fn multiplications(_users: Range<usize>) -> Routine<'static> {
    Box::new(|n| {
        timed(|| {
            for _ in 0..n {
                let mut x = black_box([3u64, 5, 7, 11, 13, 17, 19, 23]);
                for _ in 0..250 {
                    for (i, v) in x.iter_mut().enumerate() {
                        *v = v.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64);
                    }
                }
                black_box(x);
            }
        })
    })
}

/// Poll a future that never waits (verification with a static key set) to its end.
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification with a static key set waited"),
    }
}

/// What one block of a routine took: wall-clock time, and CPU time of its own threads.
#[derive(Clone, Copy)]
pub struct Times {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Run `f`, timing it on the wall clock and by this thread's CPU time.
pub fn timed(f: impl FnOnce()) -> Times {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    f();
    Times {
        cpu: thread_cpu() - cpu,
        wall: wall.elapsed(),
    }
}

/// CPU time used by the calling thread so far.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes one `timespec` into `ts`, which is valid and ours.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "no per-thread cpu clock");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How a pair's two sides are compared, per round: `(subject, n), (reference, n) -> value`.
pub type Metric = fn(Times, u64, Times, u64) -> f64;

pub fn per_op(t: Duration, n: u64) -> f64 {
    t.as_secs_f64() / n as f64
}

/// CPU time per operation, subject over reference.
pub fn cpu_cost(s: Times, ns: u64, r: Times, nr: u64) -> f64 {
    per_op(s.cpu, ns) / per_op(r.cpu, nr)
}

/// How many times faster the subject is, by CPU time per operation.
pub fn cpu_speed_up(s: Times, ns: u64, r: Times, nr: u64) -> f64 {
    1.0 / cpu_cost(s, ns, r, nr)
}

/// Operations per wall-clock second, subject over reference.
pub fn wall_throughput(s: Times, ns: u64, r: Times, nr: u64) -> f64 {
    per_op(r.wall, nr) / per_op(s.wall, ns)
}

/// What a figure should be.
#[derive(Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// No target: shown for comparison.
    Info,
    /// The thread control: below 1.8, the machine did not give the run two cores.
    Control,
}

/// Over what a figure is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Each round's value; the median and quartiles are shown.
    Rounds,
    /// Only the rounds in which the pair's [`Gate`] saw two free cores, just before and just
    /// after the round. On a virtual machine whose host is busy, two threads sometimes get
    /// one core's worth of work for seconds at a time; they then measure the host, not the
    /// code.
    TwoCoresFree,
}

/// A check that the machine gives this process two cores for the work at hand at the moment:
/// a routine that shares nothing between threads timed on two threads just before and just
/// after each round, against its median time on one thread. A round counts when both
/// two-thread blocks reach at least [`GATE_MIN`] times one thread's throughput.
///
/// For the verifier's pairs the routine is the very same work with nothing shared: the
/// second thread verifies with a twin verifier (its own key set and cache). Then the rounds
/// that count are those in which this work could scale, and what the subject loses in them
/// is what sharing one verifier costs. (Arithmetic, or raw `jsonwebtoken::decode`, makes a
/// poorer gate: the host's interference differs between kinds of work, and either has let
/// rounds through in which the verifier's own work could not scale.)
pub struct Gate<'a> {
    pub two: Routine<'a>,
    pub one: Routine<'a>,
}

/// What the gate's control must reach on two threads for a round to count.
pub const GATE_MIN: f64 = 1.8;

/// One figure reported for a pair.
pub struct Figure {
    pub label: &'static str,
    pub metric: Metric,
    pub goal: Goal,
    pub over: Over,
}

/// Something measured side by side: `subject` against `reference`.
pub struct Pair<'a> {
    pub name: String,
    pub subject: Routine<'a>,
    pub reference: Routine<'a>,
    pub block: Duration,
    pub rounds: usize,
    pub figures: Vec<Figure>,
    pub gate: Option<Gate<'a>>,
}

impl<'a> Pair<'a> {
    /// A pair with no figures yet, measured in 41 rounds of blocks of about 4 ms each.
    pub fn new(name: String, subject: Routine<'a>, reference: Routine<'a>) -> Self {
        Pair {
            name,
            subject,
            reference,
            block: Duration::from_millis(4),
            rounds: 41,
            figures: Vec::new(),
            gate: None,
        }
    }

    /// Measure in `rounds` rounds of blocks of about `block` of CPU time.
    pub fn blocks(mut self, rounds: usize, block: Duration) -> Self {
        self.rounds = rounds;
        self.block = block;
        self
    }

    /// Report this figure, per round: the median and quartiles.
    pub fn figure(mut self, label: &'static str, metric: Metric, goal: Goal) -> Self {
        self.figures.push(Figure {
            label,
            metric,
            goal,
            over: Over::Rounds,
        });
        self
    }

    /// Report this figure over the rounds in which `gate` saw two free cores (see
    /// [`Over::TwoCoresFree`]).
    pub fn two_cores_figure(
        mut self,
        gate: Gate<'a>,
        label: &'static str,
        metric: Metric,
        goal: Goal,
    ) -> Self {
        self.gate = Some(gate);
        self.figures.push(Figure {
            label,
            metric,
            goal,
            over: Over::TwoCoresFree,
        });
        self
    }
}

/// How many runs of `routine` take about `block` of CPU time (steadier than the wall clock
/// on a loaded machine, and blind to the cost of starting a thread).
pub fn calibrate(routine: &mut Routine<'_>, block: Duration) -> u64 {
    routine(8);
    let mut n = 8u64;
    loop {
        let took = routine(n).cpu;
        if took >= block / 4 || n >= 1 << 30 {
            return ((block.as_secs_f64() / per_op(took, n)) as u64).max(1);
        }
        n *= 4;
    }
}

/// What [`measure`] found for one figure: the median and quartiles, and over how many
/// rounds (fewer than all for a gated figure; none when the gate never opened).
pub struct Found {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub rounds: usize,
}

/// Alternate blocks of subject and reference for the pair's rounds (`rounds` overrides);
/// for each figure, the median and quartiles of its per-round values, over the rounds it
/// covers (see [`Over`]).
pub fn measure(pair: &mut Pair<'_>, rounds: Option<usize>, scale: f64) -> Vec<Found> {
    let rounds = rounds.unwrap_or(pair.rounds);
    let block = pair.block.mul_f64(scale);
    let ns = calibrate(&mut pair.subject, block);
    let nr = calibrate(&mut pair.reference, block);
    let gate_n = pair.gate.as_mut().map(|gate| {
        (
            calibrate(&mut gate.two, block / 4),
            calibrate(&mut gate.one, block / 4),
        )
    });
    let mut values = vec![Vec::with_capacity(rounds); pair.figures.len()];
    // Per round: the gate's slower two-thread time per run, and its one-thread time per run.
    let mut gate_times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let before = match (&mut pair.gate, gate_n) {
            (Some(gate), Some((n2, n1))) => Some((
                per_op((gate.one)(n1).wall, n1),
                per_op((gate.two)(n2).wall, n2),
            )),
            _ => None,
        };
        // Alternate which side goes first, so neither always follows the other.
        let (s, r) = if round % 2 == 0 {
            let s = (pair.subject)(ns);
            (s, (pair.reference)(nr))
        } else {
            let r = (pair.reference)(nr);
            ((pair.subject)(ns), r)
        };
        if let (Some(gate), Some((n2, _)), Some((one, two))) = (&mut pair.gate, gate_n, before) {
            gate_times.push((one, two.max(per_op((gate.two)(n2).wall, n2))));
        }
        if std::env::var_os("BENCH_SHOW_ROUNDS").is_some() {
            let (sw, sc, rw, rc) = (s.wall, s.cpu, r.wall, r.cpu);
            eprintln!(
                "{}: subject {ns} in {sw:?} (cpu {sc:?}), reference {nr} in {rw:?} (cpu {rc:?}){}",
                pair.name,
                gate_times
                    .last()
                    .map_or(String::new(), |(one, two)| format!(
                        ", gate {:.2}x",
                        one / two
                    )),
            );
        }
        for (figure, values) in pair.figures.iter().zip(&mut values) {
            values.push((figure.metric)(s, ns, r, nr));
        }
    }
    // A round counts when the gate's two threads ran at least GATE_MIN times as fast as its
    // typical single thread.
    let mut ones: Vec<f64> = gate_times.iter().map(|(one, _)| *one).collect();
    ones.sort_by(f64::total_cmp);
    let typical_one = ones.get(ones.len() / 2).copied().unwrap_or(0.0);
    let counts: Vec<bool> = gate_times
        .iter()
        .map(|(_, two)| typical_one / two >= GATE_MIN)
        .collect();
    values
        .into_iter()
        .zip(&pair.figures)
        .map(|(v, figure)| {
            let mut v: Vec<f64> = match figure.over {
                Over::Rounds => v,
                Over::TwoCoresFree => v
                    .into_iter()
                    .zip(&counts)
                    .filter_map(|(v, counts)| counts.then_some(v))
                    .collect(),
            };
            v.sort_by(f64::total_cmp);
            let at = |q: f64| {
                v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            Found {
                median: at(0.5),
                p25: at(0.25),
                p75: at(0.75),
                rounds: v.len(),
            }
        })
        .collect()
}

/// The command line as `cargo bench` and `cargo test --benches` pass it.
pub struct Args {
    /// Measuring for real (`cargo bench`), not just checking that everything runs.
    pub benchmarking: bool,
    /// A name filter: only what contains it runs.
    pub filter: Option<String>,
}

pub fn args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Args {
        benchmarking: args.iter().any(|a| a == "--bench")
            && !args.iter().any(|a| a == "--test" || a == "--list"),
        filter: args.iter().find(|a| !a.starts_with('-')).cloned(),
    }
}

/// Criterion with measurement times short enough for a two-core machine.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

/// A criterion bench of `routine`, by wall-clock time.
pub fn bench(group: &mut BenchmarkGroup<'_, WallTime>, name: String, mut routine: Routine<'_>) {
    group.bench_function(name, |b| b.iter_custom(|n| routine(n).wall));
}

/// A bench binary's whole run: a fixture for each of EdDSA, ES256 and RS256, the criterion
/// benches, then the side-by-side report.
pub fn run<T>(
    fixture: fn(TestKey) -> T,
    benches: fn(&mut Criterion, &[T]),
    pairs: for<'a> fn(&'a [T]) -> Vec<Pair<'a>>,
) {
    let fixtures: Vec<T> = TestKey::all().into_iter().map(fixture).collect();
    let mut c = criterion();
    benches(&mut c, &fixtures);
    c.final_summary();
    report(pairs(&fixtures));
}

/// Measure every pair the filter lets through, side by side, and print its figures.
pub fn report(pairs: Vec<Pair<'_>>) {
    let args = args();
    // Outside `cargo bench` (e.g. `cargo test --benches`), one short round shows it all runs.
    // `BENCH_ROUNDS=n` runs every pair for n rounds (for a profiler, say).
    let env_rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok());
    let (rounds, scale) = if args.benchmarking {
        (env_rounds, 1.0)
    } else {
        (Some(1), 0.05)
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nratios, measured side by side in alternating rounds: the median [p25, p75] of the \
         rounds; load average {}{}",
        load.split(' ').take(3).collect::<Vec<_>>().join(" "),
        if args.benchmarking {
            ""
        } else {
            "\n(a test run: one short round, the figures mean nothing; use `cargo bench`)"
        }
    );
    for mut pair in pairs {
        if args
            .filter
            .as_ref()
            .is_some_and(|f| !pair.name.contains(f.as_str()))
        {
            continue;
        }
        let all = rounds.unwrap_or(pair.rounds);
        println!("  {} ({all} rounds)", pair.name);
        let results = measure(&mut pair, rounds, scale);
        for (figure, found) in pair.figures.iter().zip(results) {
            let Found {
                median, p25, p75, ..
            } = found;
            let (target, verdict) = match figure.goal {
                Goal::AtMost(max) => (format!("<= {max}"), median <= max),
                Goal::AtLeast(min) => (format!(">= {min}"), median >= min),
                Goal::Info | Goal::Control => (String::new(), true),
            };
            let verdict = match (figure.goal, verdict) {
                _ if found.rounds == 0 => "no round had two cores free: no verdict",
                (Goal::Control, _) if median < 1.8 => {
                    "fewer than two cores free: as-loaded thread figures say nothing"
                }
                (Goal::Info | Goal::Control, _) => "",
                (_, true) if found.rounds < 10 => "meets, on fewer than 10 rounds: run again",
                (_, false) if found.rounds < 10 => "MISSES, on fewer than 10 rounds: run again",
                (_, true) => "meets",
                (_, false) => "MISSES",
            };
            let label = match figure.over {
                Over::Rounds => figure.label.to_owned(),
                Over::TwoCoresFree => {
                    format!("{} ({} of {all} rounds)", figure.label, found.rounds)
                }
            };
            println!("    {label:<64} {median:>8.2}x [{p25:.2}, {p75:.2}]  {target:<8} {verdict}");
        }
    }
}

/// 100,000 revoked users (none of them the bench's tokens' subjects) and one `all` rule
/// older than every token: the check looks up every request's `sub` (the layer bench's
/// figure (d), and `--bench instructions` with `RULES=1`).
pub fn revocations() -> mka1_auth::revocation::Revocations {
    use mka1_auth::revocation::{Revocations, Rule};
    let now = now_unix();
    let mut rules: Vec<Rule> = (0..100_000)
        .map(|i| Rule::user(format!("revoked-user-{i}"), now))
        .collect();
    rules.push(Rule::all(now - 86_400));
    let revocations = Revocations::in_process();
    revocations.revoke_many(&rules);
    revocations
}
