//! The inbound layer from outside: every row of RFC 6750's answer table, optional mode,
//! cookies, `X-On-Behalf-Of`, permissions, custom rejections, and the layer around a plain
//! tower `service_fn`.

use crate::common;

use std::convert::Infallible;

use common::*;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use mka1_auth::layer::CookieName;
use mka1_auth::{
    BearerToken, Error, ErrorKind, ManualClock, Mka1AuthLayer, OnBehalfOf, Rejection,
    RequirePermissionsLayer, VerifiedToken, Verifier, X_ON_BEHALF_OF,
};
use serde_json::{json, Value};
use tower::{service_fn, Layer, Service, ServiceExt};

struct Fixture {
    key: TestKey,
    clock: ManualClock,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier_with_clock(&[&key], &clock);
    Fixture {
        key,
        clock,
        verifier,
    }
}

impl Fixture {
    fn token(&self) -> String {
        self.key.sign(&claims_at(NOW))
    }
}

/// What the inner service saw, as JSON.
async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let headers: Vec<&str> = req
        .headers()
        .get_all(X_ON_BEHALF_OF)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let ext = req.extensions();
    let seen = json!({
        "on_behalf_of": OnBehalfOf::from_extensions(ext).map(|u| u.to_string()),
        "subject": VerifiedToken::from_extensions(ext).map(|t| t.subject().to_owned()),
        "bearer": BearerToken::from_extensions(ext).map(|t| t.expose().to_owned()),
        "header": headers,
    });
    Ok(Response::new(seen.to_string()))
}

fn get() -> http::request::Builder {
    Request::builder().uri("/")
}

fn bearer(token: &str) -> http::request::Builder {
    get().header(AUTHORIZATION, format!("Bearer {token}"))
}

type EchoFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<String>, Infallible>> + Send>,
>;

fn echo_boxed(req: Request<String>) -> EchoFuture {
    Box::pin(echo(req))
}

async fn call(layer: Mka1AuthLayer, req: http::request::Builder) -> Response<String> {
    layer
        .layer(service_fn(echo_boxed))
        .oneshot(req.body(String::new()).unwrap())
        .await
        .unwrap()
}

fn seen(response: &Response<String>) -> Value {
    assert_eq!(response.status(), StatusCode::OK, "{}", response.body());
    serde_json::from_str(response.body()).unwrap()
}

fn challenge(response: &Response<String>) -> &str {
    response.headers()[WWW_AUTHENTICATE].to_str().unwrap()
}

fn body(response: &Response<String>) -> Value {
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    serde_json::from_str(response.body()).unwrap()
}

fn kind(response: &Response<String>) -> ErrorKind {
    response.extensions().get::<Error>().unwrap().kind()
}

#[tokio::test]
async fn valid_token_reaches_the_service_with_verified_identity() {
    let f = fixture();
    let token = f.token();
    let response = call(Mka1AuthLayer::new(f.verifier.clone()), bearer(&token)).await;
    let seen = seen(&response);
    assert_eq!(seen["on_behalf_of"], "user-42");
    assert_eq!(seen["subject"], "user-42");
    assert_eq!(seen["bearer"], token);
    assert_eq!(seen["header"], json!(["user-42"]));
    assert!(response.extensions().get::<Error>().is_none());
}

