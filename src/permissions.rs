//! Requiring permissions on a route or a whole router: [`RequirePermissionsLayer`], all of
//! a list ([`new`](RequirePermissionsLayer::new)) or any one of it
//! ([`any`](RequirePermissionsLayer::any)); in a handler, the
//! [`Require`](crate::extract::Require) extractor with a [`PermissionSet`].
//!
//! It goes inside (after) [`Mka1AuthLayer`](crate::Mka1AuthLayer) and reads the
//! [`VerifiedToken`] the latter left in the request. A token that does not have what the
//! list requires is answered with 403 `insufficient_scope`, naming what would have sufficed
//! in `scope`; an anonymous request (optional mode) with 401; a request that did not go
//! through the authentication layer first with 500, since that is a wiring bug: the layer
//! is missing, or in the wrong order (the answer says only that; how to fix it goes to the
//! log, an error-level event naming the layers). The auth layer's
//! [`reject_with`](crate::Mka1AuthLayer::reject_with) renders these answers too, unless
//! this layer has a [`reject_with`](RequirePermissionsLayer::reject_with) of its own.
//!
//! **Order.** The authentication layer must wrap this one, and the two ways of stacking
//! layers read in opposite directions. With tower's `ServiceBuilder`, the first `.layer`
//! runs first: list `Mka1AuthLayer` before this one. With axum's `Router::layer` and
//! `route_layer` (and `Layer::layer` calls by hand), each call wraps what is already there,
//! so the last added runs first: add `Mka1AuthLayer` after this one.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use mka1_auth::{Mka1AuthLayer, RequirePermissionsLayer, Verifier};
//!
//! # fn demo(verifier: Verifier) -> Result<(), mka1_auth::ConfigError> {
//! let agents = Router::new()
//!     .route("/agents", get(|| async { "list" }))
//!     .layer(RequirePermissionsLayer::any(["agent:read", "agent:admin"])?);
//! let admin = Router::new()
//!     .route("/agents", post(|| async { "created" }))
//!     .route_layer(RequirePermissionsLayer::new(["agent:read", "agent:write"]));
//! let app = Router::new()
//!     .merge(agents)
//!     .nest("/admin", admin)
//!     .layer(Mka1AuthLayer::new(verifier)); // added last: runs first
//! # let _: Router = app;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{Permissions, VerifiedToken};
use crate::error::ConfigError;
use crate::guard::{like_the_layer, required_or, NoLayer};
use crate::rejection::{respond, Pending, Reject, Rejection, StandardReject};

/// What the permission layer logs when no authentication layer ran before it.
const NO_LAYER_BEFORE: NoLayer = NoLayer {
    reader: "`RequirePermissionsLayer`",
    advice: "the authentication layer is missing, or in the wrong order. It must wrap the \
             permission layer: with tower's `ServiceBuilder`, add `Mka1AuthLayer` first; with \
             axum's `.layer` or `.route_layer` calls, add it after the permission layer (the \
             last added runs first)",
};

/// Whether a list of permissions is needed whole or any one of it suffices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every permission listed (an empty list: just an authenticated request).
    AllOf,
    /// Any one of the permissions listed (an empty list is never met).
    AnyOf,
}

impl Need {
    /// Whether `permissions` meet this need for `listed`.
    pub fn met_by<'a>(
        self,
        permissions: &Permissions,
        listed: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        match self {
            Need::AllOf => permissions.contains_all(listed),
            Need::AnyOf => permissions.contains_any(listed),
        }
    }

    /// The 403 for a token that does not meet this need for `listed`.
    pub(crate) fn refusal<'a>(self, listed: impl IntoIterator<Item = &'a str>) -> Rejection {
        match self {
            Need::AllOf => Rejection::insufficient(listed),
            Need::AnyOf => Rejection::insufficient_any(listed),
        }
    }
}

