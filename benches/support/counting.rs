//! A global allocator that keeps count of what is allocated, for the benches that count
//! memory (`memory`, `revocation`): include it with `#[path]` in the bench binary alone, so
//! that the timing benches keep the plain system allocator.
#![allow(dead_code)] // each bench binary uses its own part

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, keeping count of what is currently allocated.
struct Counting;

/// Bytes asked for, allocations, and bytes glibc's malloc would take for them.
static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);
static CHUNKS: AtomicIsize = AtomicIsize::new(0);
/// Allocations made, never decreased (reallocations count as one).
static MADE: AtomicIsize = AtomicIsize::new(0);

/// The size of glibc's chunk for a request: the size plus an 8-byte header, rounded up to
/// 16, at least 32. Other allocators differ; this is an estimate of the real footprint.
fn chunk(size: usize) -> isize {
    ((size + 8).next_multiple_of(16)).max(32) as isize
}

fn count(size: usize, sign: isize) {
    if sign > 0 {
        MADE.fetch_add(1, Ordering::Relaxed);
    }
    BYTES.fetch_add(sign * size as isize, Ordering::Relaxed);
    BLOCKS.fetch_add(sign, Ordering::Relaxed);
    CHUNKS.fetch_add(sign * chunk(size), Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What is allocated now.
#[derive(Clone, Copy)]
pub struct Held {
    bytes: isize,
    blocks: isize,
    chunks: isize,
}

impl Held {
    pub fn now() -> Held {
        Held {
            bytes: BYTES.load(Ordering::Relaxed),
            blocks: BLOCKS.load(Ordering::Relaxed),
            chunks: CHUNKS.load(Ordering::Relaxed),
        }
    }

    /// What was added since `before`, per token.
    pub fn per_token_since(before: Held, n: usize) -> [f64; 3] {
        let now = Held::now();
        let per = |a: isize, b: isize| (a - b) as f64 / n as f64;
        [
            per(now.bytes, before.bytes),
            per(now.blocks, before.blocks),
            per(now.chunks, before.chunks),
        ]
    }
}

/// Allocations made so far (never decreased; a reallocation counts as one).
pub fn made() -> isize {
    MADE.load(Ordering::Relaxed)
}
