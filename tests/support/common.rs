//! What the integration tests share: the signing keys, JWKS documents and token minting of
//! `src/test_support.rs` (the unit tests' own, included here by path), a verifier over them,
//! and the capture of what a test traced.
#![allow(dead_code)] // each test binary uses its own part

use std::cell::OnceCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::filter::{dynamic_filter_fn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

#[path = "../../src/test_support.rs"]
mod keys;
pub use keys::*;

/// A verifier for [`AUDIENCE`] over these keys' JWKS, reading time from `clock`.
pub fn verifier_with_clock(
    keys: &[&TestKey],
    clock: &mka1_auth::ManualClock,
) -> mka1_auth::Verifier {
    mka1_auth::Verifier::builder()
        .jwks(jwks(keys))
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Log text written through `tracing` by one test.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

thread_local! {
    /// The capture of the test running on this thread, once it asked for one.
    static CAPTURE: OnceCell<&'static Captured> = const { OnceCell::new() };
}

/// This thread's capture, if its test asked for one.
fn this_thread() -> Option<&'static Captured> {
    CAPTURE.try_with(|c| c.get().copied()).ok().flatten()
}

/// Writes to this thread's capture.
struct ToThisThread;

impl Write for ToThisThread {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(captured) = this_thread() {
            captured.0.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the calling test traced from its call on, at debug level and up.
///
/// One global subscriber for the binary (a thread-local one races with other tests over
/// `tracing`'s per-callsite interest cache), which keeps each event on the thread that emitted
/// it: the test harness runs every test on a thread of its own (`--test-threads=1` too), and
/// `#[tokio::test]` (the default current-thread flavor; a multi-thread test would miss its
/// workers' events) runs the test's tasks, its servers included, on that thread. So other
/// tests' events, which may hold the same kinds and statuses, never reach this capture.
pub fn traced() -> &'static Captured {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ToThisThread)
            // Asked on every event (not cached per callsite), on the emitting thread.
            .with_filter(
                dynamic_filter_fn(|metadata, _| {
                    *metadata.level() <= tracing::Level::DEBUG && this_thread().is_some()
                })
                .with_max_level_hint(LevelFilter::DEBUG),
            );
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
    });
    CAPTURE.with(|c| *c.get_or_init(|| Box::leak(Box::default())))
}