/// A set of permissions a handler requires, for the [`Require`](crate::extract::Require)
/// extractor: a type naming them, checked when the handler's arguments are extracted.
///
/// ```
/// use mka1_auth::permissions::{Need, PermissionSet};
///
/// /// Reading agents: `agent:read` or `agent:admin` will do.
/// struct ReadAgents;
/// impl PermissionSet for ReadAgents {
///     const PERMISSIONS: &'static [&'static str] = &["agent:read", "agent:admin"];
///     const NEED: Need = Need::AnyOf;
/// }
///
/// /// Deleting agents takes both.
/// struct DeleteAgents;
/// impl PermissionSet for DeleteAgents {
///     const PERMISSIONS: &'static [&'static str] = &["agent:read", "agent:delete"];
/// }
/// ```
pub trait PermissionSet {
    /// The permissions (exact, case-sensitive names).
    const PERMISSIONS: &'static [&'static str];
    /// All of them are needed (the default) or any one. An empty any-of list would refuse
    /// every request, and does not compile where it is used:
    ///
    /// ```compile_fail,E0080
    /// use mka1_auth::extract::Require;
    /// use mka1_auth::permissions::{Need, PermissionSet};
    ///
    /// struct Nothing;
    /// impl PermissionSet for Nothing {
    ///     const PERMISSIONS: &'static [&'static str] = &[];
    ///     const NEED: Need = Need::AnyOf;
    /// }
    /// let _: axum::Router = axum::Router::new()
    ///     .route("/", axum::routing::get(|_: Require<Nothing>| async { "never" }));
    /// ```
    const NEED: Need = Need::AllOf;
}

/// A [`Layer`] refusing requests whose verified token lacks the given permissions: all of
/// them ([`new`](Self::new)) or any one ([`any`](Self::any)). See the [module docs](self).
///
/// ```
/// use mka1_auth::RequirePermissionsLayer;
///
/// let layer = RequirePermissionsLayer::new(["agent:read", "agent:write"]);
/// assert_eq!(layer.scope(), "agent:read agent:write");
/// let layer = RequirePermissionsLayer::any(["agent:read", "agent:admin"])?;
/// assert_eq!(layer.scope(), "agent:read agent:admin");
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
pub struct RequirePermissionsLayer<R = StandardReject> {
    needed: Arc<[Box<str>]>,
    need: Need,
    /// The answer to a token that does not meet the need, but for its realm.
    refusal: Arc<Rejection>,
    reject: Arc<R>,
    /// No `reject_with` of its own: answers are left for the auth layer to render.
    inherit: bool,
}

impl<R> Clone for RequirePermissionsLayer<R> {
    fn clone(&self) -> Self {
        RequirePermissionsLayer {
            needed: Arc::clone(&self.needed),
            need: self.need,
            refusal: Arc::clone(&self.refusal),
            reject: Arc::clone(&self.reject),
            inherit: self.inherit,
        }
    }
}

impl<R> std::fmt::Debug for RequirePermissionsLayer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermissionsLayer")
            .field("needed", &self.needed)
            .field("need", &self.need)
            .finish_non_exhaustive()
    }
}

impl RequirePermissionsLayer {
    /// Require every one of `permissions` (exact, case-sensitive names). With an empty list
    /// it only requires an authenticated request, which refuses anonymous requests that an
    /// optional [`Mka1AuthLayer`](crate::Mka1AuthLayer) let through.
    pub fn new<I>(permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::with_need(Need::AllOf, permissions)
    }

    /// Require any one of `permissions` (exact, case-sensitive names). The 403 names them
    /// all in `scope` and says that any one would do.
    ///
    /// An empty list is refused with a [`ConfigError`] of kind
    /// [`InvalidSetting`](crate::ConfigErrorKind::InvalidSetting): no token could ever pass,
    /// and reading it as "no permission needed" would let every token through.
    ///
    /// ```
    /// use mka1_auth::{ConfigErrorKind, RequirePermissionsLayer};
    ///
    /// let readers = RequirePermissionsLayer::any(["agent:read", "agent:admin"])?;
    /// # let _ = readers;
    /// let none: Vec<String> = Vec::new();
    /// let err = RequirePermissionsLayer::any(none).unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn any<I>(permissions: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let layer = Self::with_need(Need::AnyOf, permissions);
        if layer.needed.is_empty() {
            return Err(ConfigError::invalid_setting(
                "permissions",
                "an any-of list needs at least one permission: an empty one would refuse every request",
            ));
        }
        Ok(layer)
    }

    /// Require `permissions` as `need` says.
    fn with_need<I>(need: Need, permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let needed: Arc<[Box<str>]> = permissions
            .into_iter()
            .map(|p| p.into().into_boxed_str())
            .collect();
        let refusal = Arc::new(need.refusal(needed.iter().map(|p| &**p)));
        RequirePermissionsLayer {
            needed,
            need,
            refusal,
            reject: Arc::new(StandardReject),
            inherit: true,
        }
    }
}

