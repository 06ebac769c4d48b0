//! The optional background refresher: keeps a remote key set fresh on a timer, so a replica
//! that gets no traffic still holds current keys when traffic comes.
//!
//! It is a Tokio task that sleeps on the verifier's [`Clock`](crate::Clock) until the next
//! refresh is due, then fetches as a request would (joining a fetch already in flight, so
//! never more than one at a time), and sleeps again. A refresh is due at about 80% of the
//! set's freshness: between 70% and 80% at random, so replicas started together do not fetch
//! together (exactly 80% on a clock that [pins jitter](crate::Clock::pins_jitter)); after a
//! failed fetch, when the retry backoff ends; at once when nothing is held. It holds the key
//! set only while fetching, and ends when the key set's verifier is dropped, or when its
//! [`Refresher`] handle is.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::{RemoteJwks, RemoteKeySetState};
use crate::retry::random_fraction;

/// The share of the time to the refresh point a refresh may come early by (an eighth of
/// 80% of the freshness: 10%).
const EARLY_SHARE: f64 = 1.0 / 8.0;

/// A running background refresher; it stops when this handle is dropped. From
/// [`Verifier::spawn_refresher`](crate::Verifier::spawn_refresher).
///
/// ```
/// use mka1_auth::Verifier;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .build()?;
/// let refresher = verifier.spawn_refresher()?;
/// assert!(!refresher.is_running()); // a static key set needs no refreshing
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the refresher stops when its handle is dropped"]
pub struct Refresher {
    /// One task per remote key source (several with a source per issuer).
    tasks: Vec<JoinHandle<()>>,
}

impl Refresher {
    /// A handle with no task: static key sets need no refreshing.
    pub(crate) fn idle() -> Refresher {
        Refresher { tasks: Vec::new() }
    }

    /// One handle for the refreshers of several key sources.
    pub(crate) fn all(refreshers: impl IntoIterator<Item = Refresher>) -> Refresher {
        let mut tasks = Vec::new();
        for mut refresher in refreshers {
            tasks.append(&mut refresher.tasks);
        }
        Refresher { tasks }
    }

    /// Whether a task runs (false for a static key set, or once the verifier is gone).
    pub fn is_running(&self) -> bool {
        self.tasks.iter().any(|task| !task.is_finished())
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Start refreshing `jwks` on `runtime`.
pub(super) fn spawn(jwks: &RemoteJwks, runtime: &Handle) -> Refresher {
    let state = Arc::downgrade(&jwks.inner);
    let clock = Arc::clone(&jwks.inner.clock);
    let mut completed = jwks.inner.completed.subscribe();
    let task = runtime.spawn(async move {
        loop {
            let Some(due) = upgrade(&state).map(|jwks| jwks.refresh_due()) else {
                return;
            };
            // Wake when the refresh is due, or when a fetch completes (a request's fetch
            // moves the next refresh; `Err` means the key set is gone).
            let mut sleep = pin!(clock.sleep_until(due));
            let mut changed = pin!(completed.changed());
            let woke = poll_fn(|cx| match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(true)),
                Poll::Pending => changed.as_mut().poll(cx).map(|r| r.map(|()| false)),
            })
            .await;
            match woke {
                Err(_) => return,
                Ok(false) => continue,
                Ok(true) => {}
            }
            let Some(jwks) = upgrade(&state) else {
                return;
            };
            // Its outcome is in the status and the logs; nobody waits on it here.
            let _ = jwks.refresh_for("timer").await;
        }
    });
    Refresher { tasks: vec![task] }
}

fn upgrade(state: &Weak<RemoteKeySetState>) -> Option<RemoteJwks> {
    state.upgrade().map(|inner| RemoteJwks { inner })
}

impl RemoteJwks {
    /// When the refresher should fetch next: now when nothing is held or scheduled; the
    /// scheduled retry after a failure; else the refresh point (80% of the freshness), made
    /// early at random by up to a tenth of the freshness.
    fn refresh_due(&self) -> SystemTime {
        let clock = &*self.inner.clock;
        let state = self.state();
        let Some(next) = state.next_refresh else {
            return clock.now();
        };
        let Some(since) = state.last_success.filter(|_| state.failures == 0) else {
            return next;
        };
        let lead = next.duration_since(since).unwrap_or(Duration::ZERO);
        let early = if clock.pins_jitter() {
            Duration::ZERO
        } else {
            lead.mul_f64(EARLY_SHARE * random_fraction())
        };
        next.checked_sub(early).unwrap_or(next)
    }
}

#[cfg(test)]
mod tests {
    use super::super::error::FetchError;
    use super::super::fetch::{parse_document, Fetched};
    use super::super::http::Validators;
    use super::*;
    use crate::jwks::Algorithm;
    use std::time::UNIX_EPOCH;

    const DOC: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    #[test]
    fn refreshes_come_between_70_and_80_percent_of_the_freshness_at_random() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // A clock that does not pin jitter.
        let jwks = super::super::tests::jwks_on(Arc::new(move || at));
        assert_eq!(jwks.refresh_due(), at, "nothing held: at once");
        let keys = parse_document(DOC.as_bytes(), &[Algorithm::EdDSA]).unwrap();
        jwks.complete(Ok(Fetched {
            changed: Some(keys),
            max_age: Duration::from_secs(600),
            validators: Validators::default(),
        }));
        let dues: Vec<Duration> = (0..64)
            .map(|_| jwks.refresh_due().duration_since(at).unwrap())
            .collect();
        let window = Duration::from_secs(420)..=Duration::from_secs(480);
        assert!(dues.iter().all(|due| window.contains(due)), "{dues:?}");
        assert!(dues.iter().any(|due| *due != dues[0]), "jittered");

        // After a failure: the scheduled (already jittered) retry.
        jwks.complete(Err(FetchError::Status(503)));
        assert_eq!(Some(jwks.refresh_due()), jwks.status().next_refresh);
    }
}
