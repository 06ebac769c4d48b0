//! Calling onward: a tower layer for outgoing requests that adds `Authorization` and
//! `X-On-Behalf-Of`, and only ever sends them to the hosts you name.
//!
//! The layer wraps any client that is a `Service<http::Request<B>>`: hyper-util's client,
//! [`ReqwestService`] (feature `remote`), or your own. For each request it
//!
//! 1. refuses the request unless its URI is absolute and names an allowed origin (scheme,
//!    host and port), and unless a `Host` header, if present, names the same host;
//! 2. finds the end user: the [`OnBehalfOf`] in the request's extensions (so the value the
//!    inbound layer verified passes straight through), or else the closure given to
//!    [`OutboundBuilder::end_user_from`], validated with
//!    [`validate_end_user_id`];
//! 3. asks its [`CredentialSource`] for a credential ([`ApiKey`], [`ForwardToken`], or an
//!    exchanged token from [`ExchangeClient`](crate::exchange::ExchangeClient));
//! 4. sets `Authorization: Bearer <credential>` and `X-On-Behalf-Of: <end user>`, replacing any
//!    values already there under any spelling of either name (case is ignored and `_` counts
//!    as `-`, as CGI-style servers read them); with no end user, every `X-On-Behalf-Of` is
//!    removed: a backend-only call. Both values are marked sensitive.
//!
//! Refusals never reach the inner client: they come back as [`OutboundError::Refused`] with a
//! [`Refusal`] whose [`kind`](Refusal::kind) is [`RefusalKind::HostNotAllowed`],
//! [`RefusalKind::CredentialUnavailable`] or [`RefusalKind::Exchange`]. The inner client's own
//! errors come back as [`OutboundError::Service`].
//!
//! # Redirects
//!
//! A client that follows redirects by itself would carry the headers this layer set to wherever
//! the server points. hyper-util's client never follows redirects. [`ReqwestService`] builds its
//! reqwest client with [`same_origin_redirects`], which stops at the first redirect to another
//! origin (reqwest's default strips `Authorization` on such a hop but keeps `X-On-Behalf-Of`).
//! If you follow redirects with a tower layer, put it *outside* this one, so every hop is
//! checked against the allowed origins again.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{header::AUTHORIZATION, Request, Response};
//! use mka1_auth::outbound::{ApiKey, Outbound};
//! use mka1_auth::X_ON_BEHALF_OF;
//! use tower::{service_fn, ServiceExt};
//!
//! // Any `Service<http::Request<B>>` works; this one answers with what it was sent.
//! let client = service_fn(|req: Request<String>| async move {
//!     let auth = req.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
//!     Ok::<_, std::convert::Infallible>(Response::new(auth))
//! });
//! let layer = Outbound::layer(ApiKey::new("mk_live_example")?, ["https://apigw.mka1.com"])?;
//! let client = layer.layer(client);
//!
//! let req = Request::get("https://apigw.mka1.com/api/v1/agents")
//!     .header(X_ON_BEHALF_OF, "spoofed-by-someone")
//!     .body(String::new())?;
//! let res = client.clone().oneshot(req).await?;
//! assert_eq!(res.body(), "Bearer mk_live_example");
//!
//! // Another host gets nothing: the request fails before it is sent.
//! let req = Request::get("https://elsewhere.example/").body(String::new())?;
//! let err = client.oneshot(req).await.unwrap_err();
//! assert_eq!(err.refusal().unwrap().kind(), mka1_auth::outbound::RefusalKind::HostNotAllowed);
//! # Ok(()) }
//! # use tower_layer::Layer;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HOST};
use http::{Extensions, HeaderMap, HeaderValue, Request, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{
    bearer_header_value, validate_end_user_id, BearerToken, OnBehalfOf, VerifiedToken,
    X_ON_BEHALF_OF,
};
use crate::error::ConfigError;
use crate::headers::remove_every_spelling;
use crate::net::{authority_port, is_loopback_host};

/// A bearer credential ready to go into `Authorization`: an API key or a token.
///
/// Its `Debug` is redacted and its header value is marked sensitive.
///
/// ```
/// use mka1_auth::outbound::Credential;
///
/// let cred = Credential::bearer("mk_live_example").unwrap();
/// assert_eq!(cred.authorization_value(), "Bearer mk_live_example");
/// assert!(cred.authorization_value().is_sensitive());
/// assert_eq!(format!("{cred:?}"), "Credential(<redacted>)");
/// assert!(Credential::bearer("two words").is_err());
/// ```
#[derive(Clone)]
pub struct Credential {
    value: HeaderValue,
}

impl Credential {
    /// A bearer credential from its secret text.
    ///
    /// The secret must be non-empty visible ASCII (no spaces or control characters), as API
    /// keys and JWTs are. The error never repeats the secret.
    pub fn bearer(secret: &str) -> Result<Self, Refusal> {
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "the credential is empty or has characters a bearer token cannot carry",
            ));
        }
        Ok(Credential {
            value: bearer_header_value(secret),
        })
    }

    /// `Bearer <secret>`, marked sensitive.
    pub fn authorization_value(&self) -> HeaderValue {
        self.value.clone()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// What a [`CredentialSource`] knows about the request it supplies a credential for.
///
/// ```
/// use mka1_auth::outbound::OutboundContext;
///
/// fn describe(cx: &OutboundContext<'_>) -> String {
///     format!("{} for {:?}", cx.uri(), cx.end_user())
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OutboundContext<'a> {
    uri: &'a Uri,
    end_user: Option<&'a str>,
    extensions: &'a Extensions,
}