impl<R> RequirePermissionsLayer<R> {
    /// The permissions listed, space-separated, as sent in `scope`.
    pub fn scope(&self) -> &str {
        self.refusal.scope().unwrap_or_default()
    }

    /// Answer refused requests with `reject` instead of the standard answer (see
    /// [`Reject`]), here rather than as the authentication layer in front answers.
    pub fn reject_with<R2>(self, reject: R2) -> RequirePermissionsLayer<R2> {
        RequirePermissionsLayer {
            needed: self.needed,
            need: self.need,
            refusal: self.refusal,
            reject: Arc::new(reject),
            inherit: false,
        }
    }

    fn check(&self, extensions: &Extensions) -> Result<(), Rejection> {
        let token: &VerifiedToken = required_or(extensions, &NO_LAYER_BEFORE)?;
        if self
            .need
            .met_by(token.permissions(), self.needed.iter().map(|p| &**p))
        {
            Ok(())
        } else {
            Err(like_the_layer(Rejection::clone(&self.refusal), extensions))
        }
    }

    /// The answer to a refused request: by this layer's own `reject_with`, or the standard
    /// one, marked for the auth layer in front to render its own way.
    fn refuse<B>(&self, rejection: Rejection) -> Response<B>
    where
        R: Reject<B>,
    {
        let pending = self.inherit.then(|| Pending(rejection.clone()));
        let mut response = respond(&*self.reject, rejection);
        if let Some(pending) = pending {
            response.extensions_mut().insert(pending);
        }
        response
    }
}

impl<S, R> Layer<S> for RequirePermissionsLayer<R> {
    type Service = RequirePermissions<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermissions {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`RequirePermissionsLayer`] wraps around another.
///
/// ```
/// use mka1_auth::{RequirePermissions, RequirePermissionsLayer};
/// use tower::Layer;
///
/// let svc: RequirePermissions<&str> = RequirePermissionsLayer::new(["agent:read"]).layer("inner");
/// # let _ = svc;
/// ```
pub struct RequirePermissions<S, R = StandardReject> {
    inner: S,
    /// One reference count for the service's clones (axum clones a route's service for
    /// every request), not one for each of the layer's shared parts.
    layer: Arc<RequirePermissionsLayer<R>>,
}

impl<S, R> RequirePermissions<S, R> {
    /// The wrapped service.
    ///
    /// ```
    /// use mka1_auth::RequirePermissionsLayer;
    /// use tower::Layer;
    ///
    /// let mut svc = RequirePermissionsLayer::new(["agent:read"]).layer(String::from("inner"));
    /// assert_eq!(svc.get_ref(), "inner");
    /// svc.get_mut().push('!');
    /// assert_eq!(svc.into_inner(), "inner!");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R> Clone for RequirePermissions<S, R> {
    fn clone(&self) -> Self {
        RequirePermissions {
            inner: self.inner.clone(),
            layer: Arc::clone(&self.layer),
        }
    }
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for RequirePermissions<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermissions")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePermissions<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Reject<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.layer.check(req.extensions()) {
            // Built where it is returned, so the inner future is not copied on the way.
            Ok(()) => ResponseFuture {
                kind: Kind::Calling {
                    future: self.inner.call(req),
                },
            },
            Err(rejection) => ResponseFuture {
                kind: Kind::Refused {
                    response: Some(self.layer.refuse(rejection)),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`RequirePermissions`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Calling { #[pin] future: F },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refused = matches!(self.kind, Kind::Refused { .. });
        f.debug_struct("ResponseFuture")
            .field("refused", &refused)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Calling { future } => future.poll(cx),
            KindProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
