//! Forwarding: pass an inbound request on to one upstream, on the verified user's behalf,
//! without letting the caller steer where it goes or who it claims to be.
//!
//! [`ForwardLayer`] wraps the client that sends onward (normally an
//! [`Outbound`](super::Outbound) client, which adds `Authorization` and `X-On-Behalf-Of`),
//! and the resulting [`Forward`] service turns each inbound request into the onward one:
//!
//! - **The path stays under the upstream's prefix.** The onward path is the upstream base
//!   URL's path followed by the raw, still-encoded inbound path (after
//!   [`strip_prefix`](ForwardLayerBuilder::strip_prefix)). A segment that anyone downstream could
//!   read as `.` or `..` is refused with 400: `..`, `%2e%2e` in any case, `..%2f`, `..%5c`,
//!   `\`, double-encoded `%252e`, `..;params`, overlong UTF-8 (`%c0%ae`), full-width dots, as
//!   are control characters and broken escapes. Nothing is decoded on the way: `%2F`, `%3F`
//!   and `%23` stay encoded, and the query passes through as sent. A target in absolute form
//!   (`GET http://elsewhere/x`) only lends its path; `CONNECT`, authority-form and `*` targets
//!   are refused.
//! - **Identity comes only from the outbound layer.** `Authorization`, `X-On-Behalf-Of` (in
//!   any spelling: case is ignored and `_` counts as `-`), `Host` and `Proxy-Authorization`
//!   are dropped, so the client under this layer sets credentials and the user afresh.
//! - **Hop-by-hop headers stop here** (RFC 9110 section 7.6.1): `Connection` and every header
//!   it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`, in both directions (and `Proxy-Authenticate` on answers).
//! - **`Forwarded`, `X-Forwarded-*` and `X-Real-IP` from the client are dropped** by default:
//!   a client can write anything there. Keep them with
//!   [`ForwardedHeaders::Keep`] when a proxy in front of you sets them and strips clients'.
//! - **Nothing rewrites the path or the method onward.** `X-Original-URL`, `X-Original-URI`,
//!   `X-Rewrite-URL`, `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` and
//!   `X-Original-Method` (any spelling) are dropped: the layers in front authorised this
//!   path and method, not the one an override names. [`OverrideHeaders::Keep`] passes them,
//!   at a risk it describes.
//! - **Cookies stay here** by default ([`ForwardCookies`]): the upstream learns who calls
//!   from the outbound layer. With [`ForwardCookies::Keep`] they pass, less the cookie a
//!   [`Mka1AuthLayer`](crate::Mka1AuthLayer) in front reads its token from
//!   ([`cookie`](crate::Mka1AuthLayer::cookie)): that one never goes onward, and needs no
//!   setting here (the layer names it in the request's extensions).
//! - **Request trailers stay here.** They would carry fields past every rule above (an
//!   HTTP/2 upstream takes an `authorization` trailer as it is), and requests rarely have a
//!   use for them. Trailers of the upstream's answer pass back.
//! - **Bodies stream** both ways. A request body over the cap (default
//!   10 MiB) is answered 413: at once when `Content-Length` says so, or
//!   when the upstream call fails because the stream passed the cap.
//!
//! The headers are judged in one pass, with the `Connection` tokens read once: time in
//! proportion to the size of the request head, however many headers it has.
//! - **The upstream's answer passes back** with its status, headers (less hop-by-hop) and
//!   body. When the forward answers itself (400, 404, 413, 502), the answer carries a
//!   [`ForwardError`] in its extensions and leaves a `tracing` event with its kind and status.
//!
//! The inbound request's extensions travel with it, so the [`OnBehalfOf`](crate::OnBehalfOf)
//! and [`BearerToken`](crate::BearerToken) that [`Mka1AuthLayer`](crate::Mka1AuthLayer)
//! verified reach the outbound layer. Put the forward behind the inbound layer.
//!
//! ```
//! # #[cfg(feature = "remote")]
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::Router;
//! use mka1_auth::outbound::forward::ForwardLayer;
//! use mka1_auth::outbound::{ForwardToken, OutboundLayer, ReqwestService};
//! use tower::Layer;
//!
//! let forward = ForwardLayer::builder("https://agents.internal.example/v1").build()?;
//! let client = OutboundLayer::builder(ForwardToken)
//!     .allow_origin(forward.origin())
//!     .build()?
//!     .layer(ReqwestService::new()?);
//! // `/agents/x/run?y=1` goes to `https://agents.internal.example/v1/x/run?y=1`.
//! let app: Router = Router::new().nest_service("/agents", forward.layer(client));
//! // Then: `app.layer(Mka1AuthLayer::new(verifier))`.
//! # let _ = app;
//! # Ok(()) }
//! # #[cfg(feature = "remote")]
//! # demo().unwrap();
//! ```