impl<'a> OutboundContext<'a> {
    /// The request's URI; its origin is one of the allowed ones.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The end user the call is made for, if any (a valid end-user id).
    pub fn end_user(&self) -> Option<&'a str> {
        self.end_user
    }

    /// The request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

/// Where the outbound layer gets the credential for a request.
///
/// The layer asks only after the request's host passed the allow-list. Implemented by
/// [`ApiKey`], [`ForwardToken`] and, with feature `remote`,
/// [`ExchangeSource`](crate::exchange::ExchangeSource). Implement it yourself for other
/// schemes:
///
/// ```
/// use std::future::{ready, Ready};
/// use mka1_auth::outbound::{Credential, CredentialSource, OutboundContext, Refusal, RefusalKind};
///
/// /// A key per end user, looked up in memory.
/// struct PerUserKey(std::collections::HashMap<String, Credential>);
///
/// impl CredentialSource for PerUserKey {
///     type Future = Ready<Result<Credential, Refusal>>;
///
///     fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
///         let found = cx.end_user().and_then(|user| self.0.get(user)).cloned();
///         ready(found.ok_or_else(|| Refusal::new(RefusalKind::CredentialUnavailable)))
///     }
/// }
/// ```
pub trait CredentialSource: Send + Sync + 'static {
    /// The future that yields the credential.
    type Future: Future<Output = Result<Credential, Refusal>> + Send + 'static;

    /// Supply the credential for one request.
    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future;
}

impl<C: CredentialSource> CredentialSource for Arc<C> {
    type Future = C::Future;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        (**self).credential(cx)
    }
}

/// A static MKA1 API key, for calls to MKA1 itself (`https://apigw.mka1.com`).
///
/// ```
/// use mka1_auth::outbound::ApiKey;
///
/// let key = ApiKey::new("mk_live_example")?;
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert!(ApiKey::new("").is_err());
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey(Credential);

impl ApiKey {
    /// Wrap the key. Fails if it is empty or has characters a bearer token cannot carry; the
    /// error does not repeat the key.
    pub fn new(key: impl AsRef<str>) -> Result<Self, ConfigError> {
        Credential::bearer(key.as_ref()).map(ApiKey).map_err(|_| {
            ConfigError::invalid_setting(
                "api_key",
                "it is empty or has characters a bearer token cannot carry",
            )
        })
    }

