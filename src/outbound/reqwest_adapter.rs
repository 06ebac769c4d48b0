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
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        if attempt.previous().len() > 10 || first != Some(attempt.url().origin()) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// reqwest's client as a `Service<http::Request<B>>`, so the outbound layer can wrap it.
///
/// It always uses [`same_origin_redirects`]: whatever redirect policy the builder you
/// pass had is replaced, so headers set by the layer never follow a redirect to another
/// origin. Responses come back as `http::Response<reqwest::Body>`.
///
/// ```
/// use mka1_auth::outbound::{ApiKey, Outbound, ReqwestService};
/// use tower::ServiceBuilder;
///
/// let client = ServiceBuilder::new()
///     .layer(Outbound::layer(ApiKey::new("mk_live_example")?, ["https://apigw.mka1.com"])?)
///     .service(ReqwestService::new()?);
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// A service over a reqwest client with default settings and
    /// [`same_origin_redirects`].
    pub fn new() -> Result<Self, ConfigError> {
        Self::from_builder(reqwest::Client::builder())
    }

    /// A service over a client built from `builder`, with its redirect policy replaced by
    /// [`same_origin_redirects`].
    pub fn from_builder(builder: reqwest::ClientBuilder) -> Result<Self, ConfigError> {
        let client = builder
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| {
                ConfigError::with_detail(crate::ConfigErrorKind::HttpClient, e.to_string())
            })?;
        Ok(ReqwestService { client })
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
