//! gRPC end to end over loopback: a real tonic server (HTTP/2) behind `Mka1AuthLayer` and
//! `RequirePermissionsLayer` with `GrpcReject`, called by a real tonic client whose channel
//! is wrapped in the outbound layer (tokens exchanged at a `DevIssuer`). Allowed, refused
//! (16 UNAUTHENTICATED), permission denied (7) and unavailable (14), each as a `grpc-status`
//! the client reads. The service and client are `examples/grpc_service.rs`'s, written by
//! hand (prost derives): no `protoc`.
#![cfg(feature = "tonic")]

#[allow(dead_code)]
#[path = "../../examples/grpc_service.rs"]
mod grpc_service;

use std::convert::Infallible;
use std::net::SocketAddr;

use grpc_service::{hello, outbound, serve, serve_behind, HelloReply, GREETER};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use mka1_auth::exchange::ExchangeSource;
use mka1_auth::grpc::GrpcReject;
use mka1_auth::outbound::Outbound;
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, Verifier};
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Layer, ServiceExt};

const FRONT: &str = "https://front.example.test";
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

struct World {
    issuer: DevIssuer,
    addr: std::net::SocketAddr,
    channel: Channel,
}

impl World {
    async fn start() -> World {
        let issuer = DevIssuer::start().await.unwrap();
        let verifier = Verifier::builder()
            .jwks_url(issuer.jwks_url())
            .issuer(issuer.issuer())
            .audience(GREETER)
            .build()
            .unwrap();
        let addr = serve(verifier, LOOPBACK).await.unwrap();
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        World {
            issuer,
            addr,
            channel,
        }
    }

    fn origin(&self) -> Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }

    /// The end user of a token the front service received and verified.
    async fn front_user(&self, user: &str) -> OnBehalfOf {
        let front = Verifier::builder()
            .jwks(self.issuer.jwks_json())
            .audience(FRONT)
            .build()
            .unwrap();
        let token = self.issuer.mint(Mint::new(FRONT, user));
        front.verify(&token).await.unwrap().on_behalf_of().clone()
    }

    /// The channel behind the outbound layer (see the example's `outbound`).
    fn outbound(&self, permissions: &[&str]) -> Outbound<Channel, ExchangeSource> {
        outbound(
            &self.issuer,
            self.channel.clone(),
            &self.origin(),
            permissions,
        )
        .unwrap()
    }

    /// Call through the outbound layer for `user` (verified by the front), with tokens
    /// holding these permissions.
    async fn call_for(&self, user: &str, permissions: &[&str]) -> Result<HelloReply, Status> {
        let user = self.front_user(user).await;
        hello(self.outbound(permissions), self.origin(), Some(user), &[]).await
    }

    /// A token for the greeter, minted directly (for calls without the outbound layer).
    fn token(&self, user: &str) -> String {
        self.issuer.mint(Mint::new(GREETER, user))
    }
}

