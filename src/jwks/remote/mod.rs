//! Remote JWKS (feature `remote`): fetch the issuer's key set over HTTPS and keep it fresh
//! without ever making a request wait for I/O it does not need.
//!
//! Set it up with [`VerifierBuilder::jwks_url`](crate::VerifierBuilder::jwks_url) and tune it
//! with the builder's `jwks_*` setters
//! ([`jwks_fetch_timeout`](crate::VerifierBuilder::jwks_fetch_timeout) and those after it).
//! What it does:
//!
//! - **Snapshot reads.** Keys live in a shared snapshot that verification reads without
//!   waiting: a token whose `kid` is held never waits for a fetch, even while one hangs.
//! - **Freshness.** A fetched set is fresh for the response's `Cache-Control: max-age`
//!   (clamped to 1 minute ..= 24 hours; 10 minutes without one). At 80% of that age the next
//!   verification starts a background refresh; requests keep using the held set meanwhile.
//! - **Unknown `kid`.** One refetch at a time (concurrent requests for unknown keys share it),
//!   then a cooldown (30 s) during which unknown keys fail fast with
//!   [`ErrorKind::UnknownKeyId`] without fetching. A rotated-in key is accepted as soon as
//!   that one refetch sees it; a removed key stops verifying after the next successful fetch.
//! - **Cold start.** Building the verifier does no I/O. The first requests wait for the one
//!   in-flight fetch, bounded by the fetch timeout (5 s). That fetch opens the cooldown only
//!   if a waiting request's `kid` is still missing afterwards (or the fetch failed), so a key
//!   rotated in right after start-up is picked up by the first refetch, with no wait.
//! - **Outage.** A failed fetch keeps the last good set, served for up to 24 hours past its
//!   max-age (stale-if-error), and is retried with exponential backoff and jitter. With no
//!   usable set, verification fails with [`ErrorKind::KeysUnavailable`] and
//!   [`Error::retry_after`](crate::Error::retry_after) says when the next fetch may run:
//!   then requests fetch at most once per cooldown, whatever the backoff has grown to, so
//!   the endpoint's return ends the refusals within one cooldown.
//! - **Limits.** The whole fetch is bounded by the timeout; the body by a size cap (256 KiB);
//!   `https` is required except for loopback hosts or an explicit opt-in. A non-200 status, a
//!   body that is not a JWKS document, one over the cap, or one with no usable key is a
//!   failed fetch.
//! - **Origin.** Keys come only from the JWKS URL's origin: its scheme, host and port
//!   (RFC 6454). Redirects are followed (at most 3) only within that origin; a redirect
//!   anywhere else (another port, another host name for the same address, `http` to `https`)
//!   is not followed, and the fetch fails, keeping the held set like any failed fetch.
//! - **Observability.** `tracing` events for fetch start, success (key and skipped counts),
//!   failure (reason) and cooldown hits;
//!   [`Verifier::key_set_status`](crate::Verifier::key_set_status) for health endpoints.
//!
//! Time for freshness, cooldown and stale windows comes from the verifier's
//! [`Clock`](crate::Clock); only the fetch itself waits on real time.
//!
//! ```
//! use std::time::Duration;
//! use mka1_auth::Verifier;
//!
//! let verifier = Verifier::builder()
//!     .jwks_url("https://apigw.mka1.com/api/v1/authentication/jwks")
//!     .jwks_fetch_timeout(Duration::from_secs(3))
//!     .audience("https://api.example.com")
//!     .build()?;
//! // Nothing has been fetched yet: the first token that needs a key triggers the fetch.
//! assert!(!verifier.key_set_status().usable);
//! # Ok::<(), mka1_auth::ConfigError>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::{KeySet, KeySetStatus, Lookup, VerificationKey};
use crate::clock::SharedClock;
use crate::error::{ConfigError, Error, ErrorKind};
use crate::jwks::Algorithm;
use crate::metrics::KeySetGauges;

pub(crate) mod config;
mod error;
mod fetch;
mod http;
mod probe;
mod published;
mod refresher;
pub(crate) use config::RemoteJwksConfig;
#[cfg(test)]
use config::DEFAULT_MAX_AGE;
#[cfg(test)]
pub(crate) use config::DEFAULT_RETRY_INITIAL;
use http::{build_client, check_url, Validators};
// For the `mka1-auth` command line only (one fetch under the verifier's rules); not part of
// the library's API.
#[doc(hidden)]
pub use probe::{JwksProbe, ProbedJwks};
use published::Published;
pub use refresher::Refresher;

/// A remote key set: shared, cheap to clone.
#[derive(Clone)]
pub(crate) struct RemoteJwks {
    inner: Arc<RemoteKeySetState>,
}

