//! Memory held per cached token (issue 7, bench 5), counted by a global allocator.
//!
//! N distinct exchanged tokens (realistic MKA1 claims, distinct users) are verified through
//! a verifier whose cache holds N, and the heap bytes still held afterwards are divided by N.
//! That includes the `VerifiedToken` itself, the cache key and moka's per-entry bookkeeping
//! (and moka's fixed structures, spread over the N entries, as in a full cache). For the
//! breakdown, the same tokens are verified with the cache off while the results are kept:
//! those are the bytes of the `VerifiedToken`s alone. Target: at most 1 KiB per token.
//!
//! Run with `cargo bench --bench memory`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{claims_at, jwks, TestKey, AUDIENCE};
use mka1_auth::{VerifiedToken, Verifier};
use serde_json::json;

/// The system allocator, keeping count of the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Poll a future that never waits (verification with a static key set) to its end.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification with a static key set waited"),
    }
}

fn verifier(key: &TestKey, capacity: u64) -> Verifier {
    Verifier::builder()
        .jwks(jwks(&[key]))
        .audience(AUDIENCE)
        .token_cache_capacity(capacity)
        .build()
        .unwrap()
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let n: usize = if benchmarking { 10_000 } else { 200 };
    let key = TestKey::ed25519("ed-1");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut claims = claims_at(now);
            claims["sub"] = json!(format!("user-{i:06}@example.com"));
            key.sign(&claims)
        })
        .collect();
    println!(
        "{n} tokens of {} bytes, claims {}",
        tokens[0].len(),
        claims_at(now)
    );

    // The verified tokens alone: kept in a vector, cache off.
    let uncached = verifier(&key, 0);
    let mut kept: Vec<VerifiedToken> = Vec::with_capacity(n);
    let before = live();
    for token in &tokens {
        kept.push(ready(uncached.verify(token)).unwrap());
    }
    let per_token = (live() - before) as f64 / n as f64;
    drop(kept);

    // Everything the cache holds.
    let cached = verifier(&key, n as u64);
    let before = live();
    for token in &tokens {
        ready(cached.verify(token)).unwrap();
    }
    // Let moka's periodic housekeeping run (it is due after 300 ms, on the next access), so
    // no pending write records are counted, then check every token is still held.
    std::thread::sleep(Duration::from_millis(400));
    let first = ready(cached.verify(&tokens[0])).unwrap();
    let again = ready(cached.verify(&tokens[0])).unwrap();
    assert!(std::ptr::eq(first.raw_claims(), again.raw_claims()));
    drop((first, again));
    let per_entry = (live() - before) as f64 / n as f64;

    println!("bytes held per verified token (VerifiedToken alone): {per_token:>7.0}");
    println!(
        "bytes held per cached token (token, key, moka entry):  {per_entry:>7.0}  target <= 1024  {}",
        if per_entry <= 1024.0 {
            "meets"
        } else {
            "MISSES"
        }
    );
    println!(
        "  of which moka and the cache key:                      {:>7.0}",
        per_entry - per_token
    );
    drop(cached);
}
