//! # mka1-auth
//!
//! Accept tokens issued by **MKA1** (MeetKai's API platform) in tower and axum services:
//! verify them against a cached JWKS, hand handlers the end user they act for, and call
//! onward on that user's behalf.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use mka1_auth_dev_issuer::{DevIssuer, Mint};
//! use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier};
//! use tower::ServiceExt;
//!
//! // A local MKA1 stand-in (the `mka1-auth-dev-issuer` crate, a dev-dependency): its keys,
//! // and tokens it mints.
//! let issuer = DevIssuer::start().await?;
//! let verifier = Verifier::builder()
//!     .jwks(issuer.jwks_json()) // in production: .jwks_url(<your MKA1 deployment's JWKS URL>)
//!     .audience("https://api.example.com")
//!     .build()?;
//!
//! let app = Router::new()
//!     .route("/me", get(|user: OnBehalfOf| async move { format!("hello {user}") }))
//!     .route_layer(RequirePermissionsLayer::new(["agent:read"]))
//!     .layer(Mka1AuthLayer::new(verifier));
//!
//! let token = issuer.mint(Mint::new("https://api.example.com", "user-42").permissions(["agent:read"]));
//! let request = Request::get("/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(axum::body::to_bytes(response.into_body(), 1024).await?, "hello user-42");
//!
//! let anonymous = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(anonymous.status(), 401);
//! assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="mka1""#);
//! # Ok(()) }
//! ```
//!
//! ## Map
//!
//! | job | where |
//! |---|---|
//! | **inbound**: guard a service | [`Verifier`] (what a valid token is), [`Mka1AuthLayer`] ([`layer`]), [`RequirePermissionsLayer`] ([`permissions`]), answers to refused requests ([`rejection`]) |
//! | inbound: read the verified user in a handler | the extractors ([`extract`]: [`OnBehalfOf`], [`VerifiedToken`], [`Claims`](extract::Claims), [`Require`](extract::Require)), the types themselves ([`claims`]) |
//! | **outbound**: call onward for the user | [`outbound`] (the layer, credential sources), [`exchange`] (MKA1's exchange-token client), [`outbound::forward`] (a proxy route) |
//! | **testing** | the [`mka1-auth-dev-issuer`](https://docs.rs/mka1-auth-dev-issuer) crate (a local MKA1: JWKS, exchange, API keys; a dev-dependency), [`ManualClock`] ([`clock`]) |
//! | **operations** | [`metrics`] (feature `metrics`), [`grpc`] (gRPC answers, tonic helpers), [`jwks`] (key sets, their status, the refresher) |
//! | MKA1's API facts | [`protocol`] |
//!
//! ## Guides
//!
//! Each guide is a page of this documentation whose examples are compiled and run as tests
//! (the same text is `docs/*.md` in the repository):
//!
//! - [Guarding a service](guide::guarding): axum and tower, `.layer` or `.route_layer`,
//!   anonymous requests, permissions and layer order, your own refusal answers.
//! - [Testing your service](guide::testing) against [`DevIssuer`](https://docs.rs/mka1-auth-dev-issuer/latest/mka1_auth_dev_issuer/struct.DevIssuer.html):
//!   200, 401 and 403, key rotation, a revoked API key.
//! - [Calling onward](guide::outbound): exchanged tokens per user, forwarding the inbound
//!   token, calls with no inbound request.
//! - [Forwarding a route](guide::forwarding) to an upstream, and what it guarantees.
//! - [Your own rules](guide::policy): claim checks, any-of permissions, several issuers.
//! - [Running it in production](guide::production): where MKA1's keys come from,
//!   readiness and refresh, metrics, logging, gRPC.
//! - [MCP tool servers](guide::mcp): rmcp behind the layer, the user in a tool, permissions
//!   per tool, sessions bound to their user, onward calls without token passthrough, RFC 9728
//!   metadata.
//! - [The security model](guide::security): what is checked, in which order, and why.
//! - [Configuration and defaults](guide::configuration): every setting in one table.
//! - [The `mka1-auth` command line](guide::cli): explain a refusal, mint a token, list a
//!   JWKS, run the dev issuer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

mod bearer;
pub mod claims;
pub mod clock;
mod epoch;
mod error;
cfg_feature! {
    #![feature = "remote"]
    pub mod exchange;
}
cfg_feature! {
    #![feature = "axum"]
    pub mod extract;
}
pub mod grpc;
mod guard;
mod headers;
pub mod jwks;
pub mod layer;
pub mod mcp;
cfg_feature! {
    #![feature = "metrics"]
    pub mod metrics;
}
// Without the feature, the counting hooks compile to nothing.
#[cfg(not(feature = "metrics"))]
#[path = "metrics/off.rs"]
mod metrics;
mod net;
pub mod outbound;
pub mod permissions;
pub mod protocol;
pub mod rejection;
#[cfg(any(feature = "remote", feature = "redis"))]
mod retry;
pub mod revocation;
mod shown;
// The unit tests' signing keys and tokens (the integration tests and benches include it too).
#[cfg(test)]
mod test_support;
mod token_cache;
mod verify;

// The root holds what guarding a service takes; outbound calls, forwarding, the exchange
// client and key-set details are used through their modules.
pub use claims::{BearerToken, OnBehalfOf, VerifiedToken, X_ON_BEHALF_OF};
pub use clock::{Clock, ManualClock};
pub use error::{ConfigError, ConfigErrorKind, Error, ErrorKind};
pub use jwks::Algorithm;
pub use layer::{Mka1Auth, Mka1AuthLayer};
pub use permissions::{RequirePermissions, RequirePermissionsLayer};
pub use rejection::{Reject, Rejection};
pub use verify::{ClaimRefusal, Verifier, VerifierBuilder};

