//! gRPC end to end over loopback: a real tonic server (HTTP/2) behind `Mka1AuthLayer` and
//! `RequirePermissionsLayer` with `GrpcReject`, called by a real tonic client whose channel
//! is wrapped in the outbound layer (tokens exchanged at a `DevIssuer`). Allowed, refused
//! (16 UNAUTHENTICATED), permission denied (7) and unavailable (14), each as a `grpc-status`
//! the client reads. The service definition is written by hand (prost derives): no `protoc`.
#![cfg(all(feature = "tonic", feature = "dev-issuer"))]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use mka1_auth::dev_issuer::{DevIssuer, Mint};
use mka1_auth::exchange::ExchangeClient;
use mka1_auth::grpc::GrpcReject;
use mka1_auth::outbound::Outbound;
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Layer, Service, ServiceExt};

const GREETER: &str = "https://greeter.example.test";
const FRONT: &str = "https://front.example.test";

// ---------------------------------------------------------------------------------------
// The service, written by hand: `demo.Greeter/Hello(HelloRequest) returns (HelloReply)`.

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
    /// The `x-on-behalf-of` metadata the handler received.
    #[prost(string, tag = "2")]
    metadata_user: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The handler: greets the verified user, read through `mka1_auth::grpc::on_behalf_of`.
struct Hello;

impl UnaryService<HelloRequest> for Hello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let answer = mka1_auth::grpc::on_behalf_of(&request).map(|user| {
            let metadata_user = request
                .metadata()
                .get("x-on-behalf-of")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            tonic::Response::new(HelloReply {
                message: format!("hello {}, {user}", request.get_ref().name),
                metadata_user,
            })
        });
        Box::pin(async move { answer })
    }
}

/// What tonic's code generator would write for the server side.
#[derive(Clone)]
struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = "demo.Greeter";
}

impl<B> Service<Request<B>> for GreeterServer
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.uri().path() != "/demo.Greeter/Hello" {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<HelloReply, HelloRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(Hello, request).await)
        })
    }
}

/// Serve the greeter on loopback behind the layers (`agent:read` required); its address.
async fn serve(verifier: Verifier) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let greeter = RequirePermissionsLayer::new(["agent:read"])
        .reject_with(GrpcReject)
        .layer(GreeterServer);
    let server = tonic::transport::Server::builder()
        .layer(Mka1AuthLayer::new(verifier).reject_with(GrpcReject))
        .add_service(greeter);
    tokio::spawn(server.serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    addr
}

// ---------------------------------------------------------------------------------------
// The client side.

/// Call `Hello` through `channel` as tonic's generated client would, the end user (if any)
/// in the request's extensions and `metadata` added.
async fn hello<S>(
    channel: S,
    origin: Uri,
    user: Option<OnBehalfOf>,
    metadata: &[(&'static str, &str)],
) -> Result<HelloReply, Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut client = tonic::client::Grpc::with_origin(channel, origin);
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(e.into().to_string()))?;
    let mut request = tonic::Request::new(HelloRequest {
        name: "grpc".into(),
    });
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let path = PathAndQuery::from_static("/demo.Greeter/Hello");
    Ok(client.unary(request, path, codec).await?.into_inner())
}

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
        let addr = serve(verifier).await;
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

    /// The channel behind the outbound layer: tokens exchanged for the greeter's audience
    /// with these permissions, sent only to the greeter's origin.
    fn outbound(&self, permissions: &[&str]) -> Outbound<Channel, mka1_auth::exchange::ExchangeSource> {
        let exchange = ExchangeClient::builder()
            .base_url(self.issuer.base_url())
            .api_key(self.issuer.api_key())
            .build()
            .unwrap();
        let source = exchange.source(GREETER).permissions(permissions.iter().copied());
        Outbound::layer(source, [self.origin().to_string().trim_end_matches('/')])
            .unwrap()
            .layer(self.channel.clone())
    }

    /// A token for the greeter, minted directly (for calls without the outbound layer).
    fn token(&self, user: &str) -> String {
        self.issuer.mint(Mint::new(GREETER, user))
    }
}

#[tokio::test]
async fn an_outbound_tonic_client_is_allowed_and_its_user_reaches_the_handler() {
    let world = World::start().await;
    let user = world.front_user("user-42").await;
    let reply = hello(world.outbound(&["agent:read"]), world.origin(), Some(user), &[])
        .await
        .unwrap();
    assert_eq!(reply.message, "hello grpc, user-42");
    assert_eq!(reply.metadata_user, "user-42");

    // A spoofed `x-on-behalf-of` in the metadata is replaced by the outbound layer.
    let user = world.front_user("user-43").await;
    let spoofed = [("x-on-behalf-of", "admin")];
    let reply = hello(world.outbound(&["agent:read"]), world.origin(), Some(user), &spoofed)
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
    let status = hello(world.channel.clone(), world.origin(), None, &[("authorization", &forged)])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token signature is invalid");
}

#[tokio::test]
async fn a_missing_permission_or_another_user_is_permission_denied() {
    let world = World::start().await;
    let user = world.front_user("user-42").await;
    let status = hello(world.outbound(&["agent:write"]), world.origin(), Some(user), &[])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("permission"), "{}", status.message());

    let bearer = format!("Bearer {}", world.token("user-42"));
    let other = [("authorization", bearer.as_str()), ("x-on-behalf-of", "user-9")];
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
    let addr = serve(verifier).await;
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
    assert_eq!(response.headers()["grpc-message"], "no credentials were presented");
    assert!(response.headers().get("www-authenticate").is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty(), "trailers-only");

    let rest = Request::get("/hello").body(String::new()).unwrap();
    let response = svc.oneshot(rest).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("grpc-status").is_none());
}
