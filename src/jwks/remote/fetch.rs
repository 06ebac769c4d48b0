//! One fetch, from claim to outcome: the one fetch slot claimed ([`Launch`]); the fetch run
//! on the runtime, bounded by the fetch timeout, reporting exactly once even when its task
//! is dropped ([`FetchGuard`]); the body parsed into a key set; and the outcome recorded:
//! keys published (an unchanged key keeps its identity), the next refresh or retry
//! scheduled, the cooldown opened, waiters woken.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::runtime::Handle;

use super::error::FetchError;
use super::http::Validators;
use super::{later, unix_millis, FetchState, RemoteJwks, Snapshot};
use crate::jwks::{Algorithm, JwksDocument, KeySet};
use crate::retry::jittered_on;

/// A successful fetch: a parsed key set, or word that the held one is still current.
pub(super) struct Fetched {
    /// The new key set and the JWK entries of its usable keys; `None` for a 304 answer to a
    /// conditional fetch (the held set is still current).
    pub(super) changed: Option<(KeySet, HashMap<Box<str>, Value>)>,
    pub(super) max_age: Duration,
    pub(super) validators: Validators,
}

impl RemoteJwks {
    /// Claim the one fetch slot; the caller holds the state lock and has checked it is free.
    /// The returned launch must be spawned after the lock is released (a task that cannot be
    /// spawned reports through its guard, which takes the lock).
    pub(super) fn claim_fetch(
        &self,
        state: &mut FetchState,
        runtime: Handle,
        reason: &'static str,
    ) -> Launch {
        state.fetching = true;
        tracing::debug!(
            host = self.host(),
            path = self.inner.url.path(),
            reason,
            "jwks fetch started"
        );
        Launch {
            guard: FetchGuard(Some(self.clone())),
            runtime,
        }
    }

    async fn fetch(&self) -> Result<Fetched, FetchError> {
        let config = &self.inner.config;
        // With a set held, ask only for a changed one.
        let held = self.snapshot().map(|s| s.validators.clone());
        let answer = self.fetch_answer(held).await?;
        let max_age = config.clamp_max_age(answer.max_age.unwrap_or(config.default_max_age));
        let changed = match answer.body {
            Some(body) => Some(parse_document(&body, &self.inner.algorithms)?),
            None => None,
        };
        Ok(Fetched {
            changed,
            max_age,
            validators: answer.validators,
        })
    }

    /// Record a finished fetch, publish its keys, and wake everyone waiting on it.
    pub(super) fn complete(&self, result: Result<Fetched, FetchError>) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let mut state = self.state();
        let published = result.and_then(|fetched| self.publish(fetched, now));
        match published {
            Ok(max_age) => {
                state.last_success = Some(now);
                state.failures = 0;
                state.retry_at = None;
                // Refresh at 80% of the max-age, so the set never goes stale while the
                // endpoint answers.
                state.next_refresh = Some(later(now, max_age / 5 * 4));
            }
            Err(error) => {
                crate::metrics::count(crate::metrics::Event::FetchError);
                state.failures = state.failures.saturating_add(1);
                let backoff = jittered_on(&*inner.clock, inner.config.backoff(state.failures));
                state.retry_at = Some(later(now, backoff));
                state.next_refresh = state.retry_at;
                let serving_stale = self.usable_snapshot(now).is_some();
                tracing::warn!(
                    host = self.host(),
                    path = inner.url.path(),
                    reason = %error,
                    failures = state.failures,
                    retry_in_secs = backoff.as_secs(),
                    serving_stale,
                    "jwks fetch failed"
                );
                state.last_error = Some((now, error.to_string()));
            }
        }
        if state.on_demand {
            state.cooldown_until = Some(later(now, inner.config.cooldown));
        }
        state.fetching = false;
        state.on_demand = false;
        inner.refresh_due_ms.store(
            state.next_refresh.map_or(u64::MAX, unix_millis),
            Ordering::Release,
        );
        drop(state);
        inner.completed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Publish what a successful fetch brought (a 304 renews the held set), and log it.
    /// Its max-age, or an error when a 304 came with no set held.
    fn publish(&self, fetched: Fetched, now: SystemTime) -> Result<Duration, FetchError> {
        let max_age = fetched.max_age;
        let not_modified = fetched.changed.is_none();
        let snapshot = self
            .next_snapshot(fetched, now)
            .ok_or(FetchError::Status(304))?;
        crate::metrics::count(if not_modified {
            crate::metrics::Event::FetchNotModified
        } else {
            crate::metrics::Event::FetchOk
        });
        tracing::info!(
            host = self.host(),
            path = self.inner.url.path(),
            key_count = snapshot.keys.len(),
            skipped = snapshot.keys.skipped().len(),
            max_age_secs = max_age.as_secs(),
            not_modified,
            "jwks fetched"
        );
        self.inner.snapshot.publish(snapshot);
        Ok(max_age)
    }

