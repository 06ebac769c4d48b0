//! Remote JWKS (feature `remote`): fetch the issuer's key set over HTTPS and keep it fresh
//! without ever making a request wait for I/O it does not need.
//!
//! Set it up with [`VerifierBuilder::jwks_url`](crate::VerifierBuilder::jwks_url) and tune it
//! with [`RemoteJwksConfig`]. What it does:
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
//! use mka1_auth::jwks::remote::RemoteJwksConfig;
//! use mka1_auth::Verifier;
//!
//! let verifier = Verifier::builder()
//!     .jwks_url("https://apigw.mka1.com/api/v1/authentication/jwks")
//!     .jwks_options(RemoteJwksConfig::default().fetch_timeout(Duration::from_secs(3)))
//!     .audience("https://api.example.com")
//!     .build()?;
//! // Nothing has been fetched yet: the first token that needs a key triggers the fetch.
//! assert!(!verifier.key_set_status().usable);
//! # Ok::<(), mka1_auth::ConfigError>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::jwks::Algorithm;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, LOCATION,
};
use reqwest::{redirect, Url};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::{JwksDocument, KeySet, KeySetStatus, Lookup, VerificationKey};
use crate::clock::SharedClock;
use crate::error::{ConfigError, Error, ErrorKind};
use crate::metrics::KeySetGauges;
use crate::net::{is_loopback_host, transport_error_text};
use crate::retry::{backoff_ceiling, jittered_on};

mod probe;
mod published;
mod refresher;
pub use probe::{JwksProbe, ProbedJwks};
use published::Published;
pub use refresher::Refresher;

/// Default bound on a whole fetch: connect, request, response and body.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the size of a JWKS response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default pause after a refetch for an unknown `kid` before another may run.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Default freshness of a key set whose response has no `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Default lower bound applied to a response's `max-age`.
pub const DEFAULT_MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// Default upper bound applied to a response's `max-age`.
pub const DEFAULT_MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default time the last good key set keeps serving past its max-age while fetches fail.
pub const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(24 * 60 * 60);
/// Default first delay before retrying a failed fetch (doubled on each further failure).
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(30);
/// Default longest delay between retries of a failing fetch.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// Redirects followed, each within the JWKS URL's origin, before a fetch counts as failed.
const MAX_REDIRECTS: usize = 3;

/// Options for fetching and caching a remote JWKS; give them to
/// [`VerifierBuilder::jwks_options`](crate::VerifierBuilder::jwks_options).
///
/// Every setting has a safe default (see the `DEFAULT_*` constants of this module).
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::jwks::remote::RemoteJwksConfig;
///
/// let config = RemoteJwksConfig::default()
///     .fetch_timeout(Duration::from_secs(2))
///     .max_body_bytes(64 * 1024)
///     .cooldown(Duration::from_secs(10))
///     .default_max_age(Duration::from_secs(300))
///     .max_age_bounds(Duration::from_secs(30), Duration::from_secs(3600))
///     .stale_if_error(Duration::from_secs(6 * 3600))
///     .retry_backoff(Duration::from_secs(5), Duration::from_secs(120));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct RemoteJwksConfig {
    fetch_timeout: Duration,
    max_body_bytes: usize,
    cooldown: Duration,
    default_max_age: Duration,
    min_max_age: Duration,
    max_max_age: Duration,
    stale_if_error: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    allow_http: bool,
    client: Option<reqwest::Client>,
}

impl Default for RemoteJwksConfig {
    fn default() -> Self {
        RemoteJwksConfig {
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cooldown: DEFAULT_COOLDOWN,
            default_max_age: DEFAULT_MAX_AGE,
            min_max_age: DEFAULT_MIN_MAX_AGE,
            max_max_age: DEFAULT_MAX_MAX_AGE,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            allow_http: false,
            client: None,
        }
    }
}

