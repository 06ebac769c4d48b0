//! axum extractors (feature `axum`, built on `axum-core`) for what
//! [`Mka1AuthLayer`](crate::Mka1AuthLayer) verified.
//!
//! | extractor | gives |
//! |---|---|
//! | [`OnBehalfOf`] | the verified end-user id (`sub`) |
//! | [`VerifiedToken`] | the whole verified token: subject, permissions, times, raw claims |
//! | [`Claims<T>`] | the claims deserialized into your own type |
//! | [`BearerToken`] | the token itself, to forward onward |
//!
//! Each has an `Option<_>` form for routes behind an
//! [optional](crate::Mka1AuthLayer::optional) layer: `None` for an anonymous request. The
//! plain form answers an anonymous request with 401.
//!
//! The values come only from the layer, never from request headers: a client typing
//! `X-On-Behalf-Of` cannot make [`OnBehalfOf`] say anything. Used on a route without the
//! layer in front, every extractor answers 500 with a message naming the missing layer
//! (a wiring bug, not the client's fault), the `Option` forms included.
//!
//! A handler can refuse with a [`Rejection`] too, for checks finer than a route:
//!
//! ```
//! use mka1_auth::{Rejection, VerifiedToken};
//!
//! async fn delete_agent(token: VerifiedToken) -> Result<&'static str, Rejection> {
//!     if !token.has_permission("agent:delete") {
//!         return Err(Rejection::insufficient(["agent:delete"]));
//!     }
//!     Ok("deleted")
//! }
//! # let _: axum::Router = axum::Router::new().route("/", axum::routing::delete(delete_agent));
//! ```

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::claims::{BearerToken, OnBehalfOf, VerifiedToken};
use crate::error::{Error, ErrorKind};
use crate::guard::{authenticated, realm_of, required};
use crate::rejection::Rejection;

/// `FromRequestParts` and `OptionalFromRequestParts` for a type the layer puts in the
/// request extensions.
macro_rules! from_layer {
    ($($ty:ty),+) => {$(
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = Rejection;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
                required::<$ty>(&parts.extensions).cloned()
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = Rejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _: &S,
            ) -> Result<Option<Self>, Rejection> {
                authenticated::<$ty>(&parts.extensions).map(Option::<&$ty>::cloned)
            }
        }
    )+};
}

from_layer!(OnBehalfOf, VerifiedToken, BearerToken);

/// The verified token's claims, deserialized into `T` (use it for claims this crate does
/// not model).
///
/// A token whose claims do not fit `T` is answered with 401 `invalid_token`
/// ([`ErrorKind::InvalidClaim`]).
///
/// ```
/// use mka1_auth::extract::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct OrgClaims {
///     org: String,
/// }
///
/// async fn handler(Claims(claims): Claims<OrgClaims>) -> String {
///     format!("org {}", claims.org)
/// }
/// # let _: axum::Router = axum::Router::new().route("/", axum::routing::get(handler));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Claims<T>(pub T);

impl<T: DeserializeOwned> Claims<T> {
    fn from_token(token: &VerifiedToken, parts: &Parts) -> Result<Self, Rejection> {
        token.claims().map(Claims).map_err(|e| {
            Rejection::new(
                Error::with_detail(
                    ErrorKind::InvalidClaim,
                    "the claims do not have the shape this route expects",
                )
                .with_source(e),
            )
            .with_realm(realm_of(&parts.extensions))
        })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        Claims::from_token(required(&parts.extensions)?, parts)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequestParts<S> for Claims<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Rejection> {
        authenticated(&parts.extensions)?
            .map(|token| Claims::from_token(token, parts))
            .transpose()
    }
}
