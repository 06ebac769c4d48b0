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

/// Gauge a remote key set: nothing to do without the feature.
#[cfg(feature = "remote")]
#[inline(always)]
pub(crate) fn watch_key_set<F>(_gauges: F)
where
    F: Fn() -> Option<KeySetGauges> + Send + Sync + 'static,
{
}

/// Gauge a revocation source: nothing to do without the feature.
#[cfg(feature = "redis")]
#[inline(always)]
pub(crate) fn watch_revocations<F>(_gauges: F)
where
    F: Fn() -> Option<RevocationGauges> + Send + Sync + 'static,
{
}
