//! Why the outbound side refused to send a request: [`Refusal`], with a [`RefusalKind`].
//!
//! Kept apart from the inbound [`Error`](crate::Error): an inbound error becomes an RFC 6750
//! answer to a client, while a refusal is about this service's own onward call.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Described, Kind};

/// What kind of outbound refusal; see [`Refusal::kind`].
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
///
/// ```
/// use mka1_auth::outbound::{Refusal, RefusalKind};
///
/// fn page_an_operator(refusal: &Refusal) -> bool {
///     match refusal.kind() {
///         RefusalKind::ApiKeyRejected => true, // the key needs replacing
///         RefusalKind::HostNotAllowed => true, // a wiring bug
///         _ => false,
///     }
/// }
/// assert!(page_an_operator(&Refusal::new(RefusalKind::ApiKeyRejected)));
/// assert!(!page_an_operator(&Refusal::new(RefusalKind::Exchange)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The request went to an origin credentials may not be sent to.
    HostNotAllowed,
    /// No credential could be had for the request (no inbound token to forward, no end user
    /// for an exchanged token, an unusable credential).
    CredentialUnavailable,
    /// The MKA1 exchange endpoint refused or failed the exchange; the
    /// [`ExchangeError`](crate::exchange::ExchangeError) is the refusal's source.
    Exchange,
    /// MKA1 does not accept the configured API key (401): it is unknown, revoked,
    /// regenerated or expired. Retrying will not help; an operator must check the key. The
    /// [`ExchangeError`](crate::exchange::ExchangeError) is the refusal's source.
    ApiKeyRejected,
}

impl RefusalKind {
    /// A short, stable, lowercase description of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::HostNotAllowed => "credentials may not be sent to this host",
            RefusalKind::CredentialUnavailable => {
                "no credential is available for the outbound call"
            }
            RefusalKind::Exchange => "the mka1 token exchange failed",
            RefusalKind::ApiKeyRejected => "mka1 rejected the api key",
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Kind for RefusalKind {
    fn describe(self) -> &'static str {
        self.as_str()
    }
}

/// An outbound request the crate would not send, or a credential it could not get.
///
/// Opaque: inspect it with [`Refusal::kind`]. Its `Display` is a short lowercase sentence
/// that never contains a credential. Cheap to clone.
///
/// ```
/// use mka1_auth::outbound::{Refusal, RefusalKind};
///
/// let refusal = Refusal::new(RefusalKind::HostNotAllowed);
/// assert_eq!(refusal.kind(), RefusalKind::HostNotAllowed);
/// assert_eq!(refusal.to_string(), "credentials may not be sent to this host");
/// ```
#[derive(Clone)]
pub struct Refusal(Described<RefusalKind>);

impl Refusal {
    /// A refusal of this kind with no further detail.
    pub fn new(kind: RefusalKind) -> Self {
        Refusal(Described::new(kind, None))
    }

    /// A refusal of this kind with a short detail appended to its message (never a secret).
    pub fn with_detail(kind: RefusalKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Refusal(Described::new(kind, Some(detail.into())))
    }

    /// Attach an underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.set_source(source);
        self
    }

    /// What kind of refusal.
    pub fn kind(&self) -> RefusalKind {
        self.0.kind
    }

    /// The detail, if any, without the kind's description.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail()
    }
}

impl From<RefusalKind> for Refusal {
    fn from(kind: RefusalKind) -> Self {
        Refusal::new(kind)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Refusal");
        self.0.debug_fields(&mut d);
        d.finish()
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