    #[cfg(feature = "remote")]
    pub(crate) fn credential(&self) -> &Credential {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl CredentialSource for ApiKey {
    type Future = Ready<Result<Credential, Refusal>>;

    fn credential(&self, _cx: &OutboundContext<'_>) -> Self::Future {
        ready(Ok(self.0.clone()))
    }
}

/// Forward the inbound bearer token unchanged.
///
/// Reads the [`BearerToken`] from the outgoing request's extensions: copy it there from the
/// inbound request with [`carry_identity`]. Without one the call fails with
/// [`RefusalKind::CredentialUnavailable`]. When a [`VerifiedToken`] rides along too, the end
/// user must be its subject: a token is never forwarded on behalf of someone else.
///
/// ```
/// use mka1_auth::outbound::{ForwardToken, Outbound};
///
/// let layer = Outbound::layer(ForwardToken, ["https://agents.internal.example"])?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardToken;

impl CredentialSource for ForwardToken {
    type Future = Ready<Result<Credential, Refusal>>;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        let Some(token) = cx.extensions().get::<BearerToken>() else {
            return ready(Err(Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "no inbound bearer token in the request extensions to forward",
            )));
        };
        if let (Some(verified), Some(user)) =
            (cx.extensions().get::<VerifiedToken>(), cx.end_user())
        {
            if verified.subject() != user {
                return ready(Err(Refusal::with_detail(
                    RefusalKind::CredentialUnavailable,
                    "the inbound token belongs to another end user than this call",
                )));
            }
        }
        ready(Credential::bearer(token.expose()))
    }
}

/// Copy what the inbound layer learned about a request (the [`VerifiedToken`], the
/// [`OnBehalfOf`] and the [`BearerToken`]) into an outgoing request's extensions.
///
/// ```
/// use http::{Extensions, Request};
/// use mka1_auth::outbound::carry_identity;
///
/// fn onward(inbound: &Extensions) -> Request<String> {
///     let mut req = Request::get("https://agents.internal.example/run")
///         .body(String::new())
///         .unwrap();
///     carry_identity(inbound, req.extensions_mut());
///     req
/// }
/// # let _ = onward(&Extensions::new());
/// ```
pub fn carry_identity(from: &Extensions, to: &mut Extensions) {
    if let Some(v) = from.get::<VerifiedToken>() {
        to.insert(v.clone());
    }
    if let Some(v) = from.get::<OnBehalfOf>() {
        to.insert(v.clone());
    }
    if let Some(v) = from.get::<BearerToken>() {
        to.insert(v.clone());
    }
}