/// Everything a remote key set and its clones share: settings, the published snapshot and
/// the fetch bookkeeping.
struct RemoteKeySetState {
    url: Url,
    config: RemoteJwksConfig,
    client: reqwest::Client,
    clock: SharedClock,
    algorithms: Vec<Algorithm>,
    /// What verification reads; replaced whole on each successful fetch.
    snapshot: Published,
    /// Fetch bookkeeping; never held across an await.
    state: Mutex<FetchState>,
    /// Bumped after every fetch; waiters for an in-flight fetch watch it.
    completed: watch::Sender<u64>,
    /// When the next background refresh is due (Unix milliseconds), for a lock-free check
    /// on the hot path. `u64::MAX` when none is scheduled.
    refresh_due_ms: AtomicU64,
}

struct Snapshot {
    keys: Arc<KeySet>,
    /// The JWK entries of the usable keys, to keep an unchanged key's identity across
    /// refreshes (tokens cached against it stay cached).
    entries: HashMap<Box<str>, Value>,
    /// Past this the set is stale: still served, but a refresh is overdue.
    expires_at: SystemTime,
    /// Past this the set is not used at all (max-age plus the stale-if-error window).
    usable_until: SystemTime,
    /// What identifies the document this set came from, for conditional fetches.
    validators: Validators,
}

/// Fetch bookkeeping: whether one runs, and when the next may.
#[derive(Default)]
struct FetchState {
    fetching: bool,
    /// Someone waits on the in-flight fetch for a `kid` the held set lacks: the cooldown
    /// starts when it completes. Waiters while no usable set is held (a cold start, or
    /// keys past their stale window) do not set this:
    /// they start the cooldown themselves only if their `kid` is still missing afterwards,
    /// so a start-up fetch whose keys were all found leaves the first unknown-`kid` refetch
    /// (a key rotation) free.
    on_demand: bool,
    cooldown_until: Option<SystemTime>,
    retry_at: Option<SystemTime>,
    failures: u32,
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    next_refresh: Option<SystemTime>,
}

impl FetchState {
    /// The earliest time an on-demand fetch may start.
    fn gate(&self) -> Option<SystemTime> {
        self.cooldown_until.max(self.retry_at)
    }
}

impl RemoteJwks {
    /// Check the URL and options; no I/O, callable outside a runtime.
    pub(crate) fn new(
        url: &str,
        config: RemoteJwksConfig,
        clock: SharedClock,
        algorithms: Vec<Algorithm>,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        let url = check_url(url, config.allow_http)?;
        let client = match &config.client {
            Some(client) => client.clone(),
            None => build_client()?,
        };
        let (completed, _) = watch::channel(0);
        let jwks = RemoteJwks {
            inner: Arc::new(RemoteKeySetState {
                url,
                config,
                client,
                clock,
                algorithms,
                snapshot: Published::new(),
                state: Mutex::new(FetchState::default()),
                completed,
                refresh_due_ms: AtomicU64::new(u64::MAX),
            }),
        };
        crate::metrics::watch(jwks.gauges_while_alive());
        Ok(jwks)
    }

