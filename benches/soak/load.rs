//! The load generator: many keep-alive HTTP/1 connections over loopback, each sending one
//! request at a time from a plan of cases, checking every answer against its case's verdict.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER};
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
        }
    }

    pub fn bearer(token: &str, expect: u16, kind: Kind) -> Case {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
        value.set_sensitive(true);
        Case {
            path: "/protected",
            auth: Some(value),
            expect,
            kind,
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
    }

    pub fn empty() -> Report {
        Report {
            elapsed: Duration::ZERO,
            valid: KindReport::default(),
            attack: KindReport::default(),
            wrong_examples: Vec::new(),
            unexpected_5xx: 0,
            exhausted: false,
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
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|lane| {
            let cases = Arc::clone(&plan.cases);
            let once = plan.once;
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let pick = |n: usize| -> Option<usize> {
                    if once {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        (i < cases.len()).then_some(i)
                    } else {
                        Some((lane + n * connections) % cases.len())
                    }
                };
                connection(addr, &cases, pick, deadline).await
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

async fn connection(
    addr: std::net::SocketAddr,
    cases: &[Case],
    pick: impl Fn(usize) -> Option<usize>,
    deadline: Instant,
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
    while Instant::now() < deadline {
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
        let _ = response.into_body().collect().await;
        let latency = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        record(&mut report, case, status, retry_after, latency);
    }
    report
}

fn record(report: &mut Report, case: &Case, status: u16, retry_after: bool, latency: u32) {
    let per_kind = match case.kind {
        Kind::Valid => &mut report.valid,
        Kind::Attack => &mut report.attack,
    };
    per_kind.requests += 1;
    per_kind.latencies_us.push(latency);
    // A 503 must say when to come back.
    let right = status == case.expect && (status != 503 || retry_after);
    if !right {
        per_kind.wrong += 1;
        if status >= 500 && status != case.expect {
            report.unexpected_5xx += 1;
        }
        if report.wrong_examples.len() < 5 {
            report.wrong_examples.push(format!(
                "{:?} case on {}: expected {}, got {status}{}",
                case.kind,
                case.path,
                case.expect,
                if status == 503 && !retry_after {
                    " without Retry-After"
                } else {
                    ""
                }
            ));
        }
    }
}
