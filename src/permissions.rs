//! Requiring permissions on a route or a whole router: [`RequirePermissionsLayer`].
//!
//! It goes inside (after) [`Mka1AuthLayer`](crate::Mka1AuthLayer) and reads the
//! [`VerifiedToken`] the latter left in the request. A token lacking any of the listed
//! permissions is answered with 403 `insufficient_scope`, naming every listed permission in
//! `scope`; an anonymous request (optional mode) with 401; a request that never went through
//! the authentication layer with 500, since that is a wiring bug.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use mka1_auth::{Mka1AuthLayer, RequirePermissionsLayer, Verifier};
//!
//! # fn demo(verifier: Verifier) {
//! let agents = Router::new()
//!     .route("/agents", get(|| async { "list" }))
//!     .layer(RequirePermissionsLayer::new(["agent:read"]));
//! let admin = Router::new()
//!     .route("/agents", post(|| async { "created" }))
//!     .route_layer(RequirePermissionsLayer::new(["agent:read", "agent:write"]));
//! let app = Router::new()
//!     .merge(agents)
//!     .nest("/admin", admin)
//!     .layer(Mka1AuthLayer::new(verifier));
//! # let _: Router = app;
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::VerifiedToken;
use crate::guard::{realm_of, required};
use crate::rejection::{respond, Reject, Rejection, StandardReject};

/// A [`Layer`] refusing requests whose verified token lacks any of the given permissions.
/// See the [module docs](self).
///
/// ```
/// use mka1_auth::RequirePermissionsLayer;
///
/// let layer = RequirePermissionsLayer::new(["agent:read", "agent:write"]);
/// assert_eq!(layer.scope(), "agent:read agent:write");
/// ```
pub struct RequirePermissionsLayer<R = StandardReject> {
    needed: Arc<[Box<str>]>,
    scope: Arc<str>,
    reject: Arc<R>,
}

impl<R> Clone for RequirePermissionsLayer<R> {
    fn clone(&self) -> Self {
        RequirePermissionsLayer {
            needed: Arc::clone(&self.needed),
            scope: Arc::clone(&self.scope),
            reject: Arc::clone(&self.reject),
        }
    }
}

impl<R> std::fmt::Debug for RequirePermissionsLayer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequirePermissionsLayer")
            .field("needed", &self.needed)
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
        let needed: Arc<[Box<str>]> = permissions
            .into_iter()
            .map(|p| p.into().into_boxed_str())
            .collect();
        let scope = needed.join(" ").into();
        RequirePermissionsLayer {
            needed,
            scope,
            reject: Arc::new(StandardReject),
        }
    }
}

impl<R> RequirePermissionsLayer<R> {
    /// The required permissions, space-separated, as sent in `scope`.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Answer refused requests with `reject` instead of the standard answer (see [`Reject`]).
    pub fn reject_with<R2>(self, reject: R2) -> RequirePermissionsLayer<R2> {
        RequirePermissionsLayer {
            needed: self.needed,
            scope: self.scope,
            reject: Arc::new(reject),
        }
    }

    fn check(&self, extensions: &Extensions) -> Result<(), Rejection> {
        let token: &VerifiedToken = required(extensions)?;
        if token
            .permissions()
            .contains_all(self.needed.iter().map(|p| &**p))
        {
            Ok(())
        } else {
            Err(Rejection::insufficient([])
                .with_scope(Arc::clone(&self.scope))
                .with_realm(realm_of(extensions)))
        }
    }
}

impl<S, R> Layer<S> for RequirePermissionsLayer<R> {
    type Service = RequirePermissions<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermissions {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequirePermissionsLayer`] wraps around another.
///
/// ```
/// use mka1_auth::RequirePermissions;
///
/// let layer = RequirePermissions::layer(["agent:read"]);
/// # let _ = layer;
/// ```
pub struct RequirePermissions<S, R = StandardReject> {
    inner: S,
    layer: RequirePermissionsLayer<R>,
}

impl RequirePermissions<()> {
    /// The layer, like [`RequirePermissionsLayer::new`].
    pub fn layer<I>(permissions: I) -> RequirePermissionsLayer
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RequirePermissionsLayer::new(permissions)
    }
}

impl<S: Clone, R> Clone for RequirePermissions<S, R> {
    fn clone(&self) -> Self {
        RequirePermissions {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
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
        let kind = match self.layer.check(req.extensions()) {
            Ok(()) => Kind::Calling {
                future: self.inner.call(req),
            },
            Err(rejection) => Kind::Refused {
                response: Some(respond(
                    &*self.layer.reject,
                    rejection.with_grpc(crate::grpc::is_grpc(req.headers())),
                )),
            },
        };
        ResponseFuture { kind }
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
