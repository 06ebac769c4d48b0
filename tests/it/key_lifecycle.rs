//! The exchange client through an API key's life on a dev issuer: tokens with all of the
//! key's scopes or a subset, a scope outside them refused, the key regenerated, updated,
//! deleted and expired. A rejected key is its own refusal kind, never retried, says to check
//! the key, and drops every token the client cached for it.
#![cfg(feature = "remote")]

use std::time::Duration;

use mka1_auth::exchange::{ExchangeClient, ExchangeError, ExchangeErrorKind, ExchangeRequest};
use mka1_auth::outbound::{Refusal, RefusalKind};
use mka1_auth::protocol::{EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH};
use mka1_auth::{ManualClock, Verifier};
use mka1_auth_dev_issuer::{ApiKeySpec, DevIssuer, SCOPED_API_KEY_UPDATE_PATH};
use serde_json::json;

const NOW: u64 = 1_800_000_000;
const AUDIENCE: &str = "https://orders.example.test";

async fn start(clock: &ManualClock) -> DevIssuer {
    DevIssuer::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

/// A client for `key` on `path`, with the test's clock and up to three attempts.
fn client(issuer: &DevIssuer, key: &str, path: &str, clock: &ManualClock) -> ExchangeClient {
    ExchangeClient::builder()
        .base_url(issuer.base_url())
        .endpoint_path(path)
        .api_key(key)
        .clock(clock.clone())
        .max_attempts(3)
        .build()
        .unwrap()
}

fn verifier(issuer: &DevIssuer, clock: &ManualClock) -> Verifier {
    Verifier::builder()
        .jwks(issuer.jwks_json())
        .issuer(issuer.issuer())
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// The permissions of a token the client gets for `user`, asking for exactly `permissions`,
/// or with `None` for all of the key's scopes.
async fn permissions(
    client: &ExchangeClient,
    verifier: &Verifier,
    user: &str,
    permissions: Option<&[&str]>,
) -> Result<Vec<String>, Refusal> {
    let request = ExchangeRequest::new(AUDIENCE, user);
    let request = match permissions {
        Some(list) => request.permissions(list.iter().copied()),
        None => request.all_key_scopes(),
    };
    let token = client.token(&request).await?;
    let verified = verifier.verify(token.expose()).await.unwrap();
    Ok(verified.permissions().iter().map(str::to_owned).collect())
}

/// A refusal for a rejected key, as the client must report it.
fn assert_key_rejected(err: &Refusal, secret: &str) {
    assert_eq!(err.kind(), RefusalKind::ApiKeyRejected, "{err}");
    let exchange = ExchangeError::of(err).unwrap();
    assert_eq!(exchange.kind(), ExchangeErrorKind::Unauthorized);
    assert_eq!(exchange.status(), Some(401));
    assert_eq!(exchange.attempts(), 1, "a rejected key is never retried");
    let text = err.to_string();
    assert!(text.contains("check the configured api key"), "{text}");
    assert!(!text.contains(secret) && !format!("{err:?}").contains(secret));
}

#[tokio::test]
async fn the_client_follows_the_key_through_its_life_on_both_paths() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let verifier = verifier(&issuer, &clock);
    for path in [EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH] {
        let key = issuer
            .create_key(ApiKeySpec::new(["orders:read", "orders:write"]).name("svc"))
            .unwrap();
        assert!(issuer.keys().iter().any(|k| k.id() == key.id()), "listed");
        let old = client(&issuer, key.secret(), path, &clock);

        // All of the key's scopes, then a subset; a scope outside them is refused.
        let all = permissions(&old, &verifier, "u1", None).await.unwrap();
        assert_eq!(all, ["orders:read", "orders:write"], "{path}");
        let subset = permissions(&old, &verifier, "u1", Some(&["orders:read"]))
            .await
            .unwrap();
        assert_eq!(subset, ["orders:read"]);
        let err = permissions(&old, &verifier, "u1", Some(&["files:read"]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), RefusalKind::Exchange);
        assert_eq!(
            ExchangeError::of(&err).unwrap().kind(),
            ExchangeErrorKind::Forbidden
        );

        // Regenerated: the client holding the old secret is rejected; a new one works.
        let renewed = issuer.regenerate_key(key.id()).unwrap();
        let err = permissions(&old, &verifier, "u2", None).await.unwrap_err();
        assert_key_rejected(&err, key.secret());
        let new = client(&issuer, renewed.secret(), path, &clock);
        assert_eq!(
            permissions(&new, &verifier, "u2", None)
                .await
                .unwrap()
                .len(),
            2
        );

        // Updated to one scope (over HTTP, as an administrator would).
        let answer = reqwest::Client::new()
            .post(format!("{}{SCOPED_API_KEY_UPDATE_PATH}", issuer.base_url()))
            .bearer_auth(issuer.api_key())
            .json(&json!({"keyId": key.id(), "scopes": ["orders:read"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let all = permissions(&new, &verifier, "u3", None).await.unwrap();
        assert_eq!(all, ["orders:read"]);

        // Deleted: rejected from then on.
        assert!(issuer.revoke_key(key.id()));
        let err = permissions(&new, &verifier, "u4", None).await.unwrap_err();
        assert_key_rejected(&err, renewed.secret());
    }
}

#[tokio::test]
async fn a_rejected_key_drops_every_token_the_client_cached() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let verifier = verifier(&issuer, &clock);
    let key = issuer.create_key(ApiKeySpec::new(["orders:read"])).unwrap();
    let client = client(&issuer, key.secret(), EXCHANGE_TOKEN_PATH, &clock);
    let alice = ExchangeRequest::new(AUDIENCE, "alice");
    let bob = ExchangeRequest::new(AUDIENCE, "bob");
    let first = client.token(&alice).await.unwrap();
    clock.advance(Duration::from_secs(600));
    client.token(&bob).await.unwrap();

    assert!(issuer.revoke_key(key.id()));
    // Cached and fresh: still served, as nothing asks MKA1 until a token is due.
    let cached = client.token(&alice).await.unwrap();
    assert_eq!(cached.expose(), first.expose());

    // Alice's token is due for renewal but has not expired: with a key that is merely
    // failing, the client would keep handing it out; a rejected key ends that.
    clock.advance(Duration::from_secs(3600 - 600 - 30));
    let err = client.token(&alice).await.unwrap_err();
    assert_key_rejected(&err, key.secret());
    verifier
        .verify(first.expose())
        .await
        .expect("the token itself is still valid");

    // Bob's token was fresh, but the rejection dropped it with the rest.
    let err = client.token(&bob).await.unwrap_err();
    assert_key_rejected(&err, key.secret());
}

#[tokio::test]
async fn an_expired_key_is_rejected_like_a_revoked_one() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    let key = issuer
        .create_key(ApiKeySpec::new(["orders:read"]).expires_in(Duration::from_secs(900)))
        .unwrap();
    let client = client(&issuer, key.secret(), EXCHANGE_TOKEN_PATH, &clock);
    let request = |user: &str| ExchangeRequest::new(AUDIENCE, user);
    client.token(&request("u1")).await.unwrap();
    clock.advance(Duration::from_secs(900));
    let err = client.token(&request("u2")).await.unwrap_err();
    assert_key_rejected(&err, key.secret());
    assert!(err.to_string().contains("the api key has expired"), "{err}");
}

#[tokio::test]
async fn an_unknown_key_is_rejected_at_once() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(&clock).await;
    issuer
        .create_key(ApiKeySpec::new(["a:b"]).secret("right-key"))
        .unwrap();
    let client = client(&issuer, "wrong-key", EXCHANGE_TOKEN_PATH, &clock);
    let err = client
        .token(&ExchangeRequest::new(AUDIENCE, "u"))
        .await
        .unwrap_err();
    assert_key_rejected(&err, "wrong-key");
}
