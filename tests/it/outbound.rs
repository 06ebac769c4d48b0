//! The outbound layer over real clients (hyper-util and reqwest) on 127.0.0.1: what the
//! upstream sees, what it never sees, which hosts get nothing, and redirects.

use crate::common;
use crate::mock_mka1;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::{claims_with, jwks, TestKey, AUDIENCE, NOW};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mka1_auth::outbound::{
    carry_identity, ApiKey, Credential, CredentialSource, ForwardToken, OutboundContext,
    OutboundError, OutboundLayer, Refusal, RefusalKind,
};
use mka1_auth::{BearerToken, ManualClock, OnBehalfOf, VerifiedToken, Verifier, X_ON_BEHALF_OF};
use mock_mka1::Upstream;
use serde_json::json;
use tower::{service_fn, Layer, Service, ServiceExt};

const KEY: &str = "mk_live_outbound_test_key";

type HyperClient = Client<hyper_util::client::legacy::connect::HttpConnector, String>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Inbound {
    verified: VerifiedToken,
    bearer: BearerToken,
    token: String,
}

/// What the inbound layer would have put in the request: a verified token for `sub`.
async fn inbound(sub: &str) -> Inbound {
    let key = TestKey::ed25519("k1");
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let token = key.sign(&claims_with(json!({ "sub": sub })));
    let (verified, bearer) = verifier.verify_bearer(&token).await.unwrap();
    Inbound {
        verified,
        bearer,
        token,
    }
}

fn user_of(i: &Inbound) -> OnBehalfOf {
    i.verified.on_behalf_of().clone()
}

fn get(url: &str) -> Request<String> {
    Request::get(url).body(String::new()).unwrap()
}

fn refusal<E: std::fmt::Debug>(err: OutboundError<E>) -> Refusal {
    match err.refusal() {
        Some(e) => e.clone(),
        None => panic!("expected a refusal, got {err:?}"),
    }
}

/// Send `req` through `client`, expecting the layer to refuse it.
async fn refused<S, E>(client: &S, req: Request<String>) -> Refusal
where
    S: Service<Request<String>, Error = OutboundError<E>> + Clone,
    E: std::fmt::Debug,
{
    match client.clone().oneshot(req).await {
        Ok(_) => panic!("the request was sent"),
        Err(e) => refusal(e),
    }
}

#[tokio::test]
async fn upstream_sees_exactly_the_verified_user_and_the_api_key() {
    let upstream = Upstream::start().await;
    let alice = inbound("alice").await;
    let layer = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(upstream.origin())
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());

    // A handler copied the inbound headers, spoofed user and all, then added the verified user.
    let mut req = get(&upstream.url("/whoami"));
    let h = req.headers_mut();
    h.append(X_ON_BEHALF_OF, "mallory".parse().unwrap());
    h.append(X_ON_BEHALF_OF, "eve".parse().unwrap());
    h.append(AUTHORIZATION, "Bearer stolen".parse().unwrap());
    h.append(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().unwrap());
    req.extensions_mut().insert(user_of(&alice));
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].all("x-on-behalf-of"), ["alice"]);
    assert_eq!(seen[0].all("authorization"), [format!("Bearer {KEY}")]);
}

#[tokio::test]
async fn every_spelling_of_the_identity_headers_is_replaced() {
    let upstream = Upstream::start().await;
    let alice = inbound("alice").await;
    let layer = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(upstream.origin())
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());
    let spoof = |req: &mut Request<String>| {
        let h = req.headers_mut();
        for name in ["x_on_behalf_of", "x-on_behalf-of", "X_ON_BEHALF_OF"] {
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "mallory".parse().unwrap(),
            );
        }
        h.append(AUTHORIZATION, "Bearer stolen".parse().unwrap());
    };

    // With an end user: only the layer's `x-on-behalf-of` arrives.
    let mut req = get(&upstream.url("/whoami"));
    spoof(&mut req);
    req.extensions_mut().insert(user_of(&alice));
    assert_eq!(client.clone().oneshot(req).await.unwrap().status(), 200);
    // Without one (a backend-only call): none at all.
    let mut req = get(&upstream.url("/backend"));
    spoof(&mut req);
    assert_eq!(client.oneshot(req).await.unwrap().status(), 200);

    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    for (i, want) in [(0, vec!["x-on-behalf-of"]), (1, vec![])] {
        let spellings: Vec<&str> = seen[i]
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| k.replace('_', "-") == "x-on-behalf-of")
            .collect();
        assert_eq!(spellings, want, "request {i}");
        assert_eq!(seen[i].all("authorization"), [format!("Bearer {KEY}")]);
    }
    assert_eq!(seen[0].all("x-on-behalf-of"), ["alice"]);
}

