//! The load generator: many keep-alive HTTP/1 connections over loopback, each sending one
//! request at a time from a plan of cases, checking every answer against its case's verdict.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What a case is, for per-kind figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request that should be let through (or, on the open route, any request).
    Valid,
    /// A forged, malformed or otherwise refused token.
    Attack,
}

/// One request and the answer it must get.
#[derive(Clone)]
pub struct Case {
    pub path: &'static str,
    pub auth: Option<HeaderValue>,
    pub expect: u16,
    pub kind: Kind,
    /// A verdict that changes mid-run (a revocation rule): see [`Flip`].
    pub flips: Option<Arc<Flip>>,
}

/// When a case's expected answer changes from `expect` to 401 `invalid_token` (a revocation
/// rule stored mid-run): an answer received before the change began must be `expect`; one
/// to a request sent after the change settled (stored, plus the propagation bound) must be
/// 401 `invalid_token`; anything in between may be either, and is counted apart (grace),
/// not as wrong.
pub struct Flip {
    base: Instant,
    /// Nanoseconds after `base`; `u64::MAX` until set.
    began: AtomicU64,
    settled: AtomicU64,
}

impl Flip {
    pub fn new() -> Arc<Flip> {
        Arc::new(Flip {
            base: Instant::now(),
            began: AtomicU64::new(u64::MAX),
            settled: AtomicU64::new(u64::MAX),
        })
    }

    fn at(&self, when: Instant) -> u64 {
        when.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// The change begins now (call before the rule is stored).
    pub fn begin(&self) {
        self.began.store(self.at(Instant::now()), Ordering::SeqCst);
    }

    /// Every request sent from `when` on must get the new answer.
    pub fn settle_at(&self, when: Instant) {
        self.settled.store(self.at(when), Ordering::SeqCst);
    }

    /// What a request sent at `sent` and answered at `answered` must get.
    fn expected(&self, sent: Instant, answered: Instant) -> Expected {
        if self.at(answered) < self.began.load(Ordering::SeqCst) {
            Expected::Before
        } else if self.at(sent) >= self.settled.load(Ordering::SeqCst) {
            Expected::After
        } else {
            Expected::Either
        }
    }
}

enum Expected {
    Before,
    After,
    Either,
}

impl Case {
    /// The unprotected route, sent the same `Authorization` header as `like` (so both routes
    /// read the same bytes and only the layer differs), expecting 200.
    pub fn open_like(like: &Case) -> Case {
        Case {
            path: "/open",
            auth: like.auth.clone(),
            expect: 200,
            kind: Kind::Valid,
            flips: None,
        }
    }

    /// `self`, refused 401 `invalid_token` once `flip` has settled.
    pub fn flipping(mut self, flip: &Arc<Flip>) -> Case {
        self.flips = Some(Arc::clone(flip));
        self
    }

    pub fn bearer(token: &str, expect: u16, kind: Kind) -> Case {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
        value.set_sensitive(true);
        Case {
            path: "/protected",
            auth: Some(value),
            expect,
            kind,
            flips: None,
        }
    }
}

/// The cases to send: in rotation, or each at most once (then the run ends early).
pub struct Plan {
    cases: Arc<[Case]>,
    once: bool,
}

impl Plan {
    pub fn rotating(cases: Vec<Case>) -> Plan {
        Plan {
            cases: cases.into(),
            once: false,
        }
    }

    pub fn each_once(cases: Vec<Case>) -> Plan {
        Plan {
            cases: cases.into(),
            once: true,
        }
    }
}

/// What one kind of case saw.
#[derive(Default, Clone)]
pub struct KindReport {
    pub requests: u64,
    pub wrong: u64,
    pub latencies_us: Vec<u32>,
}

/// What a run saw.
#[derive(Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub valid: KindReport,
    pub attack: KindReport,
    /// A few wrong answers, described (never with a token).
    pub wrong_examples: Vec<String>,
    /// 5xx answers where the case expected something else.
    pub unexpected_5xx: u64,
    /// Whether the plan ran out before the time was up.
    pub exhausted: bool,
    /// Answers to flipping cases while their change propagated: either verdict was right.
    pub grace: u64,
    /// Answers to flipping cases after their change settled (each 401 `invalid_token`, or
    /// counted wrong).
    pub flipped: u64,
}

impl Report {
    pub fn requests(&self) -> u64 {
        self.valid.requests + self.attack.requests
    }

    pub fn wrong(&self) -> u64 {
        self.valid.wrong + self.attack.wrong
    }