mod body;
mod builder;
mod headers;
mod path;

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub(crate) use self::body::BoxError;
pub use self::body::{CappedBody, ForwardBody};
pub use self::builder::ForwardLayerBuilder;
use self::headers::{drop_headers, HeaderPolicy};
pub use self::headers::{ForwardCookies, ForwardedHeaders, OverrideHeaders};
use crate::error::ConfigError;
use crate::net::authority_port;

/// The default cap on a forwarded request body: 10 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// What went wrong in a forward; see [`ForwardError::kind`].
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
///
/// ```
/// use mka1_auth::outbound::forward::ForwardErrorKind;
///
/// assert_eq!(ForwardErrorKind::BodyTooLarge.status(), 413);
/// assert_eq!(ForwardErrorKind::UpstreamTimeout.status(), 504);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardErrorKind {
    /// The path could be read as leaving the upstream's prefix, or is not a plain path
    /// (400).
    PathRefused,
    /// The request cannot be forwarded at all: `CONNECT`, or a target with no path (400).
    NotForwardable,
    /// The path is not under the configured [`strip_prefix`](ForwardLayerBuilder::strip_prefix)
    /// (404).
    NotFound,
    /// The request body is over the cap (413).
    BodyTooLarge,
    /// The onward client failed or refused to send: a refused or reset connection, a
    /// broken answer (502).
    Upstream,
    /// The upstream took too long: to connect, to send the response head, or between two
    /// body chunks (504). See [`ReqwestService`](crate::outbound::ReqwestService) for the
    /// default timeouts.
    UpstreamTimeout,
}

impl ForwardErrorKind {
    /// The status the forward answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ForwardErrorKind::PathRefused | ForwardErrorKind::NotForwardable => {
                StatusCode::BAD_REQUEST
            }
            ForwardErrorKind::NotFound => StatusCode::NOT_FOUND,
            ForwardErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ForwardErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ForwardErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ForwardErrorKind::PathRefused => "path_refused",
            ForwardErrorKind::NotForwardable => "not_forwardable",
            ForwardErrorKind::NotFound => "not_found",
            ForwardErrorKind::BodyTooLarge => "body_too_large",
            ForwardErrorKind::Upstream => "upstream",
            ForwardErrorKind::UpstreamTimeout => "upstream_timeout",
        }
    }
}

/// Why a forward answered by itself. Its message never repeats the path, a header or a
/// body.
///
/// ```
/// use mka1_auth::outbound::forward::{ForwardErrorKind, ForwardLayer};
///
/// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base").build()?;
/// let req = http::Request::get("/%2e%2e/admin").body(()).unwrap();
/// let err = forward.onward_request(req).unwrap_err();
/// assert_eq!(err.kind(), ForwardErrorKind::PathRefused);
/// assert_eq!(err.kind().status(), 400);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ForwardError {
    kind: ForwardErrorKind,
    detail: Cow<'static, str>,
}

impl ForwardError {
    fn new(kind: ForwardErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        ForwardError {
            kind,
            detail: detail.into(),
        }
    }

