//! `ExchangeClientBuilder::http_client`: exchanges go through a caller-supplied reqwest
//! client (proxies, private roots), and an answer from another origin than the configured
//! one is refused whatever that client's redirect policy.
#![cfg(feature = "remote")]

use crate::mock_mka1;

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use axum::Router;
use mka1_auth::exchange::{ExchangeClient, ExchangeError, ExchangeErrorKind, ExchangeRequest};
use mka1_auth::ManualClock;
use mock_mka1::{MockMka1, API_KEY};
use reqwest::header::{HeaderName, HeaderValue};

const PATH: &str = "/api/v1/authentication/api-keys/exchange-token";
const NOW: u64 = 1_800_000_000;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An endpoint that mints only for requests carrying `x-through: corporate-proxy`, as a
/// client set up for a proxy would add.
async fn picky(headers: HeaderMap) -> axum::response::Response {
    if headers
        .get("x-through")
        .is_none_or(|v| v != "corporate-proxy")
    {
        return (
            StatusCode::FORBIDDEN,
            r#"{"detail":"not through the proxy"}"#,
        )
            .into_response();
    }
    // `{"exp": NOW + 3600}` as a JWT-shaped token.
    let token = "eyJhbGciOiJFZERTQSJ9.eyJleHAiOjE4MDAwMDM2MDB9.c2ln";
    axum::Json(serde_json::json!({ "token": token })).into_response()
}

fn client_with_header() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        HeaderName::from_static("x-through"),
        HeaderValue::from_static("corporate-proxy"),
    );
    reqwest::Client::builder().default_headers(headers)
}

#[tokio::test]
async fn exchanges_go_through_the_callers_client() {
    let addr = serve(Router::new().route(PATH, post(picky))).await;
    let request = ExchangeRequest::new("https://agents.example.test", "user-42");
    let builder = || {
        ExchangeClient::builder()
            .base_url(format!("http://{addr}"))
            .api_key(API_KEY)
            .clock(ManualClock::at_unix(NOW))
    };

    let plain = builder().build().unwrap();
    let err = plain.token(&request).await.unwrap_err();
    assert_eq!(
        ExchangeError::of(&err).unwrap().kind(),
        ExchangeErrorKind::Forbidden
    );

    let http = client_with_header().build().unwrap();
    let through = builder().http_client(http).build().unwrap();
    let token = through.token(&request).await.unwrap();
    assert_eq!(token.expires_at(), NOW + 3600);
}

#[tokio::test]
async fn an_answer_from_another_origin_is_refused() {
    // The configured endpoint redirects to another origin, which would mint a token.
    let elsewhere = MockMka1::start(ManualClock::at_unix(NOW)).await;
    let target = format!("{}{PATH}", elsewhere.base_url());
    let redirect = move || async move { Redirect::temporary(&target) };
    let addr = serve(Router::new().route(PATH, post(redirect))).await;

    // A client that follows redirects anywhere (reqwest's default policy).
    let http = reqwest::Client::builder().build().unwrap();
    let client = ExchangeClient::builder()
        .base_url(format!("http://{addr}"))
        .api_key(API_KEY)
        .clock(ManualClock::at_unix(NOW))
        .http_client(http)
        .build()
        .unwrap();
    let err = client
        .token(&ExchangeRequest::new(
            "https://agents.example.test",
            "user-42",
        ))
        .await
        .unwrap_err();
    let exchange = ExchangeError::of(&err).unwrap();
    assert_eq!(exchange.kind(), ExchangeErrorKind::UnexpectedStatus);
    assert!(
        exchange.message().unwrap().contains("another origin"),
        "{exchange}"
    );
    assert_eq!(exchange.attempts(), 1, "not retried");
    // reqwest drops `Authorization` when it follows a redirect to another host.
    let calls = elsewhere.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].authorization.is_empty(),
        "{:?}",
        calls[0].authorization
    );
}
