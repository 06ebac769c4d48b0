//! What a service adds to MKA1's checks (issue 15): claim checks on the verifier, cached and
//! uncached; any-of and all-of permissions in the layer and in the `Require` extractor;
//! several issuers, each with its own key source; `typ` pinning. And (issue 18) the auth
//! layer's `reject_with` rendering every answer given behind it, and the permission layer
//! naming the wrong order.

use crate::common;
use crate::jwks_server;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use mka1_auth::{
    ClaimRefusal, ConfigErrorKind, Error, ErrorKind, ManualClock, Mka1AuthLayer, Rejection,
    RequirePermissionsLayer, VerifiedToken, Verifier, VerifierBuilder,
};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

const OTHER_ISSUER: &str = "https://staging.mka1.example.test";

fn builder(keys: &[&TestKey]) -> VerifierBuilder {
    Verifier::builder()
        .jwks(jwks(keys))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
}

fn kind_of(result: Result<VerifiedToken, Error>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

/// A check that counts its runs and refuses while `refuse` is set (or panics while
/// `panic` is).
#[derive(Clone, Default)]
struct Probe {
    runs: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
}

impl Probe {
    fn check(&self) -> impl Fn(&VerifiedToken) -> Result<(), ClaimRefusal> + Send + Sync {
        let probe = self.clone();
        move |_| {
            probe.runs.fetch_add(1, Ordering::SeqCst);
            assert!(
                !probe.panic.load(Ordering::SeqCst),
                "the probe was told to panic"
            );
            if probe.refuse.load(Ordering::SeqCst) {
                return Err(ClaimRefusal::new("the probe refuses"));
            }
            Ok(())
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A verifier for `key` with a probe as its one `check` and another as its one
/// `check_uncached`.
fn probed(key: &TestKey) -> (Verifier, Probe, Probe) {
    let (cached, every_time) = (Probe::default(), Probe::default());
    let verifier = builder(&[key])
        .check(cached.check())
        .check_uncached(every_time.check())
        .build()
        .unwrap();
    (verifier, cached, every_time)
}

async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let subject = VerifiedToken::from_extensions(req.extensions()).map(|t| t.subject().to_owned());
    Ok(Response::new(subject.unwrap_or_default()))
}

/// A request for `/` with `token` (if any) as its bearer token.
fn request(token: Option<&str>) -> Request<String> {
    request_for("/", token)
}

/// A request for `uri` with `token` (if any) as its bearer token.
fn request_for(uri: &str, token: Option<&str>) -> Request<String> {
    let mut req = Request::get(uri);
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(String::new()).unwrap()
}

/// Send `token` (if any) through `layer` in front of [`echo`].
async fn send(layer: &Mka1AuthLayer, token: Option<&str>) -> Response<String> {
    let svc = layer.layer(service_fn(echo));
    svc.oneshot(request(token)).await.unwrap()
}

fn kind(response: &Response<String>) -> Option<ErrorKind> {
    response.extensions().get::<Error>().map(Error::kind)
}

// ---------------------------------------------------------------------------------------
// Claim checks.

#[tokio::test]
async fn a_check_that_refuses_is_a_401_invalid_token_with_its_reason() {
    let key = TestKey::ed25519("k1");
    let verifier = builder(&[&key])
        .check(|t| match t.claim::<String>("org")? {
            Some(org) if org == "acme" => Ok(()),
            _ => Err(ClaimRefusal::new("`org` must be acme")),
        })
        .build()
        .unwrap();
    let acme = key.sign(&claims_with(json!({"org": "acme"})));
    let other = key.sign(&claims_with(json!({"org": "initech"})));
    let none = key.sign(&claims_at(NOW));
    let wrong_type = key.sign(&claims_with(json!({"org": {"name": "secret-ish"}})));
    assert_eq!(verifier.verify(&acme).await.unwrap().subject(), "user-42");
    for token in [&other, &none, &wrong_type] {
        assert_eq!(
            kind_of(verifier.verify(token).await),
            Some(ErrorKind::CheckFailed)
        );
    }
    let error = verifier.verify(&other).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "token was refused by a check of this service: `org` must be acme"
    );
    // A claim of the wrong type is named as such; its value is not repeated.
    let error = verifier.verify(&wrong_type).await.unwrap_err();
    assert!(
        error.to_string().contains("does not have the type"),
        "{error}"
    );
    assert!(!format!("{error} {error:?}").contains("secret-ish"));

    let layer = Mka1AuthLayer::new(verifier).realm("orders");
    let response = send(&layer, Some(&other)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="orders", error="invalid_token", error_description="token was refused by a check of this service: `org` must be acme""#
    );
    assert_eq!(kind(&response), Some(ErrorKind::CheckFailed));
    assert_eq!(send(&layer, Some(&acme)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn checks_run_in_order_after_the_built_in_rules() {
    let key = TestKey::ed25519("k1");
    let (first, second) = (Probe::default(), Probe::default());
    let verifier = builder(&[&key])
        .check(first.check())
        .check(second.check())
        .token_cache_capacity(0)
        .build()
        .unwrap();
    // A token the built-in rules refuse never reaches a check.
    let expired = key.sign(&claims_with(json!({"exp": NOW - 3600})));
    assert_eq!(
        kind_of(verifier.verify(&expired).await),
        Some(ErrorKind::Expired)
    );
    assert_eq!((first.runs(), second.runs()), (0, 0));
    // The first refusal is the answer; the checks after it do not run.
    first.refuse.store(true, Ordering::SeqCst);
    let token = key.sign(&claims_at(NOW));
    assert_eq!(
        kind_of(verifier.verify(&token).await),
        Some(ErrorKind::CheckFailed)
    );
    assert_eq!((first.runs(), second.runs()), (1, 0));
    first.refuse.store(false, Ordering::SeqCst);
    verifier.verify(&token).await.unwrap();
    assert_eq!((first.runs(), second.runs()), (2, 1));
}

#[tokio::test]
async fn a_cached_token_is_not_checked_again_but_uncached_checks_run_every_time() {
    let key = TestKey::ed25519("k1");
    let (verifier, cached, every_time) = probed(&key);
    let token = key.sign(&claims_at(NOW));
    for _ in 0..3 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(cached.runs(), 1, "the verdict is cached with the token");
    assert_eq!(every_time.runs(), 3);

    // The uncached check refuses a cached token (a revocation, say), and lets it pass
    // again once it changes its mind; the cached verdict stands throughout.
    every_time.refuse.store(true, Ordering::SeqCst);
    assert_eq!(
        kind_of(verifier.verify(&token).await),
        Some(ErrorKind::CheckFailed)
    );
    every_time.refuse.store(false, Ordering::SeqCst);
    verifier.verify(&token).await.unwrap();
    assert_eq!((cached.runs(), every_time.runs()), (1, 5));

    // Hence the rule for `check`: a check that changes its mind is not asked again.
    cached.refuse.store(true, Ordering::SeqCst);
    verifier.verify(&token).await.unwrap();
    assert_eq!(cached.runs(), 1);
    // A token it refuses is not cached: it is asked again next time.
    let fresh = key.sign(&claims_with(json!({"sub": "user-7"})));
    for runs in [2, 3] {
        assert_eq!(
            kind_of(verifier.verify(&fresh).await),
            Some(ErrorKind::CheckFailed)
        );
        assert_eq!(cached.runs(), runs);
    }
}

#[tokio::test]
async fn a_panicking_check_is_a_500_and_the_next_request_works() {
    let key = TestKey::ed25519("k1");
    let (verifier, cached, every_time) = probed(&key);
    let layer = Mka1AuthLayer::new(verifier);
    let token = key.sign(&claims_at(NOW));
    let other = key.sign(&claims_with(json!({"sub": "user-7"})));

    cached.panic.store(true, Ordering::SeqCst);
    let response = send(&layer, Some(&token)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kind(&response), Some(ErrorKind::CheckPanicked));
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    assert!(
        response.body().contains("server_error"),
        "{}",
        response.body()
    );
    // The same layer keeps answering; the token was not cached, so it is checked again.
    cached.panic.store(false, Ordering::SeqCst);
    assert_eq!(send(&layer, Some(&other)).await.status(), StatusCode::OK);
    assert_eq!(send(&layer, Some(&token)).await.status(), StatusCode::OK);
    assert_eq!(cached.runs(), 3);

    // An uncached check panicking on a cache hit: a 500 for that request only.
    every_time.panic.store(true, Ordering::SeqCst);
    let response = send(&layer, Some(&token)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kind(&response), Some(ErrorKind::CheckPanicked));
    every_time.panic.store(false, Ordering::SeqCst);
    let response = send(&layer, Some(&token)).await;
    assert_eq!(response.body(), "user-42");
    assert_eq!(cached.runs(), 3, "the cached verdict survived the panic");
}

#[tokio::test]
async fn claim_reads_one_claim_of_any_type() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Tenant {
        id: u32,
        plan: String,
    }
    let key = TestKey::ed25519("k1");
    let verifier = builder(&[&key]).build().unwrap();
    let claims = claims_with(json!({
        "org": "acme", "tier": 3, "tenant": {"id": 7, "plan": "pro"}, "flags": [true, false],
        "note": "esc\"aped \u{e9}",
    }));
    let token = verifier.verify(&key.sign(&claims)).await.unwrap();
    assert_eq!(
        token.claim::<String>("org").unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(token.claim::<u8>("tier").unwrap(), Some(3));
    assert_eq!(
        token.claim::<Tenant>("tenant").unwrap(),
        Some(Tenant {
            id: 7,
            plan: "pro".into()
        })
    );
    assert_eq!(
        token.claim::<Vec<bool>>("flags").unwrap(),
        Some(vec![true, false])
    );
    assert_eq!(
        token.claim::<String>("note").unwrap().as_deref(),
        Some("esc\"aped \u{e9}")
    );
    assert_eq!(
        token.claim::<String>("sub").unwrap().as_deref(),
        Some("user-42")
    );
    assert_eq!(token.claim::<Value>("missing").unwrap(), None);
    assert!(token.claim::<u8>("org").is_err());
    assert!(token.claim::<String>("tenant").is_err());
}

// ---------------------------------------------------------------------------------------
// `typ` pinning.

#[tokio::test]
async fn a_required_typ_refuses_tokens_of_another_type() {
    let key = TestKey::ed25519("k1");
    let claims = claims_at(NOW);
    let with_typ = |typ: Value| {
        let mut header = key.header();
        if typ.is_null() {
            header.as_object_mut().unwrap().remove("typ");
        } else {
            header["typ"] = typ;
        }
        key.sign_with_header(&header, &claims)
    };
    let pinned = builder(&[&key]).require_typ("JWT").build().unwrap();
    let unpinned = builder(&[&key]).build().unwrap();
    for typ in [json!("JWT"), json!("jwt"), json!("application/JWT")] {
        let token = with_typ(typ.clone());
        assert!(pinned.verify(&token).await.is_ok(), "{typ}");
    }
    for typ in [
        json!("at+jwt"),
        json!("JWS"),
        json!(null),
        json!(1),
        json!(""),
    ] {
        let token = with_typ(typ.clone());
        assert_eq!(
            kind_of(pinned.verify(&token).await),
            Some(ErrorKind::InvalidType),
            "{typ}"
        );
        // Off by default: any `typ`, or none, is accepted.
        assert!(unpinned.verify(&token).await.is_ok(), "{typ}");
    }
    let response = send(
        &Mka1AuthLayer::new(pinned),
        Some(&with_typ(json!("at+jwt"))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&response), Some(ErrorKind::InvalidType));
    let empty = builder(&[&key]).require_typ("").build().unwrap_err();
    assert_eq!(empty.kind(), ConfigErrorKind::InvalidSetting);
    assert_eq!(empty.setting(), Some("require_typ"));
}

// ---------------------------------------------------------------------------------------
// Several issuers.

#[tokio::test]
async fn two_issuers_with_overlapping_kids_verify_each_with_its_own_key() {
    let (ours, theirs) = (TestKey::ed25519("k1"), TestKey::ed25519("k1"));
    let only_theirs = TestKey::es256("k2");
    let verifier = Verifier::builder()
        .issuer_jwks(ISSUER, jwks(&[&ours]))
        .issuer_jwks(OTHER_ISSUER, jwks(&[&theirs, &only_theirs]))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let of = |issuer: &str| claims_with(json!({"iss": issuer}));
    let verified = verifier.verify(&ours.sign(&of(ISSUER))).await.unwrap();
    assert_eq!(verified.issuer(), Some(ISSUER));
    let verified = verifier
        .verify(&theirs.sign(&of(OTHER_ISSUER)))
        .await
        .unwrap();
    assert_eq!(verified.issuer(), Some(OTHER_ISSUER));
    verifier
        .verify(&only_theirs.sign(&of(OTHER_ISSUER)))
        .await
        .unwrap();
    // Each `k1` verifies only its own issuer's tokens; a kid of one source is unknown to
    // the other.
    let cases = [
        (theirs.sign(&of(ISSUER)), ErrorKind::InvalidSignature),
        (ours.sign(&of(OTHER_ISSUER)), ErrorKind::InvalidSignature),
        (only_theirs.sign(&of(ISSUER)), ErrorKind::UnknownKeyId),
        (
            ours.sign(&claims_with(json!({"iss": null}))),
            ErrorKind::InvalidIssuer,
        ),
        (
            ours.sign(&of("https://elsewhere.test")),
            ErrorKind::InvalidIssuer,
        ),
    ];
    for (token, expected) in cases {
        for _ in 0..2 {
            assert_eq!(kind_of(verifier.verify(&token).await), Some(expected));
        }
    }
    let status = verifier.key_set_status();
    let issuers: Vec<_> = status
        .per_issuer
        .iter()
        .map(|(i, s)| (i.as_str(), s.key_count))
        .collect();
    assert_eq!(issuers, [(ISSUER, 1), (OTHER_ISSUER, 2)]);
    assert_eq!(
        (status.key_count, status.usable, status.remote),
        (3, true, false)
    );
}

#[tokio::test]
async fn per_issuer_sources_warm_up_and_refresh_each_on_its_own() {
    let (ours, theirs) = (TestKey::ed25519("k1"), TestKey::ed25519("k1"));
    let our_server = jwks_server::JwksServer::start(jwks(&[&ours]), 600).await;
    let their_server = jwks_server::JwksServer::start(jwks(&[&theirs]), 600).await;
    let verifier = |clock: &ManualClock| {
        Verifier::builder()
            .issuer_jwks_url(ISSUER, our_server.url())
            .issuer_jwks_url(OTHER_ISSUER, their_server.url())
            .audience(AUDIENCE)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    // Both down: the warm-up fails, having asked each source once.
    our_server.fail(true);
    their_server.fail(true);
    let clock = ManualClock::at_unix(NOW);
    let err = verifier(&clock).refresh().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    assert_eq!((our_server.requests(), their_server.requests()), (1, 1));

    // One down: the warm-up succeeds, and the status says which issuer's keys are missing.
    our_server.fail(false);
    let verifier = verifier(&clock);
    let status = verifier.refresh().await.unwrap();
    assert_eq!((our_server.requests(), their_server.requests()), (2, 2));
    assert!(status.usable && status.remote);
    let usable: Vec<_> = status
        .per_issuer
        .iter()
        .map(|(i, s)| (i.as_str(), s.usable))
        .collect();
    assert_eq!(usable, [(ISSUER, true), (OTHER_ISSUER, false)]);
    let last_error = status.last_error.unwrap();
    assert!(
        last_error.starts_with(&format!("issuer {OTHER_ISSUER}: ")),
        "{last_error}"
    );
    assert_eq!(status.consecutive_failures, 1);
    // Our tokens pass meanwhile; theirs are refused until their keys come.
    verifier.verify(&ours.sign(&claims_at(NOW))).await.unwrap();
    let their_token = theirs.sign(&claims_with(json!({"iss": OTHER_ISSUER})));
    let err = verifier.verify(&their_token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);

    // One refresher handle runs a task for each remote source.
    let refresher = verifier.spawn_refresher().unwrap();
    assert!(refresher.is_running());
}

#[test]
fn per_issuer_sources_do_not_mix_with_other_key_settings() {
    let key = TestKey::ed25519("k1");
    let base = || {
        Verifier::builder()
            .audience(AUDIENCE)
            .issuer_jwks(ISSUER, jwks(&[&key]))
    };
    let err = base().jwks(jwks(&[&key])).build().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::ConflictingKeySources);
    let err = base().issuer(ISSUER).build().unwrap_err();
    assert!(
        err.kind() == ConfigErrorKind::InvalidSetting && err.setting() == Some("issuer"),
        "{err}"
    );
    let err = base()
        .issuer_jwks(ISSUER, jwks(&[&key]))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("more than one key source"),
        "{err}"
    );
    let err = base().issuer_jwks("", jwks(&[&key])).build().unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    assert_eq!(err.setting(), Some("issuer_jwks"));
    let err = base()
        .issuer_jwks(OTHER_ISSUER, r#"{"keys":[]}"#)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::NoUsableKeys);
    // The single-source builder is unchanged, and a single source reports no issuers.
    let single = builder(&[&key]).issuer(ISSUER).build().unwrap();
    assert!(single.key_set_status().per_issuer.is_empty());
}

// ---------------------------------------------------------------------------------------
// Permissions: any-of and all-of, in the layer.

fn perms_token(key: &TestKey, permissions: &[&str]) -> String {
    key.sign(&claims_with(json!({ "permissions": permissions })))
}

async fn through(
    auth: &Mka1AuthLayer,
    perms: RequirePermissionsLayer,
    token: &str,
) -> Response<String> {
    tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(perms)
        .service(service_fn(echo))
        .oneshot(request(Some(token)))
        .await
        .unwrap()
}

#[tokio::test]
async fn any_of_and_all_of_in_the_layer() {
    let key = TestKey::ed25519("k1");
    let auth = Mka1AuthLayer::new(builder(&[&key]).build().unwrap()).realm("agents");
    let reader = perms_token(&key, &["agent:read"]);
    let nobody = perms_token(&key, &[]);
    let any = || RequirePermissionsLayer::any(["agent:admin", "agent:read"]).unwrap();
    let all = || RequirePermissionsLayer::new(["agent:admin", "agent:read"]);

    assert_eq!(through(&auth, any(), &reader).await.body(), "user-42");
    let refused = through(&auth, any(), &nobody).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(kind(&refused), Some(ErrorKind::InsufficientPermission));
    assert_eq!(
        refused.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="agents", error="insufficient_scope", error_description="token lacks a required permission: any one of agent:admin, agent:read would do", scope="agent:admin agent:read""#
    );
    let body: Value = serde_json::from_str(refused.body()).unwrap();
    assert_eq!(body["scope"], "agent:admin agent:read");

    for token in [&reader, &nobody] {
        let refused = through(&auth, all(), token).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refused.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="agents", error="insufficient_scope", error_description="token lacks a required permission", scope="agent:admin agent:read""#
        );
    }
    let admin = perms_token(&key, &["agent:read", "agent:admin"]);
    assert_eq!(through(&auth, all(), &admin).await.status(), StatusCode::OK);
    assert_eq!(through(&auth, any(), &admin).await.status(), StatusCode::OK);
}

#[test]
fn an_empty_any_of_layer_is_a_config_error() {
    let err = RequirePermissionsLayer::any(Vec::<String>::new()).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    assert!(
        err.to_string().contains("needs at least one permission"),
        "{err}"
    );
}

#[tokio::test]
async fn a_permission_layer_outside_the_auth_layer_says_missing_or_wrong_order() {
    let captured = traced();
    let key = TestKey::ed25519("k1");
    let auth = Mka1AuthLayer::new(builder(&[&key]).build().unwrap());
    let token = perms_token(&key, &["agent:read"]);
    // Wrong order: with ServiceBuilder the first layer runs first.
    let svc = tower::ServiceBuilder::new()
        .layer(RequirePermissionsLayer::new(["agent:read"]))
        .layer(auth)
        .service(service_fn(echo));
    let response = svc.oneshot(request(Some(&token))).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kind(&response), Some(ErrorKind::MissingLayer));
    let body: Value = serde_json::from_str(response.body()).unwrap();
    let description = body["error_description"].as_str().unwrap();
    // The client gets the kind's description only; the set-up advice is the operator's.
    assert_eq!(
        description,
        "the authentication layer is missing in front of this point, or in the wrong order"
    );
    assert!(!description.contains("ServiceBuilder"), "{description}");
    let logged = captured.text();
    for needle in [
        "RequirePermissionsLayer",
        "Mka1AuthLayer",
        "missing",
        "wrong order",
        "ServiceBuilder",
        "the last added runs first",
    ] {
        assert!(logged.contains(needle), "{needle}: {logged}");
    }
    assert!(logged.contains("ERROR"), "{logged}");
}

// ---------------------------------------------------------------------------------------
// In axum: the `Require` extractor, and the auth layer's `reject_with` everywhere.

mod axum_router {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use mka1_auth::extract::{Claims, Require};
    use mka1_auth::permissions::{Need, PermissionSet};
    use mka1_auth::OnBehalfOf;

    struct ReadAgents;
    impl PermissionSet for ReadAgents {
        const PERMISSIONS: &'static [&'static str] = &["agent:admin", "agent:read"];
        const NEED: Need = Need::AnyOf;
    }

    struct DeleteAgents;
    impl PermissionSet for DeleteAgents {
        const PERMISSIONS: &'static [&'static str] = &["agent:read", "agent:delete"];
    }

    fn routes() -> Router {
        Router::new()
            .route(
                "/read",
                get(|t: Require<ReadAgents>| async move { t.subject().to_owned() }),
            )
            .route(
                "/delete",
                get(|t: Require<DeleteAgents>| async move { t.into_token().subject().to_owned() }),
            )
            .route("/me", get(|u: OnBehalfOf| async move { u.to_string() }))
            .route(
                "/org",
                get(|_: Claims<Vec<String>>| async { "claims that fit no object" }),
            )
            .route(
                "/handler",
                get(|| async { Err::<(), _>(Rejection::insufficient(["agent:delete"])) }),
            )
            .route(
                "/admin",
                get(|| async { "admin" })
                    .route_layer(RequirePermissionsLayer::new(["agent:admin"])),
            )
            .route(
                "/own",
                get(|| async { "own" }).route_layer(
                    RequirePermissionsLayer::new(["agent:admin"]).reject_with(|r: Rejection| {
                        let mut response = Response::new(Body::from("the route's own answer"));
                        *response.status_mut() = r.status();
                        response
                    }),
                ),
            )
    }

    async fn fetch(app: &Router, uri: &str, token: Option<&str>) -> Response<String> {
        let req = request_for(uri, token).map(Body::from);
        let response = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn any_of_and_all_of_in_the_extractor() {
        let key = TestKey::ed25519("k1");
        let verifier = builder(&[&key]).build().unwrap();
        let app = routes().layer(Mka1AuthLayer::optional(verifier.clone()).realm("r"));
        let reader = perms_token(&key, &["agent:read"]);
        let deleter = perms_token(&key, &["agent:read", "agent:delete"]);
        let nobody = perms_token(&key, &[]);

        assert_eq!(fetch(&app, "/read", Some(&reader)).await.body(), "user-42");
        assert_eq!(
            fetch(&app, "/delete", Some(&deleter)).await.body(),
            "user-42"
        );
        let refused = fetch(&app, "/read", Some(&nobody)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refused.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="r", error="insufficient_scope", error_description="token lacks a required permission: any one of agent:admin, agent:read would do", scope="agent:admin agent:read""#
        );
        let refused = fetch(&app, "/delete", Some(&reader)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(kind(&refused), Some(ErrorKind::InsufficientPermission));
        let body: Value = serde_json::from_str(refused.body()).unwrap();
        assert_eq!(body["scope"], "agent:read agent:delete");
        // Anonymous (optional layer): 401; no layer at all: 500.
        let anonymous = fetch(&app, "/read", None).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(anonymous.headers()[WWW_AUTHENTICATE], r#"Bearer realm="r""#);
        let bare = fetch(&routes(), "/read", Some(&reader)).await;
        assert_eq!(bare.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(kind(&bare), Some(ErrorKind::MissingLayer));
    }

    /// A rejection rendered as plain text `<kind> in <realm>`, with the standard status.
    fn plain(r: Rejection) -> Response<Body> {
        let text = format!("{:?} in {}", r.error().kind(), r.realm());
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = r.status();
        response
            .headers_mut()
            .insert("x-custom", "yes".parse().unwrap());
        response
    }

    #[tokio::test]
    async fn the_auth_layers_reject_with_renders_every_answer_behind_it() {
        let key = TestKey::ed25519("k1");
        let verifier = builder(&[&key]).build().unwrap();
        // A layer between the routes and the auth layer adds a header to every answer.
        let app = routes()
            .layer(axum::middleware::map_response(
                |mut r: Response<Body>| async move {
                    r.headers_mut().insert("x-inner", "kept".parse().unwrap());
                    r
                },
            ))
            .layer(
                Mka1AuthLayer::optional(verifier)
                    .realm("shop")
                    .reject_with(plain),
            );
        let reader = perms_token(&key, &["agent:read"]);
        let nobody = perms_token(&key, &[]);
        let malformed = "a.b.c".to_owned();
        // (route, token, status, kind, answered from behind the layer)
        let cases = [
            (
                "/me",
                None,
                StatusCode::UNAUTHORIZED,
                "MissingCredentials",
                true,
            ),
            (
                "/org",
                Some(&reader),
                StatusCode::UNAUTHORIZED,
                "InvalidClaim",
                true,
            ),
            (
                "/read",
                Some(&nobody),
                StatusCode::FORBIDDEN,
                "InsufficientPermission",
                true,
            ),
            (
                "/delete",
                Some(&reader),
                StatusCode::FORBIDDEN,
                "InsufficientPermission",
                true,
            ),
            (
                "/admin",
                Some(&reader),
                StatusCode::FORBIDDEN,
                "InsufficientPermission",
                true,
            ),
            (
                "/handler",
                Some(&reader),
                StatusCode::FORBIDDEN,
                "InsufficientPermission",
                true,
            ),
            (
                "/read",
                Some(&malformed),
                StatusCode::UNAUTHORIZED,
                "Malformed",
                false,
            ),
        ];
        for (uri, token, status, kind_name, behind) in cases {
            let response = fetch(&app, uri, token.map(String::as_str)).await;
            assert_eq!(response.status(), status, "{uri}");
            assert_eq!(response.body(), &format!("{kind_name} in shop"), "{uri}");
            assert_eq!(response.headers()["x-custom"], "yes", "{uri}");
            assert!(response.headers().get(WWW_AUTHENTICATE).is_none(), "{uri}");
            assert_eq!(
                format!("{:?}", kind(&response).unwrap()),
                kind_name,
                "{uri}"
            );
            // Answers from behind the layer keep what the layers in between added.
            let inner = response.headers().get("x-inner");
            assert_eq!(inner.is_some(), behind, "{uri}");
        }
        // A permission layer with a `reject_with` of its own keeps its own answer.
        let own = fetch(&app, "/own", Some(&reader)).await;
        assert_eq!(own.status(), StatusCode::FORBIDDEN);
        assert_eq!(own.body(), "the route's own answer");
        assert_eq!(kind(&own), Some(ErrorKind::InsufficientPermission));
        // Successful answers pass untouched.
        let ok = fetch(&app, "/read", Some(&reader)).await;
        assert_eq!(
            (ok.status(), ok.body().as_str()),
            (StatusCode::OK, "user-42")
        );
    }

    #[tokio::test]
    async fn a_rejection_from_a_handler_takes_the_layers_realm() {
        let key = TestKey::ed25519("k1");
        let verifier = builder(&[&key]).build().unwrap();
        let app = routes().layer(Mka1AuthLayer::new(verifier).realm("shop"));
        let response = fetch(&app, "/handler", Some(&perms_token(&key, &["agent:read"]))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="shop", error="insufficient_scope", error_description="token lacks a required permission", scope="agent:delete""#
        );
        assert_eq!(kind(&response), Some(ErrorKind::InsufficientPermission));
    }
}