/// The layer leaves one value of its own in the extensions: `from_extensions` reads it,
/// identity values put there before the layer ran are gone (a reader by type never sees one
/// the layer did not verify), and a repeated token (answered from the thread's cache, with
/// its shared `X-On-Behalf-Of` value) sees the same as the first.
#[tokio::test]
async fn what_the_layer_verified_is_read_with_from_extensions() {
    let f = fixture();
    let token = f.token();
    let other_token = f.key.sign(&claims_with(json!({"sub": "user-7"})));
    let (other, other_bearer) = f.verifier.verify_bearer(&other_token).await.unwrap();
    let svc = Mka1AuthLayer::new(f.verifier.clone()).layer(service_fn(
        |req: Request<String>| async move {
            let ext = req.extensions();
            let by_type = (
                ext.get::<OnBehalfOf>().is_some(),
                ext.get::<VerifiedToken>().is_some(),
                ext.get::<BearerToken>().is_some(),
            );
            let seen = json!({
                "by_type": [by_type.0, by_type.1, by_type.2],
                "user": OnBehalfOf::from_extensions(ext).map(|u| u.to_string()),
                "header": req.headers()[X_ON_BEHALF_OF].to_str().unwrap(),
            });
            Ok::<_, Infallible>(Response::new(seen.to_string()))
        },
    ));
    for round in 0..3 {
        let mut req = bearer(&token).body(String::new()).unwrap();
        req.extensions_mut().insert(other.clone());
        req.extensions_mut().insert(other.on_behalf_of().clone());
        req.extensions_mut().insert(other_bearer.clone());
        let response = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(
            seen(&response),
            json!({"by_type": [false, false, false], "user": "user-42", "header": "user-42"}),
            "round {round}"
        );
    }

    // Without a layer, `from_extensions` reads what was put there by hand (an onward
    // request that `carry_identity` filled).
    let mut ext = http::Extensions::new();
    assert!(OnBehalfOf::from_extensions(&ext).is_none());
    ext.insert(other.on_behalf_of().clone());
    ext.insert(other.clone());
    assert_eq!(
        OnBehalfOf::from_extensions(&ext).unwrap().as_str(),
        "user-7"
    );
    assert_eq!(
        VerifiedToken::from_extensions(&ext).unwrap().subject(),
        "user-7"
    );
    assert!(BearerToken::from_extensions(&ext).is_none());
    ext.insert(other_bearer);
    assert_eq!(
        BearerToken::from_extensions(&ext).unwrap().expose(),
        other_token
    );
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let f = fixture();
    let token = f.token();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let req = get().header(AUTHORIZATION, format!("{scheme} {token}"));
        let response = call(Mka1AuthLayer::new(f.verifier.clone()), req).await;
        assert_eq!(seen(&response)["subject"], "user-42", "{scheme}");
    }
}

