//! The load generator: many keep-alive HTTP/1 connections over loopback, each sending one
//! request at a time from a plan of cases, each answer checked against its case, each
//! request given a deadline (the documented timeouts plus a margin). A request past its
//! deadline is a wrong answer; its connection is dropped and another opened.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::world::REFUSAL_HEADER;

/// What the body of an answer must be.
#[derive(Clone, Debug)]
pub enum Body {
    /// Anything.
    Any,
    /// The upstream's echo: exactly one `X-On-Behalf-Of`, the caller's; a token whose `sub`
    /// is the caller and whose `aud` is this.
    Echo { aud: Arc<str> },
    /// The head arrives, then the body is cut (an error, or fewer bytes than announced).
    Cut,
    /// A redirect out of the upstream's origin, to the foreign one's `/stolen`, not
    /// followed.
    RedirectOut,
}

/// One request and the answer it must get.
#[derive(Clone)]
pub struct Case {
    pub path: Arc<str>,
    pub auth: Option<HeaderValue>,
    /// The caller's user id, for the echo check.
    pub user: Arc<str>,
    pub status: u16,
    pub body: Body,
    /// The exchange route's `x-soak-refusal`, when a refusal is expected.
    pub refusal: Option<&'static str>,
    /// Another answer that is as right: 502 with this refusal (the tail of a burst past
    /// what the exchange client's slots serve within its timeout). Counted apart.
    pub or_refused: Option<&'static str>,
    pub deadline: Duration,
    /// Which column of the report it counts in.
    pub route: Route,
    /// An exchange-route call for a user with no cached token: it makes an exchange.
    pub fresh: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Proxy,
    Exchanged,
    Open,
}

/// The cases to send: in rotation, or each once (then the run ends when they are done).
pub struct Plan {
    cases: Arc<[Case]>,
    once: bool,
}

