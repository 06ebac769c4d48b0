//! Where "now" comes from. Verification and key-set freshness read time only through a
//! [`Clock`], so tests can move time without sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// A source of the current time.
///
/// Implemented for [`ManualClock`] and any `Fn() -> SystemTime` (`SystemTime::now` itself is
/// the system clock, the default everywhere).
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
    /// use std::time::SystemTime;
    /// use mka1_auth::clock::{Clock, ManualClock};
    /// assert!(ManualClock::at_unix(1_700_000_000).pins_jitter());
    /// assert!(!SystemTime::now.pins_jitter());
    /// ```
    fn pins_jitter(&self) -> bool {
        false
    }

    /// Wait until this clock reads `deadline` or later: how a timer on this clock waits (the
    /// key-set refresher's, see `Verifier::spawn_refresher`).
    ///
    /// The default sleeps on Tokio's timer for as long as the clock says is left, and again
    /// should the clock not be there yet when it wakes (it needs a runtime with the time
    /// driver on). [`ManualClock`] wakes its sleepers when it is moved instead, so tests move
    /// time and never wait for it.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use mka1_auth::{Clock, ManualClock};
    ///
    /// # async fn demo() {
    /// let clock = ManualClock::at_unix(1_700_000_000);
    /// let deadline = clock.now() + Duration::from_secs(60);
    /// let mover = clock.clone();
    /// let woken = tokio::spawn(async move { mover.sleep_until(deadline).await });
    /// clock.advance(Duration::from_secs(60));
    /// woken.await.unwrap();
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
    /// ```
    fn sleep_until(&self, deadline: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            while let Ok(left) = deadline.duration_since(self.now()) {
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
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

/// The operating system's clock; the default everywhere (a user names it as
/// `SystemTime::now`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system clock as a verifier reads it by default: the time the kernel kept at its last
/// tick (`CLOCK_REALTIME_COARSE`, on Linux) plus one tick, so it reads at or just past the
/// exact time, never behind it by more than a late tick. A cache hit reads the clock once;
/// the exact clock costs about 20-30 ns a reading on a VM's clock source, this one about 3.
///
/// What a tick of difference means: `exp` is enforced up to a tick (1-10 ms, 4 on most
/// kernels) early, and `nbf`, `iat` and key-set deadlines are passed up to a tick early,
/// all in whole seconds and well inside the default leeway of 60 s. Where the kernel's tick
/// is coarser than [`MAX_TICK`], and off Linux, it is [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TickClock;

/// The coarsest tick [`TickClock`] reads by; a kernel with a coarser one is read exactly.
pub(crate) const MAX_TICK: Duration = Duration::from_millis(10);

impl Clock for TickClock {
    #[inline]
    fn now(&self) -> SystemTime {
        tick_now().unwrap_or_else(SystemTime::now)
    }
}

/// The coarse clock plus its tick; `None` where there is none fine enough.
#[cfg(target_os = "linux")]
fn tick_now() -> Option<SystemTime> {
    use rustix::time::{clock_getres, clock_gettime, ClockId};
    use std::sync::OnceLock;
    static TICK: OnceLock<Option<Duration>> = OnceLock::new();
    let tick = (*TICK.get_or_init(|| tick_of(timespec(clock_getres(ClockId::RealtimeCoarse)))))?;
    past_tick(timespec(clock_gettime(ClockId::RealtimeCoarse)), tick)
}

#[cfg(not(target_os = "linux"))]
fn tick_now() -> Option<SystemTime> {
    None
}

/// A reading of a kernel clock as seconds and nanoseconds.
#[cfg(target_os = "linux")]
fn timespec(t: rustix::time::Timespec) -> (i64, i64) {
    (t.tv_sec, t.tv_nsec)
}

/// A clock's resolution as the tick to add, if it is one [`TickClock`] may read by.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn tick_of(resolution: (i64, i64)) -> Option<Duration> {
    duration(resolution).filter(|tick| !tick.is_zero() && *tick <= MAX_TICK)
}

/// A coarse reading (seconds and nanoseconds since the epoch) one tick on; `None` before
/// the epoch.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn past_tick(coarse: (i64, i64), tick: Duration) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(duration(coarse)?.checked_add(tick)?)
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn duration((secs, nanos): (i64, i64)) -> Option<Duration> {
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(u64::try_from(secs).ok()?, nanos))
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
    /// Wakes [`sleep_until`](Clock::sleep_until) whenever the clock is moved.
    moved: Arc<Notify>,
}

impl ManualClock {
    /// A clock stopped at `unix_secs` seconds after the epoch.
    pub fn at_unix(unix_secs: u64) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(unix_secs.saturating_mul(1_000_000_000))),
            moved: Arc::default(),
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
            moved: Arc::default(),
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
        self.moved.notify_waiters();
    }

    /// Set the clock to `unix_secs` seconds after the epoch.
    pub fn set_unix(&self, unix_secs: u64) {
        self.nanos
            .store(unix_secs.saturating_mul(1_000_000_000), Ordering::Release);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn pins_jitter(&self) -> bool {
        true
    }

    /// Waits until the clock is moved to `deadline` or past it; never on real time.
    fn sleep_until(&self, deadline: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let moved = self.moved.notified();
                let mut moved = std::pin::pin!(moved);
                // Registered before the time is read, so a move in between is not missed.
                moved.as_mut().enable();
                if self.now() >= deadline {
                    return;
                }
                moved.await;
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_clock_adds_one_tick_to_a_coarse_reading() {
        let tick = tick_of((0, 4_000_000)).unwrap();
        assert_eq!(tick, Duration::from_millis(4));
        assert_eq!(
            past_tick((1_700_000_000, 999_000_000), tick),
            Some(UNIX_EPOCH + Duration::new(1_700_000_001, 3_000_000))
        );
        // A tick coarser than MAX_TICK, none, or a reading that makes no sense: read exactly.
        assert_eq!(tick_of((0, 10_000_001)), None);
        assert_eq!(tick_of((1, 0)), None);
        assert_eq!(tick_of((0, 0)), None);
        assert_eq!(tick_of((0, -1)), None);
        assert_eq!(past_tick((-1, 0), tick), None);
        assert_eq!(past_tick((5, 1_000_000_000), tick), None);
    }

    #[test]
    fn the_tick_clock_reads_the_system_time() {
        let before = SystemTime::now();
        let read = TickClock.now();
        let after = SystemTime::now();
        // At most a tick ahead of the exact time; behind it only by a late tick (a VM's
        // vCPU can miss some), never by a second.
        assert!(read <= after + MAX_TICK, "{read:?} past {after:?}");
        assert!(
            read + Duration::from_secs(1) >= before,
            "{read:?} behind {before:?}"
        );
    }
}
