//! Where "now" comes from. Verification and key-set freshness read time only through a
//! [`Clock`], so tests can move time without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
///
/// Implemented for [`SystemClock`], [`ManualClock`] and any `Fn() -> SystemTime`.
///
/// ```
/// use std::time::SystemTime;
/// use mka1_auth::Clock;
///
/// let frozen = || SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
/// assert_eq!(frozen.now_unix(), 1_700_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (0 before the epoch).
    fn now_unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Whether delays scheduled on this clock (the JWKS fetcher's retry backoff) are exactly
    /// their documented length. When `false`, the default, each is shortened by a random
    /// amount of up to half, so replicas that failed together do not retry together.
    /// [`ManualClock`] answers `true`, so tests that move it see the documented schedule.
    ///
    /// ```
    /// use mka1_auth::clock::{Clock, ManualClock, SystemClock};
    /// assert!(ManualClock::at_unix(1_700_000_000).pins_jitter());
    /// assert!(!SystemClock.pins_jitter());
    /// ```
    fn pins_jitter(&self) -> bool {
        false
    }
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The operating system's clock; the default everywhere.
///
/// ```
/// use mka1_auth::{Clock, clock::SystemClock};
/// assert!(SystemClock.now_unix() > 1_600_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to: for tests.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let seen_by_verifier = clock.clone();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(seen_by_verifier.now_unix(), 1_700_000_090);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `unix_secs` seconds after the epoch.
    pub fn at_unix(unix_secs: u64) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(unix_secs.saturating_mul(1_000_000_000))),
        }
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        ManualClock {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Set the clock to `unix_secs` seconds after the epoch.
    pub fn set_unix(&self, unix_secs: u64) {
        self.nanos
            .store(unix_secs.saturating_mul(1_000_000_000), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn pins_jitter(&self) -> bool {
        true
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_secs", &self.now_unix())
            .finish()
    }
}

/// The shared clock handle the crate's components hold.
pub(crate) type SharedClock = Arc<dyn Clock>;
