//! # mka1-auth
//!
//! Accept MKA1 exchanged tokens in tower and axum services: verify them against a cached
//! JWKS, hand handlers the end user they act for, and call onward on that user's behalf.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth::Verifier;
//!
//! let verifier = Verifier::builder()
//!     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//!         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
//!     .audience("https://api.example.com")
//!     .build()?;
//! assert!(verifier.verify("a.b.c").await.is_err());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! ## Wiring
//!
//! One line puts the layer in front of an axum router; handlers then take the verified end
//! user ([`OnBehalfOf`]), the whole [`VerifiedToken`], or typed claims
//! ([`extract::Claims`]). Requests without a valid token never reach them: they get an
//! RFC 6750 answer (see [`rejection`]).
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
//! use tower::ServiceExt;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder()
//!     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
//!         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
//!     .audience("https://api.example.com")
//! #   .clock(mka1_auth::ManualClock::at_unix(1_800_000_000))
//!     .build()?;
//!
//! let app = Router::new()
//!     .route("/me", get(|user: OnBehalfOf| async move { format!("hello {user}") }))
//!     .route_layer(RequirePermissionsLayer::new(["agent:read"]))
//!     .layer(Mka1AuthLayer::new(verifier));
//!
//! # let token = mint(r#"{"sub":"user-42","aud":"https://api.example.com",
//! #     "exp":1800003600,"permissions":["agent:read"]}"#);
//! let request = Request::get("/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # use http_body_util::BodyExt;
//! # let body = response.into_body().collect().await?.to_bytes();
//! # assert_eq!(body, "hello user-42");
//!
//! let anonymous = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(anonymous.status(), 401);
//! assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="mka1""#);
//! # Ok(()) }
//! # fn mint(claims: &str) -> String {
//! #     use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
//! #     // RFC 8037 appendix A.1 test key.
//! #     let seed = B64.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
//! #     let key = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
//! #     let input = format!("{}.{}", B64.encode(r#"{"alg":"EdDSA","kid":"k1"}"#), B64.encode(claims));
//! #     format!("{input}.{}", B64.encode(key.sign(input.as_bytes())))
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Outside axum the layer wraps any `Service<http::Request<B>>` whose response body can be
//! made from a `String` (axum's `Body`, `http_body_util::Full<Bytes>`, `String`); for other
//! bodies give it your own [`Reject`] with [`Mka1AuthLayer::reject_with`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
pub mod claims;
pub mod clock;
#[cfg(feature = "dev-issuer")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-issuer")))]
pub mod dev_issuer;
mod error;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod exchange;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod grpc;
mod guard;
mod headers;
pub mod jwks;
pub mod layer;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
// Without the feature, the counting hooks compile to nothing.
#[cfg(not(feature = "metrics"))]
#[path = "metrics/off.rs"]
mod metrics;
mod net;
pub mod outbound;
pub mod permissions;
pub mod protocol;
pub mod rejection;
#[cfg(feature = "remote")]
mod retry;
mod shown;
// The unit tests' signing keys and tokens (the integration tests and benches include it too).
#[cfg(test)]
mod test_support;
mod token_cache;
mod verify;

// The root holds what guarding a service takes; outbound calls, forwarding, the exchange
// client, the dev issuer and key-set details are used through their modules.
pub use claims::{BearerToken, OnBehalfOf, VerifiedToken, X_ON_BEHALF_OF};
pub use clock::{Clock, ManualClock};
pub use error::{ConfigError, Error, ErrorKind};
pub use jwks::Algorithm;
pub use layer::{Mka1Auth, Mka1AuthLayer};
pub use permissions::{RequirePermissions, RequirePermissionsLayer};
pub use rejection::{Reject, Rejection};
pub use verify::{ClaimRefusal, Verifier, VerifierBuilder};
