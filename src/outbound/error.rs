//! [`OutboundError`]: the layer refused the request, or the inner client failed.

use std::fmt;

use super::Refusal;

/// What kind of [`OutboundError`]; see [`OutboundError::kind`].
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutboundErrorKind {
    /// The layer refused the request before it was sent: a host not allowed, no credential,
    /// or a failed exchange ([`OutboundError::refusal`] tells which). Nothing went over the
    /// network to the target.
    Refused,
    /// The inner client failed ([`OutboundError::service_error`]).
    Service,
}

/// The error of an [`Outbound`](super::Outbound) client: the layer refused the request, or
/// the inner client failed. Opaque: inspect it with [`kind`](OutboundError::kind), then
/// [`refusal`](OutboundError::refusal) or [`service_error`](OutboundError::service_error).
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::outbound::{ApiKey, OutboundErrorKind, OutboundLayer, RefusalKind};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// let client = service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::io::Error>(http::Response::new(()))
/// });
/// let client = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
///     .allow_origin("https://apigw.mka1.com")
///     .build()?
///     .layer(client);
/// let err = client.oneshot(http::Request::get("https://elsewhere.example/").body(())?).await.unwrap_err();
/// assert_eq!(err.kind(), OutboundErrorKind::Refused);
/// assert_eq!(err.refusal().map(|r| r.kind()), Some(RefusalKind::HostNotAllowed));
/// assert!(err.service_error().is_none());
/// assert!(err.to_string().starts_with("outbound request refused: credentials may not be sent"));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct OutboundError<E>(Inner<E>);

#[derive(Debug)]
enum Inner<E> {
    Refused(Refusal),
    Service(E),
}

impl<E> OutboundError<E> {
    /// The layer refused the request.
    pub(crate) fn refused(refusal: Refusal) -> Self {
        OutboundError(Inner::Refused(refusal))
    }

    /// The inner client failed.
    pub(crate) fn service(error: E) -> Self {
        OutboundError(Inner::Service(error))
    }

    /// Whether the layer refused the request or the inner client failed.
    pub fn kind(&self) -> OutboundErrorKind {
        match self.0 {
            Inner::Refused(_) => OutboundErrorKind::Refused,
            Inner::Service(_) => OutboundErrorKind::Service,
        }
    }

    /// The layer's refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.0 {
            Inner::Refused(e) => Some(e),
            Inner::Service(_) => None,
        }
    }

    /// The inner client's error, if that is what this is.
    pub fn service_error(&self) -> Option<&E> {
        match &self.0 {
            Inner::Refused(_) => None,
            Inner::Service(e) => Some(e),
        }
    }

    /// The inner client's error, owned; the refusal otherwise.
    ///
    /// ```
    /// use mka1_auth::outbound::{ApiKey, OutboundLayer};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = service_fn(|_: http::Request<()>| async {
    ///     Err::<http::Response<()>, _>(std::io::Error::other("connection reset"))
    /// });
    /// let client = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
    ///     .allow_origin("https://apigw.mka1.com")
    ///     .build()?
    ///     .layer(client);
    /// let err = client.oneshot(http::Request::get("https://apigw.mka1.com/").body(())?).await.unwrap_err();
    /// let io: std::io::Error = err.into_service_error().unwrap();
    /// assert_eq!(io.to_string(), "connection reset");
    /// # Ok(()) }
    /// ```
    pub fn into_service_error(self) -> Result<E, Refusal> {
        match self.0 {
            Inner::Refused(e) => Err(e),
            Inner::Service(e) => Ok(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for OutboundError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Refused(e) => write!(f, "outbound request refused: {e}"),
            Inner::Service(e) => write!(f, "outbound request failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for OutboundError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Inner::Refused(e) => Some(e),
            Inner::Service(e) => Some(e),
        }
    }
}
