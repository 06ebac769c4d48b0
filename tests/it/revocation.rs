//! Revocation with the in-process source: the verdict on fresh tokens and on cache hits,
//! the HTTP answer, and tokens minted after the rule's time.

use crate::common::*;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use mka1_auth::revocation::{Revocations, Rule};
use mka1_auth::{Error, ErrorKind, ManualClock, Mka1AuthLayer, Verifier};
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

struct Fixture {
    key: TestKey,
    revocations: Revocations,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let revocations = Revocations::in_process().clock(clock.clone());
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .clock(clock)
        .revocations(revocations.clone())
        .build()
        .unwrap();
    Fixture {
        key,
        revocations,
        verifier,
    }
}

fn kind(result: Result<mka1_auth::VerifiedToken, Error>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

#[tokio::test]
async fn a_user_rule_refuses_that_users_older_tokens_cache_hits_included() {
    let f = fixture();
    let old = f.key.sign(&claims_with(json!({ "iat": NOW - 100 })));
    let other = f
        .key
        .sign(&claims_with(json!({ "iat": NOW - 100, "sub": "user-7" })));
    // Both verified and cached before the rule, and answered from the cache too (a hit
    // found not revoked is stamped, and skips the rules while they do not change).
    for _ in 0..3 {
        assert_eq!(kind(f.verifier.verify(&old).await), None);
        assert_eq!(kind(f.verifier.verify(&other).await), None);
    }

    f.revocations.revoke(Rule::user("user-42", NOW - 50));
    let err = f.verifier.verify(&old).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Revoked);
    assert_eq!(err.to_string(), "token has been revoked");
    assert_eq!(kind(f.verifier.verify(&other).await), None);
    // Minted at or after the rule's time: accepted.
    let newer = f.key.sign(&claims_with(json!({ "iat": NOW - 50 })));
    assert_eq!(kind(f.verifier.verify(&newer).await), None);
}

#[tokio::test]
async fn a_token_without_iat_cannot_show_it_is_newer() {
    let f = fixture();
    let no_iat = f.key.sign(&claims_with(json!({ "iat": null })));
    assert_eq!(kind(f.verifier.verify(&no_iat).await), None);
    f.revocations.revoke(Rule::all(NOW - 1_000));
    assert_eq!(
        kind(f.verifier.verify(&no_iat).await),
        Some(ErrorKind::Revoked)
    );
}

#[tokio::test]
async fn all_issuer_and_jti_rules() {
    let f = fixture();
    let from_issuer = f.key.sign(&claims_with(json!({ "iat": NOW - 10 })));
    let with_jti = f
        .key
        .sign(&claims_with(json!({ "iat": NOW, "jti": "t-1" })));
    let other_jti = f
        .key
        .sign(&claims_with(json!({ "iat": NOW, "jti": "t-2" })));

    f.revocations.revoke(Rule::user_of_issuer(
        "user-42",
        "https://elsewhere.test",
        NOW,
    ));
    assert_eq!(kind(f.verifier.verify(&from_issuer).await), None);
    f.revocations
        .revoke(Rule::user_of_issuer("user-42", ISSUER, NOW));
    assert_eq!(
        kind(f.verifier.verify(&from_issuer).await),
        Some(ErrorKind::Revoked)
    );

    f.revocations.revoke(Rule::jti("t-1", NOW));
    assert_eq!(
        kind(f.verifier.verify(&with_jti).await),
        Some(ErrorKind::Revoked)
    );
    assert_eq!(kind(f.verifier.verify(&other_jti).await), None);

    // Everything issued before NOW + 1: the leaked-key case.
    f.revocations.revoke(Rule::all(NOW + 1));
    assert_eq!(
        kind(f.verifier.verify(&other_jti).await),
        Some(ErrorKind::Revoked)
    );
}

#[tokio::test]
async fn the_layer_answers_401_invalid_token_token_has_been_revoked() {
    let f = fixture();
    let token = f.key.sign(&claims_with(json!({ "iat": NOW - 100 })));
    f.revocations.revoke(Rule::user("user-42", NOW));
    let response: Response<String> = Mka1AuthLayer::new(f.verifier.clone())
        .layer(service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::from("served")))
        }))
        .oneshot(
            Request::get("/")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token", error_description="token has been revoked""#),
        "{challenge}"
    );
    let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "token has been revoked");
    assert_eq!(
        response.extensions().get::<Error>().unwrap().kind(),
        ErrorKind::Revoked
    );
}
