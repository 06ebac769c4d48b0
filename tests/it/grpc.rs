//! gRPC end to end over loopback: a real tonic server (HTTP/2) behind `Mka1AuthLayer` and
//! `RequirePermissionsLayer` with `GrpcReject`, called by a real tonic client whose channel
//! is wrapped in the outbound layer (tokens exchanged at a `DevIssuer`). Allowed, refused
//! (16 UNAUTHENTICATED), permission denied (7) and unavailable (14), each as a `grpc-status`
//! the client reads. The service and client are `examples/grpc_service.rs`'s, written by
//! hand (prost derives): no `protoc`.
#![cfg(all(feature = "tonic", feature = "dev-issuer"))]

#[allow(dead_code)]
#[path = "../../examples/grpc_service.rs"]
mod grpc_service;

use std::convert::Infallible;
use std::net::SocketAddr;

use grpc_service::{hello, outbound, serve, HelloReply, GREETER};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use mka1_auth::dev_issuer::{DevIssuer, Mint};
use mka1_auth::exchange::ExchangeSource;
use mka1_auth::outbound::Outbound;
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, Verifier};
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

/// README's tonic server snippet (compiled only: it serves until the process ends).
#[allow(dead_code)]
#[rustfmt::skip] // as README shows it
async fn readme_grpc_server(verifier: Verifier, addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let greeter = grpc_service::GreeterServer;
    // --- README: grpc server ---
    use mka1_auth::grpc::GrpcReject;
    use mka1_auth::{Mka1AuthLayer, RequirePermissionsLayer};
    use tower::Layer;

    tonic::transport::Server::builder()
        .layer(Mka1AuthLayer::new(verifier).reject_with(GrpcReject))
        .add_service(RequirePermissionsLayer::new(["agent:read"]).reject_with(GrpcReject).layer(greeter))
        .serve(addr)
        .await?;
    // --- end ---
    Ok(())
}

/// Without `GrpcReject`, the standard answer still speaks gRPC to a gRPC request (and JSON
/// to anything else).
#[tokio::test]
async fn the_standard_answer_speaks_grpc_to_grpc_requests() {
    let issuer = DevIssuer::start().await.unwrap();
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .audience(GREETER)
        .build()
        .unwrap();
    let svc = Mka1AuthLayer::new(verifier).layer(tower::service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::from("reached")))
    }));
    let grpc = Request::post("/demo.Greeter/Hello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(String::new())
        .unwrap();
    let response = svc.clone().oneshot(grpc).await.unwrap();
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

    let rest = Request::get("/hello").body(String::new()).unwrap();
    let response = svc.oneshot(rest).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("grpc-status").is_none());
}
