//! The key epoch: it moves whenever a key set is built or a remote one published (see
//! [`Epoch`]), so that a cache hit can tell with one atomic read that no key set changed
//! since its token's key was last found held ([`Held`]), instead of looking the key up
//! again. It is shared by every verifier in the process.

use crate::epoch::Epoch;

/// The key epoch; 0 is never one, so [`Held::UNCHECKED`] never passes.
static EPOCH: Epoch = Epoch::new();

/// Move the key epoch on: every [`Held`] stamped before now needs a full look-up again.
/// Call it after the new keys are visible to readers.
pub(crate) fn advance() {
    EPOCH.advance();
}

/// That a cached token's key was found held in its source: good while no key set changes
/// (the epoch it was stamped in) and until `until_ms` (Unix milliseconds: when the source's
/// set stops being usable, or its next refresh is due, whichever comes first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    epoch: u64,
    until_ms: u64,
}

impl Held {
    /// Never checked: the next hit looks the key up.
    pub(crate) const UNCHECKED: Held = Held {
        epoch: 0,
        until_ms: 0,
    };

    /// The epoch to stamp a look-up with: read before the look-up, so a key set published
    /// during it makes the stamp stale at once.
    pub(crate) fn begin() -> u64 {
        EPOCH.current()
    }

    /// A look-up begun in `epoch` found the key held, good until `until_ms`.
    pub(crate) fn stamp(epoch: u64, until_ms: u64) -> Held {
        Held { epoch, until_ms }
    }

    /// Whether the stamp still holds at `now_ms`: no key set changed since, and the time
    /// is before its end.
    #[inline]
    pub(crate) fn holds(self, now_ms: u64) -> bool {
        now_ms < self.until_ms && self.epoch == EPOCH.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_holds_until_its_time_or_the_next_change() {
        let epoch = Held::begin();
        let held = Held::stamp(epoch, 1_000);
        assert!(
            held.holds(999) || Held::begin() != epoch,
            "another test moved it"
        );
        assert!(!held.holds(1_000));
        advance();
        assert!(!held.holds(0), "a key set changed");
        assert!(!Held::UNCHECKED.holds(0));
        let begun = Held::begin();
        assert!(Held::stamp(begun, u64::MAX).holds(u64::MAX - 1) || Held::begin() != begun);
    }
}
