//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`, off by
//! default): what was allowed and refused and why, how the token cache and the key set fare,
//! and how the exchange client does. Install any recorder (Prometheus, StatsD, ...) and
//! publish; nothing is recorded without one.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `mka1_auth_requests_total` | counter | `result` = `allowed` / `anonymous` / `refused`; `reason` on refusals: the [`ErrorKind`](crate::ErrorKind) in snake case (listed below) |
//! | `mka1_auth_token_cache_total` | counter | `result` = `hit` / `miss` |
//! | `mka1_auth_jwks_fetches_total` | counter | `result` = `ok` / `not_modified` / `error` |
//! | `mka1_auth_jwks_keys` | gauge | usable keys held (summed over the remote key sets alive) |
//! | `mka1_auth_jwks_age_seconds` | gauge | seconds since the held set was last fetched successfully (the oldest, over the remote key sets alive; absent before the first success) |
//! | `mka1_auth_exchange_total` | counter | `result` = `ok` / `cached` / `retried` / `error` |
//! | `mka1_auth_revocation_rules` | gauge | revocation rules in force (summed over the Redis sources alive, feature `redis`; absent without one) |
//! | `mka1_auth_revocation_stale_seconds` | gauge | seconds since a Redis source became unreachable, its snapshot kept (the longest over the sources alive; 0 while every one is reachable; absent without one) |
//!
//! The `reason` label of a refusal is its [`ErrorKind`](crate::ErrorKind)'s name in snake case, one series per
//! kind, each published from the start (at zero): `missing_credentials`, `invalid_request`,
//! `token_too_large`, `malformed`, `missing_key_id`, `unknown_key_id`,
//! `algorithm_not_allowed`, `algorithm_mismatch`, `critical_header`, `invalid_signature`,
//! `invalid_claim`, `missing_expiry`, `expired`, `not_yet_valid`, `issued_in_future`,
//! `lifetime_too_long`, `invalid_audience`, `invalid_issuer`, `invalid_subject`,
//! `invalid_permissions`, `insufficient_permission`, `on_behalf_of_mismatch`,
//! `keys_unavailable`, `missing_layer`, `invalid_type`, `check_failed`, `check_panicked`,
//! `revoked`, `revocation_unavailable`.
//!
//! What counts as what:
//!
//! - **requests**: one per request through [`Mka1AuthLayer`](crate::Mka1AuthLayer), by its
//!   final answer: `refused` when the layer refused it, or when something behind it that
//!   answers with this crate's [`Error`] did (the
//!   [`RequirePermissionsLayer`](crate::RequirePermissionsLayer)'s
//!   `insufficient_permission`, an extractor's `missing_credentials` in optional mode);
//!   otherwise `allowed` (a verified token) or `anonymous` (optional mode, no credentials).
//! - **token cache**: one per lookup in the verified-token cache (when it is on): `hit` when
//!   the cache answered (the answer may still be a refusal, say the token expired since),
//!   `miss` when the token had to be verified afresh.
//! - **JWKS fetches**: one per finished fetch; `not_modified` is a 304 answer to a
//!   conditional fetch (`If-None-Match` / `If-Modified-Since`), which keeps the held set.
//! - **exchange**: `ok` per token minted, `error` per exchange that failed (after its
//!   retries), `retried` per request sent again, `cached` per token answered without an
//!   exchange of its own (from the cache, or shared with a caller's exchange in flight).
//!
//! # Counting does not slow the hot path
//!
//! A cache hit writes nothing another thread writes, and counting keeps it so: each thread
//! counts into a cell of its own (a plain load and store on cache lines no other thread
//! writes), and the counts reach the recorder only when they are **published**: by
//! [`publish`], called where the metrics are scraped, or every so often by a [`Publisher`].
//! Gauges are computed when publishing too. Counting costs a request through the layer a
//! few nanoseconds (see the layer bench).
//!
//! ```
//! use std::time::Duration;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Either publish where the metrics are read (a `/metrics` handler) ...
//! mka1_auth::metrics::publish();
//! // ... or let a task publish every second, for exporters that serve by themselves.
//! let publisher = mka1_auth::metrics::Publisher::spawn(Duration::from_secs(1))?;
//! // Publishing stops when `publisher` is dropped.
//! # drop(publisher);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Publishing goes to the recorder in effect where it runs: the global one, or a local one
//! ([`metrics::with_local_recorder`]), which is how tests read exact counts:
//!
//! ```
//! use metrics_util::debugging::DebuggingRecorder;
//! use metrics_util::{CompositeKey, MetricKind};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! mka1_auth::metrics::publish(); // the counts so far go to the global recorder (none here)
//! // ... requests ...
//! metrics::with_local_recorder(&recorder, mka1_auth::metrics::publish);
//! let counters = snapshotter.snapshot().into_vec();
//! assert!(counters.iter().any(|(key, ..)| key.key().name() == "mka1_auth_requests_total"));
//! ```