    /// The request body is over the cap of `limit` bytes.
    fn too_large(limit: u64) -> Self {
        ForwardError::new(
            ForwardErrorKind::BodyTooLarge,
            format!("the request body exceeds the {limit}-byte cap"),
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> ForwardErrorKind {
        self.kind
    }

    /// The answer a forward gives for this error: its status, a one-line text body, and the
    /// error in the extensions. Leaves a `tracing` event with the kind and status.
    pub fn into_response<B>(self) -> Response<ForwardBody<B>> {
        let status = self.kind.status();
        tracing::info!(
            kind = self.kind.as_str(),
            status = status.as_u16(),
            "forward refused or failed"
        );
        let mut response = Response::new(ForwardBody::text(format!("{self}\n")));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.extensions_mut().insert(self);
        response
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ForwardError {}

/// The settings of a forward, shared by every clone.
#[derive(Debug, Clone)]
struct ForwardConfig {
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path: empty, or `/…` without a trailing `/`.
    prefix: Box<str>,
    /// Removed from the inbound path first: empty, or `/…` without a trailing `/`.
    strip_prefix: Box<str>,
    max_body_bytes: u64,
    headers: HeaderPolicy,
}

/// Builds [`Forward`] services that send every request to one upstream. See the
/// [module docs](self); its settings are on [`ForwardLayer::builder`].
///
/// ```
/// use mka1_auth::outbound::forward::ForwardLayer;
///
/// let forward = ForwardLayer::builder("https://agents.internal.example/v1").build()?;
/// assert_eq!(forward.origin(), "https://agents.internal.example");
///
/// let req = http::Request::post("/runs/a%2Fb?page=2").body(()).unwrap();
/// let onward = forward.onward_request(req).unwrap();
/// assert_eq!(onward.uri(), "https://agents.internal.example/v1/runs/a%2Fb?page=2");
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ForwardLayer {
    config: Arc<ForwardConfig>,
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid_setting(name, reason)
}

/// The prefix to strip, without a trailing `/`: empty, or a plain path starting with `/`.
fn checked_strip_prefix(prefix: &str) -> Result<&str, ConfigError> {
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(invalid("strip_prefix", "it must start with `/`"));
    }
    path::check_path(prefix).map_err(|r| invalid("strip_prefix", r))?;
    Ok(prefix)
}

impl ForwardLayer {
    /// Forward to `base`, with the settings of the [`ForwardLayerBuilder`] (each has a
    /// default: `ForwardLayer::builder(base).build()` forwards with them all). `base` is an
    /// `http` or `https` URL with a host, an optional port and an optional path prefix, and
    /// no user info, query or fragment, checked by
    /// [`build`](ForwardLayerBuilder::build). Every onward request goes to this origin,
    /// under this path.
    pub fn builder(base: &str) -> ForwardLayerBuilder {
        ForwardLayerBuilder::new(base)
    }

    fn from_builder(builder: ForwardLayerBuilder) -> Result<ForwardLayer, ConfigError> {
        let base = builder.base.as_str();
        let invalid = |reason: &str| invalid("forward base url", reason);
        let uri: Uri = base.parse().map_err(|_| invalid("it is not a valid url"))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::HTTPS,
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::HTTP,
            _ => return Err(invalid("it needs an http or https scheme")),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| invalid("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "it has user info; give credentials to the outbound layer",
            ));
        }
        authority_port(authority).map_err(|()| invalid("its port is not a number 0-65535"))?;
        if uri.query().is_some() || base.contains('#') {
            return Err(invalid("it has a query or fragment"));
        }
        let prefix = uri.path().trim_end_matches('/');
        path::check_path(prefix).map_err(invalid)?;
        Ok(ForwardLayer {
            config: Arc::new(ForwardConfig {
                scheme,
                authority: authority.clone(),
                prefix: prefix.into(),
                strip_prefix: checked_strip_prefix(&builder.strip_prefix)?.into(),
                max_body_bytes: builder.max_body_bytes,
                headers: builder.headers,
            }),
        })
    }

    /// The upstream's origin (`scheme://host[:port]`), for the outbound layer's allow-list.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.config.scheme, self.config.authority)
    }

