//! The exchange client under pressure, against an MKA1 stand-in on 127.0.0.1 that counts
//! what it is sent (calls, calls per user, requests in flight and their peak, when each
//! arrived by the test's clock) and can answer 429 or hang, which the dev issuer cannot:
//!
//! - 10,000 users at once: one exchange each, never more than the cap in flight;
//! - a token expiring under 1,000 concurrent callers: one renewal;
//! - 429 with `Retry-After`: one pause for the whole client, no request before the moment;
//!   past `max_retry_after`, callers fail at once without sending; a caller whose token is
//!   due for renewal keeps using it meanwhile;
//! - a hanging MKA1: every caller fails with `Timeout`, at most the cap in flight.
//!
//! Nothing here sleeps to wait for something: the stand-in and a clock that counts its
//! sleepers tell the test when the client has done what it waits for.
#![cfg(feature = "remote")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth::exchange::{
    ExchangeClient, ExchangeClientBuilder, ExchangeError, ExchangeErrorKind, ExchangeRequest,
};
use mka1_auth::outbound::Refusal;
use mka1_auth::{Clock, ManualClock};
use serde_json::{json, Value};
use tokio::sync::Notify;

const NOW: u64 = 1_800_000_000;
const AUD: &str = "https://agents.example.test";
const PATH: &str = "/api/v1/authentication/api-keys/exchange-token";
/// How long the test waits for an event before failing, instead of hanging.
const GUARD: Duration = Duration::from_secs(120);

/// How the stand-in answers.
#[derive(Clone)]
enum Mode {
    /// A token with `exp = now + expiresIn`.
    Mint,
    /// 429 with this `Retry-After` to requests arriving before `until`; a token after.
    RateLimit {
        until: SystemTime,
        retry_after: String,
    },
    /// Never answer.
    Hang,
}

/// Hold a request in the handler until this many are in flight (fewer once fewer are left
/// to come), so the peak the test reads is the client's cap, reached.
#[derive(Clone, Copy)]
struct Hold {
    in_flight: usize,
    /// Hold only the first this many requests; later ones pass.
    first: usize,
    /// How many requests will come in all (the tail cannot fill the cap).
    total: usize,
}

struct Counts {
    clock: ManualClock,
    mode: Mutex<Mode>,
    hold: Mutex<Option<Hold>>,
    calls: AtomicUsize,
    /// Requests up to this number pass the hold.
    released: AtomicUsize,
    answered: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    per_user: Mutex<HashMap<String, usize>>,
    arrivals: Mutex<Vec<SystemTime>>,
    /// While set, every request waits in the handler.
    closed: AtomicBool,
    /// Any change of the numbers above.
    changed: Notify,
}

#[derive(Clone)]
struct StandIn {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

/// Counts a request in flight until dropped (answered, or dropped with its connection).
struct InFlight<'a>(&'a Counts);