    pub fn rate(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn valid_rate(&self) -> f64 {
        self.valid.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// p50 and p99 over every request, in microseconds.
    pub fn percentiles(&self) -> (u32, u32) {
        let mut all: Vec<u32> = self
            .valid
            .latencies_us
            .iter()
            .chain(&self.attack.latencies_us)
            .copied()
            .collect();
        percentiles(&mut all)
    }

    /// Add another run's figures (blocks of one scenario): rates are then over the sum of
    /// their times.
    pub fn absorb(&mut self, other: Report) {
        self.elapsed += other.elapsed;
        for (mine, theirs) in [
            (&mut self.valid, other.valid),
            (&mut self.attack, other.attack),
        ] {
            mine.requests += theirs.requests;
            mine.wrong += theirs.wrong;
            mine.latencies_us.extend(theirs.latencies_us);
        }
        for example in other.wrong_examples {
            if self.wrong_examples.len() < 5 {
                self.wrong_examples.push(example);
            }
        }
        self.exhausted |= other.exhausted;
        self.unexpected_5xx += other.unexpected_5xx;
        self.grace += other.grace;
        self.flipped += other.flipped;
    }

    pub fn empty() -> Report {
        Report {
            elapsed: Duration::ZERO,
            valid: KindReport::default(),
            attack: KindReport::default(),
            wrong_examples: Vec::new(),
            unexpected_5xx: 0,
            exhausted: false,
            grace: 0,
            flipped: 0,
        }
    }
}

pub fn percentiles(latencies: &mut [u32]) -> (u32, u32) {
    if latencies.is_empty() {
        return (0, 0);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Drive `plan` at `addr` over `connections` connections for `duration` (or until a
/// once-only plan runs out).
pub async fn drive(
    addr: std::net::SocketAddr,
    connections: usize,
    plan: &Plan,
    duration: Duration,
) -> Report {
    let deadline = Instant::now() + duration;
    drive_across(&[addr], connections, plan, move || {
        Instant::now() < deadline
    })
    .await
}

/// Drive `plan` over `connections` connections spread over `addrs` (one server each, in
/// turn), while `going` says so (or until a once-only plan runs out).
pub async fn drive_across(
    addrs: &[std::net::SocketAddr],
    connections: usize,
    plan: &Plan,
    going: impl Fn() -> bool + Clone + Send + 'static,
) -> Report {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|lane| {
            let cases = Arc::clone(&plan.cases);
            let once = plan.once;
            let next = Arc::clone(&next);
            let addr = addrs[lane % addrs.len()];
            let going = going.clone();
            tokio::spawn(async move {
                let pick = |n: usize| -> Option<usize> {
                    if once {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        (i < cases.len()).then_some(i)
                    } else {
                        Some((lane + n * connections) % cases.len())
                    }
                };
                connection(addr, &cases, pick, going).await
            })
        })
        .collect();
    let mut report = Report::empty();
    for task in tasks {
        report.absorb(task.await.expect("a load connection panicked"));
    }
    report.elapsed = started.elapsed();
    report
}

/// A stop switch for [`drive_across`].
pub fn until(stop: &Arc<AtomicBool>) -> impl Fn() -> bool + Clone + Send + 'static {
    let stop = Arc::clone(stop);
    move || !stop.load(Ordering::SeqCst)
}

async fn connection(
    addr: std::net::SocketAddr,
    cases: &[Case],
    pick: impl Fn(usize) -> Option<usize>,
    going: impl Fn() -> bool,
) -> Report {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the soak server");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1 handshake");
    tokio::spawn(conn);
    let mut report = Report::empty();
    let mut n = 0;
    while going() {
        let Some(i) = pick(n) else {
            report.exhausted = true;
            break;
        };
        n += 1;
        let case = &cases[i];
        let mut request = Request::get(case.path);
        if let Some(auth) = &case.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let request = request.body(Empty::<Bytes>::new()).expect("request");
        let sent = Instant::now();
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("an answer");
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key(RETRY_AFTER);
        let invalid_token = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .is_some_and(|v| says_invalid_token(v.as_bytes()));
        let _ = response.into_body().collect().await;
        let answered = Instant::now();
        let latency = (answered - sent).as_micros().min(u128::from(u32::MAX)) as u32;
        let answer = Answer {
            status,
            retry_after,
            invalid_token,
            sent,
            answered,
        };
        record(&mut report, case, &answer, latency);
    }
    report
}

/// Whether a `WWW-Authenticate` value carries `error="invalid_token"`.
fn says_invalid_token(challenge: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"error=\"invalid_token\"";
    challenge.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// What came back for one request.
struct Answer {
    status: u16,
    retry_after: bool,
    invalid_token: bool,
    sent: Instant,
    answered: Instant,
}

fn record(report: &mut Report, case: &Case, answer: &Answer, latency: u32) {
    let status = answer.status;
    let refused = status == 401 && answer.invalid_token;
    let right = match case
        .flips
        .as_deref()
        .map(|f| f.expected(answer.sent, answer.answered))
    {
        None | Some(Expected::Before) => {
            // A 503 must say when to come back.
            status == case.expect && (status != 503 || answer.retry_after)
        }
        Some(Expected::After) => {
            report.flipped += 1;
            refused
        }
        Some(Expected::Either) => {
            let either = status == case.expect || refused;
            report.grace += u64::from(either);
            either
        }
    };
    let per_kind = match case.kind {
        Kind::Valid => &mut report.valid,
        Kind::Attack => &mut report.attack,
    };
    per_kind.requests += 1;
    per_kind.latencies_us.push(latency);
    if !right {
        per_kind.wrong += 1;
        if status >= 500 && status != case.expect {
            report.unexpected_5xx += 1;
        }
        if report.wrong_examples.len() < 5 {
            report.wrong_examples.push(format!(
                "{:?} case on {}: expected {}{}, got {status}{}",
                case.kind,
                case.path,
                case.expect,
                if case.flips.is_some() {
                    " (or 401 invalid_token once revoked)"
                } else {
                    ""
                },
                if status == 503 && !answer.retry_after {
                    " without Retry-After"
                } else {
                    ""
                }
            ));
        }
    }
}
