//! Counting without writing anything another thread writes: each thread counts into a cell
//! of its own, and [`drain`] (run when the counts are published) sums what every cell
//! gained since the last drain.
//!
//! A cell is written by its owning thread only, with a plain load and store (no atomic
//! read-modify-write, no lock), and sits on cache lines of its own, so two threads counting
//! never hand a line back and forth; the publisher only reads it. A thread claims a cell the
//! first time it counts and gives it back when it ends; the next new thread takes it over and
//! counts on from where it stood, so cells are as many as threads ever ran at once, and no
//! count is lost or counted twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::slots::SLOTS;

/// One thread's counts: cumulative, one per slot.
#[repr(align(128))]
struct Cell {
    counts: [AtomicU64; SLOTS],
}

/// Every cell, what was published of each, and which are free.
struct Registry {
    cells: Vec<(Arc<Cell>, [u64; SLOTS])>,
    free: Vec<usize>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    cells: Vec::new(),
    free: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread's claim on a cell; gives it back when the thread ends.
struct Claim {
    cell: Arc<Cell>,
    index: usize,
}

impl Claim {
    fn new() -> Claim {
        let mut registry = registry();
        let index = match registry.free.pop() {
            Some(index) => index,
            None => {
                let cell = Arc::new(Cell {
                    counts: std::array::from_fn(|_| AtomicU64::new(0)),
                });
                registry.cells.push((cell, [0; SLOTS]));
                registry.cells.len() - 1
            }
        };
        Claim {
            cell: Arc::clone(&registry.cells[index].0),
            index,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // This thread's last counts happen before the lock; the next owner takes the lock
        // before its first, so it counts on from them.
        registry().free.push(self.index);
    }
}

thread_local! {
    /// Claimed the first time this thread counts.
    static CLAIM: Claim = Claim::new();
}

/// Add one to `slot` in this thread's cell.
#[inline]
pub(super) fn bump(slot: usize) {
    // Only this thread writes its cell, so a load and a store are enough.
    let _ = CLAIM.try_with(|claim| {
        let count = &claim.cell.counts[slot];
        count.store(
            count.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    });
}

/// What every cell gained per slot since the last drain.
pub(super) fn drain() -> [u64; SLOTS] {
    let mut gained = [0u64; SLOTS];
    let mut registry = registry();
    for (cell, published) in registry.cells.iter_mut() {
        for (slot, seen) in published.iter_mut().enumerate() {
            let now = cell.counts[slot].load(Ordering::Relaxed);
            gained[slot] = gained[slot].wrapping_add(now.wrapping_sub(*seen));
            *seen = now;
        }
    }
    gained
}