/// Guides: how to do each job with this crate. Every example on these pages is compiled and
/// run by `cargo test --doc` (with the features `axum` and `remote`, and the
/// `mka1-auth-dev-issuer` dev-dependency; the production guide also needs `metrics` and
/// `tonic`).
pub mod guide {
    #[cfg_attr(
        any(not(doctest), feature = "axum"),
        doc = include_str!("../docs/guarding.md")
    )]
    pub mod guarding {}
    #[cfg_attr(
        any(not(doctest), all(feature = "axum", feature = "remote")),
        doc = include_str!("../docs/testing.md")
    )]
    pub mod testing {}
    #[cfg_attr(
        any(not(doctest), all(feature = "axum", feature = "remote")),
        doc = include_str!("../docs/outbound.md")
    )]
    pub mod outbound {}
    #[cfg_attr(
        any(not(doctest), all(feature = "axum", feature = "remote")),
        doc = include_str!("../docs/forwarding.md")
    )]
    pub mod forwarding {}
    #[cfg_attr(
        any(not(doctest), feature = "axum"),
        doc = include_str!("../docs/policy.md")
    )]
    pub mod policy {}
    #[cfg_attr(
        any(
            not(doctest),
            all(
                feature = "axum",
                feature = "remote",
                feature = "metrics",
                feature = "tonic"
            )
        ),
        doc = include_str!("../docs/production.md")
    )]
    pub mod production {}
    #[cfg_attr(
        any(
            not(doctest),
            all(feature = "axum", feature = "remote")
        ),
        doc = include_str!("../docs/mcp.md")
    )]
    pub mod mcp {}
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}
    #[cfg_attr(
        any(not(doctest), feature = "remote"),
        doc = include_str!("../docs/configuration.md")
    )]
    pub mod configuration {}
    #[doc = include_str!("../docs/cli.md")]
    pub mod cli {}
    #[cfg_attr(
        any(not(doctest), feature = "remote"),
        doc = include_str!("../docs/revocation.md")
    )]
    pub mod revocation {}
}

// README's rust blocks run as doctests too.
#[cfg(all(doctest, feature = "axum", feature = "remote"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The defaults that are not public constants, as docs/configuration.md's table tells them.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn configuration_defaults_match_the_table() {
        #[cfg(feature = "remote")]
        {
            use crate::jwks::remote::config as remote;
            assert_eq!(remote::DEFAULT_FETCH_TIMEOUT, Duration::from_secs(5));
            assert_eq!(remote::DEFAULT_MAX_BODY_BYTES, 256 * 1024);
            assert_eq!(remote::DEFAULT_MAX_AGE, Duration::from_secs(10 * 60));
            assert_eq!(remote::DEFAULT_MIN_MAX_AGE, Duration::from_secs(60));
            assert_eq!(
                remote::DEFAULT_MAX_MAX_AGE,
                Duration::from_secs(24 * 60 * 60)
            );
            assert_eq!(remote::DEFAULT_COOLDOWN, Duration::from_secs(30));
            assert_eq!(
                remote::DEFAULT_STALE_IF_ERROR,
                Duration::from_secs(24 * 60 * 60)
            );
            assert_eq!(remote::DEFAULT_RETRY_INITIAL, Duration::from_secs(30));
            assert_eq!(remote::DEFAULT_RETRY_MAX, Duration::from_secs(5 * 60));
            assert_eq!(crate::exchange::builder::DEFAULT_CACHE_CAPACITY, 10_000);
            assert_eq!(
                crate::net::fetch::DEFAULT_CONNECT_TIMEOUT,
                Duration::from_secs(5)
            );
            assert_eq!(
                crate::net::fetch::DEFAULT_IDLE_TIMEOUT,
                Duration::from_secs(30)
            );
            assert_eq!(
                crate::outbound::reqwest_adapter::DEFAULT_RESPONSE_TIMEOUT,
                Duration::from_secs(30)
            );
            assert_eq!(
                crate::revocation::DEFAULT_RETENTION,
                Duration::from_secs(30 * 24 * 60 * 60 + 60)
            );
            assert_eq!(
                crate::exchange::builder::DEFAULT_RENEW_BEFORE,
                Duration::from_secs(60)
            );
            use crate::exchange::builder as exchange;
            assert_eq!(exchange::DEFAULT_MAX_CONCURRENT_EXCHANGES, 64);
            assert_eq!(exchange::DEFAULT_TIMEOUT, Duration::from_secs(10));
            assert_eq!(exchange::DEFAULT_MAX_RETRY_AFTER, Duration::from_secs(30));
            assert_eq!(exchange::DEFAULT_MAX_ATTEMPTS, 3);
            assert_eq!(
                exchange::DEFAULT_BACKOFF,
                (Duration::from_millis(200), Duration::from_secs(5))
            );
            assert_eq!(
                crate::exchange::pacing::MAX_PAUSE,
                Duration::from_secs(5 * 60)
            );
            assert_eq!(crate::exchange::client::MAX_BODY_BYTES, 64 * 1024);
            assert_eq!(crate::exchange::client::MAX_TOKEN_BYTES, 16 * 1024);
        }
        assert_eq!(crate::rejection::DEFAULT_REALM, "mka1");
        assert_eq!(
            crate::verify::builder::DEFAULT_PERMISSIONS_CLAIM,
            "permissions"
        );
        assert_eq!(crate::mcp::DEFAULT_MAX_SESSIONS, 10_000);
        assert_eq!(
            crate::rejection::DEFAULT_RETRY_AFTER,
            Duration::from_secs(30)
        );
        assert_eq!(
            crate::outbound::forward::DEFAULT_MAX_BODY_BYTES,
            10 * 1024 * 1024
        );
    }
}
