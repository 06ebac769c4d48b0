//! The layer itself: [`OutboundBuilder`], [`OutboundLayer`], the wrapped client [`Outbound`]
//! and its [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::credential::{Credential, CredentialSource, OutboundContext};
use super::origin::AllowedOrigins;
use super::{OutboundError, Refusal, RefusalKind};
use crate::claims::{validate_end_user_id, OnBehalfOf, X_ON_BEHALF_OF};
use crate::error::ConfigError;
use crate::headers::remove_every_spelling;

type EndUserFn = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

struct OutboundConfig<C> {
    source: C,
    origins: AllowedOrigins,
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
        let origins =
            AllowedOrigins::parse(&self.origins, self.allow_plain_http).map_err(invalid)?;
        Ok(OutboundLayer {
            shared: Arc::new(OutboundConfig {
                source: self.source,
                origins,
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
/// origins. Build it with [`OutboundLayer::builder`].
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
        let origins = self.shared.origins.names();
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

/// A client wrapped by [`OutboundLayer`]. See the [module docs](crate::outbound).
///
/// Build it once and keep it in your state; clone it per call.
///
/// ```
/// use mka1_auth::outbound::{ApiKey, Outbound, OutboundLayer, ReqwestService};
/// use tower::Layer;
///
/// #[derive(Clone)]
/// struct AppState {
///     agents: Outbound<ReqwestService, ApiKey>,
/// }
///
/// let agents = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
///     .allow_origin("https://apigw.mka1.com")
///     .build()?
///     .layer(ReqwestService::new()?);
/// let state = AppState { agents };
/// # let _ = state;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Outbound<S, C> {
    inner: S,
    shared: Arc<OutboundConfig<C>>,
}

impl<S, C> Outbound<S, C> {
    /// The wrapped client.
    ///
    /// ```
    /// use mka1_auth::outbound::{ApiKey, OutboundLayer};
    /// use tower::Layer;
    ///
    /// let layer = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
    ///     .allow_origin("https://apigw.mka1.com")
    ///     .build()?;
    /// let mut client = layer.layer(String::from("inner"));
    /// assert_eq!(client.get_ref(), "inner");
    /// client.get_mut().push('!');
    /// assert_eq!(client.into_inner(), "inner!");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped client, without the layer.
    ///
    /// ```
    /// use mka1_auth::outbound::{ApiKey, OutboundLayer};
    /// use tower_layer::Layer;
    ///
    /// let layer = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
    ///     .allow_origin("https://apigw.mka1.com")
    ///     .build()?;
    /// let mut client = layer.layer(vec!["inner"]);
    /// client.get_mut().push("more");
    /// assert_eq!(client.get_ref().len(), 2);
    /// assert_eq!(client.into_inner(), ["inner", "more"]);
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
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

fn refuse(kind: RefusalKind, detail: impl Into<std::borrow::Cow<'static, str>>) -> Refusal {
    Refusal::with_detail(kind, detail)
}

impl<C: CredentialSource> OutboundConfig<C> {
    /// The end user: the verified `OnBehalfOf` if present, else the closure's answer.
    fn end_user<B>(&self, req: Request<B>) -> Result<(Request<B>, Option<Arc<str>>), Refusal> {
        if let Some(user) = OnBehalfOf::from_extensions(req.extensions()) {
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
        self.origins.check(req.uri(), req.headers())?;
        let (req, user) = self.end_user(req)?;
        let cx = OutboundContext::new(req.uri(), user.as_deref(), req.extensions());
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
        self.inner.poll_ready(cx).map_err(OutboundError::service)
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
                        return Poll::Ready(Err(OutboundError::refused(Refusal::new(
                            RefusalKind::CredentialUnavailable,
                        ))));
                    };
                    let credential = match result {
                        Ok(c) => c,
                        Err(e) => return Poll::Ready(Err(OutboundError::refused(e))),
                    };
                    apply(&mut req, &credential, user.as_deref());
                    let future = inner.call(req);
                    this.state.set(State::Call { future });
                }
                StateProj::Call { future } => {
                    return future.poll(cx).map_err(OutboundError::service);
                }
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| Refusal::new(RefusalKind::CredentialUnavailable));
                    return Poll::Ready(Err(OutboundError::refused(error)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::ApiKey;

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
