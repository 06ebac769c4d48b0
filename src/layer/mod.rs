//! The inbound layer: [`Mka1AuthLayer`] verifies each request's bearer token before the
//! inner service sees it.
//!
//! Where the token comes from: the `Authorization: Bearer <token>` header (scheme
//! case-insensitive, exactly one such header), or, when configured, a named cookie if the
//! request has no `Authorization` header. Never the query string.
//!
//! On success the request carries what the layer verified in its extensions, read with
//! [`VerifiedToken::from_extensions`], [`OnBehalfOf::from_extensions`] and
//! [`BearerToken::from_extensions`] (or the axum extractors of those types), and exactly one
//! `X-On-Behalf-Of` header holding the verified subject. The layer keeps them in one value
//! of its own (each value in `http::Extensions` is a box made and freed per request), so
//! `extensions().get::<OnBehalfOf>()` does not find them. A request whose own
//! `X-On-Behalf-Of` names someone else is refused (403) unless
//! [`Mka1AuthLayer::overwrite_on_behalf_of`] is set. Every spelling of the
//! header counts: case is ignored and `_` stands for `-` (`X_On_Behalf_Of` reaches a
//! CGI-style application as the same variable), and no spelling but the layer's own
//! `x-on-behalf-of` reaches the inner service.
//!
//! Refusals are answered by the layer (see [`rejection`](crate::rejection)); the inner
//! service is not called and its error type is untouched. The layer's
//! [`reject_with`](Mka1AuthLayer::reject_with) also renders the answers given behind it: by
//! the extractors, [`RequirePermissionsLayer`](crate::RequirePermissionsLayer), or a
//! handler returning a [`Rejection`].
//!
//! Verification does no I/O in the common case (the key is held, or the token was seen
//! before). Only a token naming a key the remote key set does not hold yet waits for the
//! guarded refetch; that path boxes one future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::header::Entry;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::bearer::{find_token, BearerToken};
use crate::claims::{OnBehalfOf, VerifiedToken, X_ON_BEHALF_OF};
use crate::error::{Error, ErrorKind};
use crate::guard::{Guarded, TokenCookies};
use crate::headers::{has_variant, remove_every_spelling, variants_of};
use crate::rejection::grpc::Call;
use crate::rejection::{answer_behind, respond, Realm, Reject, Rejection, StandardReject};
use crate::verify::{Attempt, Verified, Verifier};

mod cookie;
mod grpc;
pub use self::cookie::CookieName;
use self::grpc::GrpcAnswers;

/// A [`Layer`] that verifies MKA1 tokens in front of a service. See the [module docs](self).
///
/// ```
/// use mka1_auth::layer::CookieName;
/// use mka1_auth::{Mka1AuthLayer, Verifier};
///
/// # fn demo(verifier: Verifier) -> Result<(), mka1_auth::ConfigError> {
/// let layer = Mka1AuthLayer::new(verifier)
///     .realm("orders-api")
///     .cookie(CookieName::new("mka1_token")?);
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(layer);
/// # let _: axum::Router = app;
/// # Ok(()) }
/// ```
pub struct Mka1AuthLayer<R = StandardReject> {
    config: Arc<AuthConfig>,
    reject: Arc<R>,
}

impl<R> Clone for Mka1AuthLayer<R> {
    fn clone(&self) -> Self {
        Mka1AuthLayer {
            config: Arc::clone(&self.config),
            reject: Arc::clone(&self.reject),
        }
    }
}

impl<R> std::fmt::Debug for Mka1AuthLayer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

/// The layer's settings: everything but its [`Reject`]. A new setting goes here, and into
/// one builder method.
#[derive(Clone, Debug)]
struct AuthConfig {
    verifier: Verifier,
    realm: Realm,
    cookie: Option<Arc<str>>,
    optional: bool,
    overwrite_on_behalf_of: bool,
    retry_after: Duration,
    grpc: GrpcAnswers,
}