    /// The onward request for `req`, or why there is none. This is the whole of what
    /// [`Forward`] does before it calls its client, for code that sends requests itself.
    ///
    /// The request keeps its method and extensions; its URI, headers (see the
    /// [module docs](self)) and version (HTTP/1.1, for the client to negotiate) are
    /// replaced, and its body is capped.
    pub fn onward_request<B>(
        &self,
        req: Request<B>,
    ) -> Result<Request<CappedBody<B>>, ForwardError> {
        let config = &*self.config;
        let (mut parts, body) = req.into_parts();
        parts.uri = config.onward_uri(&parts.method, &parts.uri)?;
        if declared_length(&parts.headers).is_some_and(|len| len > config.max_body_bytes) {
            return Err(ForwardError::too_large(config.max_body_bytes));
        }
        config
            .headers
            .clean_request(&mut parts.headers, &parts.extensions);
        parts.version = http::Version::HTTP_11;
        Ok(Request::from_parts(
            parts,
            CappedBody::new(body, config.max_body_bytes),
        ))
    }

    /// Remove hop-by-hop headers from an upstream's answer, as [`Forward`] does to every
    /// answer it passes back; for code that sends [`onward_request`](Self::onward_request)s
    /// itself.
    ///
    /// ```
    /// use mka1_auth::outbound::forward::ForwardLayer;
    ///
    /// # fn main() -> Result<(), mka1_auth::ConfigError> {
    /// let forward = ForwardLayer::builder("http://upstream.internal").build()?;
    /// let mut answer = http::Response::builder()
    ///     .header("connection", "x-trace")
    ///     .header("x-trace", "abc")
    ///     .header("keep-alive", "timeout=5")
    ///     .header("content-type", "text/plain")
    ///     .body(())
    ///     .unwrap();
    /// forward.clean_response(&mut answer);
    /// assert!(answer.headers().get("keep-alive").is_none());
    /// assert!(answer.headers().get("x-trace").is_none()); // named by `connection`
    /// assert_eq!(answer.headers()["content-type"], "text/plain");
    /// # Ok(()) }
    /// ```
    pub fn clean_response<B>(&self, response: &mut Response<B>) {
        clean_response(response);
    }
}

/// Remove hop-by-hop headers from an upstream's answer.
fn clean_response<B>(response: &mut Response<B>) {
    drop_headers(response.headers_mut(), |_| false);
}

impl ForwardConfig {
    fn onward_uri(&self, method: &Method, inbound: &Uri) -> Result<Uri, ForwardError> {
        let raw_path = inbound.path();
        if method == Method::CONNECT || !raw_path.starts_with('/') {
            return Err(ForwardError::new(
                ForwardErrorKind::NotForwardable,
                "only requests for a path can be forwarded",
            ));
        }
        let rest = raw_path
            .strip_prefix(&*self.strip_prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .ok_or_else(|| {
                ForwardError::new(ForwardErrorKind::NotFound, "no upstream serves this path")
            })?;
        let joined = path::join(&self.prefix, rest, inbound.query())
            .map_err(|reason| ForwardError::new(ForwardErrorKind::PathRefused, reason))?;
        let path_and_query =
            PathAndQuery::from_maybe_shared(Bytes::from(joined)).map_err(|_| {
                ForwardError::new(
                    ForwardErrorKind::PathRefused,
                    "the path is not a valid uri path",
                )
            })?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|_| {
            ForwardError::new(
                ForwardErrorKind::PathRefused,
                "the path is not a valid uri path",
            )
        })
    }
}

/// The body length a request declares, when it declares one that can be read.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward {
            inner,
            layer: self.clone(),
            unready: false,
        }
    }
}