#[tokio::test]
async fn without_an_end_user_no_on_behalf_of_is_sent() {
    let upstream = Upstream::start().await;
    let layer = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(upstream.origin())
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());
    let mut req = get(&upstream.url("/backend"));
    req.headers_mut()
        .insert(X_ON_BEHALF_OF, "mallory".parse().unwrap());
    client.oneshot(req).await.unwrap();
    let seen = upstream.seen();
    assert!(seen[0].all("x-on-behalf-of").is_empty());
    assert_eq!(seen[0].all("authorization"), [format!("Bearer {KEY}")]);
}

#[tokio::test]
async fn a_closure_names_the_user_when_no_verified_one_rides_along() {
    let upstream = Upstream::start().await;
    let layer = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(upstream.origin())
        .end_user_from(|parts| {
            let v = parts.headers.get("x-user")?;
            Some(v.to_str().unwrap().to_owned())
        })
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());

    let named = |user: &str| {
        let mut req = get(&upstream.url("/x"));
        req.headers_mut().insert("x-user", user.parse().unwrap());
        req
    };
    client.clone().oneshot(named("bob")).await.unwrap();
    assert_eq!(upstream.seen()[0].all("x-on-behalf-of"), ["bob"]);

    // A verified user wins over the closure.
    let alice = inbound("alice").await;
    let mut req = named("bob");
    req.extensions_mut().insert(user_of(&alice));
    client.clone().oneshot(req).await.unwrap();
    assert_eq!(upstream.seen()[1].all("x-on-behalf-of"), ["alice"]);

    // An id MKA1 would refuse never leaves.
    for bad in ["*", " bob", &"x".repeat(151)] {
        let err = refused(&client, named(bad)).await;
        assert_eq!(err.kind(), RefusalKind::CredentialUnavailable, "{bad:?}");
        assert!(err.to_string().contains("end-user id"), "{err}");
    }
    assert_eq!(upstream.seen().len(), 2);
}

/// A credential source that counts how often it was asked.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl CredentialSource for Counting {
    type Future = Ready<Result<Credential, Refusal>>;
    fn credential(&self, _cx: &OutboundContext<'_>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        ready(Credential::bearer(KEY))
    }
}

#[tokio::test]
async fn a_host_not_allowed_gets_no_credentials_and_no_request() {
    let allowed = Upstream::start().await;
    let other = Upstream::start().await;
    let asked = Counting::default();
    let layer = OutboundLayer::builder(asked.clone())
        .allow_origin(allowed.origin())
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());
    let alice = inbound("alice").await;

    let port = allowed.addr.port();
    let targets = [
        other.url("/steal"),                   // another port: another origin
        format!("http://localhost:{port}/x"),  // same socket, another host name
        format!("https://127.0.0.1:{port}/x"), // another scheme
        "/relative/only".to_owned(),           // no origin at all
    ];
    for url in targets {
        let mut req = get(&url);
        req.extensions_mut().insert(user_of(&alice));
        let err = refused(&client, req).await;
        assert_eq!(err.kind(), RefusalKind::HostNotAllowed, "{url}");
    }
    // A Host header naming another host than the URI.
    let mut req = get(&allowed.url("/x"));
    req.headers_mut()
        .insert("host", "evil.example".parse().unwrap());
    let err = refused(&client, req).await;
    assert_eq!(err.kind(), RefusalKind::HostNotAllowed);
    assert!(err.to_string().contains("host header"), "{err}");

    assert!(other.seen().is_empty());
    assert!(allowed.seen().is_empty());
    assert_eq!(
        asked.0.load(Ordering::SeqCst),
        0,
        "no credential was even fetched"
    );

    // The allowed origin, with a matching Host header, works.
    let mut req = get(&allowed.url("/ok"));
    req.headers_mut()
        .insert("host", allowed.addr.to_string().parse().unwrap());
    client.oneshot(req).await.unwrap();
    assert_eq!(allowed.seen().len(), 1);
}