impl Mka1AuthLayer {
    /// Require a valid token on every request.
    pub fn new(verifier: Verifier) -> Self {
        Mka1AuthLayer {
            config: Arc::new(AuthConfig {
                verifier,
                realm: Realm::default(),
                cookie: None,
                optional: false,
                overwrite_on_behalf_of: false,
                retry_after: crate::rejection::DEFAULT_RETRY_AFTER,
                grpc: GrpcAnswers::default(),
            }),
            reject: Arc::new(StandardReject),
        }
    }

    /// Let requests without any credentials through as anonymous; a token that is presented
    /// but invalid is still refused.
    ///
    /// An anonymous request has no [`VerifiedToken`], [`OnBehalfOf`] or [`BearerToken`] in
    /// its extensions (any that were there are removed) and no `X-On-Behalf-Of` header.
    ///
    /// ```
    /// use mka1_auth::{Mka1AuthLayer, Verifier};
    /// # fn demo(verifier: Verifier) {
    /// let layer = Mka1AuthLayer::optional(verifier);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn optional(verifier: Verifier) -> Self {
        Mka1AuthLayer::new(verifier).allow_anonymous(true)
    }
}

impl<R> Mka1AuthLayer<R> {
    fn edit(mut self, change: impl FnOnce(&mut AuthConfig)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Whether requests without credentials pass through as anonymous (see
    /// [`optional`](Mka1AuthLayer::optional), the one way to ask for it). Default `false`.
    #[must_use]
    fn allow_anonymous(self, allow: bool) -> Self {
        self.edit(|s| s.optional = allow)
    }

    /// The realm named in `WWW-Authenticate` (default `mka1`).
    #[must_use]
    pub fn realm(self, realm: impl Into<Arc<str>>) -> Self {
        let realm = Realm::named(realm.into());
        self.edit(|s| s.realm = realm)
    }

    /// Also accept the token from the cookie with this name, when the request has no
    /// `Authorization` header. The header wins when both are present. A bad name is refused
    /// where the [`CookieName`] is made, so this setter cannot fail.
    #[must_use]
    pub fn cookie(self, name: CookieName) -> Self {
        self.edit(|s| s.cookie = Some(name.0))
    }

    /// When the request's own `X-On-Behalf-Of` names another user than the token, replace
    /// it instead of refusing the request with 403. Default `false`.
    #[must_use]
    pub fn overwrite_on_behalf_of(self, overwrite: bool) -> Self {
        self.edit(|s| s.overwrite_on_behalf_of = overwrite)
    }

    /// The `Retry-After` sent with 503 answers when no usable key set is held (default
    /// 30 s).
    #[must_use]
    pub fn retry_after(self, retry_after: Duration) -> Self {
        self.edit(|s| s.retry_after = retry_after)
    }

    /// Answer refused requests with `reject` instead of the standard answer (see
    /// [`Reject`]): the layer's own refusals, and every answer given behind it by the
    /// extractors, [`RequirePermissionsLayer`](crate::RequirePermissionsLayer) (unless it
    /// has a `reject_with` of its own) or a handler returning a [`Rejection`].
    pub fn reject_with<R2>(self, reject: R2) -> Mka1AuthLayer<R2> {
        Mka1AuthLayer {
            config: self.config,
            reject: Arc::new(reject),
        }
    }
}

impl<S, R> Layer<S> for Mka1AuthLayer<R> {
    type Service = Mka1Auth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Mka1Auth {
            inner,
            shared: Arc::new(Shared {
                config: Arc::clone(&self.config),
                reject: Arc::clone(&self.reject),
            }),
        }
    }
}

/// What a service and its response futures share: one reference count to bump per clone.
struct Shared<R> {
    config: Arc<AuthConfig>,
    reject: Arc<R>,
}

impl<R> Shared<R> {
    /// The layer's answer to a refused request, answered as the gRPC call `call` if any.
    fn refuse<B>(&self, error: Error, call: Option<Call>) -> Response<B>
    where
        R: Reject<B>,
    {
        refuse(&self.config, &*self.reject, error, call)
    }

