//! How fast the exchange client calls MKA1: a cap on the exchanges in flight, and one shared
//! pause after MKA1 asks to wait.
//!
//! - **Slots.** At most [`max_concurrent_exchanges`](super::ExchangeClientBuilder::max_concurrent_exchanges)
//!   requests to MKA1 are in flight at once, whatever the number of users asking; a caller
//!   waits for a slot, and the wait counts against the request's timeout.
//! - **The pause.** A 429 (or a 5xx with `Retry-After`) pauses *every* exchange of the client
//!   until the moment MKA1 named (a 429 without one: until the backoff delay has passed), so
//!   one rate limit does not turn into a retry from each caller on its own schedule. The
//!   moment is read and waited for on the client's [`Clock`](crate::Clock), and is at most
//!   [`MAX_PAUSE`] (or `max_retry_after`, when longer) ahead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The longest pause one answer can impose (when `max_retry_after` is shorter): a `Retry-After`
/// of a day is honoured as five minutes, after which one exchange asks again.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(5 * 60);

/// The slots and the shared pause of one client.
pub(super) struct Pacing {
    slots: Semaphore,
    limit: usize,
    /// The longest pause one answer can impose.
    max_pause: Duration,
    /// Nanoseconds since the Unix epoch, on the client's clock, before which no exchange is
    /// sent; 0 when none was ever asked for.
    not_before: AtomicU64,
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Pacing {
    /// `limit` slots (at least 1, checked by the builder); pauses of at most
    /// `max(MAX_PAUSE, max_retry_after)`.
    pub(super) fn new(limit: usize, max_retry_after: Duration) -> Self {
        Pacing {
            slots: Semaphore::new(limit),
            limit,
            max_pause: MAX_PAUSE.max(max_retry_after),
            not_before: AtomicU64::new(0),
        }
    }

    /// How many exchanges may be in flight at once.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Wait for a free slot; `None` only if the slots were closed (they never are).
    pub(super) async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    /// Pause every exchange for `wait` from `now` (at most the longest pause), unless an
    /// earlier pause already lasts longer. Whether this moved the end of the pause.
    pub(super) fn pause(&self, now: SystemTime, wait: Duration) -> bool {
        let until = nanos(now + wait.min(self.max_pause));
        self.not_before.fetch_max(until, Ordering::AcqRel) < until
    }

    /// When the pause ends, if it has not ended by `now`.
    pub(super) fn paused_until(&self, now: SystemTime) -> Option<SystemTime> {
        let until = self.not_before.load(Ordering::Acquire);
        (until > nanos(now)).then(|| UNIX_EPOCH + Duration::from_nanos(until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_only_grows_and_is_capped() {
        let pacing = Pacing::new(2, Duration::from_secs(30));
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(pacing.paused_until(now), None);
        assert!(pacing.pause(now, Duration::from_secs(5)));
        let five = now + Duration::from_secs(5);
        assert_eq!(pacing.paused_until(now), Some(five));
        // A shorter wait asked later does not shorten it.
        assert!(!pacing.pause(now, Duration::from_secs(2)));
        assert_eq!(pacing.paused_until(now), Some(five));
        // Over by the moment itself.
        assert_eq!(pacing.paused_until(five), None);
        // A day is read as the longest pause.
        assert!(pacing.pause(now, Duration::from_secs(86_400)));
        assert_eq!(pacing.paused_until(now), Some(now + MAX_PAUSE));
        // Zero: no pause.
        let fresh = Pacing::new(1, Duration::from_secs(30));
        fresh.pause(now, Duration::ZERO);
        assert_eq!(fresh.paused_until(now), None);
        // A longer max_retry_after lengthens the longest pause.
        let long = Pacing::new(1, Duration::from_secs(600));
        long.pause(now, Duration::from_secs(86_400));
        assert_eq!(
            long.paused_until(now),
            Some(now + Duration::from_secs(600))
        );
        assert_eq!(long.limit(), 1);
    }
}