    /// This set's gauge reading, for as long as the set lives (for the metrics gauges, which
    /// must not keep it alive): its usable keys and the time since its last successful fetch,
    /// on its clock.
    fn gauges_while_alive(&self) -> impl Fn() -> Option<KeySetGauges> + Send + Sync + 'static {
        let weak = Arc::downgrade(&self.inner);
        move || {
            let jwks = RemoteJwks {
                inner: weak.upgrade()?,
            };
            let (status, now) = (jwks.status(), jwks.inner.clock.now());
            Some(KeySetGauges {
                usable_keys: if status.usable { status.key_count } else { 0 },
                since_last_fetch: status
                    .last_success
                    .map(|fetched| now.duration_since(fetched).unwrap_or_default()),
            })
        }
    }

    /// Look `kid` up in the held set without waiting. Starts a background refresh when one
    /// is due and a Tokio runtime is at hand.
    pub(crate) fn lookup(&self, kid: &str, now: SystemTime) -> Lookup<'static> {
        let found = self.inner.snapshot.read(|snapshot| match snapshot {
            Some(s) if now < s.usable_until => Some(s.keys.get(kid).cloned()),
            _ => None,
        });
        let Some(found) = found else {
            return Lookup::NeedsFetch;
        };
        if unix_millis(now) >= self.inner.refresh_due_ms.load(Ordering::Acquire) {
            self.refresh_in_background(now);
        }
        match found {
            Some(key) => Lookup::Found(Cow::Owned(key)),
            None => Lookup::NeedsFetch,
        }
    }

    /// After a miss: join the in-flight fetch or start one (unless the cooldown or retry
    /// backoff forbids it), then look again.
    pub(crate) async fn resolve_missing(&self, kid: &str) -> Result<Arc<VerificationKey>, Error> {
        let mut launch = None;
        let cold;
        let mut done = {
            let mut state = self.state();
            let now = self.inner.clock.now();
            if let Some(key) = self.held_key(kid, now) {
                return Ok(key);
            }
            if !state.fetching {
                if let Some(gate) = self.pending_gate(&state, now) {
                    tracing::debug!(
                        host = self.host(),
                        path = self.inner.url.path(),
                        wait_ms = millis(gate.duration_since(now).unwrap_or_default()),
                        "jwks refetch cooldown: not fetching for an unknown kid"
                    );
                    return Err(self.miss_error(&state, now));
                }
                let Ok(runtime) = Handle::try_current() else {
                    return Err(self.no_runtime());
                };
                let reason = if state.last_success.is_none() {
                    "cold start"
                } else {
                    "unknown kid"
                };
                launch = Some(self.claim_fetch(&mut state, runtime, reason));
            }
            // Nothing usable held (a cold start, or keys past their stale window): the
            // missing kid says nothing about an attack, so only a miss after the fetch
            // opens the cooldown.
            cold = self.usable_snapshot(now).is_none();
            state.on_demand |= !cold;
            self.inner.completed.subscribe()
        };
        if let Some(launch) = launch {
            launch.spawn();
        }
        // The sender lives as long as `self`; the fetch task always reports (or its guard
        // does when it is dropped), so this wait ends within the fetch timeout.
        let _ = done.changed().await;
        let now = self.inner.clock.now();
        if let Some(key) = self.held_key(kid, now) {
            return Ok(key);
        }
        let mut state = self.state();
        if cold {
            self.start_cooldown(&mut state, now);
        }
        Err(self.miss_error(&state, now))
    }

    /// Open the unknown-`kid` cooldown from `now`, unless one is already running.
    fn start_cooldown(&self, state: &mut FetchState, now: SystemTime) {
        let cooldown = self.inner.config.cooldown;
        let running = state.cooldown_until.is_some_and(|until| {
            until
                .duration_since(now)
                .is_ok_and(|left| !left.is_zero() && left <= cooldown)
        });
        if !running {
            state.cooldown_until = Some(later(now, cooldown));
        }
    }

    /// Fetch now, or join the fetch in flight, and wait for it to finish: the warm-up that
    /// makes the set usable before the first token needs it. A retry backoff after failed
    /// fetches still holds (nothing is fetched before it ends), so calling this often costs
    /// the endpoint no more than requests would. The status after, or why no set is usable.
    pub(crate) async fn refresh(&self) -> Result<KeySetStatus, Error> {
        self.refresh_for("refresh").await
    }

    /// [`refresh`](Self::refresh), logging `reason` when a fetch starts.
    async fn refresh_for(&self, reason: &'static str) -> Result<KeySetStatus, Error> {
        let mut launch = None;
        let mut done = {
            let mut state = self.state();
            let now = self.inner.clock.now();
            let retry_max = self.inner.config.retry_max;
            let backing_off = state.retry_at.is_some_and(|at| {
                at.duration_since(now)
                    .is_ok_and(|wait| !wait.is_zero() && wait <= retry_max)
            });
            if !state.fetching && !backing_off {
                let Ok(runtime) = Handle::try_current() else {
                    return Err(self.no_runtime());
                };
                launch = Some(self.claim_fetch(&mut state, runtime, reason));
            }
            let done = self.inner.completed.subscribe();
            if !state.fetching {
                drop(state);
                return self.usable_status();
            }
            done
        };
        if let Some(launch) = launch {
            launch.spawn();
        }
        // The fetch always reports (see `resolve_missing`).
        let _ = done.changed().await;
        self.usable_status()
    }

    /// Keep this set fresh from a background task on the current Tokio runtime (see
    /// [`Refresher`]); fails outside a runtime.
    pub(crate) fn spawn_refresher(&self) -> Result<Refresher, ConfigError> {
        let runtime = Handle::try_current().map_err(|_| {
            ConfigError::invalid_setting(
                "runtime",
                "the key-set refresher runs on a tokio runtime: spawn it inside one",
            )
        })?;
        Ok(refresher::spawn(self, &runtime))
    }

    /// The status, when a set is usable now; else why not.
    fn usable_status(&self) -> Result<KeySetStatus, Error> {
        let now = self.inner.clock.now();
        match self.usable_snapshot(now) {
            Some(_) => Ok(self.status()),
            None => Err(self.miss_error(&self.state(), now)),
        }
    }

    fn no_runtime(&self) -> Error {
        Error::with_detail(
            ErrorKind::KeysUnavailable,
            "fetching keys needs a tokio runtime",
        )
        .with_retry_after(self.inner.config.cooldown.max(Duration::from_secs(1)))
    }

    /// Where the key set stands.
    pub(crate) fn status(&self) -> KeySetStatus {
        let now = self.inner.clock.now();
        let state = self.state();
        let snapshot = self.snapshot();
        KeySetStatus {
            remote: true,
            key_count: snapshot.as_ref().map_or(0, |s| s.keys.len()),
            skipped_keys: snapshot.as_ref().map_or(0, |s| s.keys.skipped().len()),
            usable: snapshot.as_ref().is_some_and(|s| now < s.usable_until),
            stale: snapshot.as_ref().is_some_and(|s| now >= s.expires_at),
            fetching: state.fetching,
            last_success: state.last_success,
            last_error: state.last_error.as_ref().map(|(_, e)| e.clone()),
            last_error_at: state.last_error.as_ref().map(|(at, _)| *at),
            consecutive_failures: state.failures,
            next_refresh: state.next_refresh,
            per_issuer: Vec::new(),
        }
    }

    fn host(&self) -> &str {
        self.inner.url.host_str().unwrap_or("")
    }

    fn state(&self) -> MutexGuard<'_, FetchState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache-hit check: whether the set usable at `now` still holds `kid` with this
    /// serial, and until when that answer may be reused (Unix milliseconds: when the set
    /// stops being usable or the next refresh is due, whichever is first). Reads the current
    /// snapshot without a lock or a shared write (see [`Published::read`]), and starts a due
    /// refresh as [`lookup`](Self::lookup) does.
    pub(crate) fn held_until(&self, kid: &str, serial: u64, now: SystemTime) -> Option<u64> {
        let usable_until = self.inner.snapshot.read(|snapshot| match snapshot {
            Some(s) if now < s.usable_until => s
                .keys
                .get(kid)
                .is_some_and(|k| k.serial == serial)
                .then(|| unix_millis(s.usable_until)),
            _ => None,
        })?;
        let refresh_due = self.inner.refresh_due_ms.load(Ordering::Acquire);
        if unix_millis(now) >= refresh_due {
            self.refresh_in_background(now);
        }
        Some(usable_until.min(refresh_due))
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.inner.snapshot.get()
    }

    fn usable_snapshot(&self, now: SystemTime) -> Option<Arc<Snapshot>> {
        self.snapshot().filter(|s| now < s.usable_until)
    }

    fn held_key(&self, kid: &str, now: SystemTime) -> Option<Arc<VerificationKey>> {
        self.usable_snapshot(now)?.keys.get(kid).cloned()
    }

    /// The error for a key that is still missing: unknown when a usable set is held,
    /// otherwise the keys are unavailable until the next allowed fetch.
    fn miss_error(&self, state: &FetchState, now: SystemTime) -> Error {
        if self.usable_snapshot(now).is_some() {
            return Error::new(ErrorKind::UnknownKeyId);
        }
        let wait = self
            .pending_gate(state, now)
            .and_then(|gate| gate.duration_since(now).ok())
            .unwrap_or_default();
        // Whole seconds, rounded up, at least one.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let detail = match &state.last_error {
            Some(_) if state.last_success.is_none() => "the jwks endpoint could not be fetched",
            Some(_) => "the jwks endpoint has failed for longer than the stale-if-error window",
            None => "no key set has been fetched yet",
        };
        Error::with_detail(ErrorKind::KeysUnavailable, detail)
            .with_retry_after(Duration::from_secs(secs.max(1)))
    }

    /// When the cooldown or retry backoff still forbids an on-demand fetch. While no usable
    /// set is held every request is being refused, so only the cooldown applies: the
    /// endpoint's return is noticed within one cooldown, not a backoff grown over a long
    /// outage. A gate further ahead than either could set means the clock was moved back; it
    /// is ignored rather than blocking fetches for as long as the clock jumped.
    fn pending_gate(&self, state: &FetchState, now: SystemTime) -> Option<SystemTime> {
        let config = &self.inner.config;
        let longest = config.cooldown.max(config.retry_max);
        let gate = if self.usable_snapshot(now).is_some() {
            state.gate()
        } else {
            state.cooldown_until
        };
        gate.filter(|gate| {
            gate.duration_since(now)
                .is_ok_and(|wait| !wait.is_zero() && wait <= longest)
        })
    }

    fn refresh_in_background(&self, now: SystemTime) {
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let launch = {
            let mut state = self.state();
            let due = state.next_refresh.is_some_and(|at| now >= at);
            if !due || state.fetching {
                return;
            }
            let reason = if state.failures > 0 {
                "retry"
            } else {
                "refresh due"
            };
            self.claim_fetch(&mut state, runtime, reason)
        };
        launch.spawn();
    }
}