    /// The inner service's response, with an answer given behind the layer rendered
    /// through the layer's `Reject` (as the gRPC call `call` if any).
    fn answer<B>(&self, response: Response<B>, call: Option<Call>) -> Response<B>
    where
        R: Reject<B>,
    {
        answer_behind(&*self.reject, &self.config.realm, call, response)
    }
}

/// The service [`Mka1AuthLayer`] wraps around another. See the [module docs](self).
///
/// ```
/// use http::{Request, Response};
/// use mka1_auth::{Mka1AuthLayer, OnBehalfOf, Verifier};
/// use tower::{service_fn, ServiceExt};
///
/// # async fn demo(verifier: Verifier) {
/// let svc = Mka1AuthLayer::new(verifier).layer(service_fn(|req: Request<String>| async move {
///     let user = OnBehalfOf::from_extensions(req.extensions()).unwrap();
///     Ok::<_, std::convert::Infallible>(Response::new(format!("hello {user}")))
/// }));
/// let response = svc.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), 401);
/// # }
/// # use tower::Layer as _;
/// ```
pub struct Mka1Auth<S, R = StandardReject> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S: Clone, R> Clone for Mka1Auth<S, R> {
    fn clone(&self) -> Self {
        Mka1Auth {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for Mka1Auth<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mka1Auth")
            .field("inner", &self.inner)
            .field("layer", &self.shared.config)
            .finish()
    }
}

impl<S, R> Mka1Auth<S, R> {
    /// The wrapped service.
    ///
    /// ```
    /// use mka1_auth::{Mka1AuthLayer, Verifier};
    /// use tower::Layer;
    ///
    /// # fn demo(verifier: Verifier) {
    /// let mut svc = Mka1AuthLayer::new(verifier).layer(String::from("inner"));
    /// assert_eq!(svc.get_ref(), "inner");
    /// svc.get_mut().push('!');
    /// assert_eq!(svc.into_inner(), "inner!");
    /// # }
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

/// What the first, synchronous look at a request came to.
enum Step {
    /// Call the inner service: the request carries a verified token.
    Admit,
    /// Call the inner service: an anonymous request (optional mode, no credentials).
    AdmitAnonymous,
    /// Answer with this error.
    Refuse(Error),
    /// The token names a key not held yet: wait for the key source.
    Fetch(BearerToken),
}

impl AuthConfig {
    /// The first look at a request, which is the gRPC call `call` this layer answers the
    /// gRPC way, if any.
    fn start<B>(&self, req: &mut Request<B>, call: Option<Call>) -> Step {
        let verified = match find_token(req.headers(), self.cookie.as_deref()) {
            Err(e) => return Step::Refuse(e),
            Ok(None) if self.optional => {
                self.admit_anonymous(req, call);
                return Step::AdmitAnonymous;
            }
            Ok(None) => return Step::Refuse(Error::new(ErrorKind::MissingCredentials)),
            Ok(Some(found)) => {
                let token = || BearerToken::within(found.header, found.bytes);
                match self.verifier.verify_presented(found.bytes, || found.text()) {
                    Attempt::Done(Ok(verified)) => (verified, token()),
                    Attempt::Done(Err(e)) => return Step::Refuse(e),
                    Attempt::NeedKey(_) => return Step::Fetch(token()),
                }
            }
        };
        match self.admit(req, verified.0, verified.1, call) {
            Ok(()) => Step::Admit,
            Err(e) => Step::Refuse(e),
        }
    }

