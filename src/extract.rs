//! axum extractors (feature `axum`, built on `axum-core`) for what
//! [`Mka1AuthLayer`](crate::Mka1AuthLayer) verified.
//!
//! | extractor | gives |
//! |---|---|
//! | [`OnBehalfOf`] | the verified end-user id (`sub`) |
//! | [`VerifiedToken`] | the whole verified token: subject, permissions, times, raw claims |
//! | [`Claims<T>`] | the claims deserialized into your own type |
//! | [`Require<P>`] | the verified token, once it has the permissions `P` names (403 if not) |
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
//! Every answer they give is rendered through the layer's
//! [`reject_with`](crate::Mka1AuthLayer::reject_with) when the layer wraps the route.
//!
//! A handler can refuse with a [`Rejection`] too, for checks finer than a route (it is
//! answered in the layer's realm, through its `reject_with`):
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

use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::claims::{BearerToken, OnBehalfOf, VerifiedToken};
use crate::error::{Error, ErrorKind};
use crate::guard::{authenticated, like_the_layer, required};
use crate::permissions::{Need, PermissionSet};
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
            let error = Error::with_detail(
                ErrorKind::InvalidClaim,
                "the claims do not have the shape this route expects",
            );
            like_the_layer(Rejection::new(error.with_source(e)), &parts.extensions)
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

/// The verified token, once it has the permissions `P` names: all of them, or any one
/// ([`PermissionSet::NEED`]). A guard for one handler, where
/// [`RequirePermissionsLayer`](crate::RequirePermissionsLayer) guards routes.
///
/// A token without them is answered 403 `insufficient_scope`, naming what would have
/// sufficed in `scope`; an anonymous request (optional mode) 401.
///
/// ```
/// use mka1_auth::extract::Require;
/// use mka1_auth::permissions::{Need, PermissionSet};
///
/// struct ReadAgents;
/// impl PermissionSet for ReadAgents {
///     const PERMISSIONS: &'static [&'static str] = &["agent:read", "agent:admin"];
///     const NEED: Need = Need::AnyOf;
/// }
///
/// async fn list_agents(token: Require<ReadAgents>) -> String {
///     format!("agents of {}", token.subject())
/// }
/// # let _: axum::Router = axum::Router::new().route("/", axum::routing::get(list_agents));
/// ```
pub struct Require<P> {
    token: VerifiedToken,
    set: PhantomData<fn() -> P>,
}

impl<P> Require<P> {
    /// The verified token.
    pub fn into_token(self) -> VerifiedToken {
        self.token
    }
}

impl<P> Deref for Require<P> {
    type Target = VerifiedToken;

    fn deref(&self) -> &VerifiedToken {
        &self.token
    }
}

impl<P> Clone for Require<P> {
    fn clone(&self) -> Self {
        Require {
            token: self.token.clone(),
            set: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for Require<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Require").field(&self.token).finish()
    }
}

impl<S: Send + Sync, P: PermissionSet> FromRequestParts<S> for Require<P> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        const {
            assert!(
                !(matches!(P::NEED, Need::AnyOf) && P::PERMISSIONS.is_empty()),
                "an empty any-of `PermissionSet` would refuse every request"
            )
        };
        let token: &VerifiedToken = required(&parts.extensions)?;
        let listed = P::PERMISSIONS.iter().copied();
        if !P::NEED.met_by(token.permissions(), listed.clone()) {
            return Err(like_the_layer(P::NEED.refusal(listed), &parts.extensions));
        }
        Ok(Require {
            token: token.clone(),
            set: PhantomData,
        })
    }
}
