//! A gRPC service behind the layers, and a gRPC client through the outbound layer, both
//! tonic, over loopback, on an embedded `DevIssuer`:
//!
//! ```text
//! cargo run --example grpc_service
//! ```
//!
//! It serves `demo.Greeter/Hello` (HTTP/2) behind `Mka1AuthLayer` (opted into gRPC answers
//! with `grpc_answers(true)`) and a `RequirePermissionsLayer` (`agent:read`), both with
//! `GrpcReject`, then calls it three times and prints what came back: through the outbound
//! layer for `user-42` (allowed; the handler reads the user with
//! `mka1_auth::grpc::on_behalf_of`), without a token (`Unauthenticated`, grpc-status 16) and
//! with a token lacking `agent:read` (`PermissionDenied`, 7). The service definition is
//! written by hand with prost derives, as tonic's code generator would write it, so no
//! `protoc` is needed.
//!
//! `BIND` sets the server's address (default `127.0.0.1:0`, any free port).

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use mka1_auth::exchange::{ExchangeClient, ExchangeSource};
use mka1_auth::grpc::GrpcReject;
use mka1_auth::outbound::{Outbound, OutboundLayer};
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use tower::{Layer, Service};

/// The greeter's audience: what its tokens name in `aud`.
pub const GREETER: &str = "https://greeter.example.test";

// ---------------------------------------------------------------------------------------
// The service, written by hand: `demo.Greeter/Hello(HelloRequest) returns (HelloReply)`.

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
    /// The `x-on-behalf-of` metadata the handler received.
    #[prost(string, tag = "2")]
    pub metadata_user: String,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The handler: greets the verified user, read through `mka1_auth::grpc::on_behalf_of`.
pub struct Hello;

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
pub struct GreeterServer;

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

/// Serve the greeter at `bind` behind the layers (`agent:read` required), the auth layer
/// opted into gRPC answers; its address.
pub async fn serve(verifier: Verifier, bind: SocketAddr) -> std::io::Result<SocketAddr> {
    let auth = Mka1AuthLayer::new(verifier)
        .grpc_answers(true)
        .reject_with(GrpcReject);
    serve_behind(auth, bind).await
}

/// Serve the greeter at `bind` behind `auth` and the permission layer; its address.
pub async fn serve_behind(
    auth: Mka1AuthLayer<GrpcReject>,
    bind: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let greeter = RequirePermissionsLayer::new(["agent:read"])
        .reject_with(GrpcReject)
        .layer(GreeterServer);
    let server = tonic::transport::Server::builder()
        .layer(auth)
        .add_service(greeter);
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(server.serve_with_incoming(incoming));
    Ok(addr)
}

// ---------------------------------------------------------------------------------------
// The client side.

/// Call `Hello` through `channel` as tonic's generated client would, the end user (if any)
/// in the request's extensions and `metadata` added.
pub async fn hello<S>(
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

/// The greeter's client channel behind the outbound layer: tokens exchanged at `issuer` for
/// the greeter's audience with these permissions, sent only to `origin`.
pub fn outbound(
    issuer: &DevIssuer,
    channel: Channel,
    origin: &Uri,
    permissions: &[&str],
) -> Result<Outbound<Channel, ExchangeSource>, Box<dyn Error>> {
    let exchange = ExchangeClient::builder()
        .base_url(issuer.base_url())
        .api_key(issuer.api_key())
        .build()?;
    let source = exchange
        .source(GREETER)
        .permissions(permissions.iter().copied());
    let origin = origin.to_string();
    Ok(OutboundLayer::builder(source)
        .allow_origin(origin.trim_end_matches('/'))
        .build()?
        .layer(channel))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bind = match std::env::var("BIND") {
        Ok(bind) => bind.parse()?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let issuer = DevIssuer::start().await?;
    let verifier = Verifier::builder()
        .jwks_url(issuer.jwks_url())
        .issuer(issuer.issuer())
        .audience(GREETER)
        .build()?;
    let addr = serve(verifier, bind).await?;
    println!("greeter listening on http://{addr}");
    let origin: Uri = format!("http://{addr}").parse()?;
    let channel = Endpoint::from_shared(origin.to_string())?.connect_lazy();

    // The end user a front service verified: here, a token minted for it and verified.
    let front = "https://front.example.test";
    let front_verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .audience(front)
        .build()?;
    let token = issuer.mint(Mint::new(front, "user-42"));
    let user = front_verifier.verify(&token).await?.on_behalf_of().clone();

    let client = outbound(&issuer, channel.clone(), &origin, &["agent:read"])?;
    let reply = hello(client, origin.clone(), Some(user.clone()), &[]).await?;
    println!("allowed: {}", reply.message);
    let refused = hello(channel, origin.clone(), None, &[]).await.unwrap_err();
    println!(
        "without a token: {:?}: {}",
        refused.code(),
        refused.message()
    );
    let client = outbound(
        &issuer,
        Endpoint::from_shared(origin.to_string())?.connect_lazy(),
        &origin,
        &["agent:write"],
    )?;
    let denied = hello(client, origin, Some(user), &[]).await.unwrap_err();
    println!(
        "without agent:read: {:?}: {}",
        denied.code(),
        denied.message()
    );
    Ok(())
}