mod cells;
mod event;
mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::Response;

use crate::error::{ConfigError, Error};

#[cfg(feature = "remote")]
pub(crate) use event::KeySetGauges;
#[cfg(feature = "redis")]
pub(crate) use event::RevocationGauges;
pub(crate) use event::{Event, Reading};

/// `mka1_auth_requests_total`: requests through the layer, by `result` (and `reason`).
const REQUESTS_TOTAL: &str = "mka1_auth_requests_total";
/// `mka1_auth_token_cache_total`: verified-token cache lookups, by `result`.
const TOKEN_CACHE_TOTAL: &str = "mka1_auth_token_cache_total";
/// `mka1_auth_jwks_fetches_total`: finished JWKS fetches, by `result`.
const JWKS_FETCHES_TOTAL: &str = "mka1_auth_jwks_fetches_total";
/// `mka1_auth_jwks_keys`: usable keys held by the remote key sets.
const JWKS_KEYS: &str = "mka1_auth_jwks_keys";
/// `mka1_auth_jwks_age_seconds`: seconds since the held key set was last fetched.
const JWKS_AGE_SECONDS: &str = "mka1_auth_jwks_age_seconds";
/// `mka1_auth_exchange_total`: exchange client outcomes, by `result`.
const EXCHANGE_TOTAL: &str = "mka1_auth_exchange_total";
/// `mka1_auth_revocation_rules`: revocation rules in force in the Redis sources.
const REVOCATION_RULES: &str = "mka1_auth_revocation_rules";
/// `mka1_auth_revocation_stale_seconds`: seconds a Redis source's snapshot has been stale.
const REVOCATION_STALE_SECONDS: &str = "mka1_auth_revocation_stale_seconds";

/// Whether counting is on (the default).
static COUNTING: AtomicBool = AtomicBool::new(true);

/// Turn counting on or off for the whole process (on by default). Off, nothing is counted
/// until it is turned on again; what was counted before is still published. The benches
/// use it to measure what counting costs, side by side in one run.
///
/// ```
/// mka1_auth::metrics::set_counting(false);
/// // ... requests here are not counted ...
/// mka1_auth::metrics::set_counting(true);
/// ```
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// Count `event` on this thread (the hooks in the rest of the crate call this).
#[inline]
pub(crate) fn count(event: Event) {
    // Written only by `set_counting`, so every thread keeps this line in its cache.
    if COUNTING.load(Ordering::Relaxed) {
        cells::bump(slots::slot(event));
    }
}

/// The things watched for the gauges (remote key sets, revocation sources): each gives its
/// reading, or `None` once dropped, and then leaves the list.
type Watched = Box<dyn Fn() -> Option<Reading> + Send + Sync>;

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

/// Gauge a remote key set or a revocation source from now on; `gauges` answers `None` once
/// it is gone.
#[cfg(any(feature = "remote", feature = "redis"))]
pub(crate) fn watch<F, R>(gauges: F)
where
    F: Fn() -> Option<R> + Send + Sync + 'static,
    R: Into<Reading>,
{
    WATCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Box::new(move || gauges().map(Into::into)));
}

/// Send every count made since the last publish, and the current gauges, to the recorder in
/// effect here (the global one, or a local one set with
/// [`metrics::with_local_recorder`]). Call it where the metrics are read, or let a
/// [`Publisher`] call it. Cheap: it sums one small cell per thread.
///
/// ```
/// mka1_auth::metrics::publish();
/// ```
pub fn publish() {
    describe();
    let gained = cells::drain();
    for (slot, &delta) in gained.iter().enumerate() {
        let series = slots::series(slot);
        if delta > 0 || series.always {
            ::metrics::counter!(series.name, &series.labels).increment(delta);
        }
    }
    let gauges = Gauges::read();
    ::metrics::gauge!(JWKS_KEYS).set(gauges.keys as f64);
    if let Some(age) = gauges.key_set_age {
        ::metrics::gauge!(JWKS_AGE_SECONDS).set(age.as_secs_f64());
    }
    if let Some((rules, stale)) = gauges.revocations {
        ::metrics::gauge!(REVOCATION_RULES).set(rules as f64);
        ::metrics::gauge!(REVOCATION_STALE_SECONDS).set(stale.as_secs_f64());
    }
}