    /// The snapshot for a successful fetch, keeping the identity of keys whose JWK is
    /// unchanged; for a 304, the held set with a new lifetime (`None` if none is held).
    fn next_snapshot(&self, fetched: Fetched, now: SystemTime) -> Option<Snapshot> {
        let Fetched {
            changed,
            max_age,
            validators,
        } = fetched;
        let previous = self.snapshot();
        let (mut keys, entries) = match changed {
            Some(changed) => changed,
            None => {
                let held = previous?;
                let expires_at = later(now, max_age);
                return Some(Snapshot {
                    keys: Arc::clone(&held.keys),
                    entries: held.entries.clone(),
                    expires_at,
                    usable_until: later(expires_at, self.inner.config.stale_if_error),
                    validators,
                });
            }
        };
        if let Some(previous) = previous {
            for (kid, key) in keys.keys.iter_mut() {
                if let Some(old) = previous.keys.get(kid) {
                    if previous.entries.get(kid) == entries.get(kid) {
                        *key = old.clone();
                    }
                }
            }
        }
        let expires_at = later(now, max_age);
        Some(Snapshot {
            keys: Arc::new(keys),
            entries,
            expires_at,
            usable_until: later(expires_at, self.inner.config.stale_if_error),
            validators,
        })
    }
}

/// A claimed fetch, ready to spawn.
pub(super) struct Launch {
    guard: FetchGuard,
    runtime: Handle,
}

impl Launch {
    pub(super) fn spawn(self) {
        let Launch { guard, runtime } = self;
        let Some(this) = guard.0.clone() else {
            return;
        };
        runtime.spawn(async move {
            let timeout = this.inner.config.fetch_timeout;
            let result = tokio::time::timeout(timeout, this.fetch())
                .await
                .unwrap_or(Err(FetchError::Timeout(timeout)));
            guard.report(result);
        });
    }
}

/// Reports the fetch's outcome exactly once: normally with its result, or as abandoned when
/// the task is dropped first (runtime shutting down, a panic), so no waiter is stranded.
struct FetchGuard(Option<RemoteJwks>);

impl FetchGuard {
    fn report(mut self, result: Result<Fetched, FetchError>) {
        if let Some(jwks) = self.0.take() {
            jwks.complete(result);
        }
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if let Some(jwks) = self.0.take() {
            jwks.complete(Err(FetchError::Abandoned));
        }
    }
}