impl Plan {
    pub fn rotating(cases: Vec<Case>) -> Plan {
        assert!(!cases.is_empty(), "an empty plan");
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

/// What a run saw.
#[derive(Default, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub requests: u64,
    pub latencies_us: Vec<u32>,
    pub wrong_status: u64,
    /// An echo naming another user (or none, or two).
    pub wrong_user: u64,
    /// No whole answer within the deadline.
    pub late: u64,
    /// A body that should have been cut and was not, or the other way round.
    pub wrong_body: u64,
    pub examples: Vec<String>,
    pub per_route: [u64; 3],
    /// Requests sent with `fresh` cases, and the longest any of them took.
    pub fresh: u64,
    pub fresh_max_us: u32,
    /// Answers that were a case's `or_refused` alternative.
    pub refused_alternative: u64,
}

impl Report {
    pub fn wrong(&self) -> u64 {
        self.wrong_status + self.wrong_user + self.late + self.wrong_body
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentiles(&self) -> (u32, u32) {
        let mut all = self.latencies_us.clone();
        percentiles(&mut all)
    }

    pub fn absorb(&mut self, other: Report) {
        self.requests += other.requests;
        self.latencies_us.extend(other.latencies_us);
        self.wrong_status += other.wrong_status;
        self.wrong_user += other.wrong_user;
        self.late += other.late;
        self.wrong_body += other.wrong_body;
        self.fresh += other.fresh;
        self.fresh_max_us = self.fresh_max_us.max(other.fresh_max_us);
        self.refused_alternative += other.refused_alternative;
        for (mine, theirs) in self.per_route.iter_mut().zip(other.per_route) {
            *mine += theirs;
        }
        for example in other.examples {
            if self.examples.len() < 8 {
                self.examples.push(example);
            }
        }
    }

    fn wrong_answer(&mut self, case: &Case, what: String) {
        if self.examples.len() < 8 {
            self.examples.push(format!(
                "{:?} {} as {}: {what}",
                case.route, case.path, case.user
            ));
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

/// Drive `plan` at `addr` over `connections` connections for `duration`; requests in
/// flight at the end are waited for (each has its deadline).
pub async fn drive(
    addr: SocketAddr,
    connections: usize,
    plan: &Plan,
    duration: Duration,
) -> Report {
    let started = Instant::now();
    let deadline = started + duration;
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|lane| {
            let cases = Arc::clone(&plan.cases);
            let (once, next) = (plan.once, next.clone());
            tokio::spawn(async move {
                let pick = |n: usize| {
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
    let mut report = Report::default();
    for task in tasks {
        report.absorb(task.await.expect("a load connection panicked"));
    }
    report.elapsed = started.elapsed();
    report
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1 handshake");
    tokio::spawn(conn);
    sender
}

/// What came back for one request.
struct Answer {
    status: u16,
    refusal: Option<String>,
    location: Option<String>,
    /// The whole body, or `None` when it was cut.
    body: Option<Bytes>,
}

async fn send(sender: &mut SendRequest<Empty<Bytes>>, case: &Case) -> Option<Answer> {
    let mut request = Request::get(&*case.path);
    if let Some(auth) = &case.auth {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let request = request.body(Empty::<Bytes>::new()).expect("request");
    sender.ready().await.ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let refusal = response
        .headers()
        .get(REFUSAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let announced: Option<usize> = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = match response.into_body().collect().await {
        Ok(body) => Some(body.to_bytes()).filter(|b| announced.is_none_or(|n| b.len() == n)),
        Err(_) => None,
    };
    Some(Answer {
        status,
        refusal,
        location,
        body,
    })
}

async fn connection(
    addr: SocketAddr,
    cases: &[Case],
    pick: impl Fn(usize) -> Option<usize>,
    until: Instant,
) -> Report {
    let mut sender = connect(addr).await;
    let mut report = Report::default();
    let mut n = 0;
    while Instant::now() < until {
        let Some(i) = pick(n) else { break };
        let case = &cases[i];
        n += 1;
        let sent = Instant::now();
        let answer = tokio::time::timeout(case.deadline, send(&mut sender, case)).await;
        let latency = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        report.requests += 1;
        report.per_route[case.route as usize] += 1;
        if case.fresh {
            report.fresh += 1;
            report.fresh_max_us = report.fresh_max_us.max(latency);
        }
        report.latencies_us.push(latency);
        match answer {
            Err(_) => {
                report.late += 1;
                report.wrong_answer(case, format!("no answer within {:?}", case.deadline));
                sender = connect(addr).await;
            }
            Ok(None) if matches!(case.body, Body::Cut) => {
                // The cut reached the head's connection: the answer began, then broke.
                // Only acceptable where a cut is expected, and only after the head.
                report.wrong_body += 1;
                report.wrong_answer(case, "the connection failed before the head".into());
                sender = connect(addr).await;
            }
            Ok(None) => {
                report.wrong_status += 1;
                report.wrong_answer(case, "the connection failed".into());
                sender = connect(addr).await;
            }
            Ok(Some(answer)) => {
                let cut = answer.body.is_none();
                check(&mut report, case, &answer);
                if cut || sender.is_closed() {
                    // A cut answer ends its connection.
                    sender = connect(addr).await;
                }
            }
        }
    }
    report
}

fn check(report: &mut Report, case: &Case, answer: &Answer) {
    if let Some(kind) = case.or_refused {
        if answer.status == 502 && answer.refusal.as_deref() == Some(kind) {
            report.refused_alternative += 1;
            return;
        }
    }
    if answer.status != case.status {
        report.wrong_status += 1;
        report.wrong_answer(
            case,
            format!("expected {}, got {}", case.status, answer.status),
        );
        return;
    }
    if case.refusal.is_some() && answer.refusal.as_deref() != case.refusal {
        report.wrong_status += 1;
        report.wrong_answer(
            case,
            format!(
                "expected refusal {:?}, got {:?}",
                case.refusal, answer.refusal
            ),
        );
        return;
    }
    match (&case.body, &answer.body) {
        (Body::Any, _) => {}
        (Body::RedirectOut, _) => {
            if !answer
                .location
                .as_deref()
                .is_some_and(|l| l.ends_with("/stolen"))
            {
                report.wrong_body += 1;
                report.wrong_answer(case, format!("a redirect to {:?}", answer.location));
            }
        }
        (Body::Cut, None) => {}
        (Body::Cut, Some(_)) => {
            report.wrong_body += 1;
            report.wrong_answer(case, "the trickled body came whole".into());
        }
        (Body::Echo { .. }, None) => {
            report.wrong_body += 1;
            report.wrong_answer(case, "the body was cut".into());
        }
        (Body::Echo { aud }, Some(body)) => {
            if let Err(why) = echo_is_for(body, &case.user, aud) {
                report.wrong_user += 1;
                report.wrong_answer(case, why);
            }
        }
    }
}

/// Whether the upstream's echo names exactly `user`, once, with a token for `user` and
/// `aud`.
pub fn echo_is_for(body: &[u8], user: &str, aud: &str) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|_| "an echo that is not text".to_owned())?;
    let field = |name: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    };
    let (obo, sub, audience) = (field("obo"), field("sub"), field("aud"));
    if obo != [user] {
        return Err(format!("X-On-Behalf-Of at the upstream: {obo:?}"));
    }
    if sub != [user] {
        return Err(format!("the token at the upstream is for {sub:?}"));
    }
    if audience != [aud] {
        return Err(format!(
            "the token at the upstream is for audience {audience:?}"
        ));
    }
    Ok(())
}

/// What the health prober saw.
#[derive(Default, Clone)]
pub struct Probe {
    pub requests: u64,
    pub wrong: u64,
    pub max_us: u32,
    pub latencies_us: Vec<u32>,
}

/// `GET /healthz` on a connection of its own every `every` until `stop`, each with
/// `deadline`.
pub async fn probe(
    addr: SocketAddr,
    every: Duration,
    deadline: Duration,
    stop: Arc<AtomicBool>,
) -> Probe {
    let mut sender = connect(addr).await;
    let mut probe = Probe::default();
    let case = Case {
        path: "/healthz".into(),
        auth: None,
        user: "-".into(),
        status: 200,
        body: Body::Any,
        refusal: None,
        or_refused: None,
        deadline,
        route: Route::Open,
        fresh: false,
    };
    while !stop.load(Ordering::SeqCst) {
        let sent = Instant::now();
        let answer = tokio::time::timeout(deadline, send(&mut sender, &case)).await;
        let latency = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        probe.requests += 1;
        probe.max_us = probe.max_us.max(latency);
        probe.latencies_us.push(latency);
        match answer {
            Ok(Some(a)) if a.status == 200 && a.body.is_some() => {}
            _ => {
                probe.wrong += 1;
                sender = connect(addr).await;
            }
        }
        tokio::time::sleep(every).await;
    }
    probe
}
