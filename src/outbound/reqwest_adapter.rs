//! reqwest as the outbound layer's client (feature `remote`), with redirects that never leave
//! the first request's origin.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::ConfigError;
use crate::net::fetch;

/// A reqwest redirect policy that follows a redirect (at most 10) only while it stays on
/// the origin (scheme, host and port) of the first request: reqwest's default policy strips
/// `Authorization` on a hop to another host but keeps every other header, `X-On-Behalf-Of`
/// included. A redirect it stops is returned to the caller as the 3xx response.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    fetch::redirect_policy(10)
}

/// reqwest's client as a `Service<http::Request<B>>`, so the outbound layer can wrap it.
///
/// It always uses a same-origin redirect policy: it follows a redirect (at most 10) only
/// while it stays on the origin (scheme, host and port) of the first request, and returns
/// any other redirect to the caller as the 3xx response. Whatever redirect policy the
/// builder you pass had is replaced, so headers set by the layer never follow a redirect to
/// another origin (reqwest's default policy strips `Authorization` on such a hop but keeps
/// every other header, `X-On-Behalf-Of` included). A reqwest client of your own that sends
/// credentials can get the same policy through
/// [`from_builder`](Self::from_builder)`(..)?.`[`into_inner`](Self::into_inner)`()`. Responses come back as `http::Response<reqwest::Body>`.
///
/// ```
/// use mka1_auth::outbound::{ApiKey, OutboundLayer, ReqwestService};
/// use tower::ServiceBuilder;
///
/// let client = ServiceBuilder::new()
///     .layer(
///         OutboundLayer::builder(ApiKey::new("mk_live_example")?)
///             .allow_origin("https://apigw.mka1.com")
///             .build()?,
///     )
///     .service(ReqwestService::new()?);
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
    response_timeout: Option<Duration>,
}

/// How long [`ReqwestService`] waits for the response head, by default.
pub(crate) const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

impl ReqwestService {
    /// A service over the crate's reqwest client: the same-origin redirect policy, and the default
    /// timeouts of every client the crate builds: 5 s to connect, and 30 s for any one read
    /// (the response head, then each body chunk), so an upstream that never answers, or
    /// trickles, cannot hold a request forever; and a 30 s limit for the
    /// whole response head (see [`response_timeout`](Self::response_timeout)). For other
    /// connect and read timeouts, pass a builder to [`from_builder`](Self::from_builder).
    pub fn new() -> Result<Self, ConfigError> {
        fetch::build(fetch::client_builder(10)).map(ReqwestService::over)
    }

    fn over(client: reqwest::Client) -> Self {
        ReqwestService {
            client,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
        }
    }

    /// How long to wait from sending the request until the response head has arrived
    /// (default 30 s; `None` for no limit), so an upstream that
    /// trickles its head cannot hold a request. When it passes, the call fails with an error
    /// of kind [`ReqwestErrorKind::Timeout`]; the forward answers it with
    /// 504. The body is not covered: its chunks have the client's read timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mka1_auth::outbound::ReqwestService;
    ///
    /// let client = ReqwestService::new()?.response_timeout(Some(Duration::from_secs(10)));
    /// # let _ = client;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// A service over a client built from `builder`, with its redirect policy replaced by
    /// the same-origin redirect policy. Its connect and read timeouts are the builder's (reqwest's
    /// default is none): set them, as here. The [`response_timeout`](Self::response_timeout)
    /// is the same 30 s default here too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mka1_auth::outbound::ReqwestService;
    ///
    /// let client = ReqwestService::from_builder(
    ///     reqwest::Client::builder()
    ///         .connect_timeout(Duration::from_secs(2))
    ///         .read_timeout(Duration::from_secs(10)),
    /// )?;
    /// # let _ = client;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn from_builder(builder: reqwest::ClientBuilder) -> Result<Self, ConfigError> {
        let client = fetch::build(builder.redirect(same_origin_redirects()))?;
        Ok(ReqwestService::over(client))
    }

    /// The reqwest client inside.
    ///
    /// ```
    /// use mka1_auth::outbound::ReqwestService;
    ///
    /// let mut service = ReqwestService::new()?;
    /// let _client: &reqwest::Client = service.get_ref();
    /// let _client: &mut reqwest::Client = service.get_mut();
    /// let _client: reqwest::Client = service.into_inner();
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &reqwest::Client {
        &self.client
    }

    /// The reqwest client inside, mutably.
    pub fn get_mut(&mut self) -> &mut reqwest::Client {
        &mut self.client
    }

    /// Unwrap the reqwest client (its redirect policy stays the same-origin one).
    pub fn into_inner(self) -> reqwest::Client {
        self.client
    }
}