impl<'a> InFlight<'a> {
    fn enter(counts: &'a Counts) -> Self {
        let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counts.peak.fetch_max(now, Ordering::SeqCst);
        counts.changed.notify_waiters();
        InFlight(counts)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Counts {
    /// Wait until `done` holds, woken by every change.
    async fn until(&self, done: impl Fn(&Counts) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            changed.await;
        }
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

async fn exchange(State(counts): State<Arc<Counts>>, Json(body): Json<Value>) -> Response {
    let arrived = counts.clock.now();
    let user = body["externalUserId"].as_str().unwrap_or("").to_owned();
    let number = counts.calls.fetch_add(1, Ordering::SeqCst) + 1;
    counts.arrivals.lock().unwrap().push(arrived);
    *counts
        .per_user
        .lock()
        .unwrap()
        .entry(user.clone())
        .or_default() += 1;
    let flight = InFlight::enter(&counts);
    let hold = *counts.hold.lock().unwrap();
    if let Some(hold) = hold.filter(|h| number <= h.first) {
        // Once enough are in flight, every request that has arrived goes (a latch: the first
        // to go does not hold the others back again by leaving).
        let wanted = |c: &Counts| {
            if c.released.load(Ordering::SeqCst) >= number {
                return true;
            }
            let left = hold.total - c.answered.load(Ordering::SeqCst);
            let full = c.in_flight.load(Ordering::SeqCst) >= hold.in_flight.min(left);
            if full {
                c.released
                    .fetch_max(c.calls.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            full
        };
        // A client that never fills the cap fails the test's count, not by hanging here.
        let _ = tokio::time::timeout(GUARD, counts.until(wanted)).await;
    }
    let open = |c: &Counts| !c.closed.load(Ordering::SeqCst);
    let _ = tokio::time::timeout(GUARD, counts.until(open)).await;
    let mode = counts.mode.lock().unwrap().clone();
    let response = match mode {
        Mode::Hang => std::future::pending().await,
        Mode::RateLimit { until, retry_after } if arrived < until => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after)],
            r#"{"detail":"slow down"}"#,
        )
            .into_response(),
        Mode::RateLimit { .. } | Mode::Mint => {
            let now = counts.clock.now_unix();
            let lifetime = body["expiresIn"].as_f64().unwrap_or(3600.0) as u64;
            let claims = json!({ "sub": user, "aud": AUD, "exp": now + lifetime, "jti": number });
            let token = format!(
                "{}.{}.c2ln",
                b64(r#"{"alg":"EdDSA"}"#),
                b64(&claims.to_string())
            );
            Json(json!({ "token": token })).into_response()
        }
    };
    counts.answered.fetch_add(1, Ordering::SeqCst);
    drop(flight);
    response
}

impl StandIn {
    async fn start(clock: &ManualClock, mode: Mode) -> StandIn {
        let counts = Arc::new(Counts {
            clock: clock.clone(),
            mode: Mutex::new(mode),
            hold: Mutex::new(None),
            calls: AtomicUsize::new(0),
            released: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            per_user: Mutex::default(),
            arrivals: Mutex::default(),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route(PATH, post(exchange))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { addr, counts }
    }

    fn client(&self, clock: impl Clock) -> ExchangeClientBuilder {
        ExchangeClient::builder()
            .base_url(format!("http://{}", self.addr))
            .api_key("mk_test_pressure")
            .clock(clock)
    }

    fn hold(&self, hold: Hold) {
        *self.counts.hold.lock().unwrap() = Some(hold);
    }

    /// Hold every request in the handler (`true`) or let them go.
    fn close(&self, closed: bool) {
        self.counts.closed.store(closed, Ordering::SeqCst);
        self.counts.changed.notify_waiters();
    }

    fn calls(&self) -> usize {
        self.counts.calls.load(Ordering::SeqCst)
    }

    fn peak(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }

    /// How many requests arrived before `moment`, by the test's clock.
    fn arrived_before(&self, moment: SystemTime) -> usize {
        let arrivals = self.counts.arrivals.lock().unwrap();
        arrivals.iter().filter(|at| **at < moment).count()
    }

    async fn until(&self, done: impl Fn(&Counts) -> bool) {
        tokio::time::timeout(GUARD, self.counts.until(done))
            .await
            .expect("the stand-in never saw what the test waits for");
    }
}

/// A [`ManualClock`] that counts the callers sleeping on it, so the test knows when every
/// caller is parked until a moment.
#[derive(Clone)]
struct CountingClock {
    clock: ManualClock,
    sleeping: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

struct Sleeping<'a>(&'a CountingClock);

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.sleeping.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl CountingClock {
    fn new(clock: &ManualClock) -> Self {
        CountingClock {
            clock: clock.clone(),
            sleeping: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// Wait until `n` callers sleep on the clock at once.
    async fn until_sleeping(&self, n: usize) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if self.sleeping.load(Ordering::SeqCst) >= n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(GUARD, wait)
            .await
            .expect("the callers never all slept on the clock");
    }
}

impl Clock for CountingClock {
    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn pins_jitter(&self) -> bool {
        true
    }

    fn sleep_until(
        &self,
        deadline: SystemTime,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.sleeping.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
            let _sleeping = Sleeping(self);
            self.clock.sleep_until(deadline).await;
        })
    }
}

fn req(user: &str) -> ExchangeRequest {
    ExchangeRequest::new(AUD, user)
}

fn kind(err: &Refusal) -> ExchangeErrorKind {
    ExchangeError::of(err)
        .unwrap_or_else(|| panic!("no exchange error in {err:?}"))
        .kind()
}

/// Ask for every user's token from its own task, `per_user` times each, all at once.
async fn everyone(
    client: &ExchangeClient,
    users: usize,
    per_user: usize,
) -> Vec<Result<String, Refusal>> {
    let mut tasks = tokio::task::JoinSet::new();
    for user in 0..users {
        for _ in 0..per_user {
            let client = client.clone();
            tasks.spawn(async move {
                let token = client.token(&req(&format!("user-{user}"))).await;
                token.map(|t| t.expose().to_owned())
            });
        }
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_at_once_get_one_exchange_each_within_the_cap() {
    const USERS: usize = 10_000;
    const CAP: usize = 16;
    let clock = ManualClock::at_unix(NOW);
    let mka1 = StandIn::start(&clock, Mode::Mint).await;
    // Each request waits in the stand-in until CAP are in flight: the peak is the cap, reached.
    mka1.hold(Hold {
        in_flight: CAP,
        first: usize::MAX,
        total: USERS,
    });
    let client = mka1
        .client(clock.clone())
        .max_concurrent_exchanges(CAP)
        // Waiting for a slot counts against the timeout; a slow test machine must not fail.
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    // Two callers per user: 20,000 calls.
    let tokens = everyone(&client, USERS, 2).await;
    let failed: Vec<_> = tokens.iter().filter_map(|t| t.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(mka1.calls(), USERS, "one exchange per user");
    {
        let per_user = mka1.counts.per_user.lock().unwrap();
        assert_eq!(per_user.len(), USERS);
        assert!(per_user.values().all(|n| *n == 1));
    }
    assert_eq!(
        mka1.peak(),
        CAP,
        "at most the cap in flight, and the cap reached"
    );
    // All cached now: another round sends nothing.
    everyone(&client, 100, 1).await;
    assert_eq!(mka1.calls(), USERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_under_a_thousand_callers_is_renewed_once() {
    let clock = ManualClock::at_unix(NOW);
    let mka1 = StandIn::start(&clock, Mode::Mint).await;
    let client = mka1.client(clock.clone()).build().unwrap();
    let first = client.token(&req("erin")).await.unwrap();
    assert_eq!(mka1.calls(), 1);

    // Past renewal (60 s before exp), not yet expired. The renewal is held in the stand-in
    // until every caller has started, so they all meet the token due for renewal.
    clock.advance(Duration::from_secs(3600 - 30));
    mka1.close(true);
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (client, started) = (client.clone(), started.clone());
        tasks.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            client.token(&req("erin")).await.unwrap()
        });
    }
    mka1.until(|c| c.calls.load(Ordering::SeqCst) == 2).await;
    while started.load(Ordering::SeqCst) < 1000 {
        tokio::task::yield_now().await;
    }
    mka1.close(false);
    let tokens = tasks.join_all().await;
    assert_eq!(mka1.calls(), 2, "one renewal for 1,000 callers");
    assert!(tokens.iter().all(|t| t.expose() == tokens[0].expose()));
    assert_ne!(tokens[0].expose(), first.expose());
    assert_eq!(tokens[0].expires_at(), NOW + 3600 - 30 + 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_exchange_until_its_retry_after() {
    const USERS: usize = 40;
    const CAP: usize = 4;
    let clock = ManualClock::at_unix(NOW);
    let moment = clock.now() + Duration::from_secs(5);
    let mka1 = StandIn::start(
        &clock,
        Mode::RateLimit {
            until: moment,
            retry_after: "5".into(),
        },
    )
    .await;
    // The first CAP requests are all in flight before any is answered (429).
    mka1.hold(Hold {
        in_flight: CAP,
        first: CAP,
        total: usize::MAX,
    });
    let counting = CountingClock::new(&clock);
    let client = mka1
        .client(counting.clone())
        .max_concurrent_exchanges(CAP)
        .build()
        .unwrap();
    let run = {
        let client = client.clone();
        tokio::spawn(async move { everyone(&client, USERS, 1).await })
    };
    // Every caller parks until the moment: the CAP answered and all the others.
    counting.until_sleeping(USERS).await;
    assert_eq!(mka1.calls(), CAP, "nothing sent but the first CAP");
    clock.advance(Duration::from_secs(5));
    let tokens = run.await.unwrap();
    assert!(tokens.iter().all(Result::is_ok), "{tokens:?}");
    assert_eq!(
        mka1.calls(),
        CAP + USERS,
        "CAP 429s, then one exchange a user"
    );
    assert_eq!(mka1.arrived_before(moment), CAP);
    assert_eq!(mka1.peak(), CAP);
}

#[tokio::test]
async fn a_retry_after_past_the_longest_wait_fails_every_caller_at_once_without_sending() {
    let clock = ManualClock::at_unix(NOW);
    let moment = clock.now() + Duration::from_secs(120);
    let mka1 = StandIn::start(
        &clock,
        Mode::RateLimit {
            until: moment,
            retry_after: "120".into(),
        },
    )
    .await;
    let counting = CountingClock::new(&clock);
    let client = mka1
        .client(counting.clone())
        .max_retry_after(Duration::from_secs(30))
        .build()
        .unwrap();
    let err = client.token(&req("first")).await.unwrap_err();
    let error = ExchangeError::of(&err).unwrap();
    assert_eq!(error.kind(), ExchangeErrorKind::RateLimited);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(mka1.calls(), 1);

    // Ninety other users in the next 90 s, while more than max_retry_after is left: each
    // fails at once, and nothing is sent.
    for second in 0..90 {
        let err = client
            .token(&req(&format!("user-{second}")))
            .await
            .unwrap_err();
        let error = ExchangeError::of(&err).unwrap();
        assert_eq!(error.kind(), ExchangeErrorKind::RateLimited);
        assert_eq!(error.attempts(), 0);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(120 - second)));
        assert!(err.to_string().contains("paused"), "{err}");
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(mka1.calls(), 1, "no request during the pause");

    // 30 s left: within max_retry_after, so a caller waits for the moment, then is served.
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.token(&req("patient")).await })
    };
    counting.until_sleeping(1).await;
    assert_eq!(mka1.calls(), 1);
    clock.advance(Duration::from_secs(30));
    waiting.await.unwrap().unwrap();
    assert_eq!(mka1.calls(), 2);
    assert_eq!(mka1.arrived_before(moment), 1);
}

#[tokio::test]
async fn a_token_due_for_renewal_is_used_while_exchanges_are_paused() {
    let clock = ManualClock::at_unix(NOW);
    let mka1 = StandIn::start(&clock, Mode::Mint).await;
    let client = mka1.client(clock.clone()).build().unwrap();
    let first = client.token(&req("fay")).await.unwrap();
    clock.advance(Duration::from_secs(3600 - 30)); // due for renewal, 30 s left
    let moment = clock.now() + Duration::from_secs(10);
    *mka1.counts.mode.lock().unwrap() = Mode::RateLimit {
        until: moment,
        retry_after: "10".into(),
    };
    // The renewal gets 429 (a 10 s wait, within max_retry_after): the caller does not wait
    // but keeps the current token, and so does every caller during the pause, unsent.
    for _ in 0..50 {
        let token = client.token(&req("fay")).await.unwrap();
        assert_eq!(token.expose(), first.expose());
    }
    assert_eq!(mka1.calls(), 2);
    clock.advance(Duration::from_secs(10));
    let renewed = client.token(&req("fay")).await.unwrap();
    assert_ne!(renewed.expose(), first.expose());
    assert_eq!(mka1.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_mka1_fails_every_caller_with_a_timeout_and_nothing_piles_up() {
    const CAP: usize = 4;
    let clock = ManualClock::at_unix(NOW);
    let mka1 = StandIn::start(&clock, Mode::Hang).await;
    let client = mka1
        .client(clock.clone())
        .max_concurrent_exchanges(CAP)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let results = everyone(&client, 3 * CAP, 1).await;
    for result in &results {
        let err = result.as_ref().unwrap_err();
        assert_eq!(kind(err), ExchangeErrorKind::Timeout, "{err}");
        assert!(
            ExchangeError::of(err).unwrap().attempts() <= 1,
            "not retried"
        );
    }
    assert!(mka1.peak() <= CAP, "{} in flight", mka1.peak());
    assert!((1..=3 * CAP).contains(&mka1.calls()), "{}", mka1.calls());
}

#[tokio::test]
async fn the_cap_and_the_timeout_are_checked_when_built() {
    let clock = ManualClock::at_unix(NOW);
    let mka1 = StandIn::start(&clock, Mode::Mint).await;
    let err = mka1
        .client(clock.clone())
        .max_concurrent_exchanges(0)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("max_concurrent_exchanges"),
        "{err}"
    );
    let err = mka1
        .client(clock.clone())
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
    mka1.client(clock)
        .max_concurrent_exchanges(1)
        .build()
        .unwrap();
}