impl RemoteJwksConfig {
    /// Bound on a whole fetch, from connecting to the last body byte (default 5 s). Requests
    /// waiting for a key that is not held wait at most this long.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().fetch_timeout(Duration::from_secs(2));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Largest response body accepted, in bytes (default 256 KiB); a larger one is a failed
    /// fetch.
    ///
    /// ```
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().max_body_bytes(32 * 1024);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// After a refetch made for an unknown `kid` (or at a cold start) completes, how long
    /// unknown keys fail fast without another fetch (default 30 s). This bounds what a flood
    /// of made-up `kid`s can cost: one fetch per cooldown.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().cooldown(Duration::from_secs(60));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long a fetched set stays fresh when the response has no `Cache-Control: max-age`
    /// (default 10 minutes). Clamped to [`max_age_bounds`](Self::max_age_bounds) too.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().default_max_age(Duration::from_secs(300));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn default_max_age(mut self, max_age: Duration) -> Self {
        self.default_max_age = max_age;
        self
    }

    /// The range a response's `max-age` is clamped to (default 1 minute ..= 24 hours).
    /// `no-cache` and `no-store` count as `max-age=0`, so they get the lower bound.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default()
    ///     .max_age_bounds(Duration::from_secs(30), Duration::from_secs(3600));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_max_age = min;
        self.max_max_age = max;
        self
    }

    /// How long past its max-age the last good set keeps serving while fetches fail
    /// (default 24 hours). After that, verification fails with
    /// [`ErrorKind::KeysUnavailable`] until a fetch succeeds.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().stale_if_error(Duration::from_secs(3600));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Delay before retrying a failed fetch: `initial`, doubled after each further failure,
    /// at most `max` (default 30 s up to 5 minutes). Unknown-`kid` refetches wait for it too.
    ///
    /// That is the longest delay: each one is shortened at random by up to half (jitter), so
    /// replicas that failed together do not retry together; with a clock that
    /// [pins jitter](crate::Clock::pins_jitter), such as [`ManualClock`](crate::ManualClock),
    /// it is exact.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default()
    ///     .retry_backoff(Duration::from_secs(5), Duration::from_secs(60));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// Allow a plain `http` JWKS URL for any host (default: only for loopback hosts). Keys
    /// fetched over plain http can be swapped by anyone on the network path; use this only
    /// inside a trusted network.
    ///
    /// ```
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().allow_http(true);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Fetch with this client instead of one built for the purpose (for proxies or custom
    /// roots). The fetch timeout and body cap still apply.
    ///
    /// Its own redirect policy decides which redirects it follows, so a lax one may send the
    /// request to another origin; but a response that did not come from the JWKS URL's
    /// origin (scheme, host and port) is refused, and the fetch fails. The built-in client
    /// does not follow a redirect out of that origin at all; to get the same from yours,
    /// give it a redirect policy that stops at another origin, or
    /// `reqwest::redirect::Policy::none()`.
    ///
    /// ```
    /// # use mka1_auth::jwks::remote::RemoteJwksConfig;
    /// let config = RemoteJwksConfig::default().http_client(reqwest::Client::new());
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: &str| {
            Err(ConfigError::InvalidSetting {
                name,
                reason: reason.into(),
            })
        };
        if self.fetch_timeout.is_zero() {
            return invalid("fetch_timeout", "must be above zero");
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes", "must be above zero");
        }
        if self.min_max_age.is_zero() || self.min_max_age > self.max_max_age {
            return invalid("max_age_bounds", "need 0 < min <= max");
        }
        if self.retry_initial.is_zero() || self.retry_initial > self.retry_max {
            return invalid("retry_backoff", "need 0 < initial <= max");
        }
        Ok(())
    }

    fn clamp_max_age(&self, max_age: Duration) -> Duration {
        max_age.clamp(self.min_max_age, self.max_max_age)
    }

    /// The longest retry delay after `failures` consecutive failures (1 or more); the one
    /// scheduled is shortened by jitter (see [`retry_backoff`](Self::retry_backoff)).
    fn backoff(&self, failures: u32) -> Duration {
        backoff_ceiling(self.retry_initial, self.retry_max, failures)
    }
}

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