#[tokio::test]
async fn the_inbound_token_is_forwarded_unchanged() {
    let upstream = Upstream::start().await;
    let alice = inbound("alice").await;
    let layer = OutboundLayer::builder(ForwardToken)
        .allow_origin(upstream.origin())
        .build()
        .unwrap();
    let client = layer.layer(hyper_client());

    // What the inbound layer leaves in the handler's request, carried onto the outgoing one.
    let mut inbound_ext = http::Extensions::new();
    inbound_ext.insert(alice.verified.clone());
    inbound_ext.insert(user_of(&alice));
    inbound_ext.insert(alice.bearer.clone());
    let mut req = get(&upstream.url("/x"));
    carry_identity(&inbound_ext, req.extensions_mut());
    client.clone().oneshot(req).await.unwrap();
    let seen = upstream.seen();
    assert_eq!(
        seen[0].all("authorization"),
        [format!("Bearer {}", alice.token)]
    );
    assert_eq!(seen[0].all("x-on-behalf-of"), ["alice"]);
    assert!(!format!("{:?}", alice.bearer).contains(&alice.token));

    // Nothing to forward.
    let err = refused(&client, get(&upstream.url("/x"))).await;
    assert_eq!(err.kind(), RefusalKind::CredentialUnavailable);

    // Never forwarded for another user than the token's.
    let layer = OutboundLayer::builder(ForwardToken)
        .allow_origin(upstream.origin())
        .end_user_from(|_| Some("bob".into()))
        .build()
        .unwrap();
    let mut req = get(&upstream.url("/x"));
    req.extensions_mut().insert(alice.verified.clone());
    req.extensions_mut().insert(alice.bearer.clone());
    let err = refusal(layer.layer(hyper_client()).oneshot(req).await.unwrap_err());
    assert_eq!(err.kind(), RefusalKind::CredentialUnavailable);
    assert_eq!(upstream.seen().len(), 1);
}

#[cfg(feature = "remote")]
#[tokio::test]
async fn exchanged_tokens_are_minted_once_per_user_and_sent_onward() {
    use mock_mka1::{payload, MockMka1};

    let mka1 = MockMka1::start(ManualClock::at_unix(NOW)).await;
    let upstream = Upstream::start().await;
    let exchange = mka1.client().build().unwrap();
    let audience = upstream.origin();
    let source = exchange
        .source(audience.clone())
        .permissions(["agent:read"]);
    let client = OutboundLayer::builder(source)
        .allow_origin(upstream.origin())
        .build()
        .unwrap()
        .layer(hyper_client());

    let alice = inbound("alice").await;
    let bob = inbound("bob").await;
    for _ in 0..5 {
        let mut req = get(&upstream.url("/whoami"));
        req.extensions_mut().insert(user_of(&alice));
        client.clone().oneshot(req).await.unwrap();
    }
    assert_eq!(mka1.calls().len(), 1);
    let mut req = get(&upstream.url("/whoami"));
    req.extensions_mut().insert(user_of(&bob));
    client.clone().oneshot(req).await.unwrap();
    assert_eq!(mka1.calls().len(), 2);
    assert_eq!(mka1.calls()[1].body["externalUserId"], "bob");
    assert_eq!(mka1.calls()[1].body["audience"], audience.as_str());

    let seen = upstream.seen();
    assert_eq!(seen.len(), 6);
    for (i, s) in seen.iter().enumerate() {
        let user = if i < 5 { "alice" } else { "bob" };
        assert_eq!(s.all("x-on-behalf-of"), [user]);
        let auth = s.all("authorization");
        assert_eq!(auth.len(), 1);
        let token = auth[0].strip_prefix("Bearer ").unwrap();
        let claims = payload(token);
        assert_eq!(claims["sub"], user);
        assert_eq!(claims["aud"], audience.as_str());
        assert_eq!(claims["permissions"], json!(["agent:read"]));
    }

    // An exchange needs a user: a backend-only call is refused, and nothing is minted.
    let err = refused(&client, get(&upstream.url("/x"))).await;
    assert_eq!(err.kind(), RefusalKind::CredentialUnavailable);
    // An MKA1 refusal surfaces as an exchange error, and the upstream is not called.
    mka1.script([mock_mka1::Reply::status(
        403,
        json!({"detail": "audience not allowed"}),
    )]);
    let mut req = get(&upstream.url("/x"));
    req.extensions_mut()
        .insert(user_of(&inbound("carol").await));
    let err = refusal(client.oneshot(req).await.unwrap_err());
    assert_eq!(err.kind(), RefusalKind::Exchange);
    assert_eq!(mka1.calls().len(), 3);
    assert_eq!(upstream.seen().len(), 6);
}