/// A client wrapped by [`ForwardLayer`]: a service that answers each inbound request with
/// the upstream's answer to its onward request. See the [module docs](self).
///
/// Its error type is [`Infallible`]: failures are answers (400, 404, 413, 502), so it can be
/// mounted with axum's `nest_service` or `route_service` as it is.
///
/// ```
/// use mka1_auth::outbound::forward::{Forward, ForwardLayer};
/// use mka1_auth::outbound::ReqwestService;
/// use tower::Layer;
///
/// let agents: Forward<ReqwestService> =
///     ForwardLayer::builder("https://agents.internal.example/v1").build()?.layer(ReqwestService::new()?);
/// let app: axum::Router = axum::Router::new().nest_service("/agents", agents);
/// # let _ = app;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Forward<S> {
    inner: S,
    layer: ForwardLayer,
    /// The client's `poll_ready` failed: answer the next call with 502 without calling it.
    unready: bool,
}

impl<S> Forward<S> {
    /// The wrapped client.
    ///
    /// ```
    /// use mka1_auth::outbound::forward::ForwardLayer;
    /// use tower::Layer;
    ///
    /// let mut forward = ForwardLayer::builder("https://upstream.internal").build()?.layer(String::from("inner"));
    /// assert_eq!(forward.get_ref(), "inner");
    /// forward.get_mut().push('!');
    /// assert_eq!(forward.into_inner(), "inner!");
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the client.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Forward<S>
where
    S: Service<Request<CappedBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<ForwardBody<RB>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match std::task::ready!(self.inner.poll_ready(cx)) {
            Ok(()) => self.unready = false,
            Err(error) => {
                let error: BoxError = error.into();
                tracing::warn!(%error, "forward: the onward client is not ready");
                self.unready = true;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let refused = |error: ForwardError| ResponseFuture {
            state: State::Answered {
                response: Some(error.into_response()),
            },
        };
        if std::mem::take(&mut self.unready) {
            return refused(ForwardError::new(
                ForwardErrorKind::Upstream,
                "the upstream cannot be reached",
            ));
        }
        let onward = match self.layer.onward_request(req) {
            Ok(onward) => onward,
            Err(error) => return refused(error),
        };
        // Take the service that was driven to readiness; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Calling {
                future: inner.call(onward),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Forward`].
    pub struct ResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Calling {
            #[pin]
            future: F,
        },
        Answered {
            response: Option<Response<ForwardBody<RB>>>,
        },
    }
}

impl<F, RB> fmt::Debug for ResponseFuture<F, RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ForwardBody<RB>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Answered { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            StateProj::Calling { future } => {
                Poll::Ready(Ok(match std::task::ready!(future.poll(cx)) {
                    Ok(mut response) => {
                        clean_response(&mut response);
                        if !response.status().is_success() {
                            tracing::debug!(
                                status = response.status().as_u16(),
                                "forward: the upstream answered"
                            );
                        }
                        response.map(ForwardBody::upstream)
                    }
                    Err(error) => upstream_failure(&*error.into()),
                }))
            }
        }
    }
}

/// The answer when the onward call failed: 413 when the body passed the cap on the way, 504
/// when the upstream took too long, else 502. The client's error is logged, not sent: it may
/// name internal hosts.
fn upstream_failure<RB>(error: &(dyn std::error::Error + 'static)) -> Response<ForwardBody<RB>> {
    if let Some(too_large) = body::too_large_cause(error) {
        return too_large.clone().into_response();
    }
    if crate::net::is_timeout(error) {
        tracing::warn!(%error, kind = "upstream_timeout", status = 504, "forward: the upstream timed out");
        return ForwardError::new(ForwardErrorKind::UpstreamTimeout, "the upstream timed out")
            .into_response();
    }
    tracing::warn!(%error, "forward: the upstream call failed");
    ForwardError::new(ForwardErrorKind::Upstream, "the upstream call failed").into_response()
}
