//! README's "When MKA1 stops accepting your key", as it is written there: if this stops
//! compiling or passing, the README is wrong (`tests/it/readme.rs` checks that README shows
//! this region).
#![cfg(all(feature = "dev-issuer", feature = "remote", feature = "axum"))]

// --- README: When MKA1 stops accepting your key ---
use axum::{
    body::Body,
    extract::{Path, State},
    routing::get,
    Router,
};
use http::{Request, StatusCode};
use mka1_auth::dev_issuer::{ApiKeySpec, DevIssuer};
use mka1_auth::exchange::{ExchangeClient, ExchangeRequest};
use mka1_auth::outbound::RefusalKind;
use tower::ServiceExt;

const ORDERS: &str = "https://orders.example.test";

/// Gets a token to call the orders service for `user`; says 503 when MKA1 no longer
/// accepts this service's key (an operator must act: retrying will not help).
async fn report(State(mka1): State<ExchangeClient>, Path(user): Path<String>) -> StatusCode {
    let request = ExchangeRequest::new(ORDERS, user).permissions(["orders:read"]);
    match mka1.token(&request).await {
        Ok(_token) => StatusCode::OK, // ... call the orders service with it
        Err(e) if e.kind() == RefusalKind::ApiKeyRejected => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

async fn status(app: &Router, user: &str) -> StatusCode {
    let request = Request::get(format!("/report/{user}")).body(Body::empty());
    app.clone()
        .oneshot(request.unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_revoked_key_stops_the_service_at_once() {
    let issuer = DevIssuer::start().await.unwrap();
    let key = issuer.create_key(ApiKeySpec::new(["orders:read"])).unwrap();
    let mka1 = ExchangeClient::builder()
        .base_url(issuer.base_url())
        .api_key(key.secret())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/report/{user}", get(report))
        .with_state(mka1);
    assert_eq!(status(&app, "user-42").await, StatusCode::OK);

    assert!(issuer.revoke_key(key.id()));
    // user-7 needs a new token: MKA1 refuses the key, and the client drops every token
    // that key minted, so user-42's cached one is gone too.
    assert_eq!(
        status(&app, "user-7").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(&app, "user-42").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
// --- end ---