#[tokio::test]
async fn an_outbound_tonic_client_is_allowed_and_its_user_reaches_the_handler() {
    let world = World::start().await;
    let reply = world.call_for("user-42", &["agent:read"]).await.unwrap();
    assert_eq!(reply.message, "hello grpc, user-42");
    assert_eq!(reply.metadata_user, "user-42");

    // A spoofed `x-on-behalf-of` in the metadata is replaced by the outbound layer.
    let user = world.front_user("user-43").await;
    let spoofed = [("x-on-behalf-of", "admin")];
    let reply = hello(
        world.outbound(&["agent:read"]),
        world.origin(),
        Some(user),
        &spoofed,
    )
    .await
    .unwrap();
    assert_eq!(reply.message, "hello grpc, user-43");
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let world = World::start().await;
    let status = hello(world.channel.clone(), world.origin(), None, &[])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no credentials were presented");

    let forged = format!("Bearer {}x", world.token("user-42"));
    let status = hello(
        world.channel.clone(),
        world.origin(),
        None,
        &[("authorization", &forged)],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token signature is invalid");
}

#[tokio::test]
async fn a_missing_permission_or_another_user_is_permission_denied() {
    let world = World::start().await;
    let status = world
        .call_for("user-42", &["agent:write"])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("permission"),
        "{}",
        status.message()
    );

    let bearer = format!("Bearer {}", world.token("user-42"));
    let other = [
        ("authorization", bearer.as_str()),
        ("x-on-behalf-of", "user-9"),
    ];
    let status = hello(world.channel.clone(), world.origin(), None, &other)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn no_usable_keys_is_unavailable() {
    let issuer = DevIssuer::start().await.unwrap();
    // A JWKS URL where nothing listens.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let verifier = Verifier::builder()
        .jwks_url(dead)
        .audience(GREETER)
        .build()
        .unwrap();
    let addr = serve(verifier, LOOPBACK).await.unwrap();
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let bearer = format!("Bearer {}", issuer.mint(Mint::new(GREETER, "user-42")));
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    let status = hello(channel, origin, None, &[("authorization", &bearer)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

/// Without `GrpcReject`, the standard answer of a layer opted into gRPC answers speaks
/// gRPC to a gRPC call (gRPC-web only with its own opt-in), and JSON to anything else.
#[tokio::test]
async fn the_standard_answer_speaks_grpc_to_grpc_calls_when_opted_in() {
    let issuer = DevIssuer::start().await.unwrap();
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .audience(GREETER)
        .build()
        .unwrap();
    let reached = tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("reached")))
    });
    let grpc_only = Mka1AuthLayer::new(verifier.clone())
        .grpc_answers(true)
        .layer(reached);
    let grpc_and_web = Mka1AuthLayer::new(verifier)
        .grpc_answers(true)
        .grpc_web_answers(true)
        .layer(reached);
    let call = |version, content_type: &str| {
        Request::post("/demo.Greeter/Hello")
            .version(version)
            .header("content-type", content_type)
            .header("te", "trailers")
            .body(String::new())
            .unwrap()
    };
    let response = grpc_only
        .clone()
        .oneshot(call(Version::HTTP_2, "application/grpc"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(
        response.headers()["grpc-message"],
        "no credentials were presented"
    );
    assert!(response.headers().get("www-authenticate").is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty(), "trailers-only");

    // gRPC-web: a 401 without its opt-in, the gRPC-web answer with it.
    for (content_type, answered) in [
        ("application/grpc-web+proto", "application/grpc-web"),
        ("application/grpc-web-text", "application/grpc-web-text"),
    ] {
        let response = grpc_only
            .clone()
            .oneshot(call(Version::HTTP_11, content_type))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{content_type}"
        );
        assert!(response.headers().get("grpc-status").is_none());
        let response = grpc_and_web
            .clone()
            .oneshot(call(Version::HTTP_11, content_type))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_eq!(response.headers()["content-type"], answered);
        assert_eq!(response.headers()["grpc-status"], "16");
    }

    // Not gRPC calls: the RFC 6750 answer, JSON body included.
    for rest in [
        Request::get("/hello").body(String::new()).unwrap(),
        Request::get("/hello")
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap(),
        call(Version::HTTP_11, "application/grpc"),
    ] {
        let response = grpc_and_web.clone().oneshot(rest).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="mka1""#
        );
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}

/// A router that mixes REST and gRPC routes behind one opted-in layer: the REST routes keep
/// 401 and 403 (from the layer, the permission layer, an extractor and a handler's
/// `Rejection`), and only a gRPC call gets the gRPC answer from each of them.
#[tokio::test]
async fn a_mixed_router_keeps_401_and_403_on_its_rest_routes() {
    use axum::routing::{get, post};
    use mka1_auth::extract::Require;
    use mka1_auth::permissions::PermissionSet;
    use mka1_auth::{Rejection, RequirePermissionsLayer};

    struct Admin;
    impl PermissionSet for Admin {
        const PERMISSIONS: &'static [&'static str] = &["agent:admin"];
    }

    let issuer = DevIssuer::start().await.unwrap();
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .audience(GREETER)
        .build()
        .unwrap();
    let reader = format!(
        "Bearer {}",
        issuer.mint(Mint::new(GREETER, "user-42").permissions(["agent:read"]))
    );
    let handler = || async { Err::<&str, _>(Rejection::insufficient(["agent:delete"])) };
    let app = axum::Router::new()
        .route(
            "/layer",
            get(|| async { "reached" }).post(|| async { "reached" }),
        )
        .route(
            "/permission-layer",
            post(|| async { "reached" })
                .get(|| async { "reached" })
                .route_layer(RequirePermissionsLayer::new(["agent:admin"])),
        )
        .route(
            "/extractor",
            post(|_: Require<Admin>| async { "reached" })
                .get(|_: Require<Admin>| async { "reached" }),
        )
        .route("/handler", post(handler).get(handler))
        .layer(Mka1AuthLayer::new(verifier).grpc_answers(true));

    let cases = [
        ("/layer", None, 401, "16"),
        ("/permission-layer", Some(&reader), 403, "7"),
        ("/extractor", Some(&reader), 403, "7"),
        ("/handler", Some(&reader), 403, "7"),
    ];
    for (path, authorization, status, code) in cases {
        let request = |method: Method, version, content_type: Option<&str>| {
            let mut request = Request::builder().method(method).version(version).uri(path);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(authorization) = authorization {
                request = request.header("authorization", authorization.as_str());
            }
            request.body(axum::body::Body::empty()).unwrap()
        };
        let rest = [
            request(Method::GET, Version::HTTP_11, None),
            request(Method::POST, Version::HTTP_11, Some("application/json")),
            request(Method::GET, Version::HTTP_11, Some("application/grpc")),
            request(Method::GET, Version::HTTP_2, Some("application/grpc")),
            request(Method::POST, Version::HTTP_11, Some("application/grpc")),
            request(Method::POST, Version::HTTP_2, Some("application/grpcx")),
            request(Method::POST, Version::HTTP_11, Some("application/grpc-web")),
        ];
        for rest in rest {
            let what = format!(
                "{path} {} {:?} {:?}",
                rest.method(),
                rest.version(),
                rest.headers().get("content-type")
            );
            let response = app.clone().oneshot(rest).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{what}");
            assert!(response.headers().get("grpc-status").is_none(), "{what}");
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{what}"
            );
        }
        let grpc = request(
            Method::POST,
            Version::HTTP_2,
            Some("application/grpc+proto"),
        );
        let response = app.clone().oneshot(grpc).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["grpc-status"], code, "{path}");
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{path}"
        );
    }
}

