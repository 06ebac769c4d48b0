//! [`RevocationStatus`]: where the revocation rules stand, for health endpoints.

use std::time::SystemTime;

/// Where a verifier's revocation rules stand ([`Revocations::status`](super::Revocations::status)).
///
/// ```
/// use mka1_auth::revocation::Revocations;
///
/// let status = Revocations::in_process().status();
/// assert!(status.loaded);
/// assert_eq!(status.rule_count, 0);
/// assert_eq!(status.stale_since, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationStatus {
    /// Whether rules have been loaded at least once. Until then, requests are answered 503
    /// (unless serving without rules until loaded).
    pub loaded: bool,
    /// How many (merged) rules are in force.
    pub rule_count: usize,
    /// When the rules were last loaded whole.
    pub last_loaded: Option<SystemTime>,
    /// Since when the source has been unreachable (the snapshot kept is stale); `None` while
    /// it is reachable.
    pub stale_since: Option<SystemTime>,
    /// How many stored values did not parse and were skipped.
    pub skipped_values: u64,
    /// Why the source was last unreachable, while it is.
    pub last_error: Option<String>,
}
