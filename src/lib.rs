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
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod claims;
mod clock;
#[cfg(feature = "dev-issuer")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-issuer")))]
pub mod dev_issuer;
mod error;
pub mod jwks;
mod token_cache;
mod verify;

pub use claims::{BearerToken, OnBehalfOf, Permissions, VerifiedToken, X_ON_BEHALF_OF};
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "dev-issuer")]
pub use dev_issuer::DevIssuer;
pub use error::{ConfigError, Error, ErrorKind};
pub use jsonwebtoken::Algorithm;
pub use verify::{
    IntoJwks, Verifier, VerifierBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_TOKEN_BYTES, DEFAULT_PERMISSIONS_CLAIM,
};
