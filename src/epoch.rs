//! Epochs: process-wide counts that move whenever something a cache hit depends on is
//! replaced (a key set, a revocation rule set), so that a hit can tell with one atomic read
//! that nothing changed since it last checked, instead of checking again.
//!
//! Each count moves only when what it guards changes (at start-up, on each key set fetch,
//! on each rule change), so the line it sits on stays in every core's cache. A move sends
//! every cached token through one full check on each thread, which stamps it again.

use std::sync::atomic::{AtomicU64, Ordering};

/// One epoch. It starts at 1, so a stamp of 0 never matches.
pub(crate) struct Epoch(AtomicU64);

impl Epoch {
    /// A new epoch at 1.
    pub(crate) const fn new() -> Epoch {
        Epoch(AtomicU64::new(1))
    }

    /// The current value: read it before a check, and stamp the check with it, so a change
    /// made during the check makes the stamp stale at once.
    #[inline]
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Move on: every stamp taken before needs a full check again. Call it after the new
    /// state is visible to readers.
    pub(crate) fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_starts_past_zero_and_moves_on() {
        let epoch = Epoch::new();
        let first = epoch.current();
        assert_eq!(first, 1);
        epoch.advance();
        assert_eq!(epoch.current(), first + 1);
    }
}