/// Why a fetch failed. Messages are lowercase and never contain key material.
#[derive(Debug)]
enum FetchError {
    Timeout(Duration),
    Transport(String),
    Status(u16),
    /// A redirect answer that was not followed, and why.
    Redirect {
        status: u16,
        why: Unfollowed,
    },
    /// The response came from outside the JWKS URL's origin (a caller's client followed a
    /// redirect there).
    OtherOrigin,
    TooLarge(usize),
    NotJwks(String),
    NoUsableKeys {
        skipped: usize,
    },
    Abandoned,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout(t) => write!(f, "no complete response within {t:?}"),
            FetchError::Transport(e) => write!(f, "request failed: {e}"),
            FetchError::Status(s) => write!(f, "unexpected http status {s}"),
            FetchError::Redirect { status, why } => {
                write!(f, "redirect not followed (status {status}): ")?;
                match why {
                    Unfollowed::NoLocation => f.write_str("it names no usable location"),
                    Unfollowed::OtherOrigin => f.write_str(
                        "it points to another origin (only redirects within the jwks url's \
                         scheme, host and port are followed)",
                    ),
                    Unfollowed::Limit => write!(
                        f,
                        "the limit of {MAX_REDIRECTS} redirects was reached (or the http \
                         client follows none)"
                    ),
                }
            }
            FetchError::OtherOrigin => f.write_str(
                "the response came from another origin than the jwks url's \
                 (scheme, host and port must match)",
            ),
            FetchError::TooLarge(cap) => write!(f, "the body exceeds the {cap}-byte cap"),
            FetchError::NotJwks(e) => write!(f, "the body is not a jwks document: {e}"),
            FetchError::NoUsableKeys { skipped } => {
                write!(f, "the key set holds no usable key ({skipped} skipped)")
            }
            FetchError::Abandoned => f.write_str("the fetch task ended without a result"),
        }
    }
}

/// Why a redirect answer was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfollowed {
    /// No `Location`, or one that does not parse as a url.
    NoLocation,
    /// The location is outside the JWKS URL's origin.
    OtherOrigin,
    /// Within the origin, but past [`MAX_REDIRECTS`] (or the caller's client follows none).
    Limit,
}

/// A successful fetch: a parsed key set, or word that the held one is still current.
struct Fetched {
    /// The new key set and the JWK entries of its usable keys; `None` for a 304 answer to a
    /// conditional fetch (the held set is still current).
    changed: Option<(KeySet, HashMap<Box<str>, Value>)>,
    max_age: Duration,
    validators: Validators,
}

/// The HTTP answer to a fetch: the body (`None` for a 304), the response's max-age and what
/// identifies the document.
struct Answer {
    body: Option<Vec<u8>>,
    max_age: Option<Duration>,
    validators: Validators,
}