/// One allowed origin: scheme, lowercase host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => true,
            s if s.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        let host = authority.host();
        if host.is_empty() {
            return None;
        }
        let port = authority_port(authority)
            .ok()?
            .unwrap_or(if https { 443 } else { 80 });
        Some(Origin {
            https,
            host: host.to_ascii_lowercase().into(),
            port,
        })
    }

    fn parse(text: &str) -> Result<Origin, String> {
        let uri: Uri = text
            .parse()
            .map_err(|_| "it is not a valid url".to_owned())?;
        let origin = Origin::of(&uri).ok_or("it needs an http or https scheme and a host")?;
        let plain_origin = uri.path_and_query().is_none_or(|pq| pq.as_str() == "/");
        let has_userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
        if !plain_origin || has_userinfo {
            return Err("give only scheme, host and optional port".into());
        }
        Ok(origin)
    }

    fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    fn same_host(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        let default = if self.https { 443 } else { 80 };
        authority.host().eq_ignore_ascii_case(&self.host)
            && authority_port(&authority).is_ok_and(|p| p.unwrap_or(default) == self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

type EndUserFn = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

struct OutboundConfig<C> {
    source: C,
    origins: Box<[Origin]>,
    end_user: Option<Box<EndUserFn>>,
}

/// Builds an [`OutboundLayer`]: the credential source, the allowed origins and, optionally,
/// where the end user comes from when the request carries no [`OnBehalfOf`].
///
/// ```
/// use mka1_auth::outbound::{ApiKey, OutboundLayer};
///
/// let layer = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
///     .allow_origin("https://apigw.mka1.com")
///     .end_user_from(|parts| {
///         parts.headers.get("x-tenant-user")?.to_str().ok().map(str::to_owned)
///     })
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[must_use]
pub struct OutboundBuilder<C> {
    source: C,
    origins: Vec<String>,
    allow_plain_http: bool,
    end_user: Option<Box<EndUserFn>>,
}

impl<C: CredentialSource> OutboundBuilder<C> {
    /// Allow credentials to go to this origin (`https://host[:port]`, no path). Call once per
    /// origin; at least one is required.
    ///
    /// The scheme, host and port of each request must match one exactly (the port defaults to
    /// 443 for https and 80 for http); a `Host` header, when present, must name the same host.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allow `http://` origins on hosts other than loopback. Credentials then cross the
    /// network in clear text: only for networks you trust (for example a service mesh that
    /// encrypts underneath).
    pub fn allow_plain_http(mut self) -> Self {
        self.allow_plain_http = true;
        self
    }

    /// Name the end user when the request carries no [`OnBehalfOf`] extension.
    ///
    /// The closure sees the request's head. A returned id is checked with
    /// [`validate_end_user_id`]; an invalid one fails the call with
    /// [`RefusalKind::CredentialUnavailable`]. `None` means a backend-only call.
    pub fn end_user_from<F>(mut self, f: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.end_user = Some(Box::new(f));
        self
    }

    /// Check the origins and build the layer.
    pub fn build(self) -> Result<OutboundLayer<C>, ConfigError> {
        let invalid = |reason: String| ConfigError::invalid_setting("allow_origin", reason);
        if self.origins.is_empty() {
            return Err(invalid(
                "no origin allowed: credentials could go nowhere".into(),
            ));
        }
        let mut origins = Vec::with_capacity(self.origins.len());
        for text in &self.origins {
            let origin = Origin::parse(text).map_err(|r| invalid(format!("`{text}`: {r}")))?;
            if !origin.https && !origin.is_loopback() && !self.allow_plain_http {
                return Err(invalid(format!(
                    "`{text}`: plain http would send credentials in clear text; use https, \
                     a loopback host, or `allow_plain_http`"
                )));
            }
            origins.push(origin);
        }
        Ok(OutboundLayer {
            shared: Arc::new(OutboundConfig {
                source: self.source,
                origins: origins.into(),
                end_user: self.end_user,
            }),
        })
    }
}

impl<C> fmt::Debug for OutboundBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundBuilder")
            .field("origins", &self.origins)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

/// The outbound layer: wraps a client so its requests get credentials, only for allowed
/// origins. Build it with [`Outbound::layer`] or [`OutboundLayer::builder`].
///
/// ```
/// use mka1_auth::outbound::{ApiKey, OutboundLayer};
///
/// let layer = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
///     .allow_origin("https://apigw.mka1.com")
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
pub struct OutboundLayer<C> {
    shared: Arc<OutboundConfig<C>>,
}

impl<C: CredentialSource> OutboundLayer<C> {
    /// Start building a layer that takes credentials from `source`.
    pub fn builder(source: C) -> OutboundBuilder<C> {
        OutboundBuilder {
            source,
            origins: Vec::new(),
            allow_plain_http: false,
            end_user: None,
        }
    }
}

impl<C> Clone for OutboundLayer<C> {
    fn clone(&self) -> Self {
        OutboundLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<C> fmt::Debug for OutboundLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins: Vec<String> = self.shared.origins.iter().map(|o| o.to_string()).collect();
        f.debug_struct("OutboundLayer")
            .field("origins", &origins)
            .finish_non_exhaustive()
    }
}

impl<S, C> Layer<S> for OutboundLayer<C> {
    type Service = Outbound<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Outbound {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A client wrapped by [`OutboundLayer`]. See the [module docs](self).
pub struct Outbound<S, C> {
    inner: S,
    shared: Arc<OutboundConfig<C>>,
}

impl<C: CredentialSource> Outbound<(), C> {
    /// A layer sending credentials from `source` to these origins only; see
    /// [`OutboundBuilder`] for more settings.
    ///
    /// ```
    /// use mka1_auth::outbound::{ApiKey, Outbound};
    ///
    /// let layer = Outbound::layer(ApiKey::new("mk_live_example")?, ["https://apigw.mka1.com"])?;
    /// # let _ = layer;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn layer<I>(source: C, origins: I) -> Result<OutboundLayer<C>, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        origins
            .into_iter()
            .fold(OutboundLayer::builder(source), |b, o| b.allow_origin(o))
            .build()
    }
}

impl<S, C> Outbound<S, C> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C> Clone for Outbound<S, C> {
    fn clone(&self) -> Self {
        Outbound {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Outbound<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The error of an [`Outbound`] client: the layer refused the request, or the inner client
/// failed.
///
/// ```
/// use mka1_auth::outbound::{OutboundError, Refusal, RefusalKind};
///
/// let err: OutboundError<std::io::Error> =
///     OutboundError::Refused(Refusal::new(RefusalKind::HostNotAllowed));
/// assert_eq!(err.refusal().map(Refusal::kind), Some(RefusalKind::HostNotAllowed));
/// assert_eq!(err.to_string(), "outbound request refused: credentials may not be sent to this host");
/// ```
#[derive(Debug)]
pub enum OutboundError<E> {
    /// The layer refused the request before it was sent: a host not allowed, no credential,
    /// or a failed exchange. Nothing went over the network to the target.
    Refused(Refusal),
    /// The inner client failed.
    Service(E),
}

impl<E> OutboundError<E> {
    /// The layer's refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            OutboundError::Refused(e) => Some(e),
            OutboundError::Service(_) => None,
        }
    }

    /// The inner client's error, if that is what this is.
    pub fn service_error(&self) -> Option<&E> {
        match self {
            OutboundError::Refused(_) => None,
            OutboundError::Service(e) => Some(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for OutboundError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::Refused(e) => write!(f, "outbound request refused: {e}"),
            OutboundError::Service(e) => write!(f, "outbound request failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for OutboundError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OutboundError::Refused(e) => Some(e),
            OutboundError::Service(e) => Some(e),
        }
    }
}

fn refuse(kind: RefusalKind, detail: impl Into<std::borrow::Cow<'static, str>>) -> Refusal {
    Refusal::with_detail(kind, detail)
}

impl<C: CredentialSource> OutboundConfig<C> {
    /// The origin check: absolute URI, allowed origin, and a `Host` header that agrees.
    fn check_target(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(target) = Origin::of(uri) else {
            return Err(refuse(
                RefusalKind::HostNotAllowed,
                "the request uri is not an absolute http or https url",
            ));
        };
        let Some(origin) = self.origins.iter().find(|o| **o == target) else {
            return Err(refuse(
                RefusalKind::HostNotAllowed,
                format!("{target} is not an allowed origin"),
            ));
        };
        let mut hosts = headers.get_all(HOST).iter();
        if let Some(host) = hosts.next() {
            let agrees = host.to_str().is_ok_and(|h| origin.same_host(h));
            if !agrees || hosts.next().is_some() {
                return Err(refuse(
                    RefusalKind::HostNotAllowed,
                    "the host header names another host than the request uri",
                ));
            }
        }
        Ok(())
    }

    /// The end user: the verified `OnBehalfOf` if present, else the closure's answer.
    fn end_user<B>(&self, req: Request<B>) -> Result<(Request<B>, Option<Arc<str>>), Refusal> {
        if let Some(user) = req.extensions().get::<OnBehalfOf>() {
            let user = Arc::from(user.as_str());
            return Ok((req, Some(user)));
        }
        let Some(resolve) = &self.end_user else {
            return Ok((req, None));
        };
        let (parts, body) = req.into_parts();
        let user = resolve(&parts);
        let req = Request::from_parts(parts, body);
        match user {
            None => Ok((req, None)),
            Some(user) => match validate_end_user_id(&user) {
                Ok(()) => Ok((req, Some(Arc::from(user)))),
                Err(e) => Err(refuse(
                    RefusalKind::CredentialUnavailable,
                    format!(
                        "the end-user id from `end_user_from` is invalid: {}",
                        e.detail().unwrap_or("it breaks the end-user id rule")
                    ),
                )),
            },
        }
    }

    /// Everything before the credential arrives.
    fn prepare<B>(&self, req: Request<B>) -> Result<Prepared<C::Future, B>, Refusal> {
        self.check_target(req.uri(), req.headers())?;
        let (req, user) = self.end_user(req)?;
        let cx = OutboundContext {
            uri: req.uri(),
            end_user: user.as_deref(),
            extensions: req.extensions(),
        };
        let credential = self.source.credential(&cx);
        Ok(Prepared {
            credential,
            req,
            user,
        })
    }
}

/// Put the credential and end user on the request, replacing whatever was there under any
/// spelling of either name (case, and `_` for `-`: see `crate::headers`).
fn apply<B>(req: &mut Request<B>, credential: &Credential, user: Option<&str>) {
    let headers = req.headers_mut();
    remove_every_spelling(headers, &AUTHORIZATION);
    remove_every_spelling(headers, &X_ON_BEHALF_OF);
    headers.insert(AUTHORIZATION, credential.authorization_value());
    if let Some(user) = user {
        // Valid end-user ids are printable ASCII, so this cannot fail.
        if let Ok(mut value) = HeaderValue::from_str(user) {
            value.set_sensitive(true);
            headers.insert(X_ON_BEHALF_OF, value);
        }
    }
}

impl<S, C, B> Service<Request<B>> for Outbound<S, C>
where
    S: Service<Request<B>> + Clone,
    C: CredentialSource,
{
    type Response = S::Response;
    type Error = OutboundError<S::Error>;
    type Future = ResponseFuture<S, B, C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(OutboundError::Service)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = match self.shared.prepare(req) {
            Ok(Prepared {
                credential,
                req,
                user,
            }) => State::Credential {
                credential,
                pending: Some(Pending { inner, req, user }),
            },
            Err(error) => State::Refused { error: Some(error) },
        };
        ResponseFuture { state }
    }
}

struct Prepared<F, B> {
    credential: F,
    req: Request<B>,
    user: Option<Arc<str>>,
}

struct Pending<S, B> {
    inner: S,
    req: Request<B>,
    user: Option<Arc<str>>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F>
    where
        S: Service<Request<B>>,
    {
        Credential {
            #[pin]
            credential: F,
            pending: Option<Pending<S, B>>,
        },
        Call {
            #[pin]
            future: S::Future,
        },
        Refused {
            error: Option<Refusal>,
        },
    }
}

pin_project! {
    /// The response future of [`Outbound`]: waits for the credential, then for the inner
    /// client.
    pub struct ResponseFuture<S, B, F>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, F>,
    }
}

impl<S, B, F> Future for ResponseFuture<S, B, F>
where
    S: Service<Request<B>>,
    F: Future<Output = Result<Credential, Refusal>>,
{
    type Output = Result<S::Response, OutboundError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Credential {
                    credential,
                    pending,
                } => {
                    let result = std::task::ready!(credential.poll(cx));
                    let Some(Pending {
                        mut inner,
                        mut req,
                        user,
                    }) = pending.take()
                    else {
                        return Poll::Ready(Err(OutboundError::Refused(Refusal::new(
                            RefusalKind::CredentialUnavailable,
                        ))));
                    };
                    let credential = match result {
                        Ok(c) => c,
                        Err(e) => return Poll::Ready(Err(OutboundError::Refused(e))),
                    };
                    apply(&mut req, &credential, user.as_deref());
                    let future = inner.call(req);
                    this.state.set(State::Call { future });
                }
                StateProj::Call { future } => {
                    return future.poll(cx).map_err(OutboundError::Service);
                }
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| Refusal::new(RefusalKind::CredentialUnavailable));
                    return Poll::Ready(Err(OutboundError::Refused(error)));
                }
            }
        }
    }
}

