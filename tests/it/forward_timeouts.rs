//! Forwarding to an upstream that hangs, trickles, refuses or resets, on 127.0.0.1: the
//! forward answers 504 for a timeout and 502 for a refused or reset connection, each with its
//! `ForwardError`; a timeout partway through the body cuts the response. The timeouts are
//! injected short through `ReqwestService::from_builder`; nothing waits for the defaults.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mka1_auth::outbound::forward::{ForwardError, ForwardErrorKind, ForwardLayer};
use mka1_auth::outbound::{ApiKey, OutboundLayer, ReqwestService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

/// What an upstream does with each connection.
#[derive(Clone, Copy)]
enum Upstream {
    /// Reads the request and never answers.
    Hangs,
    /// Sends the head and part of the body, then nothing more.
    Trickles,
    /// Closes the connection as soon as the request arrives.
    Resets,
    /// Sends its response head a byte at a time, never finishing it.
    TricklesTheHead,
}

async fn upstream(mode: Upstream) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            match mode {
                Upstream::Hangs => held.push(socket),
                Upstream::Trickles => {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst part")
                        .await;
                    held.push(socket);
                }
                Upstream::Resets => drop(socket),
                Upstream::TricklesTheHead => {
                    tokio::spawn(async move {
                        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nx-slow: ").await;
                        // Each byte comes well within the read timeout; the head never ends.
                        while socket.write_all(b"a").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    });
                }
            }
        }
    });
    addr
}

/// A closed port: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The forward to `addr`, over the outbound layer and a reqwest client with short timeouts.
async fn forward_to(addr: SocketAddr, path: &str) -> Response<Body> {
    let reqwest = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_millis(300));
    forward_with(addr, path, ReqwestService::from_builder(reqwest).unwrap()).await
}

async fn forward_with(addr: SocketAddr, path: &str, service: ReqwestService) -> Response<Body> {
    let forward = ForwardLayer::builder(&format!("http://{addr}/base"))
        .build()
        .unwrap();
    let client = OutboundLayer::builder(ApiKey::new("mk_test_key").unwrap())
        .allow_origin(forward.origin())
        .build()
        .unwrap()
        .layer(service);
    let req = Request::get(path).body(Body::empty()).unwrap();
    let res = forward.layer(client).oneshot(req).await.unwrap();
    res.map(Body::new)
}

fn kind_of(res: &Response<Body>) -> ForwardErrorKind {
    res.extensions()
        .get::<ForwardError>()
        .expect("a ForwardError in the answer's extensions")
        .kind()
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_504() {
    let addr = upstream(Upstream::Hangs).await;
    let res = forward_to(addr, "/x").await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(kind_of(&res), ForwardErrorKind::UpstreamTimeout);
    assert_eq!(ForwardErrorKind::UpstreamTimeout.status(), 504);
}

#[tokio::test]
async fn a_refused_connection_gets_502() {
    let res = forward_to(closed_port(), "/x").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(kind_of(&res), ForwardErrorKind::Upstream);
}

#[tokio::test]
async fn a_reset_connection_gets_502() {
    let addr = upstream(Upstream::Resets).await;
    let res = forward_to(addr, "/x").await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(kind_of(&res), ForwardErrorKind::Upstream);
}

#[tokio::test]
async fn a_body_that_stops_partway_is_cut_not_held() {
    let addr = upstream(Upstream::Trickles).await;
    let res = forward_to(addr, "/x").await;
    // The head arrived: the answer is the upstream's, and its body ends in an error.
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await;
    assert!(body.is_err(), "the cut body must end in an error");
}

#[tokio::test]
async fn a_head_that_trickles_gets_504_at_the_response_timeout() {
    let addr = upstream(Upstream::TricklesTheHead).await;
    // Reads never stall long enough for the read timeout; only the response timeout ends it.
    let service = ReqwestService::from_builder(
        reqwest::Client::builder().read_timeout(Duration::from_secs(60)),
    )
    .unwrap()
    .response_timeout(Some(Duration::from_millis(300)));
    // A bound so that a missing response timeout fails the test instead of hanging it.
    let res = tokio::time::timeout(Duration::from_secs(60), forward_with(addr, "/x", service))
        .await
        .expect("the forward must answer, not hang");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(kind_of(&res), ForwardErrorKind::UpstreamTimeout);
}
