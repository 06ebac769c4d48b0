//! The scenarios, in the order they run, what each answer must be in each, and the table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use mka1_auth_dev_issuer::Mint;

use crate::load::{self, Body, Case, Plan, Probe, Report, Route};
use crate::world::{Mka1Mode, Timeouts, UpstreamMode, World, AUDIENCE, UPSTREAM_5XX};

pub struct Settings {
    /// How long each scenario sends requests.
    pub block: Duration,
    pub connections: usize,
    /// The last row: this many users never seen before, each calling the exchange route
    /// once, over `burst_connections` connections at once.
    pub burst_users: usize,
    pub burst_connections: usize,
    /// Distinct users whose tokens the scenarios rotate through.
    pub users: usize,
    /// Users never seen before, for each scenario in which MKA1 fails.
    pub fresh_users: usize,
    pub timeouts: Timeouts,
    /// Added to each documented timeout to make the client's deadline.
    pub margin: Duration,
    /// Correctness only (`cargo test`): no target on the resident set.
    pub short: bool,
}

impl Settings {
    /// The correctness run `cargo test` makes: tiny blocks, a few users, and a wide margin
    /// (the test machine runs other tests beside it).
    pub fn short() -> Settings {
        Settings {
            block: Duration::from_millis(300),
            connections: 8,
            burst_users: 1000,
            burst_connections: 64,
            users: 100,
            fresh_users: 200,
            // The full run's: shorter ones would time out healthy calls on a loaded test
            // machine (debug build, other tests beside it).
            timeouts: Timeouts::soak(),
            margin: Duration::from_secs(3),
            short: true,
        }
    }
}

/// What the closing line reports, and whether the checks held.
pub struct Outcome {
    pub wrong: u64,
    pub wrong_user: u64,
    pub foreign_credentials: u64,
    pub late: u64,
    /// The resident set after healthy again (all faults behind it), and the peak (the burst).
    pub rss_plateau_mib: f64,
    pub rss_peak_mib: f64,
    pub max_open: u64,
    pub max_fds: u64,
    /// Rows whose checks failed.
    pub failed: usize,
}

impl Outcome {
    pub fn line(&self) -> String {
        format!(
            "outbound soak: {} wrong answers ({} another user's identity, {} credentials at a foreign origin, {} past their deadline), RSS plateau {:.1} MiB (peak {:.1} MiB in the burst), max open connections {} at the upstream ({} file descriptors in the process)",
            self.wrong,
            self.wrong_user,
            self.foreign_credentials,
            self.late,
            self.rss_plateau_mib,
            self.rss_peak_mib,
            self.max_open,
            self.max_fds,
        )
    }
}

struct Scenario {
    name: &'static str,
    upstream: UpstreamMode,
    mka1: Mka1Mode,
}

const SCENARIOS: [Scenario; 10] = [
    Scenario {
        name: "healthy",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "upstream hanging",
        upstream: UpstreamMode::Hanging,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "upstream refusing (closed port, resets)",
        upstream: UpstreamMode::Refusing,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "upstream trickling the head",
        upstream: UpstreamMode::TricklingHead,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "upstream trickling the body",
        upstream: UpstreamMode::Trickling,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "upstream answering 503",
        upstream: UpstreamMode::Error5xx,
        mka1: Mka1Mode::Healthy,
    },
    Scenario {
        name: "MKA1 answering 429 + Retry-After",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::RateLimited,
    },
    Scenario {
        name: "MKA1 answering 500",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Error500,
    },
    Scenario {
        name: "MKA1 hanging",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Hanging,
    },
    Scenario {
        name: "healthy again",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Healthy,
    },
];

/// A user: the id and the `Authorization` value of a token minted for this service.
#[derive(Clone)]
struct User {
    id: Arc<str>,
    auth: HeaderValue,
}

