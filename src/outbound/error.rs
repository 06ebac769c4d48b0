//! [`OutboundError`]: the layer refused the request, or the inner client failed.

use std::fmt;

use super::Refusal;

/// The error of an [`Outbound`](super::Outbound) client: the layer refused the request, or the inner client
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