    fn admit<B>(
        &self,
        req: &mut Request<B>,
        verified: Verified,
        token: BearerToken,
        call: Option<Call>,
    ) -> Result<(), Error> {
        let Verified {
            token: verified,
            on_behalf_of,
        } = verified;
        let user = verified.on_behalf_of();
        // The user's id for the header: the value shared with the thread's cache entry
        // when it has one (a reference count), else a copy.
        let value = || on_behalf_of.unwrap_or_else(|| user.to_header_value());
        // `X_On_Behalf_Of` and other spellings count as the header itself (see `headers`).
        // Requests rarely carry one: the common path only scans names for it.
        let headers = req.headers_mut();
        if has_variant(headers, &X_ON_BEHALF_OF) {
            self.admit_variants(headers, user)?;
        }
        // One lookup of the header: to compare what the request says, and to set it.
        match headers.entry(X_ON_BEHALF_OF) {
            Entry::Vacant(vacant) => {
                vacant.insert(value());
            }
            Entry::Occupied(mut occupied) => {
                if !self.overwrite_on_behalf_of
                    && occupied.iter().any(|v| v.as_bytes() != user.as_bytes())
                {
                    return Err(on_behalf_of_mismatch());
                }
                occupied.insert(value());
            }
        }
        let ext = req.extensions_mut();
        let guarded = if ext.is_empty() {
            // The layer's value, and what a router adds, fit without the map growing.
            *ext = roomy_extensions();
            self.guarded(call, None, Some((verified, token)))
        } else {
            // No identity put there before the layer stays beside what it verified.
            drop_identity(ext);
            self.guarded(call, ext.get(), Some((verified, token)))
        };
        ext.insert(guarded);
        Ok(())
    }

    /// [`admit`](Self::admit) for a request with another spelling of `X-On-Behalf-Of`:
    /// every spelling must agree with the user (unless overwriting), and all go.
    fn admit_variants(&self, headers: &mut HeaderMap, user: &OnBehalfOf) -> Result<(), Error> {
        let variants = variants_of(headers, &X_ON_BEHALF_OF);
        let disagrees = variants
            .iter()
            .chain(std::iter::once(&X_ON_BEHALF_OF))
            .flat_map(|name| headers.get_all(name))
            .any(|v| v.as_bytes() != user.as_bytes());
        if disagrees && !self.overwrite_on_behalf_of {
            return Err(on_behalf_of_mismatch());
        }
        for name in variants {
            headers.remove(name);
        }
        Ok(())
    }

    fn admit_anonymous<B>(&self, req: &mut Request<B>, call: Option<Call>) {
        remove_every_spelling(req.headers_mut(), &X_ON_BEHALF_OF);
        let ext = req.extensions_mut();
        drop_identity(ext);
        let guarded = self.guarded(call, ext.get(), None);
        ext.insert(guarded);
    }