#[tokio::test]
async fn no_credentials_is_401_with_a_bare_challenge() {
    let f = fixture();
    let response = call(Mka1AuthLayer::new(f.verifier.clone()), get()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="mka1""#);
    assert_eq!(body(&response)["error"], "missing_credentials");
    assert_eq!(kind(&response), ErrorKind::MissingCredentials);

    let layer = Mka1AuthLayer::new(f.verifier.clone()).realm("orders");
    let response = call(layer, get()).await;
    assert_eq!(challenge(&response), r#"Bearer realm="orders""#);
}

#[tokio::test]
async fn the_query_string_is_never_a_credential() {
    let f = fixture();
    let req = Request::builder().uri(format!("/?access_token={}", f.token()));
    let response = call(Mka1AuthLayer::new(f.verifier.clone()), req).await;
    assert_eq!(kind(&response), ErrorKind::MissingCredentials);
}

#[tokio::test]
async fn malformed_requests_are_400_invalid_request() {
    let f = fixture();
    let token = f.token();
    let requests = [
        bearer(&token).header(AUTHORIZATION, format!("Bearer {token}")),
        get().header(AUTHORIZATION, "Bearer"),
        get().header(AUTHORIZATION, "Bearer    "),
        get().header(AUTHORIZATION, format!("Bearer {token} {token}")),
    ];
    for (i, req) in requests.into_iter().enumerate() {
        let response = call(Mka1AuthLayer::new(f.verifier.clone()), req).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "case {i}");
        let header = challenge(&response);
        assert!(
            header.starts_with(
                r#"Bearer realm="mka1", error="invalid_request", error_description=""#
            ),
            "case {i}: {header}"
        );
        assert_eq!(body(&response)["error"], "invalid_request");
        assert_eq!(kind(&response), ErrorKind::InvalidRequest);
        assert!(
            !response.body().contains(&token),
            "case {i} echoes the token"
        );
        assert!(!header.contains(&token), "case {i} echoes the token");
    }
}

#[tokio::test]
async fn invalid_tokens_are_401_invalid_token_with_a_reason() {
    let f = fixture();
    let other = TestKey::ed25519("ed-1");
    let cases = [
        ("not-a-jwt".to_owned(), ErrorKind::Malformed),
        (other.sign(&claims_at(NOW)), ErrorKind::InvalidSignature),
        (
            f.key
                .sign(&claims_with(json!({"aud": "https://elsewhere"}))),
            ErrorKind::InvalidAudience,
        ),
        (
            f.key.sign(&claims_with(json!({"exp": NOW - 3600}))),
            ErrorKind::Expired,
        ),
        (
            TestKey::ed25519("nobody").sign(&claims_at(NOW)),
            ErrorKind::UnknownKeyId,
        ),
    ];
    for (token, expected) in cases {
        let response = call(Mka1AuthLayer::new(f.verifier.clone()), bearer(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{expected:?}");
        assert_eq!(kind(&response), expected);
        let description = Error::new(expected).to_string();
        let header = challenge(&response);
        assert!(
            header.starts_with(&format!(
                r#"Bearer realm="mka1", error="invalid_token", error_description="{description}"#
            )),
            "{header}"
        );
        let body = body(&response);
        assert_eq!(body["error"], "invalid_token");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&description));
        assert!(!response.body().contains(&token));
    }
}

#[tokio::test]
async fn a_token_that_expires_is_refused_after_its_time() {
    let f = fixture();
    let token = f.token();
    let layer = Mka1AuthLayer::new(f.verifier.clone());
    assert_eq!(
        call(layer.clone(), bearer(&token)).await.status(),
        StatusCode::OK
    );
    // Past exp (3600 s) plus the default leeway (60 s); the verified-token cache must not
    // keep it alive.
    f.clock.advance(std::time::Duration::from_secs(3600 + 61));
    let response = call(layer, bearer(&token)).await;
    assert_eq!(kind(&response), ErrorKind::Expired);
}

#[tokio::test]
async fn on_behalf_of_mismatch_is_403_and_a_match_passes() {
    let f = fixture();
    let token = f.token();
    let layer = Mka1AuthLayer::new(f.verifier.clone());

    let response = call(
        layer.clone(),
        bearer(&token).header(X_ON_BEHALF_OF, "user-7"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(kind(&response), ErrorKind::OnBehalfOfMismatch);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
    assert!(challenge(&response).contains("x-on-behalf-of"));

    // One matching and one other value: still a mismatch.
    let req = bearer(&token)
        .header(X_ON_BEHALF_OF, "user-42")
        .header(X_ON_BEHALF_OF, "user-7");
    assert_eq!(
        kind(&call(layer.clone(), req).await),
        ErrorKind::OnBehalfOfMismatch
    );

    // Matching values (even repeated) pass and collapse to exactly one header.
    let req = bearer(&token)
        .header(X_ON_BEHALF_OF, "user-42")
        .header(X_ON_BEHALF_OF, "user-42");
    assert_eq!(seen(&call(layer, req).await)["header"], json!(["user-42"]));
}

#[tokio::test]
async fn overwrite_mode_replaces_a_disagreeing_on_behalf_of() {
    let f = fixture();
    let layer = Mka1AuthLayer::new(f.verifier.clone()).overwrite_on_behalf_of(true);
    let req = bearer(&f.token())
        .header(X_ON_BEHALF_OF, "user-7")
        .header(X_ON_BEHALF_OF, "admin");
    let seen = seen(&call(layer, req).await);
    assert_eq!(seen["header"], json!(["user-42"]));
    assert_eq!(seen["on_behalf_of"], "user-42");
}

/// Every header the inner service saw, as `name: value` lines in order.
async fn header_lines(layer: Mka1AuthLayer, req: http::request::Builder) -> Response<String> {
    let inner = service_fn(|req: Request<String>| async move {
        let lines: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        Ok::<_, Infallible>(Response::new(lines.join("\n")))
    });
    let req = req.body(String::new()).unwrap();
    layer.layer(inner).oneshot(req).await.unwrap()
}

#[tokio::test]
async fn every_spelling_of_on_behalf_of_is_the_header_itself() {
    let f = fixture();
    let token = f.token();
    let layer = Mka1AuthLayer::new(f.verifier.clone());
    for name in [
        "x_on_behalf_of",
        "X_On_Behalf_Of",
        "x-on_behalf-of",
        "X-ON-BEHALF-OF",
    ] {
        // Another user under any spelling is a mismatch (oauth2-proxy CVE-2025-64484's class).
        let response = call(layer.clone(), bearer(&token).header(name, "admin")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(kind(&response), ErrorKind::OnBehalfOfMismatch, "{name}");

        // The token's own user under any spelling passes, and only the layer's header remains.
        let response = header_lines(layer.clone(), bearer(&token).header(name, "user-42")).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let on_behalf: Vec<&str> = response
            .body()
            .lines()
            .filter(|l| l.starts_with("x-on-behalf-of") || l.starts_with("x_"))
            .collect();
        assert_eq!(on_behalf, ["x-on-behalf-of: user-42"], "{name}");
    }

    // Overwrite mode removes every spelling before it sets the verified user.
    let layer = Mka1AuthLayer::new(f.verifier.clone()).overwrite_on_behalf_of(true);
    let req = bearer(&token)
        .header("x_on_behalf_of", "admin")
        .header("x-on_behalf-of", "root")
        .header(X_ON_BEHALF_OF, "user-7");
    let response = header_lines(layer, req).await;
    let on_behalf: Vec<&str> = response
        .body()
        .lines()
        .filter(|l| l.contains("behalf"))
        .collect();
    assert_eq!(on_behalf, ["x-on-behalf-of: user-42"]);

    // Anonymous requests in optional mode lose every spelling too.
    let layer = Mka1AuthLayer::optional(f.verifier.clone());
    let response = header_lines(layer, get().header("x_on_behalf_of", "admin")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.body().contains("behalf"), "{}", response.body());
}

#[tokio::test]
async fn other_authorization_schemes_get_a_bare_401_challenge() {
    // RFC 6750 section 3.1: an unsupported method is answered as no credentials at all.
    let f = fixture();
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        format!("Basic {}", f.token()),
        "Negotiate".to_owned(),
        "DPoP abc".to_owned(),
    ] {
        for layer in [
            Mka1AuthLayer::new(f.verifier.clone()).realm("orders"),
            // Credentials were presented, so optional mode refuses them too.
            Mka1AuthLayer::optional(f.verifier.clone()).realm("orders"),
        ] {
            let response = call(layer, get().header(AUTHORIZATION, &value)).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
            assert_eq!(challenge(&response), r#"Bearer realm="orders""#, "{value}");
            assert_eq!(kind(&response), ErrorKind::MissingCredentials, "{value}");
        }
    }
    // An empty bearer token stays a malformed request.
    let response = call(
        Mka1AuthLayer::new(f.verifier.clone()),
        get().header(AUTHORIZATION, "Bearer "),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[cfg(feature = "remote")]
#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    use http::header::RETRY_AFTER;

    // A JWKS endpoint that refuses connections, and nothing cached.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let verifier = Verifier::builder()
        .jwks_url(format!("http://127.0.0.1:{port}/jwks"))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let token = TestKey::ed25519("ed-1").sign(&claims_at(NOW));
    let response = call(Mka1AuthLayer::new(verifier), bearer(&token)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    let retry: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(body(&response)["error"], "temporarily_unavailable");
    assert_eq!(kind(&response), ErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn permissions_layer_answers_403_insufficient_scope() {
    let f = fixture();
    let token = f.token();
    let auth = Mka1AuthLayer::new(f.verifier.clone()).realm("agents");
    let stack = |perms: &[&str]| {
        tower::ServiceBuilder::new()
            .layer(auth.clone())
            .layer(RequirePermissionsLayer::new(perms.iter().copied()))
            .service(service_fn(echo_boxed))
    };

    let ok = stack(&["agent:read"])
        .oneshot(bearer(&token).body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(seen(&ok)["subject"], "user-42");

    let refused = stack(&["agent:read", "agent:delete"])
        .oneshot(bearer(&token).body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&refused),
        r#"Bearer realm="agents", error="insufficient_scope", error_description="token lacks a required permission", scope="agent:read agent:delete""#
    );
    let body = body(&refused);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "agent:read agent:delete");
    assert_eq!(kind(&refused), ErrorKind::InsufficientPermission);
}

#[tokio::test]
async fn permissions_layer_without_the_auth_layer_is_a_500_naming_it() {
    let captured = traced();
    let svc = RequirePermissionsLayer::new(["agent:read"]).layer(service_fn(echo_boxed));
    let response = svc
        .oneshot(get().body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(kind(&response), ErrorKind::MissingLayer);
    // The body is short; the layer's name and the advice go to the log.
    assert!(!response.body().contains("Mka1AuthLayer"));
    let logged = captured.text();
    assert!(logged.contains("ERROR"), "{logged}");
    assert!(logged.contains("RequirePermissionsLayer"), "{logged}");
    assert!(logged.contains("Mka1AuthLayer"), "{logged}");
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_clean() {
    let f = fixture();
    let forged = f.verifier.verify(&f.token()).await.unwrap();
    let layer = Mka1AuthLayer::optional(f.verifier.clone());

    // Anything a client or an earlier layer put there is removed.
    let mut req = get()
        .header(X_ON_BEHALF_OF, "user-42")
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(forged.clone());
    req.extensions_mut().insert(forged.on_behalf_of().clone());
    let response = layer
        .clone()
        .layer(service_fn(echo_boxed))
        .oneshot(req)
        .await
        .unwrap();
    let seen = seen(&response);
    assert_eq!(
        seen,
        json!({"on_behalf_of": null, "subject": null, "bearer": null, "header": []})
    );

    // A valid token still authenticates.
    let seen = self::seen(&call(layer.clone(), bearer(&f.token())).await);
    assert_eq!(seen["subject"], "user-42");

    // A presented but invalid token is still refused, and so is a malformed request.
    let response = call(layer.clone(), bearer("not-a-jwt")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&response), ErrorKind::Malformed);
    let response = call(layer.clone(), get().header(AUTHORIZATION, "Bearer ")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Permissions layered under optional auth refuse anonymous requests with 401.
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(RequirePermissionsLayer::new(["agent:read"]))
        .service(service_fn(echo_boxed));
    let response = svc
        .oneshot(get().body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="mka1""#);
}

#[tokio::test]
async fn cookie_is_accepted_when_configured() {
    let f = fixture();
    let token = f.token();
    let layer =
        Mka1AuthLayer::new(f.verifier.clone()).cookie(CookieName::new("mka1_token").unwrap());

    let req = get().header(COOKIE, format!("theme=dark; mka1_token={token}"));
    assert_eq!(seen(&call(layer.clone(), req).await)["subject"], "user-42");

    // Without the option the cookie is not a credential.
    let req = get().header(COOKIE, format!("mka1_token={token}"));
    let response = call(Mka1AuthLayer::new(f.verifier.clone()), req).await;
    assert_eq!(kind(&response), ErrorKind::MissingCredentials);

    // The header wins over the cookie.
    let req = bearer("not-a-jwt").header(COOKIE, format!("mka1_token={token}"));
    assert_eq!(kind(&call(layer.clone(), req).await), ErrorKind::Malformed);

    // A cookie named twice is a malformed request.
    let req = get()
        .header(COOKIE, format!("mka1_token={token}"))
        .header(COOKIE, "mka1_token=other");
    assert_eq!(kind(&call(layer, req).await), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn a_custom_rejection_replaces_the_answer_and_keeps_the_error() {
    let f = fixture();
    let layer = Mka1AuthLayer::new(f.verifier.clone()).reject_with(|r: Rejection| {
        let mut response = Response::new(format!("nope: {}", r.error().kind().as_str()));
        *response.status_mut() = if r.status() == StatusCode::UNAUTHORIZED {
            StatusCode::NOT_FOUND
        } else {
            r.status()
        };
        response
    });
    let response = layer
        .layer(service_fn(echo_boxed))
        .oneshot(get().body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.body(), "nope: no credentials were presented");
    assert_eq!(kind(&response), ErrorKind::MissingCredentials);
}

#[tokio::test]
async fn works_around_a_plain_service_fn_with_a_full_body() {
    use axum::body::Bytes;
    use http_body_util::{BodyExt, Full};

    let f = fixture();
    let svc = Mka1AuthLayer::new(f.verifier.clone()).layer(service_fn(
        |req: Request<Full<Bytes>>| async move {
            let user = OnBehalfOf::from_extensions(req.extensions())
                .cloned()
                .unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("hi {user}")))))
        },
    ));
    let req = bearer(&f.token()).body(Full::default()).unwrap();
    let response = svc.clone().oneshot(req).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, "hi user-42");

    let response = svc
        .oneshot(get().body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(body["error"], "missing_credentials");
}

#[tokio::test]
async fn rejections_emit_a_tracing_event_without_the_token() {
    // The binary's one global capture: a per-thread subscriber races with other tests over
    // `tracing`'s per-callsite interest cache (see tests/common).
    let captured = traced();
    let f = fixture();
    let token = f.key.sign(&claims_with(json!({"exp": NOW - 3600})));
    let response = call(Mka1AuthLayer::new(f.verifier.clone()), bearer(&token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let logged = captured.text();
    assert!(logged.contains("kind=Expired"), "{logged}");
    assert!(logged.contains("status=401"), "{logged}");
    assert!(!logged.contains(&token));
    assert!(!logged.contains(token.split('.').nth(2).unwrap()));
}

#[cfg(feature = "axum")]
mod axum_router {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use mka1_auth::extract::Claims;

    #[derive(serde::Deserialize)]
    struct Custom {
        sub: String,
        permissions: Vec<String>,
    }

    #[derive(serde::Deserialize)]
    struct NeedsOrg {
        #[allow(dead_code)]
        org: String,
    }

    fn routes() -> Router {
        Router::new()
            .route(
                "/me",
                get(|user: OnBehalfOf| async move { user.to_string() }),
            )
            .route(
                "/token",
                get(|token: VerifiedToken, bearer: BearerToken| async move {
                    format!(
                        "{} {} {}",
                        token.subject(),
                        token.permissions().len(),
                        bearer.expose().len()
                    )
                }),
            )
            .route(
                "/claims",
                get(|Claims(c): Claims<Custom>| async move {
                    format!("{} {}", c.sub, c.permissions.join(","))
                }),
            )
            .route("/org", get(|_: Claims<NeedsOrg>| async { "org" }))
            .route(
                "/maybe",
                get(
                    |user: Option<OnBehalfOf>, token: Option<VerifiedToken>| async move {
                        match (user, token) {
                            (Some(u), Some(t)) if *u == *t.subject() => format!("user {u}"),
                            (None, None) => "anonymous".to_owned(),
                            _ => "inconsistent".to_owned(),
                        }
                    },
                ),
            )
    }

    async fn fetch(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get(uri).header(X_ON_BEHALF_OF, "user-42");
        if let Some(token) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn extractors_hand_handlers_the_verified_values() {
        let f = fixture();
        let token = f.token();
        let app = routes().layer(Mka1AuthLayer::new(f.verifier.clone()));
        let t = Some(token.as_str());
        assert_eq!(
            fetch(&app, "/me", t).await,
            (StatusCode::OK, "user-42".into())
        );
        assert_eq!(
            fetch(&app, "/token", t).await,
            (StatusCode::OK, format!("user-42 2 {}", token.len()))
        );
        assert_eq!(
            fetch(&app, "/claims", t).await,
            (StatusCode::OK, "user-42 agent:read,agent:write".into())
        );
        assert_eq!(
            fetch(&app, "/maybe", t).await,
            (StatusCode::OK, "user user-42".into())
        );
        let (status, body) = fetch(&app, "/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    #[tokio::test]
    async fn claims_that_do_not_fit_are_401_invalid_token() {
        let f = fixture();
        let app = routes().layer(Mka1AuthLayer::new(f.verifier.clone()).realm("r"));
        let response = app
            .oneshot(bearer(&f.token()).uri("/org").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let header = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            header.starts_with(r#"Bearer realm="r", error="invalid_token""#),
            "{header}"
        );
        assert_eq!(
            response.extensions().get::<Error>().unwrap().kind(),
            ErrorKind::InvalidClaim
        );
    }

    #[tokio::test]
    async fn optional_extractors_see_anonymous_requests_as_none() {
        let f = fixture();
        let app = routes().layer(Mka1AuthLayer::optional(f.verifier.clone()).realm("opt"));
        assert_eq!(
            fetch(&app, "/maybe", None).await,
            (StatusCode::OK, "anonymous".into())
        );
        assert_eq!(
            fetch(&app, "/maybe", Some(&f.token())).await,
            (StatusCode::OK, "user user-42".into())
        );
        // The required form refuses the anonymous request, in the layer's realm.
        let response = app
            .clone()
            .oneshot(Request::get("/me").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="opt""#
        );
        // An invalid token is refused before the handler.
        assert_eq!(
            fetch(&app, "/maybe", Some("a.b.c")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn extractors_without_the_layer_are_a_500_naming_it() {
        let captured = traced();
        let f = fixture();
        let app = routes();
        for uri in ["/me", "/token", "/claims", "/maybe"] {
            // Even a valid token and a plain X-On-Behalf-Of header do not make an OnBehalfOf.
            let (status, body) = fetch(&app, uri, Some(&f.token())).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["error"], "server_error");
            // The body says what is wrong, briefly; the layer's name and the advice are
            // logged for the operator.
            assert_eq!(
                body["error_description"],
                "the authentication layer is missing in front of this point, or in the wrong order",
                "{body}"
            );
        }
        let logged = captured.text();
        assert!(logged.contains("ERROR"), "{logged}");
        assert!(
            logged.contains("add `Mka1AuthLayer` in front of routes that read the verified token"),
            "{logged}"
        );
    }

    #[tokio::test]
    async fn end_to_end_over_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let f = fixture();
        let app = routes()
            .route_layer(RequirePermissionsLayer::new(["agent:read"]))
            .layer(Mka1AuthLayer::new(f.verifier.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let exchange = |extra: String| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request =
                format!("GET /me HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra}\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        let token = f.token();
        let ok = exchange(format!("authorization: bearer {token}\r\n")).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("user-42"), "{ok}");

        let twice = exchange(format!(
            "authorization: Bearer {token}\r\nauthorization: Bearer {token}\r\n"
        ))
        .await;
        assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
        assert!(twice.contains(r#"error="invalid_request""#), "{twice}");

        let other = exchange(format!(
            "authorization: Bearer {token}\r\nx-on-behalf-of: user-7\r\n"
        ))
        .await;
        assert!(other.starts_with("HTTP/1.1 403"), "{other}");

        let reader = f
            .key
            .sign(&claims_with(json!({"permissions": ["agent:write"]})));
        let lacking = exchange(format!("authorization: Bearer {reader}\r\n")).await;
        assert!(lacking.starts_with("HTTP/1.1 403"), "{lacking}");
        assert!(lacking.contains(r#"scope="agent:read""#), "{lacking}");

        let forged = TestKey::ed25519("ed-1").sign(&claims_at(NOW));
        let refused = exchange(format!("authorization: Bearer {forged}\r\n")).await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        server.abort();
    }
}

/// A service that refuses to be called without being readied first, as tower requires; its
/// clones start unready.
#[derive(Default)]
struct Strict {
    ready: bool,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        Strict { ready: false }
    }
}

impl tower::Service<Request<String>> for Strict {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = EchoFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> EchoFuture {
        assert!(std::mem::take(&mut self.ready), "called without poll_ready");
        echo_boxed(req)
    }
}

#[tokio::test]
async fn the_readied_service_is_the_one_called() {
    let f = fixture();
    let mut svc = Mka1AuthLayer::new(f.verifier.clone()).layer(Strict::default());
    for _ in 0..3 {
        let req = bearer(&f.token()).body(String::new()).unwrap();
        let response = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(seen(&response)["subject"], "user-42");
    }
}

/// The slow path: the first token names a key the remote key set must fetch first.
#[cfg(feature = "remote")]
#[tokio::test]
async fn a_key_fetched_on_first_use_admits_the_request() {
    let key = TestKey::ed25519("ed-1");
    let doc = jwks(&[&key]).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { ([(CONTENT_TYPE, "application/json")], doc) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let verifier = Verifier::builder()
        .jwks_url(format!("http://{addr}/jwks"))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let mut svc = Mka1AuthLayer::new(verifier).layer(Strict::default());
    for _ in 0..2 {
        let req = bearer(&key.sign(&claims_at(NOW)))
            .body(String::new())
            .unwrap();
        let response = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(seen(&response)["header"], json!(["user-42"]));
    }
    server.abort();
}

#[test]
fn every_service_hands_out_its_inner_service() {
    let mut auth = Mka1AuthLayer::new(fixture().verifier).layer(1_u32);
    *auth.get_mut() += 1;
    assert_eq!(*auth.get_ref(), 2);
    assert_eq!(auth.into_inner(), 2);

    let mut permissions = RequirePermissionsLayer::new(["agent:read"]).layer(1_u32);
    *permissions.get_mut() += 1;
    assert_eq!(*permissions.get_ref(), 2);
    assert_eq!(permissions.into_inner(), 2);

    let forward = mka1_auth::outbound::forward::ForwardLayer::builder("http://127.0.0.1:9/base")
        .build()
        .unwrap();
    let mut forward = forward.layer(1_u32);
    *forward.get_mut() += 1;
    assert_eq!(*forward.get_ref(), 2);
    assert_eq!(forward.into_inner(), 2);
}
