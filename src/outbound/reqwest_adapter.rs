//! reqwest as the outbound layer's client (feature `remote`), with redirects that never leave
//! the first request's origin.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::ConfigError;
use crate::net::fetch;

/// A reqwest redirect policy that follows a redirect (at most 10) only while it stays on
/// the origin (scheme, host and port) of the first request.
///
/// Use it for any reqwest client that sends credentials set by hand or by this crate:
/// reqwest's default policy strips `Authorization` on a hop to another host but keeps
/// every other header, `X-On-Behalf-Of` included. A redirect it stops is returned to the
/// caller as the 3xx response.
///
/// ```
/// let client = reqwest::Client::builder()
///     .redirect(mka1_auth::outbound::same_origin_redirects())
///     .build()?;
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
/// ```
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    fetch::redirect_policy(10)
}

/// reqwest's client as a `Service<http::Request<B>>`, so the outbound layer can wrap it.
///
/// It always uses [`same_origin_redirects`]: whatever redirect policy the builder you
/// pass had is replaced, so headers set by the layer never follow a redirect to another
/// origin. Responses come back as `http::Response<reqwest::Body>`.
///
/// ```
/// use mka1_auth::outbound::{ApiKey, OutboundLayer, ReqwestService};
/// use tower::ServiceBuilder;
///
/// let client = ServiceBuilder::new()
///     .layer(OutboundLayer::builder(ApiKey::new("mk_live_example")?).allow_origin("https://apigw.mka1.com").build()?)
///     .service(ReqwestService::new()?);
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// A service over the crate's reqwest client: [`same_origin_redirects`], and the default
    /// timeouts of every client the crate builds: 5 s to connect, and 30 s for any one read
    /// (the response head, then each body chunk), so an upstream that never answers, or
    /// trickles, cannot hold a request forever. For other timeouts, pass a builder to
    /// [`from_builder`](Self::from_builder).
    pub fn new() -> Result<Self, ConfigError> {
        fetch::build(fetch::client_builder(10)).map(|client| ReqwestService { client })
    }

    /// A service over a client built from `builder`, with its redirect policy replaced by
    /// [`same_origin_redirects`]. Its timeouts are the builder's (reqwest's default is
    /// none): set them, as here.
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
        Ok(ReqwestService { client })
    }

    /// The reqwest client inside.
    pub fn get_ref(&self) -> &reqwest::Client {
        &self.client
    }
}

impl<B: Into<reqwest::Body>> Service<Request<B>> for ReqwestService {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = match reqwest::Request::try_from(req) {
            Ok(req) => Some(self.client.call(req)),
            Err(e) => {
                return ReqwestFuture {
                    inner: None,
                    error: Some(e),
                }
            }
        };
        ReqwestFuture { inner, error: None }
    }
}

type ClientFuture = <reqwest::Client as Service<reqwest::Request>>::Future;

pin_project! {
    /// The response future of [`ReqwestService`].
    pub struct ReqwestFuture {
        #[pin]
        inner: Option<ClientFuture>,
        error: Option<reqwest::Error>,
    }
}

impl Future for ReqwestFuture {
    type Output = Result<http::Response<reqwest::Body>, reqwest::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(fut) => fut.poll(cx).map_ok(http::Response::from),
            None => match this.error.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => panic!("ReqwestFuture polled after completion"),
            },
        }
    }
}

impl fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}