    /// The layer's one value for a request (see `guard`): its kind of gRPC call (when this
    /// layer answers such calls the gRPC way), this layer's token cookie beside those of the
    /// layers in front (`before`, the value a layer in front left), and what was verified.
    fn guarded(
        &self,
        call: Option<Call>,
        before: Option<&Guarded>,
        verified: Option<(VerifiedToken, BearerToken)>,
    ) -> Guarded {
        Guarded {
            realm: self.realm.clone(),
            grpc: call,
            token_cookies: TokenCookies::with(self.cookie.as_ref(), before),
            verified,
        }
    }
}

/// An empty extensions map with room for eight values (the layer's, and what routers and
/// handlers add): a request's map starts with room for three, so a router's values after
/// the layer's would grow it (a second table, every entry moved) on every request. A copy of an
/// empty map allocates its table at its full size at once. The template is per thread, in
/// that thread's own memory: one shared by every thread would sit on cache lines that the
/// allocator hands out beside it to whichever thread made it.
fn roomy_extensions() -> http::Extensions {
    /// Values that only make room.
    #[derive(Clone, Copy)]
    struct Room<const N: usize>;
    thread_local! {
        static ROOMY: http::Extensions = {
            let mut ext = http::Extensions::new();
            ext.insert(Room::<0>);
            ext.insert(Room::<1>);
            ext.insert(Room::<2>);
            ext.insert(Room::<3>);
            ext.insert(Room::<4>);
            ext.insert(Room::<5>);
            ext.insert(Room::<6>);
            // Empty again, its table kept.
            ext.clear();
            ext
        };
    }
    ROOMY.try_with(http::Extensions::clone).unwrap_or_default()
}

/// Remove identity values put in `ext` by hand before the layer ran: a reader that asks
/// for one by type never finds one the layer did not verify.
fn drop_identity(ext: &mut http::Extensions) {
    ext.remove::<OnBehalfOf>();
    ext.remove::<VerifiedToken>();
    ext.remove::<BearerToken>();
}

fn on_behalf_of_mismatch() -> Error {
    Error::with_detail(
        ErrorKind::OnBehalfOfMismatch,
        "the request acts for another user than its token",
    )
}

/// The layer's answer to a refused request, answered as the gRPC call `call` if any.
fn refuse<B, R: Reject<B>>(
    config: &AuthConfig,
    reject: &R,
    error: Error,
    call: Option<Call>,
) -> Response<B> {
    // The key source knows when its next fetch is allowed; the configured value is the fallback.
    crate::metrics::count(crate::metrics::Event::Refused(error.kind()));
    let retry_after = error.retry_after().unwrap_or(config.retry_after);
    let rejection = Rejection::new(error)
        .with_realm(config.realm.to_arc())
        .with_retry_after(retry_after)
        .with_grpc(call);
    respond(reject, rejection)
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Mka1Auth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: Reject<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let call = self.shared.config.grpc.call(&req);
        let state = match self.shared.config.start(&mut req, call) {
            step @ (Step::Admit | Step::AdmitAnonymous) => {
                // Built where it is returned: the inner future (hundreds of bytes behind
                // a router) is written once rather than copied into the state, then out.
                return ResponseFuture {
                    state: State::Calling {
                        shared: Arc::clone(&self.shared),
                        call,
                        anonymous: matches!(step, Step::AdmitAnonymous),
                        future: self.inner.call(req),
                    },
                };
            }
            Step::Refuse(error) => State::Refused {
                response: Some(self.shared.refuse(error, call)),
            },
            Step::Fetch(token) => {
                // The readied service goes into the future; a fresh clone stays here.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let verifier = self.shared.config.verifier.clone();
                let for_verify = token.clone();
                State::Verifying {
                    // The rare slow path, boxed whole: the future stays as small as the
                    // common path's.
                    waiting: Box::new(Waiting {
                        verify: Box::pin(async move { verifier.verify(for_verify.expose()).await }),
                        inner,
                        request: Some((req, token)),
                        shared: Arc::clone(&self.shared),
                        call,
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

type VerifyFuture = Pin<Box<dyn Future<Output = Result<VerifiedToken, Error>> + Send>>;

pin_project! {
    /// The response future of [`Mka1Auth`]: the inner service's answer, or the layer's
    /// refusal.
    pub struct ResponseFuture<S, ReqBody, R = StandardReject>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            waiting: Box<Waiting<S, ReqBody, R>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            shared: Arc<Shared<R>>,
            call: Option<Call>,
            // Admitted without a verified token (for the metrics).
            anonymous: bool,
        },
        Refused {
            response: Option<S::Response>,
        },
    }
}

/// A request whose token names a key not held yet, waiting for the key source.
struct Waiting<S, ReqBody, R> {
    verify: VerifyFuture,
    inner: S,
    request: Option<(Request<ReqBody>, BearerToken)>,
    shared: Arc<Shared<R>>,
    call: Option<Call>,
}

impl<S, ReqBody, R> std::fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Verifying { .. } => "verifying",
            State::Calling { .. } => "calling",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Reject<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Calling {
                    future,
                    shared,
                    call,
                    anonymous,
                } => {
                    let response = ready!(future.poll(cx));
                    crate::metrics::count_answer(&response, *anonymous);
                    return Poll::Ready(response.map(|r| shared.answer(r, *call)));
                }
                StateProj::Refused { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Verifying { waiting } => {
                    let Waiting {
                        verify,
                        inner,
                        request,
                        shared,
                        call,
                    } = &mut **waiting;
                    let result = ready!(verify.as_mut().poll(cx));
                    let (mut req, token) = request
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let call = *call;
                    let verified = result.map(|token| Verified {
                        token,
                        on_behalf_of: None,
                    });
                    match verified.and_then(|v| shared.config.admit(&mut req, v, token, call)) {
                        Ok(()) => State::Calling {
                            future: inner.call(req),
                            shared: Arc::clone(shared),
                            call,
                            anonymous: false,
                        },
                        Err(error) => State::Refused {
                            response: Some(shared.refuse(error, call)),
                        },
                    }
                }
            };
            state.set(next);
        }
    }
}