#[cfg(feature = "remote")]
#[tokio::test]
async fn reqwest_adapter_sets_headers_and_never_follows_a_redirect_off_origin() {
    use mka1_auth::outbound::ReqwestService;

    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let alice = inbound("alice").await;
    let client = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(a.origin())
        .build()
        .unwrap()
        .layer(ReqwestService::new().unwrap());
    let call = |url: String| {
        let mut req = Request::get(url).body(String::new()).unwrap();
        req.extensions_mut().insert(user_of(&alice));
        client.clone().oneshot(req)
    };

    let res = call(a.url("/whoami")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(a.seen()[0].all("x-on-behalf-of"), ["alice"]);
    assert_eq!(a.seen()[0].all("authorization"), [format!("Bearer {KEY}")]);

    // A redirect to another origin comes back as the 3xx; B is never contacted.
    let res = call(a.url(&format!("/redirect?to={}", b.url("/landing"))))
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(b.seen().is_empty(), "the redirect reached another origin");

    // A redirect within the origin is followed, headers intact.
    let res = call(a.url(&format!("/redirect?to={}", a.url("/landing"))))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let landing = a.seen().into_iter().find(|s| s.path == "/landing").unwrap();
    assert_eq!(landing.all("x-on-behalf-of"), ["alice"]);

    // Disallowed hosts are refused before reqwest sees the request.
    let err = refusal(call(b.url("/x")).await.unwrap_err());
    assert_eq!(err.kind(), RefusalKind::HostNotAllowed);
    assert!(b.seen().is_empty());
}

#[cfg(feature = "remote")]
#[tokio::test]
async fn a_plain_reqwest_client_would_leak_the_user_across_hosts() {
    // The control for the test above: reqwest's default policy follows the redirect and
    // keeps `X-On-Behalf-Of`, which is why the adapter replaces it.
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let res = reqwest::Client::new()
        .get(a.url(&format!("/redirect?to={}", b.url("/landing"))))
        .header("x-on-behalf-of", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(b.seen()[0].all("x-on-behalf-of"), ["alice"]);
}

#[tokio::test]
async fn hyper_util_client_does_not_follow_redirects() {
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let client = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin(a.origin())
        .build()
        .unwrap()
        .layer(hyper_client());
    let res = client
        .oneshot(get(&a.url(&format!("/redirect?to={}", b.url("/landing")))))
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(b.seen().is_empty());
}

#[tokio::test]
async fn both_headers_are_marked_sensitive() {
    let captured: Arc<Mutex<Option<http::HeaderMap>>> = Arc::default();
    let sink = captured.clone();
    let inner = service_fn(move |req: Request<String>| {
        *sink.lock().unwrap() = Some(req.headers().clone());
        ready(Ok::<_, Infallible>(Response::new(String::new())))
    });
    let alice = inbound("alice").await;
    let client = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin("https://apigw.mka1.com")
        .build()
        .unwrap()
        .layer(inner);
    let mut req = get("https://apigw.mka1.com/api/v1/agents");
    req.extensions_mut().insert(user_of(&alice));
    client.oneshot(req).await.unwrap();
    let headers = captured.lock().unwrap().take().unwrap();
    assert!(headers[AUTHORIZATION].is_sensitive());
    assert!(headers[X_ON_BEHALF_OF].is_sensitive());
}

/// An inner client that is never ready, or fails every call.
#[derive(Clone)]
struct Broken {
    ready: bool,
}

impl Service<Request<String>> for Broken {
    type Response = Response<String>;
    type Error = std::io::Error;
    type Future = Ready<Result<Response<String>, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(std::io::Error::other("not ready")))
        }
    }

    fn call(&mut self, _req: Request<String>) -> Self::Future {
        ready(Err(std::io::Error::other("connection reset")))
    }
}

#[tokio::test]
async fn inner_errors_and_readiness_pass_through() {
    let layer = OutboundLayer::builder(ApiKey::new(KEY).unwrap())
        .allow_origin("https://apigw.mka1.com")
        .build()
        .unwrap();
    let err = layer
        .layer(Broken { ready: true })
        .oneshot(get("https://apigw.mka1.com/"))
        .await
        .unwrap_err();
    assert_eq!(err.service_error().unwrap().to_string(), "connection reset");
    assert!(err.to_string().contains("connection reset"));

    let mut svc = layer.layer(Broken { ready: false });
    let err = std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .unwrap_err();
    assert!(err.refusal().is_none());
    assert_eq!(err.service_error().unwrap().to_string(), "not ready");
}
