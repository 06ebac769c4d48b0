//! README's "Testing your service", as it is written there: if this stops compiling or
//! passing, the README is wrong (`tests/it/readme.rs` checks that README shows this region).

// --- README: Testing your service ---
use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use mka1_auth::dev_issuer::{DevIssuer, Mint};
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
use tower::ServiceExt;

const AUDIENCE: &str = "https://orders.example.test";

fn app(verifier: Verifier) -> Router {
    Router::new()
        .route(
            "/me",
            get(|user: OnBehalfOf| async move { user.to_string() }),
        )
        .route_layer(RequirePermissionsLayer::new(["orders:read"]))
        .layer(Mka1AuthLayer::new(verifier))
}

async fn status(app: &Router, token: Option<&str>) -> StatusCode {
    let mut request = Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await;
    response.unwrap().status()
}

#[tokio::test]
async fn only_verified_users_with_the_permission_get_in() {
    let issuer = DevIssuer::start().await.unwrap();
    // Static keys: no fetch, no cooldown (use `.jwks_url(issuer.jwks_url())` to test fetching).
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .issuer(issuer.issuer())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let app = app(verifier);
    let reader = issuer.mint(Mint::new(AUDIENCE, "user-42").permissions(["orders:read"]));
    // Minted tokens carry the issuer's default permissions unless told otherwise.
    let nobody = issuer.mint(Mint::new(AUDIENCE, "user-7").permissions(Vec::<String>::new()));
    assert_eq!(status(&app, Some(&reader)).await, StatusCode::OK);
    assert_eq!(status(&app, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&app, Some(&nobody)).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_at_once() {
    let issuer = DevIssuer::start().await.unwrap();
    // Fetched keys: a token under a kid the verifier lacks makes it refetch the JWKS.
    let verifier = Verifier::builder()
        .jwks_url(issuer.jwks_url())
        .issuer(issuer.issuer())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let app = app(verifier);
    let mint = || issuer.mint(Mint::new(AUDIENCE, "user-42").permissions(["orders:read"]));
    assert_eq!(status(&app, Some(&mint())).await, StatusCode::OK);
    issuer.rotate_key();
    assert_eq!(status(&app, Some(&mint())).await, StatusCode::OK);
}
// --- end ---