/// Parse a fetched body into a key set, plus the JWK entries of its usable keys.
pub(super) fn parse_document(
    body: &[u8],
    algorithms: &[Algorithm],
) -> Result<(KeySet, HashMap<Box<str>, Value>), FetchError> {
    let document: JwksDocument =
        serde_json::from_slice(body).map_err(|e| FetchError::NotJwks(e.to_string()))?;
    let mut by_kid: HashMap<Box<str>, Value> = document
        .keys
        .iter()
        .filter_map(|entry| Some((Box::from(entry.get("kid")?.as_str()?), entry.clone())))
        .collect();
    let keys = KeySet::from_entries(document.keys, algorithms);
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys {
            skipped: keys.skipped().len(),
        });
    }
    by_kid.retain(|kid, _| keys.get(kid).is_some());
    Ok((keys, by_kid))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fetched, jwks_at, jwks_on, key, ED_X, ED_X2};
    use super::super::DEFAULT_RETRY_INITIAL;
    use super::*;
    use crate::error::ErrorKind;
    use crate::Clock;
    use std::future::Future;
    use std::time::UNIX_EPOCH;

    #[test]
    fn documents_that_are_not_usable_jwks_are_refused() {
        let parse = |body: &str| parse_document(body.as_bytes(), &[Algorithm::EdDSA]).map(|_| ());
        assert!(matches!(parse("<html>"), Err(FetchError::NotJwks(_))));
        assert!(matches!(
            parse(r#"{"keys": {}}"#),
            Err(FetchError::NotJwks(_))
        ));
        assert!(matches!(parse("[]"), Err(FetchError::NotJwks(_))));
        assert!(matches!(
            parse(r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#),
            Err(FetchError::NoUsableKeys { skipped: 1 })
        ));
        let ok = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}]}}"#);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn an_unchanged_key_keeps_its_identity_across_refreshes() {
        let (jwks, clock) = jwks_at(1_800_000_000);
        let doc = |x: &str| {
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}},
                    {{"kty":"OKP","crv":"Ed25519","kid":"b","x":"{x}"}}]}}"#
            )
        };
        jwks.complete(fetched(&doc(ED_X)));
        let (a, b) = (key(&jwks, "a"), key(&jwks, "b"));
        clock.advance(Duration::from_secs(600));
        jwks.complete(fetched(&doc(ED_X2)));
        // `a` is unchanged, so tokens cached against it stay valid; `b` was replaced.
        assert!(Arc::ptr_eq(&a, &key(&jwks, "a")));
        assert!(!Arc::ptr_eq(&b, &key(&jwks, "b")));
    }

    #[test]
    fn a_failed_fetch_keeps_the_set_and_schedules_a_retry() {
        let (jwks, clock) = jwks_at(1_800_000_000);
        let doc = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}]}}"#);
        jwks.complete(fetched(&doc));
        let a = key(&jwks, "a");
        clock.advance(Duration::from_secs(480));
        jwks.complete(Err(FetchError::Status(503)));
        assert!(Arc::ptr_eq(&a, &key(&jwks, "a")));
        let status = jwks.status();
        assert_eq!(status.consecutive_failures, 1);
        assert_eq!(
            status.last_error.as_deref(),
            Some("unexpected http status 503")
        );
        assert_eq!(
            status.next_refresh,
            Some(clock.now() + DEFAULT_RETRY_INITIAL)
        );
    }

    #[test]
    fn retries_are_jittered_unless_the_clock_pins_them() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwks = jwks_on(Arc::new(move || at));
        let mut delays = Vec::new();
        for (failures, ceiling) in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (6, 300)] {
            jwks.complete(Err(FetchError::Status(503)));
            let status = jwks.status();
            assert_eq!(status.consecutive_failures, failures);
            let delay = status.next_refresh.unwrap().duration_since(at).unwrap();
            let ceiling = Duration::from_secs(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{failures}: {delay:?}"
            );
            delays.push(delay.as_secs_f64() / ceiling.as_secs_f64());
        }
        assert!(delays.iter().any(|d| *d != 1.0), "{delays:?}");
        // A ManualClock pins them: the documented schedule exactly.
        let (jwks, clock) = jwks_at(1_800_000_000);
        for ceiling in [30, 60, 120, 240, 300, 300] {
            jwks.complete(Err(FetchError::Status(503)));
            let next = jwks.status().next_refresh.unwrap();
            assert_eq!(next, clock.now() + Duration::from_secs(ceiling));
        }
    }

    #[test]
    fn a_fetch_that_cannot_be_spawned_reports_instead_of_hanging() {
        let (jwks, _clock) = jwks_at(1_800_000_000);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        drop(runtime);
        // A context whose runtime is gone: the spawned fetch is dropped at once.
        let _context = handle.enter();
        let mut resolve = std::pin::pin!(jwks.resolve_missing("k1"));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(result) = resolve.as_mut().poll(&mut cx) else {
            panic!("an abandoned fetch must wake its waiters");
        };
        assert_eq!(result.unwrap_err().kind(), ErrorKind::KeysUnavailable);
        let status = jwks.status();
        assert!(!status.fetching);
        assert_eq!(
            status.last_error.as_deref(),
            Some("the fetch task ended without a result")
        );
    }
}