impl<S, B, F> fmt::Debug for ResponseFuture<S, B, F>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pub mod forward;
mod refusal;
#[cfg(feature = "remote")]
mod reqwest_adapter;
pub use self::refusal::{Refusal, RefusalKind};
#[cfg(feature = "remote")]
pub use self::reqwest_adapter::{same_origin_redirects, ReqwestFuture, ReqwestService};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match() {
        let o = Origin::parse("https://ApiGW.mka1.com").unwrap();
        assert_eq!(o.to_string(), "https://apigw.mka1.com:443");
        assert_eq!(
            Origin::of(&"https://apigw.mka1.com:443/x?y".parse().unwrap()),
            Some(o.clone())
        );
        assert_ne!(
            Origin::of(&"http://apigw.mka1.com/".parse().unwrap()),
            Some(o.clone())
        );
        assert_ne!(
            Origin::of(&"https://apigw.mka1.com:8443/".parse().unwrap()),
            Some(o.clone())
        );
        assert!(Origin::of(&"/relative".parse().unwrap()).is_none());
        // A port past 65535 is no port at all, not the scheme's default.
        for bad in [
            "https://apigw.mka1.com:65536/",
            "https://apigw.mka1.com:99999999999/",
            "https://apigw.mka1.com:/",
            "https://apigw.mka1.com:44x/",
            "http://[::1]:70000/",
        ] {
            assert!(Origin::of(&bad.parse().unwrap()).is_none(), "{bad}");
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(!o.same_host("apigw.mka1.com:65979"));
        assert!(!o.same_host("apigw.mka1.com:"));
        assert!(Origin::parse("https://apigw.mka1.com/api").is_err());
        assert!(Origin::parse("https://user@apigw.mka1.com").is_err());
        assert!(Origin::parse("ftp://apigw.mka1.com").is_err());
        assert!(o.same_host("APIGW.mka1.com"));
        assert!(o.same_host("apigw.mka1.com:443"));
        assert!(!o.same_host("apigw.mka1.com:80"));
        assert!(!o.same_host("evil.example"));
        for lo in [
            "http://localhost:1",
            "http://127.0.0.1",
            "http://[::1]:8080",
        ] {
            assert!(Origin::parse(lo).unwrap().is_loopback(), "{lo}");
        }
        assert!(!Origin::parse("http://10.0.0.1").unwrap().is_loopback());
    }

    #[test]
    fn plain_http_needs_opt_in_off_loopback() {
        let key = ApiKey::new("k").unwrap();
        let err = OutboundLayer::builder(key.clone())
            .allow_origin("http://svc.internal")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("clear text"), "{err}");
        assert!(OutboundLayer::builder(key.clone())
            .allow_origin("http://svc.internal")
            .allow_plain_http()
            .build()
            .is_ok());
        assert!(OutboundLayer::builder(key.clone())
            .allow_origin("http://127.0.0.1:8080")
            .build()
            .is_ok());
        assert!(OutboundLayer::builder(key).build().is_err());
    }
}
