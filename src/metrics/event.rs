//! What the crate counts: one [`Event`] per thing that happened, and what a watched thing
//! shows the gauges ([`Reading`]: a remote key set's [`KeySetGauges`], a revocation
//! source's [`RevocationGauges`]). Shared by the counting module (feature `metrics`)
//! and its no-op stand-in, so the hooks in the rest of the crate read the same either way.

#[cfg(any(feature = "remote", feature = "redis"))]
use std::time::Duration;

use crate::error::ErrorKind;

/// One countable happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The layer let a request with a verified token through, and nothing behind it
    /// refused it.
    Allowed,
    /// The layer (optional mode) let a request without credentials through, and nothing
    /// behind it refused it.
    Anonymous,
    /// The layer, the permissions layer or an extractor refused a request.
    Refused(ErrorKind),
    /// The verified-token cache answered.
    CacheHit,
    /// The verified-token cache did not hold the token (or no longer could answer for it).
    CacheMiss,
    /// A JWKS fetch brought a key set.
    FetchOk,
    /// A JWKS fetch was answered 304: the held set is still current.
    FetchNotModified,
    /// A JWKS fetch failed.
    FetchError,
    /// An exchange minted a token.
    ExchangeOk,
    /// A token was answered from the exchange client's cache (or from another caller's
    /// exchange in flight).
    ExchangeCached,
    /// An exchange sent its request again after a failed attempt.
    ExchangeRetried,
    /// An exchange failed.
    ExchangeError,
}

/// One remote key set's reading for the gauges, taken when publishing.
#[cfg(feature = "remote")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeySetGauges {
    /// Usable keys held (0 while the held set is not usable).
    pub(crate) usable_keys: usize,
    /// Time since the last successful fetch, on the key set's clock (`None` before the
    /// first).
    pub(crate) since_last_fetch: Option<Duration>,
}

/// One revocation source's reading for the gauges (feature `redis`), taken when publishing.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RevocationGauges {
    /// The (merged) rules in force.
    pub(crate) rules: usize,
    /// How long its snapshot has been stale, on its clock (`None` while the source is
    /// reachable).
    pub(crate) stale_for: Option<Duration>,
}

/// What one watched thing reads when the gauges are published: the one list of watched
/// things (`metrics::watch`) holds key sets and revocation sources alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A remote key set's.
    #[cfg(feature = "remote")]
    KeySet(KeySetGauges),
    /// A revocation source's.
    #[cfg(feature = "redis")]
    Revocations(RevocationGauges),
}

#[cfg(feature = "remote")]
impl From<KeySetGauges> for Reading {
    fn from(gauges: KeySetGauges) -> Self {
        Reading::KeySet(gauges)
    }
}

#[cfg(feature = "redis")]
impl From<RevocationGauges> for Reading {
    fn from(gauges: RevocationGauges) -> Self {
        Reading::Revocations(gauges)
    }
}