/// `time + after`, saturating far in the future instead of overflowing.
fn later(time: SystemTime, after: Duration) -> SystemTime {
    time.checked_add(after)
        .or_else(|| time.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(time)
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::error::FetchError;
    use super::fetch::{parse_document, Fetched};
    use super::*;

    pub(super) const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    pub(super) const ED_X2: &str = "fUHyO2pRMfO5fIG7XwY-6rmyg4TDn5S4EaE3PK5nUH0";

    /// A remote key set for EdDSA at a test URL, default settings, on `clock`. Also used by
    /// the tests of the fetch and of the refresher.
    pub(super) fn jwks_on(clock: SharedClock) -> RemoteJwks {
        RemoteJwks::new(
            "https://jwks.example.com/keys",
            RemoteJwksConfig::default(),
            clock,
            vec![Algorithm::EdDSA],
        )
        .unwrap()
    }

    pub(super) fn jwks_at(unix: u64) -> (RemoteJwks, Arc<crate::ManualClock>) {
        let clock = Arc::new(crate::ManualClock::at_unix(unix));
        (jwks_on(clock.clone()), clock)
    }

    pub(super) fn fetched(body: &str) -> Result<Fetched, FetchError> {
        Ok(Fetched {
            changed: Some(parse_document(body.as_bytes(), &[Algorithm::EdDSA])?),
            max_age: DEFAULT_MAX_AGE,
            validators: Validators::default(),
        })
    }

    /// Whether `jwks` holds the key `kid` with this serial, at its clock's time.
    fn holds(jwks: &RemoteJwks, kid: &str, serial: u64) -> bool {
        jwks.held_until(kid, serial, jwks.inner.clock.now()).is_some()
    }

    pub(super) fn key(jwks: &RemoteJwks, kid: &str) -> Arc<VerificationKey> {
        match jwks.lookup(kid, jwks.inner.clock.now()) {
            Lookup::Found(key) => key.into_owned(),
            Lookup::NeedsFetch | Lookup::Unknown => panic!("{kid} is not held"),
        }
    }

    #[test]
    fn a_thread_sees_each_new_set_at_once_though_it_remembers_the_last() {
        let (jwks, clock) = jwks_at(1_800_000_000);
        let doc = |x: &str| {
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{x}"}}]}}"#)
        };
        assert!(!holds(&jwks, "a", 0), "nothing fetched yet");
        jwks.complete(fetched(&doc(ED_X)));
        let old = key(&jwks, "a").serial;
        assert!(
            holds(&jwks, "a", old) && holds(&jwks, "a", old),
            "read, then remembered"
        );
        assert!(!holds(&jwks, "a", old + 1_000_000) && !holds(&jwks, "b", old));
        // Another key under the same kid: the remembered set is not used any more.
        clock.advance(Duration::from_secs(600));
        jwks.complete(fetched(&doc(ED_X2)));
        let new = key(&jwks, "a").serial;
        assert_ne!(old, new);
        assert!(!holds(&jwks, "a", old) && holds(&jwks, "a", new));
        // A clone is the same source; another source with the same keys is not.
        assert!(holds(&jwks.clone(), "a", new));
        let (other, _) = jwks_at(1_800_000_600);
        assert!(!holds(&other, "a", new));
        assert!(
            holds(&jwks, "a", new),
            "the other source took no slot of ours"
        );
        // Another thread reads for itself, and sees the same.
        std::thread::scope(|s| {
            s.spawn(|| assert!(!holds(&jwks, "a", old) && holds(&jwks, "a", new)));
        });
        // Past the stale-if-error window the set is not used, remembered or not.
        clock.advance(DEFAULT_MAX_AGE + RemoteJwksConfig::default().stale_if_error);
        assert!(!holds(&jwks, "a", new));
    }

    #[test]
    fn new_does_no_io_and_needs_no_runtime() {
        let jwks = jwks_on(Arc::new(crate::clock::SystemClock));
        assert!(matches!(
            jwks.lookup("k1", jwks.inner.clock.now()),
            Lookup::NeedsFetch
        ));
        let status = jwks.status();
        assert!(!status.usable && !status.fetching);
        assert_eq!(status.next_refresh, None);
    }
}
