//! [`JwksProbe`]: one fetch of a JWKS URL under the rules a verifier's remote key set
//! follows, for diagnostics and start-up checks (the `mka1-auth jwks` command uses it).
//!
//! It goes through the same code as a verifier's fetch (URL rules, origin-exact redirects,
//! timeout, body cap, the one document parser, the same key skip rules and the same
//! `Cache-Control` reading), but keeps nothing, schedules nothing, and hands back what a
//! verifier would not show: every entry of the document, a key set even when no key in it
//! is usable, and what the response said about freshness.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::error::FetchError;
use super::{RemoteJwks, RemoteJwksConfig};
use crate::clock::SystemClock;
use crate::error::{ConfigError, Error, ErrorKind};
use crate::jwks::{Algorithm, JwksDocument, KeySet};

/// Fetches a JWKS URL once, the way a [`Verifier`](crate::Verifier) built with
/// [`jwks_url`](crate::VerifierBuilder::jwks_url) and the default `jwks_*` settings would
/// (plain http for any host only with `allow_http`), and reports
/// what it found ([`ProbedJwks`]).
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth_dev_issuer::DevIssuer;
/// use mka1_auth::jwks::remote::JwksProbe;
/// use mka1_auth::VerifierBuilder;
///
/// let issuer = DevIssuer::start().await?;
/// let probe = JwksProbe::new(&issuer.jwks_url(), false, &VerifierBuilder::DEFAULT_ALGORITHMS)?;
/// let probed = probe.fetch().await?;
/// assert!(probed.keys().get(&issuer.current_kid()).is_some());
/// assert!(probed.keys().skipped().is_empty());
/// assert_eq!(probed.entries().len(), 1);
/// // The dev issuer serves its JWKS with `Cache-Control: public, max-age=300`.
/// assert_eq!(probed.cache_max_age(), Some(std::time::Duration::from_secs(300)));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct JwksProbe {
    jwks: RemoteJwks,
}

impl fmt::Debug for JwksProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksProbe")
            .field("url", &self.jwks.inner.url.as_str())
            .finish_non_exhaustive()
    }
}

impl JwksProbe {
    /// Check the URL as [`VerifierBuilder::build`](crate::VerifierBuilder::build) does
    /// (`https` unless loopback or `allow_http`, as
    /// [`jwks_allow_http`](crate::VerifierBuilder::jwks_allow_http)); no I/O. Keys are
    /// loaded for `algorithms`, a verifier's allow-list (a key no algorithm of it can use is
    /// skipped with [`SkipReason::UnsupportedAlgorithm`](crate::jwks::SkipReason)).
    pub fn new(
        url: &str,
        allow_http: bool,
        algorithms: &[Algorithm],
    ) -> Result<Self, ConfigError> {
        let config = RemoteJwksConfig::default().allow_http(allow_http);
        let jwks = RemoteJwks::new(url, config, Arc::new(SystemClock), algorithms.to_vec())?;
        Ok(JwksProbe { jwks })
    }

    /// Fetch the URL once, bounded by the fetch timeout.
    ///
    /// A fetch a verifier would count as failed because the document holds no usable key
    /// still answers here, with an empty [`ProbedJwks::keys`] that says why each key was
    /// skipped. Every other failure (transport, status, redirect, size, not a JWKS
    /// document) is an [`ErrorKind::KeysUnavailable`] error whose detail says what went
    /// wrong, without key material.
    pub async fn fetch(&self) -> Result<ProbedJwks, Error> {
        let config = &self.jwks.inner.config;
        let timeout = config.fetch_timeout;
        let unavailable = |why: String| Error::with_detail(ErrorKind::KeysUnavailable, why);
        let (body, cache_max_age) = tokio::time::timeout(timeout, self.jwks.fetch_body())
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
            .map_err(|e| unavailable(e.to_string()))?;
        let document: JwksDocument = serde_json::from_slice(&body)
            .map_err(|e| unavailable(FetchError::NotJwks(e.to_string()).to_string()))?;
        let keys = KeySet::from_entries(document.keys.clone(), &self.jwks.inner.algorithms);
        Ok(ProbedJwks {
            keys,
            entries: document.keys,
            cache_max_age,
            fresh_for: config.clamp_max_age(cache_max_age.unwrap_or(config.default_max_age)),
        })
    }
}

/// What one [`JwksProbe::fetch`] found.
///
/// `Debug` shows counts and freshness, never the entries (an `oct` entry a server wrongly
/// publishes holds a secret).
pub struct ProbedJwks {
    keys: KeySet,
    entries: Vec<Value>,
    cache_max_age: Option<Duration>,
    fresh_for: Duration,
}

impl ProbedJwks {
    /// The key set a verifier would load from this document: usable keys by `kid`, and
    /// [`skipped`](KeySet::skipped) ones with their reasons. Empty when no key is usable (a
    /// verifier counts such a fetch as failed and keeps its previous set).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The key set, for [`VerifierBuilder::key_set`](crate::VerifierBuilder::key_set).
    pub fn into_keys(self) -> KeySet {
        self.keys
    }

    /// The document's `keys` entries as served, in order, unchecked: for showing what each
    /// entry claims to be (`kty`, `alg`, `use`). Treat an `oct` entry's `k` as a secret.
    pub fn entries(&self) -> &[Value] {
        &self.entries
    }

    /// The response's `Cache-Control` max-age (the smallest, when several are given;
    /// `no-cache` and `no-store` count as zero), or `None` when it set none.
    pub fn cache_max_age(&self) -> Option<Duration> {
        self.cache_max_age
    }

    /// How long a verifier with the probe's options would treat this set as fresh: the
    /// max-age (or the default max-age without one) clamped to the max-age bounds (see
    /// [`jwks_max_age_bounds`](crate::VerifierBuilder::jwks_max_age_bounds)). A verifier refreshes at 80% of it.
    pub fn fresh_for(&self) -> Duration {
        self.fresh_for
    }
}

impl fmt::Debug for ProbedJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbedJwks")
            .field("keys", &self.keys)
            .field("entries", &self.entries.len())
            .field("cache_max_age", &self.cache_max_age)
            .field("fresh_for", &self.fresh_for)
            .finish()
    }
}