/// What the server said identifies the document (`ETag`, `Last-Modified`), sent back on the
/// next fetch (`If-None-Match`, `If-Modified-Since`) so an unchanged set costs a 304.
#[derive(Clone, Default)]
struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Validators {
        Validators {
            etag: headers.get(ETAG).cloned(),
            last_modified: headers.get(LAST_MODIFIED).cloned(),
        }
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
            None => build_client(&url)?,
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
        crate::metrics::watch_key_set(jwks.gauges_while_alive());
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
        let runtime = Handle::try_current().map_err(|_| ConfigError::InvalidSetting {
            name: "runtime",
            reason: "the key-set refresher runs on a tokio runtime: spawn it inside one".into(),
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
    /// serial. Reads the current snapshot without a lock or a shared write (see
    /// [`Published::read`]), and starts a due refresh as [`lookup`](Self::lookup) does.
    pub(crate) fn holds(&self, kid: &str, serial: u64, now: SystemTime) -> bool {
        let held = self.inner.snapshot.read(|snapshot| match snapshot {
            Some(s) if now < s.usable_until => {
                Some(s.keys.get(kid).is_some_and(|k| k.serial == serial))
            }
            _ => None,
        });
        let Some(held) = held else {
            return false;
        };
        if unix_millis(now) >= self.inner.refresh_due_ms.load(Ordering::Acquire) {
            self.refresh_in_background(now);
        }
        held
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

    /// Claim the one fetch slot; the caller holds the state lock and has checked it is free.
    /// The returned launch must be spawned after the lock is released (a task that cannot be
    /// spawned reports through its guard, which takes the lock).
    fn claim_fetch(&self, state: &mut FetchState, runtime: Handle, reason: &'static str) -> Launch {
        state.fetching = true;
        tracing::debug!(
            host = self.host(),
            path = self.inner.url.path(),
            reason,
            "jwks fetch started"
        );
        Launch {
            guard: FetchGuard(Some(self.clone())),
            runtime,
        }
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let config = &self.inner.config;
        // With a set held, ask only for a changed one.
        let held = self.snapshot().map(|s| s.validators.clone());
        let answer = self.fetch_answer(held).await?;
        let max_age = config.clamp_max_age(answer.max_age.unwrap_or(config.default_max_age));
        let changed = match answer.body {
            Some(body) => Some(parse_document(&body, &self.inner.algorithms)?),
            None => None,
        };
        Ok(Fetched {
            changed,
            max_age,
            validators: answer.validators,
        })
    }

    /// The HTTP part of an unconditional fetch, under every rule but the document's: the
    /// body, and the response's `Cache-Control` max-age (see [`cache_max_age`]).
    async fn fetch_body(&self) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let answer = self.fetch_answer(None).await?;
        // Only a conditional request is answered without a body.
        Ok((answer.body.unwrap_or_default(), answer.max_age))
    }

    /// The HTTP part of a fetch, conditional on `held` (what identifies the held set's
    /// document) when given: a 304 to it comes back without a body.
    async fn fetch_answer(&self, held: Option<Validators>) -> Result<Answer, FetchError> {
        let inner = &*self.inner;
        let mut request = inner
            .client
            .get(inner.url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json");
        if let Some(held) = &held {
            if let Some(etag) = &held.etag {
                request = request.header(IF_NONE_MATCH, etag.clone());
            }
            if let Some(date) = &held.last_modified {
                request = request.header(IF_MODIFIED_SINCE, date.clone());
            }
        }
        let mut response = request.send().await.map_err(transport_error)?;
        // A caller's client may have followed redirects anywhere; only the origin's answer
        // is used.
        if response.url().origin() != inner.url.origin() {
            return Err(FetchError::OtherOrigin);
        }
        let status = response.status();
        let max_age = cache_max_age(response.headers());
        // A 304 is a 3xx, but no redirect: the held set is current.
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return match held {
                Some(validators) => Ok(Answer {
                    body: None,
                    max_age,
                    validators,
                }),
                None => Err(FetchError::Status(304)),
            };
        }
        if status.is_redirection() {
            return Err(FetchError::Redirect {
                status: status.as_u16(),
                why: unfollowed_redirect(&response, &inner.url),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let cap = inner.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(FetchError::TooLarge(cap));
        }
        let validators = Validators::of(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            body: Some(body),
            max_age,
            validators,
        })
    }

    /// Record a finished fetch, publish its keys, and wake everyone waiting on it.
    fn complete(&self, result: Result<Fetched, FetchError>) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut state = self.state();
        let published = result.and_then(|fetched| self.publish(fetched, now));
        match published {
            Ok(max_age) => {
                state.last_success = Some(now);
                state.failures = 0;
                state.retry_at = None;
                // Refresh at 80% of the max-age, so the set never goes stale while the
                // endpoint answers.
                state.next_refresh = Some(later(now, max_age / 5 * 4));
            }
            Err(error) => {
                crate::metrics::count(crate::metrics::Event::FetchError);
                state.failures = state.failures.saturating_add(1);
                let backoff = jittered_on(&*inner.clock, inner.config.backoff(state.failures));
                state.retry_at = Some(later(now, backoff));
                state.next_refresh = state.retry_at;
                let serving_stale = self.usable_snapshot(now).is_some();
                tracing::warn!(
                    host = self.host(),
                    path = inner.url.path(),
                    reason = %error,
                    failures = state.failures,
                    retry_in_secs = backoff.as_secs(),
                    serving_stale,
                    "jwks fetch failed"
                );
                state.last_error = Some((now, error.to_string()));
            }
        }
        if state.on_demand {
            state.cooldown_until = Some(later(now, inner.config.cooldown));
        }
        state.fetching = false;
        state.on_demand = false;
        inner.refresh_due_ms.store(
            state.next_refresh.map_or(u64::MAX, unix_millis),
            Ordering::Release,
        );
        drop(state);
        inner.completed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Publish what a successful fetch brought (a 304 renews the held set), and log it.
    /// Its max-age, or an error when a 304 came with no set held.
    fn publish(&self, fetched: Fetched, now: SystemTime) -> Result<Duration, FetchError> {
        let max_age = fetched.max_age;
        let not_modified = fetched.changed.is_none();
        let snapshot = self
            .next_snapshot(fetched, now)
            .ok_or(FetchError::Status(304))?;
        crate::metrics::count(if not_modified {
            crate::metrics::Event::FetchNotModified
        } else {
            crate::metrics::Event::FetchOk
        });
        tracing::info!(
            host = self.host(),
            path = self.inner.url.path(),
            key_count = snapshot.keys.len(),
            skipped = snapshot.keys.skipped().len(),
            max_age_secs = max_age.as_secs(),
            not_modified,
            "jwks fetched"
        );
        self.inner.snapshot.publish(snapshot);
        Ok(max_age)
    }

    /// The snapshot for a successful fetch, keeping the identity of keys whose JWK is
    /// unchanged; for a 304, the held set with a new lifetime (`None` if none is held).
    fn next_snapshot(&self, fetched: Fetched, now: SystemTime) -> Option<Snapshot> {
        let Fetched {
            changed,
            max_age,
            validators,
        } = fetched;
        let previous = self.snapshot();
        let (mut keys, entries) = match changed {
            Some(changed) => changed,
            None => {
                let held = previous?;
                let expires_at = later(now, max_age);
                return Some(Snapshot {
                    keys: Arc::clone(&held.keys),
                    entries: held.entries.clone(),
                    expires_at,
                    usable_until: later(expires_at, self.inner.config.stale_if_error),
                    validators,
                });
            }
        };
        if let Some(previous) = previous {
            for (kid, key) in keys.keys.iter_mut() {
                if let Some(old) = previous.keys.get(kid) {
                    if previous.entries.get(kid) == entries.get(kid) {
                        *key = old.clone();
                    }
                }
            }
        }
        let expires_at = later(now, max_age);
        Some(Snapshot {
            keys: Arc::new(keys),
            entries,
            expires_at,
            usable_until: later(expires_at, self.inner.config.stale_if_error),
            validators,
        })
    }
}

/// A claimed fetch, ready to spawn.
struct Launch {
    guard: FetchGuard,
    runtime: Handle,
}

impl Launch {
    fn spawn(self) {
        let Launch { guard, runtime } = self;
        let Some(this) = guard.0.clone() else {
            return;
        };
        runtime.spawn(async move {
            let timeout = this.inner.config.fetch_timeout;
            let result = tokio::time::timeout(timeout, this.fetch())
                .await
                .unwrap_or(Err(FetchError::Timeout(timeout)));
            guard.report(result);
        });
    }
}

/// Reports the fetch's outcome exactly once: normally with its result, or as abandoned when
/// the task is dropped first (runtime shutting down, a panic), so no waiter is stranded.
struct FetchGuard(Option<RemoteJwks>);

impl FetchGuard {
    fn report(mut self, result: Result<Fetched, FetchError>) {
        if let Some(jwks) = self.0.take() {
            jwks.complete(result);
        }
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if let Some(jwks) = self.0.take() {
            jwks.complete(Err(FetchError::Abandoned));
        }
    }
}

/// Parse a fetched body into a key set, plus the JWK entries of its usable keys.
fn parse_document(
    body: &[u8],
    algorithms: &[Algorithm],
) -> Result<(KeySet, HashMap<Box<str>, Value>), FetchError> {
    let document: JwksDocument =
        serde_json::from_slice(body).map_err(|e| FetchError::NotJwks(e.to_string()))?;
    let mut by_kid: HashMap<Box<str>, Value> = document
        .keys
        .iter()
        .filter_map(|entry| Some((Box::from(entry.get("kid")?.as_str()?), entry.clone())))
        .collect();
    let keys = KeySet::from_entries(document.keys, algorithms);
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys {
            skipped: keys.skipped().len(),
        });
    }
    by_kid.retain(|kid, _| keys.get(kid).is_some());
    Ok((keys, by_kid))
}

/// The client for a JWKS URL: it follows a redirect only within `url`'s origin, at most
/// [`MAX_REDIRECTS`] of them. A redirect it stops comes back as the 3xx answer, which
/// [`RemoteJwks::fetch`] turns into a failed fetch.
fn build_client(url: &Url) -> Result<reqwest::Client, ConfigError> {
    let url = url.clone();
    let policy = redirect::Policy::custom(move |attempt| {
        // `previous` holds the first request's url and every one followed since.
        if may_follow(&url, attempt.url(), attempt.previous().len()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .redirect(policy)
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}

/// Whether to follow a redirect to `next` after `requested` requests (the first included)
/// for the JWKS URL `url`: only while it stays in `url`'s origin (scheme, host and port, a
/// default port spelled out or not), and while fewer than [`MAX_REDIRECTS`] have been
/// followed.
fn may_follow(url: &Url, next: &Url, requested: usize) -> bool {
    requested <= MAX_REDIRECTS && next.origin() == url.origin()
}

/// Why a redirect answer to a request for `url` was not followed. The location is not kept
/// (it may carry a query string).
fn unfollowed_redirect(response: &reqwest::Response, url: &Url) -> Unfollowed {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| response.url().join(value).ok());
    match location {
        None => Unfollowed::NoLocation,
        Some(next) if next.origin() != url.origin() => Unfollowed::OtherOrigin,
        Some(_) => Unfollowed::Limit,
    }
}

fn transport_error(error: reqwest::Error) -> FetchError {
    FetchError::Transport(transport_error_text(error))
}

/// Parse and check a JWKS URL: `https`, or `http` for loopback hosts or when allowed.
fn check_url(url: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidJwksUrl(reason.into());
    let parsed = Url::parse(url).map_err(|e| ConfigError::InvalidJwksUrl(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("the url has no host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback_host(host) => {}
        "http" => {
            return Err(invalid(
                "https is required for a non-loopback host (or allow plain http explicitly)",
            ))
        }
        _ => return Err(invalid("the scheme must be https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials in the url are not supported"));
    }
    Ok(parsed)
}

/// The smallest `max-age` in the `Cache-Control` headers; `no-cache` and `no-store` count
/// as zero. `None` when no directive says anything about freshness.
fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found: Option<u64> = None;
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for directive in directives {
        let (name, argument) = match directive.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (directive.trim(), None),
        };
        let secs = if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store")
        {
            Some(0)
        } else if name.eq_ignore_ascii_case("max-age") {
            argument.and_then(delta_seconds)
        } else {
            None
        };
        if let Some(secs) = secs {
            found = Some(found.map_or(secs, |f| f.min(secs)));
        }
    }
    found.map(Duration::from_secs)
}

/// RFC 9111 delta-seconds (quotes tolerated); too large a number saturates.
fn delta_seconds(argument: &str) -> Option<u64> {
    let digits = argument
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(argument);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
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
    use super::*;
    use crate::Clock;
    use reqwest::header::HeaderValue;
    use std::future::Future;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn max_age(values: &[&str]) -> Option<u64> {
        cache_max_age(&headers(values)).map(|d| d.as_secs())
    }

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(max_age(&["max-age=300"]), Some(300));
        assert_eq!(
            max_age(&["public, max-age=120, must-revalidate"]),
            Some(120)
        );
        assert_eq!(max_age(&["Max-Age = 45"]), Some(45));
        assert_eq!(max_age(&["max-age=\"90\""]), Some(90));
        assert_eq!(max_age(&["max-age=600", "max-age=60"]), Some(60));
        assert_eq!(
            max_age(&["max-age=99999999999999999999999"]),
            Some(u64::MAX)
        );
    }

    #[test]
    fn cache_control_without_freshness_is_none() {
        assert_eq!(max_age(&[]), None);
        assert_eq!(max_age(&["public"]), None);
        assert_eq!(max_age(&["max-age="]), None);
        assert_eq!(max_age(&["max-age=-5"]), None);
        assert_eq!(max_age(&["max-age=1.5"]), None);
        assert_eq!(max_age(&["s-maxage=100"]), None);
    }

    #[test]
    fn no_cache_and_no_store_count_as_zero() {
        assert_eq!(max_age(&["no-cache"]), Some(0));
        assert_eq!(max_age(&["max-age=600, no-store"]), Some(0));
    }

    #[test]
    fn max_age_is_clamped_to_the_bounds() {
        let config = RemoteJwksConfig::default();
        let clamp = |s| config.clamp_max_age(Duration::from_secs(s)).as_secs();
        assert_eq!(clamp(0), 60);
        assert_eq!(clamp(59), 60);
        assert_eq!(clamp(600), 600);
        assert_eq!(clamp(86_401), 86_400);
        assert_eq!(clamp(u64::MAX), 86_400);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let config = RemoteJwksConfig::default();
        let secs: Vec<u64> = (1..=6).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300]);
        assert_eq!(config.backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn urls_need_https_unless_loopback_or_allowed() {
        for ok in [
            "https://apigw.mka1.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.5.6.7/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://apigw.mka1.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://example.com/jwks",
            "file:///etc/jwks.json",
            "not a url",
            "https://user:pass@example.com/jwks",
        ] {
            let err = check_url(bad, false).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidJwksUrl(_)), "{bad}");
        }
        assert!(check_url("http://jwks.internal/keys", true).is_ok());
    }

    #[test]
    fn url_errors_never_echo_credentials() {
        let err = check_url("https://user:hunter2@example.com/jwks", false).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn redirects_are_followed_only_within_the_origin() {
        let u = |s| Url::parse(s).unwrap();
        let follows = |from, to| may_follow(&u(from), &u(to), 1);
        // The same scheme, host and port: another path, query or spelling of the port.
        for (from, to) in [
            ("https://a.com/x", "https://a.com/y?z=1"),
            ("https://a.com/x", "https://a.com:443/y"),
            ("https://A.COM/x", "https://a.com/y"),
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.1:8080/moved"),
            ("http://127.0.0.1/jwks", "http://127.0.0.1:80/moved"),
        ] {
            assert!(follows(from, to), "{from} -> {to}");
        }
        for (from, to) in [
            // Another scheme: neither a downgrade nor an upgrade.
            ("https://a.com/x", "http://a.com/x"),
            ("http://a.com/x", "https://a.com/x"),
            ("http://127.0.0.1:8080/jwks", "https://127.0.0.1:8080/jwks"),
            // Another port on the same host.
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.1:8081/jwks"),
            ("https://a.com/x", "https://a.com:8443/x"),
            ("http://a.com/x", "http://a.com:443/x"),
            // Another host, also one naming the same address.
            ("https://a.com/x", "https://b.com/x"),
            ("https://a.com/x", "https://a.com.evil/x"),
            ("https://a.com/x", "https://sub.a.com/x"),
            ("http://127.0.0.1:8080/jwks", "http://localhost:8080/jwks"),
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.2:8080/jwks"),
            ("http://127.0.0.1:8080/jwks", "http://[::1]:8080/jwks"),
            // Not a tuple origin at all.
            ("https://a.com/x", "data:text/plain,x"),
            ("https://a.com/x", "file:///etc/jwks.json"),
        ] {
            assert!(!follows(from, to), "{from} -> {to}");
        }
        // At most MAX_REDIRECTS, counting the first request in `requested`.
        let (from, to) = (u("https://a.com/x"), u("https://a.com/y"));
        assert!(may_follow(&from, &to, MAX_REDIRECTS));
        assert!(!may_follow(&from, &to, MAX_REDIRECTS + 1));
    }

    #[test]
    fn redirect_errors_say_why_without_the_location() {
        let message = |why| FetchError::Redirect { status: 302, why }.to_string();
        assert_eq!(
            message(Unfollowed::OtherOrigin),
            "redirect not followed (status 302): it points to another origin (only redirects \
             within the jwks url's scheme, host and port are followed)"
        );
        assert!(message(Unfollowed::Limit).contains("limit of 3 redirects"));
        assert!(message(Unfollowed::NoLocation).contains("no usable location"));
        assert!(FetchError::OtherOrigin
            .to_string()
            .starts_with("the response came from another origin"));
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let zero = Duration::ZERO;
        let second = Duration::from_secs(1);
        for config in [
            RemoteJwksConfig::default().fetch_timeout(zero),
            RemoteJwksConfig::default().max_body_bytes(0),
            RemoteJwksConfig::default().max_age_bounds(zero, second),
            RemoteJwksConfig::default().max_age_bounds(second * 2, second),
            RemoteJwksConfig::default().retry_backoff(zero, second),
            RemoteJwksConfig::default().retry_backoff(second * 2, second),
        ] {
            assert!(matches!(
                config.check(),
                Err(ConfigError::InvalidSetting { .. })
            ));
        }
        assert!(RemoteJwksConfig::default().check().is_ok());
    }

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const ED_X2: &str = "fUHyO2pRMfO5fIG7XwY-6rmyg4TDn5S4EaE3PK5nUH0";

    /// A remote key set for EdDSA at a test URL, default settings, on `clock`. Also used by
    /// the refresher's tests.
    pub(super) fn jwks_on(clock: SharedClock) -> RemoteJwks {
        RemoteJwks::new(
            "https://jwks.example.com/keys",
            RemoteJwksConfig::default(),
            clock,
            vec![Algorithm::EdDSA],
        )
        .unwrap()
    }

    fn jwks_at(unix: u64) -> (RemoteJwks, Arc<crate::ManualClock>) {
        let clock = Arc::new(crate::ManualClock::at_unix(unix));
        (jwks_on(clock.clone()), clock)
    }

    fn fetched(body: &str) -> Result<Fetched, FetchError> {
        Ok(Fetched {
            changed: Some(parse_document(body.as_bytes(), &[Algorithm::EdDSA])?),
            max_age: DEFAULT_MAX_AGE,
            validators: Validators::default(),
        })
    }

    /// Whether `jwks` holds the key `kid` with this serial, at its clock's time.
    fn holds(jwks: &RemoteJwks, kid: &str, serial: u64) -> bool {
        jwks.holds(kid, serial, jwks.inner.clock.now())
    }

    fn key(jwks: &RemoteJwks, kid: &str) -> Arc<VerificationKey> {
        match jwks.lookup(kid, jwks.inner.clock.now()) {
            Lookup::Found(key) => key.into_owned(),
            Lookup::NeedsFetch | Lookup::Unknown => panic!("{kid} is not held"),
        }
    }

    #[test]
    fn documents_that_are_not_usable_jwks_are_refused() {
        let parse = |body: &str| parse_document(body.as_bytes(), &[Algorithm::EdDSA]).map(|_| ());
        assert!(matches!(parse("<html>"), Err(FetchError::NotJwks(_))));
        assert!(matches!(
            parse(r#"{"keys": {}}"#),
            Err(FetchError::NotJwks(_))
        ));
        assert!(matches!(parse("[]"), Err(FetchError::NotJwks(_))));
        assert!(matches!(
            parse(r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#),
            Err(FetchError::NoUsableKeys { skipped: 1 })
        ));
        let ok = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}]}}"#);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn an_unchanged_key_keeps_its_identity_across_refreshes() {
        let (jwks, clock) = jwks_at(1_800_000_000);
        let doc = |x: &str| {
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}},
                    {{"kty":"OKP","crv":"Ed25519","kid":"b","x":"{x}"}}]}}"#
            )
        };
        jwks.complete(fetched(&doc(ED_X)));
        let (a, b) = (key(&jwks, "a"), key(&jwks, "b"));
        clock.advance(Duration::from_secs(600));
        jwks.complete(fetched(&doc(ED_X2)));
        // `a` is unchanged, so tokens cached against it stay valid; `b` was replaced.
        assert!(Arc::ptr_eq(&a, &key(&jwks, "a")));
        assert!(!Arc::ptr_eq(&b, &key(&jwks, "b")));
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
    fn a_failed_fetch_keeps_the_set_and_schedules_a_retry() {
        let (jwks, clock) = jwks_at(1_800_000_000);
        let doc = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}]}}"#);
        jwks.complete(fetched(&doc));
        let a = key(&jwks, "a");
        clock.advance(Duration::from_secs(480));
        jwks.complete(Err(FetchError::Status(503)));
        assert!(Arc::ptr_eq(&a, &key(&jwks, "a")));
        let status = jwks.status();
        assert_eq!(status.consecutive_failures, 1);
        assert_eq!(
            status.last_error.as_deref(),
            Some("unexpected http status 503")
        );
        assert_eq!(
            status.next_refresh,
            Some(clock.now() + DEFAULT_RETRY_INITIAL)
        );
    }

    #[test]
    fn retries_are_jittered_unless_the_clock_pins_them() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwks = jwks_on(Arc::new(move || at));
        let mut delays = Vec::new();
        for (failures, ceiling) in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (6, 300)] {
            jwks.complete(Err(FetchError::Status(503)));
            let status = jwks.status();
            assert_eq!(status.consecutive_failures, failures);
            let delay = status.next_refresh.unwrap().duration_since(at).unwrap();
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{failures}: {delay:?}"
            );
            delays.push(delay.as_secs_f64() / ceiling.as_secs_f64());
        }
        assert!(delays.iter().any(|d| *d != 1.0), "{delays:?}");
        // A ManualClock pins them: the documented schedule exactly.
        let (jwks, clock) = jwks_at(1_800_000_000);
        for ceiling in [30, 60, 120, 240, 300, 300] {
            jwks.complete(Err(FetchError::Status(503)));
            let next = jwks.status().next_refresh.unwrap();
            assert_eq!(next, clock.now() + Duration::from_secs(ceiling));
        }
    }

    #[test]
    fn a_fetch_that_cannot_be_spawned_reports_instead_of_hanging() {
        let (jwks, _clock) = jwks_at(1_800_000_000);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        drop(runtime);
        // A context whose runtime is gone: the spawned fetch is dropped at once.
        let _context = handle.enter();
        let mut resolve = std::pin::pin!(jwks.resolve_missing("k1"));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(result) = resolve.as_mut().poll(&mut cx) else {
            panic!("an abandoned fetch must wake its waiters");
        };
        assert_eq!(result.unwrap_err().kind(), ErrorKind::KeysUnavailable);
        let status = jwks.status();
        assert!(!status.fetching);
        assert_eq!(
            status.last_error.as_deref(),
            Some("the fetch task ended without a result")
        );
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
