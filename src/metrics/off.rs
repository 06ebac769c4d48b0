//! The counting hooks when the `metrics` feature is off: each compiles to nothing.

// Some events are counted only where the feature is on (or with `remote`).
#[allow(dead_code)]
#[path = "event.rs"]
mod event;
pub(crate) use event::Event;
#[cfg(feature = "remote")]
pub(crate) use event::KeySetGauges;
#[cfg(feature = "redis")]
pub(crate) use event::RevocationGauges;

/// Count an event: nothing to do without the feature.
#[inline(always)]
pub(crate) fn count(_event: Event) {}

/// Count an admitted request by its answer: nothing to do without the feature.
#[inline(always)]
pub(crate) fn count_answer<B, E>(_output: &Result<http::Response<B>, E>, _anonymous: bool) {}

/// Gauge a remote key set or a revocation source: nothing to do without the feature.
#[cfg(any(feature = "remote", feature = "redis"))]
#[inline(always)]
pub(crate) fn watch<F, R>(_gauges: F)
where
    F: Fn() -> Option<R> + Send + Sync + 'static,
{
}
