//! Keys that stay fresh without traffic: the warm-up (`Verifier::refresh`), conditional
//! fetches (304), and the background refresher, against a JWKS endpoint on 127.0.0.1. Time
//! is a `ManualClock` the refresher sleeps on; the tests move it and wait only for the
//! endpoint's answers.
#![cfg(feature = "remote")]

use crate::common;
use crate::jwks_server;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use jwks_server::JwksServer;
use mka1_auth::{ConfigError, ConfigErrorKind, ErrorKind, ManualClock, Verifier};

const MAX_AGE: u64 = 600;
/// 80% of the max-age: when a refresh is due.
const REFRESH_AT: u64 = MAX_AGE * 4 / 5;

fn remote(server: &JwksServer, clock: &ManualClock) -> Verifier {
    Verifier::builder()
        .jwks_url(server.url())
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn unix(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn the_warm_up_makes_the_set_usable_before_any_token() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), MAX_AGE).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = remote(&server, &clock);
    assert!(!verifier.key_set_status().usable);

    server.fail(true);
    let err = verifier.refresh().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    assert!(err.retry_after().is_some());
    // Within the retry backoff (30 s), it fetches nothing and answers at once.
    let again = verifier.refresh().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::KeysUnavailable);
    assert_eq!(server.requests(), 1);

    server.fail(false);
    clock.advance(Duration::from_secs(30));
    let status = verifier.refresh().await.unwrap();
    assert!(status.usable && !status.stale);
    assert_eq!(status.key_count, 1);
    assert_eq!(server.requests(), 2);
    // No fetch is waited for: the first token is answered from the warmed set.
    verifier.verify(&key.sign(&claims_at(NOW))).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn an_unchanged_set_is_renewed_by_a_304_and_keeps_its_cached_tokens() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), MAX_AGE).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = remote(&server, &clock);
    let token = key.sign(&claims_at(NOW));
    let first = verifier.verify(&token).await.unwrap();

    clock.advance(Duration::from_secs(MAX_AGE + 1));
    assert!(verifier.key_set_status().stale);
    let status = verifier.refresh().await.unwrap();
    assert!(!status.stale, "the 304 renewed the set's freshness");
    assert_eq!(status.last_success, Some(unix(NOW + MAX_AGE + 1)));
    let conditions = server.conditions();
    assert_eq!(conditions.len(), 2);
    assert_eq!(conditions[0], None, "nothing held, nothing to compare");
    assert!(conditions[1]
        .as_deref()
        .is_some_and(|etag| etag.starts_with('"')));
    // The same key, so the token cached against it is still answered from memory.
    let again = verifier.verify(&token).await.unwrap();
    assert!(std::ptr::eq(first.raw_claims(), again.raw_claims()));

    // A changed document is fetched whole.
    let rotated = TestKey::ed25519("k2");
    server.set_document(jwks(&[&key, &rotated]));
    let status = verifier.refresh().await.unwrap();
    assert_eq!(status.key_count, 2);
}

#[tokio::test]
async fn the_refresher_keeps_an_idle_set_fresh_and_retries_failures() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), MAX_AGE).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = remote(&server, &clock);
    let refresher = verifier.spawn_refresher().unwrap();
    assert!(refresher.is_running());

    // Nothing held: it fetches at once, with no request in sight.
    server.answered(1).await;
    let fetched = |verifier: &Verifier| verifier.key_set_status().last_success;
    wait_for(|| fetched(&verifier) == Some(unix(NOW))).await;
    let status = verifier.key_set_status();
    assert!(status.usable);
    // The clock pins jitter: due at exactly 80% of the max-age.
    assert_eq!(status.next_refresh, Some(unix(NOW + REFRESH_AT)));

    clock.advance(Duration::from_secs(REFRESH_AT));
    server.answered(2).await;
    wait_for(|| fetched(&verifier) == Some(unix(NOW + REFRESH_AT))).await;
    assert!(server.conditions()[1].is_some(), "a conditional fetch");

    // Failing: retried when the backoff ends (30 s, then 60 s), until it answers again.
    server.fail(true);
    clock.advance(Duration::from_secs(REFRESH_AT));
    server.answered(3).await;
    wait_for(|| verifier.key_set_status().consecutive_failures == 1).await;
    clock.advance(Duration::from_secs(30));
    server.answered(4).await;
    wait_for(|| verifier.key_set_status().consecutive_failures == 2).await;
    server.fail(false);
    clock.advance(Duration::from_secs(60));
    server.answered(5).await;
    wait_for(|| verifier.key_set_status().consecutive_failures == 0).await;
    let status = verifier.key_set_status();
    assert!(status.usable && !status.stale);
    assert_eq!(server.requests(), 5, "one fetch per due time, never two");
    drop(refresher);
}

#[tokio::test]
async fn the_refresher_ends_with_its_verifier_or_its_handle() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), MAX_AGE).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = remote(&server, &clock);
    let refresher = verifier.spawn_refresher().unwrap();
    server.answered(1).await;
    wait_for(|| verifier.key_set_status().usable).await;
    drop(verifier);
    wait_for(|| !refresher.is_running()).await;
    clock.advance(Duration::from_secs(10 * MAX_AGE));
    assert_eq!(server.requests(), 1);

    // Dropping the handle stops it at once: only the explicit refresh fetches after.
    let verifier = remote(&server, &clock);
    let refresher = verifier.spawn_refresher().unwrap();
    server.answered(2).await;
    wait_for(|| verifier.key_set_status().usable).await;
    drop(refresher);
    clock.advance(Duration::from_secs(REFRESH_AT));
    verifier.refresh().await.unwrap();
    assert_eq!(server.requests(), 3);
}

/// The production guide's warm-up and refresher (`docs/production.md`), as it starts them.
#[rustfmt::skip] // as the guide shows it
fn guide_warm_up(verifier: Verifier) -> Result<mka1_auth::jwks::remote::Refresher, ConfigError> {
    let warm_up = verifier.clone();
    tokio::spawn(async move { let _ = warm_up.refresh().await; }); // fetch now, don't block start-up
    let refresher = verifier.spawn_refresher()?;  // refresh at ~80% of freshness, jittered
    // keep `refresher` alive while serving; dropping it (or the verifier) stops it
    Ok(refresher)
}

#[tokio::test]
async fn the_guide_warm_up_fetches_once_though_both_start_at_once() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(jwks(&[&key]), MAX_AGE).await;
    let clock = ManualClock::at_unix(NOW);
    let verifier = remote(&server, &clock);
    let refresher = guide_warm_up(verifier.clone()).unwrap();
    server.answered(1).await;
    wait_for(|| verifier.key_set_status().usable).await;
    // The warm-up and the refresher shared one fetch (single flight).
    assert_eq!(server.requests(), 1);
    assert!(refresher.is_running());
}

#[tokio::test]
async fn a_static_set_needs_no_refresher() {
    let key = TestKey::ed25519("k1");
    let verifier = verifier_with_clock(&[&key], &ManualClock::at_unix(NOW));
    let refresher = verifier.spawn_refresher().unwrap();
    assert!(!refresher.is_running());
    assert!(verifier.refresh().await.unwrap().usable);
}

#[test]
fn the_refresher_needs_a_runtime() {
    let verifier = Verifier::builder()
        .jwks_url("https://jwks.example.test/keys")
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let err = verifier.spawn_refresher().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    assert_eq!(err.setting(), Some("runtime"));
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

/// Let the runtime run until `done` holds (the fetch task reports after the endpoint
/// answers); gives up after many turns rather than hang.
async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}
