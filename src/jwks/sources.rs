//! Where a verifier's keys come from: a [`KeySource`] (a static set, or a remote one) and how
//! a `kid` is looked up in it ([`Lookup`]); and a verifier's sources, one for every token or
//! one per issuer
//! ([`VerifierBuilder::issuer_jwks_url`](crate::VerifierBuilder::issuer_jwks_url) and
//! friends), where the token's `iss` picks the source before any key is looked up.
//!
//! Each issuer's source is a [`KeySource`] of its own: its own keys, fetches, cooldown and
//! status. A `kid` is only ever looked up in the source of the token's issuer, so a key one
//! issuer publishes never verifies another issuer's token, whatever `kid` the two share.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

#[cfg(feature = "remote")]
use super::remote;
use super::{Held, KeySet, KeySetStatus, VerificationKey};
#[cfg(feature = "remote")]
use crate::error::ConfigError;
use crate::error::{Error, ErrorKind};

/// The outcome of looking a `kid` up without doing any I/O.
///
/// A static set lends its key: a fresh verification then writes to no memory that another
/// thread's verification also writes (no shared reference count), so threads scale.
pub(crate) enum Lookup<'a> {
    /// The key is held.
    Found(Cow<'a, Arc<VerificationKey>>),
    /// Not held; a refetch may find it (or it is not worth one: the source decides).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    NeedsFetch,
    /// Not held, and nothing could find it (a static set): fail at once, no slow path.
    Unknown,
}

/// Where a verifier's keys come from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A fixed key set given at build time.
    Static(Arc<KeySet>),
    /// A JWKS URL, fetched and cached.
    #[cfg(feature = "remote")]
    Remote(remote::RemoteJwks),
}

impl KeySource {
    /// Look a key up in what is held at `now` (the verification's one clock reading),
    /// without waiting on I/O.
    pub(crate) fn lookup(&self, kid: &str, now: SystemTime) -> Lookup<'_> {
        match self {
            KeySource::Static(set) => {
                // A static set never goes stale: the time is a remote set's only.
                let _ = now;
                match set.get(kid) {
                    Some(k) => Lookup::Found(Cow::Borrowed(k)),
                    None => Lookup::Unknown,
                }
            }
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.lookup(kid, now),
        }
    }

    /// After a miss: try to obtain `kid` (remote: one guarded refetch). Returns the key, or
    /// `UnknownKeyId` / `KeysUnavailable`.
    pub(crate) async fn resolve_missing(&self, kid: &str) -> Result<Arc<VerificationKey>, Error> {
        match self {
            KeySource::Static(_) => {
                // A static set has nothing more to find, whatever the kid.
                let _ = kid;
                Err(Error::new(ErrorKind::UnknownKeyId))
            }
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.resolve_missing(kid).await,
        }
    }

    /// Fetch a remote set now (or wait for the fetch in flight); a static set is ready.
    pub(crate) async fn refresh(&self) -> Result<KeySetStatus, Error> {
        match self {
            KeySource::Static(_) => Ok(self.status()),
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.refresh().await,
        }
    }

    /// Keep a remote set fresh in the background; a static set needs nothing.
    #[cfg(feature = "remote")]
    pub(crate) fn spawn_refresher(&self) -> Result<remote::Refresher, ConfigError> {
        match self {
            KeySource::Static(_) => Ok(remote::Refresher::idle()),
            KeySource::Remote(remote) => remote.spawn_refresher(),
        }
    }

    /// Where the key set stands, for health endpoints.
    pub(crate) fn status(&self) -> KeySetStatus {
        match self {
            KeySource::Static(set) => KeySetStatus {
                remote: false,
                key_count: set.len(),
                skipped_keys: set.skipped().len(),
                usable: true,
                stale: false,
                fetching: false,
                last_success: None,
                last_error: None,
                last_error_at: None,
                consecutive_failures: 0,
                next_refresh: None,
                per_issuer: Vec::new(),
            },
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.status(),
        }
    }

    /// Whether the key held for `kid` at `now` is still the one with this serial (a key that
    /// left the set, or was replaced, takes its cached tokens with it): until when the
    /// answer may be reused (Unix milliseconds, see [`Held`]), or `None` when it is not. This
    /// writes nothing shared, so threads answering cache hits do not slow each other (a
    /// remote set reads the snapshot the thread remembers, after one atomic load).
    pub(crate) fn held_until(&self, kid: &str, serial: u64, now: SystemTime) -> Option<u64> {
        match self {
            KeySource::Static(set) => {
                // A static set never goes stale: the time is a remote set's only.
                let _ = now;
                set.get(kid)
                    .is_some_and(|k| k.serial == serial)
                    .then_some(u64::MAX)
            }
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.held_until(kid, serial, now),
        }
    }
}

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
    /// [`KeySource::held_until`]): a [`Held`] stamp that lets the next hits skip the look-up
    /// while no key set changes, or `None`.
    #[inline]
    pub(crate) fn confirm(
        &self,
        issuer: Option<&str>,
        kid: &str,
        serial: u64,
        now: SystemTime,
    ) -> Option<Held> {
        // Read before the look-up: a set published during it makes the stamp stale at once.
        let epoch = Held::begin();
        let (_, source) = self.for_issuer(issuer)?;
        let until_ms = source.held_until(kid, serial, now)?;
        Some(Held::stamp(epoch, until_ms))
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
