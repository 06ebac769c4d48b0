//! A verifier's key sources: one for every token, or one per issuer
//! ([`VerifierBuilder::issuer_jwks_url`](crate::VerifierBuilder::issuer_jwks_url) and
//! friends), where the token's `iss` picks the source before any key is looked up.
//!
//! Each issuer's source is a [`KeySource`] of its own: its own keys, fetches, cooldown and
//! status. A `kid` is only ever looked up in the source of the token's issuer, so a key one
//! issuer publishes never verifies another issuer's token, whatever `kid` the two share.

use std::time::SystemTime;

use super::{KeySetStatus, KeySource};
#[cfg(feature = "remote")]
use crate::error::ConfigError;
use crate::error::Error;

/// Which of a verifier's sources: an index into them, `0` for a single source.
pub(crate) type SourceId = usize;

/// Where a verifier's keys come from.
pub(crate) enum KeySources {
    /// One source for every token, whatever its issuer.
    One(KeySource),
    /// One source per issuer; a token of any other issuer is refused before any key work.
    ByIssuer(Box<[(Box<str>, KeySource)]>),
}

impl KeySources {
    /// Whether the token's `iss` picks its source.
    #[inline]
    pub(crate) fn by_issuer(&self) -> bool {
        matches!(self, KeySources::ByIssuer(_))
    }

    /// The source for a token of this issuer: the single source whatever the issuer, else
    /// the issuer's own, or `None` for an issuer without one.
    #[inline]
    pub(crate) fn for_issuer(&self, issuer: Option<&str>) -> Option<(SourceId, &KeySource)> {
        match self {
            KeySources::One(source) => Some((0, source)),
            KeySources::ByIssuer(sources) => {
                let issuer = issuer?;
                sources
                    .iter()
                    .position(|(iss, _)| **iss == *issuer)
                    .map(|id| (id, &sources[id].1))
            }
        }
    }

    /// The source with this id (a single source has only `0`).
    pub(crate) fn get(&self, id: SourceId) -> Option<&KeySource> {
        match self {
            KeySources::One(source) => (id == 0).then_some(source),
            KeySources::ByIssuer(sources) => sources.get(id).map(|(_, source)| source),
        }
    }

    /// Whether the key that verified a cached token of `issuer` is still held (see
    /// [`KeySource::still_holds`]).
    #[inline]
    pub(crate) fn still_hold(
        &self,
        issuer: Option<&str>,
        kid: &str,
        serial: u64,
        now: SystemTime,
    ) -> bool {
        self.for_issuer(issuer)
            .is_some_and(|(_, source)| source.still_holds(kid, serial, now))
    }

    /// Fetch every remote source now (or wait for its fetch in flight), one source after
    /// another: the combined status when a source is usable afterwards (as
    /// [`KeySetStatus::usable`] combines them), else the first source's error.
    pub(crate) async fn refresh(&self) -> Result<KeySetStatus, Error> {
        let sources = match self {
            KeySources::One(source) => return source.refresh().await,
            KeySources::ByIssuer(sources) => sources,
        };
        let mut first_error = None;
        for (_, source) in sources.iter() {
            if let Err(e) = source.refresh().await {
                first_error.get_or_insert(e);
            }
        }
        let status = self.status();
        match first_error {
            Some(e) if !status.usable => Err(e),
            _ => Ok(status),
        }
    }

    /// Keep every remote source fresh in the background, under one handle.
    #[cfg(feature = "remote")]
    pub(crate) fn spawn_refresher(&self) -> Result<super::remote::Refresher, ConfigError> {
        match self {
            KeySources::One(source) => source.spawn_refresher(),
            KeySources::ByIssuer(sources) => {
                let each = sources.iter().map(|(_, source)| source.spawn_refresher());
                Ok(super::remote::Refresher::all(
                    each.collect::<Result<Vec<_>, _>>()?,
                ))
            }
        }
    }

    /// Where the keys stand: the single source's status, or every issuer's combined with
    /// each one's in [`KeySetStatus::per_issuer`].
    pub(crate) fn status(&self) -> KeySetStatus {
        match self {
            KeySources::One(source) => source.status(),
            KeySources::ByIssuer(sources) => combined(
                sources
                    .iter()
                    .map(|(issuer, source)| (issuer.to_string(), source.status()))
                    .collect(),
            ),
        }
    }
}

/// Several issuers' statuses summed up (see [`KeySetStatus`] for how each field combines).
fn combined(per_issuer: Vec<(String, KeySetStatus)>) -> KeySetStatus {
    let all = || per_issuer.iter().map(|(_, status)| status);
    let latest_error = per_issuer
        .iter()
        .filter_map(|(issuer, s)| Some((s.last_error_at?, issuer, s.last_error.as_deref()?)))
        .max_by_key(|(at, _, _)| *at);
    KeySetStatus {
        remote: all().any(|s| s.remote),
        key_count: all().map(|s| s.key_count).sum(),
        skipped_keys: all().map(|s| s.skipped_keys).sum(),
        usable: all().any(|s| s.usable),
        stale: all().any(|s| s.stale),
        fetching: all().any(|s| s.fetching),
        last_success: all().filter_map(|s| s.last_success).max(),
        last_error: latest_error.map(|(_, issuer, e)| format!("issuer {issuer}: {e}")),
        last_error_at: latest_error.map(|(at, _, _)| at),
        consecutive_failures: all().map(|s| s.consecutive_failures).max().unwrap_or(0),
        next_refresh: all().filter_map(|s| s.next_refresh).min(),
        per_issuer,
    }
}