fn mint_users(world: &World, first: usize, n: usize) -> Vec<User> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads);
    let issuer = &world.issuer;
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let start = first + t * per;
                let end = (first + n).min(start + per);
                scope.spawn(move || {
                    (start..end)
                        .map(|u| {
                            let id = format!("user-{u}");
                            let token = issuer.mint(Mint::new(AUDIENCE, &id));
                            let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
                                .expect("token header");
                            auth.set_sensitive(true);
                            User {
                                id: id.into(),
                                auth,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("minting thread"))
            .collect()
    })
}

/// The answers each route must give in a scenario.
struct Expect {
    proxy_deadline: Duration,
    exchanged_deadline: Duration,
    upstream_origin: Arc<str>,
}

impl Expect {
    /// What the upstream's mode makes of a call that reached it: status and body. `aud` is
    /// the audience the token at the upstream must name.
    fn upstream(mode: UpstreamMode, aud: &Arc<str>, redirect: bool) -> (u16, Body) {
        let echo = Body::Echo { aud: aud.clone() };
        match mode {
            UpstreamMode::Healthy if redirect => (307, Body::RedirectOut),
            UpstreamMode::Healthy => (200, echo),
            UpstreamMode::Hanging | UpstreamMode::TricklingHead => (504, Body::Any),
            UpstreamMode::Refusing => (502, Body::Any),
            UpstreamMode::Trickling => (200, Body::Cut),
            UpstreamMode::Error5xx => (UPSTREAM_5XX, echo),
        }
    }

    fn cases(&self, scenario: &Scenario, user: &User, i: usize, fresh: bool) -> Vec<Case> {
        let audience: Arc<str> = AUDIENCE.into();
        let case = |path: String, route, (status, body), refusal, fresh| Case {
            path: path.into(),
            auth: Some(user.auth.clone()),
            user: user.id.clone(),
            status,
            body,
            refusal,
            or_refused: None,
            deadline: match route {
                Route::Exchanged => self.exchanged_deadline,
                _ => self.proxy_deadline,
            },
            route,
            fresh,
        };
        let mut cases = Vec::new();
        // A fresh user whose exchange MKA1 fails: the outbound layer refuses, the handler
        // answers 502 and names the exchange error's kind.
        let exchange_refused = match (fresh, scenario.mka1) {
            (false, _) | (_, Mka1Mode::Healthy) => None,
            (true, Mka1Mode::RateLimited) => Some("exchange:RateLimited"),
            (true, Mka1Mode::Error500) => Some("exchange:Unavailable"),
            (true, Mka1Mode::Hanging) => Some("exchange:Timeout"),
        };
        let exchanged = |redirect: bool| match exchange_refused {
            Some(kind) => ((502, Body::Any), Some(kind)),
            None => (
                Expect::upstream(scenario.upstream, &self.upstream_origin, redirect),
                None,
            ),
        };
        let (expect, refusal) = exchanged(false);
        cases.push(case(
            "/exchanged".into(),
            Route::Exchanged,
            expect,
            refusal,
            fresh,
        ));
        if fresh {
            // The fresh users are there for the exchange; the proxy has the others.
            return cases;
        }
        cases.push(case(
            format!("/proxy/echo?n={i}"),
            Route::Proxy,
            Expect::upstream(scenario.upstream, &audience, false),
            None,
            false,
        ));
        if i.is_multiple_of(8) {
            // Talked into a foreign origin: refused before any credential is computed.
            cases.push(case(
                "/exchanged?to=foreign".into(),
                Route::Exchanged,
                (502, Body::Any),
                Some("HostNotAllowed"),
                false,
            ));
            // The upstream redirects to the foreign origin: the redirect is not followed,
            // the 3xx comes back as it is, and the foreign origin hears nothing.
            cases.push(case(
                "/proxy/redirect".into(),
                Route::Proxy,
                Expect::upstream(scenario.upstream, &audience, true),
                None,
                false,
            ));
            // The same, one hop later: a redirect within the upstream's origin is followed,
            // the next one, out of it, is not.
            cases.push(case(
                "/proxy/hop".into(),
                Route::Proxy,
                Expect::upstream(scenario.upstream, &audience, true),
                None,
                false,
            ));
            if scenario.upstream == UpstreamMode::Trickling {
                // Beside the trickle that is cut, a slow body within the idle timeout
                // between chunks, longer in all than it: it must come whole.
                cases.push(case(
                    "/proxy/stream".into(),
                    Route::Proxy,
                    Expect::upstream(UpstreamMode::Healthy, &audience, false),
                    None,
                    false,
                ));
            }
            let (expect, refusal) = exchanged(true);
            cases.push(case(
                "/exchanged?path=redirect".into(),
                Route::Exchanged,
                expect,
                refusal,
                false,
            ));
        }
        cases
    }
}

/// One line of the table.
struct Row {
    scenario: &'static str,
    report: Report,
    probe: Probe,
    max_fds: u64,
    max_upstream: u64,
    max_mka1: u64,
    rss_mib: f64,
    checked: String,
    ok: bool,
}

/// The maxima a sampler saw while a scenario ran.
#[derive(Default)]
struct Peaks {
    fds: u64,
    upstream: u64,
    mka1: u64,
    /// Requests at MKA1 at once.
    mka1_in_flight: u64,
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn run_all(settings: Settings) -> Outcome {
    let started = Instant::now();
    let world = World::new(settings.timeouts);
    let t = settings.timeouts;
    eprintln!(
        "outbound soak: service on {}, upstream {}, MKA1 front {}, foreign origin {}, {} connections; timeouts: connect {:?}, idle {:?}, head {:?}, exchange {:?} x {} attempts",
        world.addr,
        world.upstream.url(),
        world.mka1.url(),
        world.foreign.url(),
        settings.connections,
        t.connect,
        t.idle,
        t.head,
        t.exchange,
        t.exchange_attempts,
    );
    let users = mint_users(&world, 0, settings.users);
    let expect = Expect {
        proxy_deadline: t.forward_bound() + settings.margin,
        exchanged_deadline: t.exchange_bound() + t.forward_bound() + settings.margin,
        upstream_origin: world.upstream_origin().into(),
    };
    // Every user's first exchange, all at once: the exchange route for each user once.
    let first = Scenario {
        name: "first exchange of every user",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Healthy,
    };
    let firsts = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| expect.cases(&first, u, i, true))
        .collect();
    let mut rows = vec![run_scenario(
        &world,
        &settings,
        &first,
        Plan::each_once(firsts),
        settings.connections,
        Duration::from_secs(600),
    )];
    let mut next_fresh = settings.users;
    for scenario in &SCENARIOS {
        let mut cases: Vec<Case> = users
            .iter()
            .enumerate()
            .flat_map(|(i, u)| expect.cases(scenario, u, i, false))
            .collect();
        // Users with no token: many while MKA1 fails; a few once it is back, to see the
        // exchange recover without growing the caches (the last row is the plateau's).
        let fresh_users = match scenario.mka1 {
            Mka1Mode::Healthy if scenario.name == "healthy again" => 64,
            Mka1Mode::Healthy => 0,
            _ => settings.fresh_users,
        };
        if fresh_users > 0 {
            let fresh = mint_users(&world, next_fresh, fresh_users);
            next_fresh += fresh_users;
            // Interleaved, so every connection meets both kinds.
            let fresh_cases: Vec<Case> = fresh
                .iter()
                .enumerate()
                .flat_map(|(i, u)| expect.cases(scenario, u, i, true))
                .collect();
            cases = interleave(cases, fresh_cases);
        }
        let plan = Plan::rotating(cases);
        rows.push(run_scenario(
            &world,
            &settings,
            scenario,
            plan,
            settings.connections,
            settings.block,
        ));
    }
    // The plateau's row: after every fault, the same healthy traffic as before them.
    let plateau_row = rows.len() - 1;
    // Last, as it fills the caches: many users never seen, all at once.
    let burst = Scenario {
        name: "a burst of new users, all at once",
        upstream: UpstreamMode::Healthy,
        mka1: Mka1Mode::Healthy,
    };
    let newcomers = mint_users(&world, next_fresh, settings.burst_users);
    // Each gets a token, or, past what the exchange client's slots serve within its
    // timeout, the documented 502 `Timeout` (the tail of the burst): never anything else.
    let cases = newcomers
        .iter()
        .enumerate()
        .flat_map(|(i, u)| expect.cases(&burst, u, i, true))
        .map(|case| Case {
            or_refused: Some("exchange:Timeout"),
            ..case
        })
        .collect();
    rows.push(run_scenario(
        &world,
        &settings,
        &burst,
        Plan::each_once(cases),
        settings.burst_connections,
        Duration::from_secs(600),
    ));
    print_table(&rows, started.elapsed());

    let sum = |f: fn(&Report) -> u64| rows.iter().map(|r| f(&r.report)).sum::<u64>();
    let foreign_credentials = world.foreign_log.credentialed.load(Ordering::SeqCst);
    let probe_wrong: u64 = rows.iter().map(|r| r.probe.wrong).sum();
    let rss: Vec<f64> = rows.iter().map(|r| r.rss_mib).collect();
    let peak = rss.iter().copied().fold(0.0, f64::max);
    // Healthy again, after every fault, holds no more than the peak before it, give or
    // take 10% and 8 MiB: memory does not grow with time and faults.
    let before = rss[..plateau_row].iter().copied().fold(0.0, f64::max);
    let last = rss[plateau_row];
    let plateau_held = settings.short || last <= before * 1.1 + 8.0;
    println!(
        "RSS: {last:.1} MiB after healthy again, {before:.1} MiB at most before it: {}",
        if plateau_held {
            "a plateau"
        } else {
            "STILL GROWING"
        }
    );
    Outcome {
        wrong: sum(Report::wrong) + probe_wrong + foreign_credentials,
        wrong_user: sum(|r| r.wrong_user),
        foreign_credentials,
        late: sum(|r| r.late),
        rss_plateau_mib: last,
        rss_peak_mib: peak,
        max_open: rows.iter().map(|r| r.max_upstream).max().unwrap_or(0),
        max_fds: rows.iter().map(|r| r.max_fds).max().unwrap_or(0),
        failed: rows.iter().filter(|r| !r.ok).count() + usize::from(!plateau_held),
    }
}

/// `a` and `b` alternating while both last, then the rest of the longer.
fn interleave(a: Vec<Case>, b: Vec<Case>) -> Vec<Case> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

fn run_scenario(
    world: &World,
    settings: &Settings,
    scenario: &Scenario,
    plan: Plan,
    connections: usize,
    duration: Duration,
) -> Row {
    let t = settings.timeouts;
    world.set_upstream(scenario.upstream);
    world.set_mka1(scenario.mka1);
    let foreign_before = world.foreign_log.requests.load(Ordering::SeqCst);
    let mka1_before = world.mka1.counters.requests.load(Ordering::SeqCst);
    world.mka1_log.reset();

    let stop = Arc::new(AtomicBool::new(false));
    let (report, probe, peaks) = world.client_rt.block_on(async {
        let sampler = {
            let stop = stop.clone();
            let upstream = world.upstream.counters.clone();
            let mka1 = world.mka1.counters.clone();
            tokio::spawn(async move {
                let mut peaks = Peaks::default();
                while !stop.load(Ordering::SeqCst) {
                    peaks.fds = peaks.fds.max(open_fds());
                    peaks.upstream = peaks.upstream.max(upstream.open());
                    peaks.mka1 = peaks.mka1.max(mka1.open());
                    let in_flight = mka1.in_flight.load(Ordering::SeqCst);
                    peaks.mka1_in_flight = peaks.mka1_in_flight.max(in_flight);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                peaks
            })
        };
        let prober = tokio::spawn(load::probe(
            world.addr,
            Duration::from_millis(20),
            settings.margin,
            stop.clone(),
        ));
        let report = load::drive(world.addr, connections, &plan, duration).await;
        stop.store(true, Ordering::SeqCst);
        (
            report,
            prober.await.expect("prober"),
            sampler.await.expect("sampler"),
        )
    });
    // Every held request (hanging, trickling) must be let go once its client gave up: the
    // crate's client closes the connection when its timeout fires.
    let settle = Instant::now();
    let held = |w: &World| {
        w.upstream.counters.holding.load(Ordering::SeqCst)
            + w.mka1.counters.holding.load(Ordering::SeqCst)
    };
    while held(world) > 0 && settle.elapsed() < t.forward_bound() + t.exchange + settings.margin {
        std::thread::sleep(Duration::from_millis(10));
    }
    let still_held = held(world);
    let rss = rss_bytes().unwrap_or(0);
    world.set_upstream(UpstreamMode::Healthy);
    world.set_mka1(Mka1Mode::Healthy);

    let foreign = world.foreign_log.requests.load(Ordering::SeqCst) - foreign_before;
    let mka1_requests = world.mka1.counters.requests.load(Ordering::SeqCst) - mka1_before;
    let mut checks = Vec::new();
    let mut ok = report.wrong() == 0 && probe.wrong == 0 && still_held == 0 && foreign == 0;
    let (_, probe_p99) = load::percentiles(&mut probe.latencies_us.clone());
    checks.push(format!(
        "/healthz {} answered, p99 {} us, max {} us",
        probe.requests - probe.wrong,
        probe_p99,
        probe.max_us
    ));
    checks.push(format!(
        "{} proxy, {} exchange-route calls",
        report.per_route[Route::Proxy as usize],
        report.per_route[Route::Exchanged as usize],
    ));
    if report.fresh > 0 {
        checks.push(format!(
            "{} for users with no token, answered within {:.0} ms (deadline {:.0} ms)",
            report.fresh,
            f64::from(report.fresh_max_us) / 1000.0,
            (t.exchange_bound() + t.forward_bound() + settings.margin).as_secs_f64() * 1000.0
        ));
    }
    // Each exchange sends at most `attempts` requests: more would be a retry storm. (A
    // healthy MKA1 gets one per user, cached after and shared while in flight, unless an
    // attempt timed out on a loaded machine and was retried.)
    let bound = u64::from(t.exchange_attempts) * report.fresh;
    if scenario.mka1 == Mka1Mode::Healthy {
        checks.push(format!(
            "{mka1_requests} request(s) at MKA1 for {} call(s) by users with no token",
            report.fresh
        ));
        ok &= mka1_requests <= bound;
    } else {
        checks.push(format!(
            "{mka1_requests} requests at MKA1 (bound {bound}: {} attempts per exchange)",
            t.exchange_attempts
        ));
        ok &= mka1_requests <= bound;
        // Information, not a check: how soon the client asked MKA1 again for one user
        // (within an exchange it waits `Retry-After` or the backoff; a later call for the
        // same user starts a new exchange).
        if let Some(gap) = world.mka1_log.shortest_gap() {
            checks.push(format!(
                "shortest gap between two requests for one user {:.0} ms",
                gap.as_secs_f64() * 1000.0
            ));
        }
    }
    if report.refused_alternative > 0 {
        checks.push(format!(
            "{} answered 502 `Timeout`: no exchange slot within the timeout",
            report.refused_alternative
        ));
    }
    if still_held > 0 {
        checks.push(format!("{still_held} held request(s) never let go"));
    }
    checks.push(format!("foreign origin: {foreign} request(s)"));
    // At most one onward call per load connection at a time, through two clients (the
    // proxy's, the exchange route's), each pooling what it opened.
    let connection_bound = 2 * connections as u64 + 2;
    ok &= peaks.upstream <= connection_bound;
    // MKA1 never has more exchanges at once than the client's slots, whatever the load
    // (sampled every 20 ms; its connections may be more: the pool can open one while
    // another is on its way back).
    let slots = t.exchange_slots as u64;
    checks.push(format!(
        "at most {} request(s) at MKA1 at once ({slots} slots)",
        peaks.mka1_in_flight
    ));
    ok &= peaks.mka1_in_flight <= slots;
    for example in &report.examples {
        eprintln!("  {}: wrong answer: {example}", scenario.name);
    }
    Row {
        scenario: scenario.name,
        report,
        probe,
        max_fds: peaks.fds,
        max_upstream: peaks.upstream,
        max_mka1: peaks.mka1,
        rss_mib: mib(rss),
        checked: checks.join("; "),
        ok,
    }
}

fn print_table(rows: &[Row], took: Duration) {
    println!();
    println!("| scenario | requests/s | p50 | p99 | wrong answers | open connections: upstream / MKA1 / fds (max) | RSS | checked | verdict |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let (p50, p99) = row.report.percentiles();
        let ms = |us: u32| format!("{:.1} ms", f64::from(us) / 1000.0);
        println!(
            "| {} | {:.0} | {} | {} | {} | {} / {} / {} | {:.1} MiB | {} | {} |",
            row.scenario,
            row.report.rate(),
            ms(p50),
            ms(p99),
            row.report.wrong() + row.probe.wrong,
            row.max_upstream,
            row.max_mka1,
            row.max_fds,
            row.rss_mib,
            row.checked,
            if row.ok { "ok" } else { "FAILED" }
        );
    }
    println!();
    println!("whole run: {:.0} s", took.as_secs_f64());
}