impl<B: Into<reqwest::Body>> Service<Request<B>> for ReqwestService {
    type Response = http::Response<reqwest::Body>;
    type Error = ReqwestError;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match reqwest::Request::try_from(req) {
            Ok(req) => ReqwestFuture {
                inner: Some(self.client.call(req)),
                deadline: self.response_timeout.map(tokio::time::sleep),
                error: None,
            },
            Err(e) => ReqwestFuture {
                inner: None,
                deadline: None,
                error: Some(e),
            },
        }
    }
}

/// What kind of [`ReqwestError`]; see [`ReqwestError::kind`].
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReqwestErrorKind {
    /// A timeout ended the call: reqwest's (connect, read) or the
    /// [`response_timeout`](ReqwestService::response_timeout). The forward answers 504.
    Timeout,
    /// Any other failure: the connection refused or reset, a broken answer, a request
    /// reqwest cannot send. The forward answers 502.
    Failed,
}

/// The error of [`ReqwestService`]: reqwest's (with the request URL left out: it may carry a
/// query string), or the [`response_timeout`](ReqwestService::response_timeout) passing.
/// Opaque: inspect it with [`kind`](ReqwestError::kind), and [`reqwest`](ReqwestError::reqwest)
/// for reqwest's own error.
///
/// ```
/// # async fn demo() {
/// use mka1_auth::outbound::{ReqwestErrorKind, ReqwestService};
/// use tower::ServiceExt;
///
/// // A closed port: the connection is refused, no timeout.
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// let req = http::Request::get(format!("http://127.0.0.1:{port}/")).body(String::new()).unwrap();
/// let err = ReqwestService::new().unwrap().oneshot(req).await.unwrap_err();
/// assert_eq!(err.kind(), ReqwestErrorKind::Failed);
/// assert!(err.reqwest().is_some_and(|e| e.is_connect()));
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
/// ```
#[derive(Debug)]
pub struct ReqwestError(ErrorInner);

#[derive(Debug)]
enum ErrorInner {
    Reqwest(reqwest::Error),
    /// The response head did not arrive in time; the `TimedOut` I/O error is its source,
    /// so code that looks for one in the chain finds it.
    ResponseTimeout(std::io::Error),
}

impl ReqwestError {
    fn from_reqwest(error: reqwest::Error) -> Self {
        ReqwestError(ErrorInner::Reqwest(error.without_url()))
    }

    /// Whether a timeout ended the call (reqwest's connect or read timeout, or the response
    /// timeout), or something else.
    pub fn kind(&self) -> ReqwestErrorKind {
        let timeout = match &self.0 {
            ErrorInner::Reqwest(e) => e.is_timeout(),
            ErrorInner::ResponseTimeout(_) => true,
        };
        if timeout {
            ReqwestErrorKind::Timeout
        } else {
            ReqwestErrorKind::Failed
        }
    }

    /// reqwest's error, when it is one.
    pub fn reqwest(&self) -> Option<&reqwest::Error> {
        match &self.0 {
            ErrorInner::Reqwest(e) => Some(e),
            ErrorInner::ResponseTimeout(_) => None,
        }
    }
}

impl fmt::Display for ReqwestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorInner::Reqwest(e) => e.fmt(f),
            ErrorInner::ResponseTimeout(_) => {
                f.write_str("the response head did not arrive within the response timeout")
            }
        }
    }
}

impl std::error::Error for ReqwestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            ErrorInner::Reqwest(e) => Some(e),
            ErrorInner::ResponseTimeout(e) => Some(e),
        }
    }
}

type ClientFuture = <reqwest::Client as Service<reqwest::Request>>::Future;

pin_project! {
    /// The response future of [`ReqwestService`].
    pub struct ReqwestFuture {
        #[pin]
        inner: Option<ClientFuture>,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        error: Option<reqwest::Error>,
    }
}

impl Future for ReqwestFuture {
    type Output = Result<http::Response<reqwest::Body>, ReqwestError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(fut) = this.inner.as_pin_mut() else {
            return match this.error.take() {
                Some(e) => Poll::Ready(Err(ReqwestError::from_reqwest(e))),
                None => panic!("ReqwestFuture polled after completion"),
            };
        };
        if let Poll::Ready(result) = fut.poll(cx) {
            return Poll::Ready(
                result
                    .map(http::Response::from)
                    .map_err(ReqwestError::from_reqwest),
            );
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            if deadline.poll(cx).is_ready() {
                let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
                return Poll::Ready(Err(ReqwestError(ErrorInner::ResponseTimeout(timed_out))));
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}