/// One request over HTTP/2 (prior knowledge) to `addr`, as a raw client sends it.
async fn h2_request(
    addr: SocketAddr,
    method: Method,
    content_type: &str,
    authorization: Option<&str>,
) -> Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/demo.Greeter/Hello"))
        .header("content-type", content_type)
        .header("te", "trailers");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// A tonic server whose auth layer did not opt in answers every refusal with an HTTP error
/// status (which tonic's client still reads as the right code); one that opted in answers
/// a request that is no gRPC call (a `GET`, another content type) the same way.
#[tokio::test]
async fn a_tonic_server_answers_http_errors_unless_opted_in_and_a_real_call() {
    let world = World::start().await;
    let verifier = Verifier::builder()
        .jwks(world.issuer.jwks_json())
        .audience(GREETER)
        .build()
        .unwrap();
    let plain = serve_behind(
        Mka1AuthLayer::new(verifier).reject_with(GrpcReject),
        LOOPBACK,
    )
    .await
    .unwrap();
    let origin: Uri = format!("http://{plain}").parse().unwrap();
    let channel = Endpoint::from_shared(format!("http://{plain}"))
        .unwrap()
        .connect_lazy();
    let status = hello(channel.clone(), origin.clone(), None, &[])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let writer = format!(
        "Bearer {}",
        world
            .issuer
            .mint(Mint::new(GREETER, "user-42").permissions(["agent:write"]))
    );
    let status = hello(channel, origin, None, &[("authorization", &writer)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    for (addr, method, content_type) in [
        (plain, Method::POST, "application/grpc"),
        (world.addr, Method::GET, "application/grpc"),
        (world.addr, Method::POST, "application/grpcx"),
        (world.addr, Method::POST, "application/grpc-web"),
    ] {
        let what = format!("{method} {content_type}");
        let response = h2_request(addr, method.clone(), content_type, None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="mka1""#
        );
        assert!(response.headers().get("grpc-status").is_none(), "{what}");
        let response = h2_request(addr, method, content_type, Some(&writer)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(response.headers().get("grpc-status").is_none(), "{what}");
    }
    // The same raw client, a real gRPC call to the opted-in server: the gRPC answer.
    let response = h2_request(world.addr, Method::POST, "application/grpc", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
}
