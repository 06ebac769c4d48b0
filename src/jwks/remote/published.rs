//! The key-set snapshot as readers see it: replaced whole by each successful fetch, read by
//! every verification, cache hits included.
//!
//! Reading it under the lock would write the lock's shared cache line on every hit, and two
//! threads answering hits would then spend their time handing that line back and forth. So
//! each thread remembers the snapshot it read last, and a read is one atomic load of the
//! generation (bumped by every publish) plus a look at the thread's own memo; the lock is
//! taken only when a new snapshot has been published since.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::Snapshot;

/// The current snapshot of one key source (shared by its clones), with lock-free reads
/// through [`read`](Self::read).
pub(super) struct Published {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Unique to this key source, never reused: what [`MEMO`] entries are tagged with.
    id: u64,
    /// Bumped after each publish, so a thread can tell whether the snapshot it read last is
    /// still the current one without taking the lock.
    generation: AtomicU64,
}

/// The next [`Published::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// How many key sources a thread remembers a snapshot of.
const MEMO_SLOTS: usize = 4;

/// The snapshot a thread read last from one key source, and at which generation.
struct Memo {
    source: u64,
    generation: u64,
    snapshot: Option<Arc<Snapshot>>,
}

thread_local! {
    /// Each thread's last read snapshot per key source (by `id % MEMO_SLOTS`; another source
    /// in the same slot evicts it).
    static MEMO: RefCell<[Option<Memo>; MEMO_SLOTS]> =
        const { RefCell::new([const { None }; MEMO_SLOTS]) };
}

impl Published {
    /// Nothing published yet.
    pub(super) fn new() -> Self {
        Published {
            current: RwLock::new(None),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// The current snapshot, read under the lock (for everything but the hot path).
    pub(super) fn get(&self) -> Option<Arc<Snapshot>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Make `snapshot` the current one; every thread's next [`read`](Self::read) sees it.
    pub(super) fn publish(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(snapshot));
        // After the snapshot: a thread that sees the new generation reads the new set.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Run `f` on the current snapshot: the one this thread read last when none has been
    /// published since (no lock, no shared write), else read afresh under the lock and
    /// remembered for next time.
    pub(super) fn read<R>(&self, f: impl Fn(Option<&Snapshot>) -> R) -> R {
        // Read before the snapshot: if a new one is published in between, the generation
        // remembered is already behind, and the next call reads again.
        let generation = self.generation.load(Ordering::Acquire);
        let fast = MEMO.try_with(|memo| {
            let mut memo = memo.try_borrow_mut().ok()?;
            let slot = &mut memo[(self.id % MEMO_SLOTS as u64) as usize];
            let current = slot
                .as_ref()
                .is_some_and(|m| m.source == self.id && m.generation == generation);
            if !current {
                *slot = Some(Memo {
                    source: self.id,
                    generation,
                    snapshot: self.get(),
                });
            }
            let snapshot = slot.as_ref().and_then(|m| m.snapshot.as_deref());
            Some(f(snapshot))
        });
        match fast {
            Ok(Some(out)) => out,
            // The thread is being torn down, or (never, today) re-entered: use the lock.
            _ => f(self.get().as_deref()),
        }
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
        }
    }

    fn marker(published: &Published) -> Option<SystemTime> {
        published.read(|s| s.map(|s| s.usable_until))
    }

    #[test]
    fn each_read_sees_the_latest_publish_even_across_shared_slots() {
        // More sources than slots: some share a slot and evict each other's memo.
        let sources: Vec<Published> = (0..MEMO_SLOTS * 2 + 1).map(|_| Published::new()).collect();
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
