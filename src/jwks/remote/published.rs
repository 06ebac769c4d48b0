//! The key-set snapshot as readers see it: replaced whole by each successful fetch, read by
//! every verification, cache hits included.
//!
//! Reading it under a lock would write the lock's shared cache line on every hit, and two
//! threads answering hits would then spend their time handing that line back and forth. An
//! `ArcSwapOption` read takes no lock and writes no shared cache line (it borrows the
//! pointer through a slot of the reading thread's own), and sees each publish at once.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::Snapshot;

/// The current snapshot of one key source (shared by its clones).
pub(super) struct Published {
    current: ArcSwapOption<Snapshot>,
}

impl Published {
    /// Nothing published yet.
    pub(super) fn new() -> Self {
        Published {
            current: ArcSwapOption::empty(),
        }
    }

    /// The current snapshot, as an owned handle (this bumps its shared reference count; not
    /// for the hot path).
    pub(super) fn get(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Make `snapshot` the current one; every later [`read`](Self::read) sees it.
    pub(super) fn publish(&self, snapshot: Snapshot) {
        self.current.store(Some(Arc::new(snapshot)));
        // After the store: a hit stamped from here on saw this set.
        crate::jwks::epoch::advance();
    }

    /// Run `f` on the current snapshot, without a lock or a shared write: the hot path.
    pub(super) fn read<R>(&self, f: impl FnOnce(Option<&Snapshot>) -> R) -> R {
        f(self.current.load().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::KeySet;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A snapshot told apart by its `usable_until`.
    fn snapshot(marker: u64) -> Snapshot {
        let at = UNIX_EPOCH + Duration::from_secs(marker);
        Snapshot {
            keys: Arc::new(KeySet::from_entries(Vec::new(), &[])),
            entries: Default::default(),
            expires_at: at,
            usable_until: at,
            validators: Default::default(),
        }
    }

    fn marker(published: &Published) -> Option<SystemTime> {
        published.read(|s| s.map(|s| s.usable_until))
    }

    #[test]
    fn each_read_sees_the_latest_publish_of_its_own_source() {
        let sources: Vec<Published> = (0..9).map(|_| Published::new()).collect();
        assert!(sources.iter().all(|p| marker(p).is_none()));
        for round in 1..=3u64 {
            for (i, p) in sources.iter().enumerate() {
                p.publish(snapshot(round * 100 + i as u64));
            }
            for _ in 0..2 {
                for (i, p) in sources.iter().enumerate() {
                    let expected = UNIX_EPOCH + Duration::from_secs(round * 100 + i as u64);
                    assert_eq!(marker(p), Some(expected));
                    assert_eq!(p.get().map(|s| s.usable_until), Some(expected));
                }
            }
            // Another thread has a memo of its own, and reads the same.
            std::thread::scope(|s| {
                s.spawn(|| {
                    let expected = UNIX_EPOCH + Duration::from_secs(round * 100);
                    assert_eq!(marker(&sources[0]), Some(expected));
                });
            });
        }
    }
}