/// The gauges over every watched thing still alive.
#[derive(Debug, Default)]
struct Gauges {
    /// Usable keys over the remote key sets.
    keys: usize,
    /// The age of the oldest fetched remote key set (`None` before any fetch succeeded).
    key_set_age: Option<Duration>,
    /// Rules over the revocation sources, and the longest any has been stale; `None` when
    /// no source is alive.
    revocations: Option<(usize, Duration)>,
}

impl Gauges {
    /// Read every watched thing, dropping those that are gone.
    fn read() -> Gauges {
        let mut watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
        let mut gauges = Gauges::default();
        watched.retain(|reading| match reading() {
            Some(reading) => {
                gauges.add(reading);
                true
            }
            None => false,
        });
        gauges
    }

    fn add(&mut self, reading: Reading) {
        match reading {
            #[cfg(feature = "remote")]
            Reading::KeySet(key_set) => {
                self.keys += key_set.usable_keys;
                if let Some(this) = key_set.since_last_fetch {
                    self.key_set_age = Some(self.key_set_age.map_or(this, |a| a.max(this)));
                }
            }
            #[cfg(feature = "redis")]
            Reading::Revocations(source) => {
                let (rules, stale) = self.revocations.get_or_insert((0, Duration::ZERO));
                *rules += source.rules;
                *stale = (*stale).max(source.stale_for.unwrap_or_default());
            }
        }
    }
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests through the mka1-auth layer, by result (allowed, anonymous, refused) and refusal reason."
    );
    describe_counter!(
        TOKEN_CACHE_TOTAL,
        Unit::Count,
        "Verified-token cache lookups, by result (hit, miss)."
    );
    describe_counter!(
        JWKS_FETCHES_TOTAL,
        Unit::Count,
        "Finished JWKS fetches, by result (ok, not_modified, error)."
    );
    describe_gauge!(JWKS_KEYS, Unit::Count, "Usable keys held from JWKS URLs.");
    describe_gauge!(
        JWKS_AGE_SECONDS,
        Unit::Seconds,
        "Seconds since the held JWKS was last fetched successfully."
    );
    describe_counter!(
        EXCHANGE_TOTAL,
        Unit::Count,
        "MKA1 token exchange outcomes, by result (ok, cached, retried, error)."
    );
    describe_gauge!(
        REVOCATION_RULES,
        Unit::Count,
        "Revocation rules in force, from Redis."
    );
    describe_gauge!(
        REVOCATION_STALE_SECONDS,
        Unit::Seconds,
        "Seconds since Redis became unreachable, the last snapshot of the revocation rules kept; 0 while reachable."
    );
}

/// Publishes the counts every interval on a Tokio task, until dropped. For exporters that
/// serve the metrics by themselves; where your code answers the scrape, calling [`publish`]
/// there is enough.
///
/// ```
/// # async fn demo() -> Result<(), mka1_auth::ConfigError> {
/// use std::time::Duration;
/// let publisher = mka1_auth::metrics::Publisher::spawn(Duration::from_secs(1))?;
/// // ... serve ...
/// drop(publisher); // stops publishing
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct Publisher {
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Publish every `every` (a zero interval is read as one second), starting now, on the
    /// current Tokio runtime. Fails outside one.
    pub fn spawn(every: Duration) -> Result<Publisher, ConfigError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::invalid_setting(
                "runtime",
                "the metrics publisher runs on a tokio runtime: spawn it inside one",
            )
        })?;
        let every = if every.is_zero() {
            Duration::from_secs(1)
        } else {
            every
        };
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                publish();
            }
        });
        Ok(Publisher { task })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Count a request the layer admitted (`anonymous`: without a verified token) by the inner
/// service's answer: refused when something behind the layer refused it with this crate's
/// [`Error`], else allowed or anonymous. Called by the layer's own response future (no
/// wrapper future of its own).
#[inline]
pub(crate) fn count_answer<B, E>(output: &Result<Response<B>, E>, anonymous: bool) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let refused = output
        .as_ref()
        .ok()
        .and_then(|response| response.extensions().get::<Error>());
    count(match refused {
        Some(error) => Event::Refused(error.kind()),
        None if anonymous => Event::Anonymous,
        None => Event::Allowed,
    });
}
