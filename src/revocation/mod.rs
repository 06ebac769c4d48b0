//! Revocation: refuse tokens that are still valid on their face, by end user (`sub`, and
//! optionally `iss`), by token id (`jti`), or every token issued before a time (the
//! leaked-key case). See the [revocation guide](crate::guide::revocation).
//!
//! A [`Revocations`] holds the rules in force as a snapshot that every verification reads
//! without a lock or a network call (an `arc-swap` load, like the remote key set); a change
//! publishes a new snapshot. Give it to [`VerifierBuilder::revocations`](crate::VerifierBuilder::revocations):
//! the verifier then checks every answer, cache hits included, after the signature and the
//! claim rules, and refuses a revoked token with [`ErrorKind::Revoked`]
//! (401 `invalid_token`, "token has been revoked"). A verifier without one pays one `Option`
//! check.
//!
//! Rules come from this process ([`Revocations::in_process`] and [`Revocations::revoke`]) or,
//! with the `redis` feature, from Redis, shared by every replica (`Revocations::redis`).
//!
//! A rule is dropped once no token it could refuse can still be valid: at its time plus the
//! verifier's maximum lifetime and leeway (the longest of every verifier it is given to),
//! so memory stays bounded.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth_dev_issuer::{DevIssuer, Mint};
//! use mka1_auth::revocation::{Revocations, Rule};
//! use mka1_auth::{ErrorKind, Verifier};
//!
//! let issuer = DevIssuer::start().await?;
//! let revocations = Revocations::in_process();
//! let verifier = Verifier::builder()
//!     .jwks(issuer.jwks_json())
//!     .audience("https://api.example.com")
//!     .revocations(revocations.clone())
//!     .build()?;
//! let token = issuer.mint(Mint::new("https://api.example.com", "alice"));
//! assert!(verifier.verify(&token).await.is_ok());
//!
//! // Every token of alice's issued before the next second.
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! revocations.revoke(Rule::user("alice", now + 1));
//! let err = verifier.verify(&token).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Revoked);
//! assert_eq!(err.to_string(), "token has been revoked");
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;
mod rule;
mod set;
mod status;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

#[cfg(feature = "redis")]
pub use self::redis::{RedisRevocations, RedisSetup, RedisStore, StoreError, StoreErrorKind};
pub use rule::Rule;
pub use status::RevocationStatus;

use crate::claims::VerifiedToken;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::epoch::Epoch;
use crate::error::{Error, ErrorKind};
use set::RuleSet;

/// The rules epoch: moves after any rule set is published, by any [`Revocations`] in the
/// process. A cache hit stamped with it skips the rules for a token this thread already
/// found not revoked by the rules in force (see `VerifierState::check_uncached_hit`).
pub(crate) static RULES_EPOCH: Epoch = Epoch::new();

/// How long a rule is kept when no verifier has said more: MKA1's longest token lifetime
/// (30 days) plus the default leeway (60 s).
pub(crate) const DEFAULT_RETENTION: Duration =
    Duration::from_secs(crate::protocol::MAX_EXPIRES_IN + 60);

/// The revocation rules a verifier obeys: a snapshot read lock-free on every request, and
/// the state of its source. Cheap to clone; clones share the rules.
///
/// ```
/// use mka1_auth::revocation::{Revocations, Rule};
///
/// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
/// let revocations = Revocations::in_process();
/// revocations.revoke(Rule::all(now.as_secs()));
/// assert_eq!(revocations.rules(), vec![Rule::all(now.as_secs())]);
/// // A rule whose tokens can no longer be valid (older than 30 days and a minute) is dropped.
/// revocations.revoke(Rule::user("alice", now.as_secs() - 40 * 86_400));
/// assert_eq!(revocations.status().rule_count, 1);
/// assert!(revocations.status().loaded);
/// ```
#[derive(Clone)]
pub struct Revocations {
    shared: Arc<Shared>,
}

/// What the clones of a [`Revocations`] share.
pub(crate) struct Shared {
    /// The rules in force; `None` until the first load.
    current: ArcSwapOption<RuleSet>,
    /// How long a rule is kept after its time, in seconds.
    retention: AtomicU64,
    /// Serve without rules until the first load, rather than answer 503.
    serve_unloaded: AtomicBool,
    clock: SharedClock,
    /// Held by writers (which build and publish a new snapshot) and by status readers.
    state: Mutex<State>,
}

/// The source's state, for [`Revocations::status`].
#[derive(Default)]
struct State {
    last_loaded: Option<SystemTime>,
    stale_since: Option<SystemTime>,
    skipped: u64,
    last_error: Option<String>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status();
        f.debug_struct("Revocations")
            .field("loaded", &status.loaded)
            .field("rule_count", &status.rule_count)
            .field("stale_since", &status.stale_since)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Rules held in this process only, added with [`revoke`](Self::revoke): for one
    /// replica, and for tests. Loaded (empty) from the start.
    pub fn in_process() -> Self {
        let revocations = Revocations::unloaded(Arc::new(SystemClock));
        revocations.publish_all(&[], 0);
        revocations
    }

    /// Rules not loaded yet: every check answers 503 until the first
    /// [`publish_all`](Self::publish_all), unless serving without rules.
    pub(crate) fn unloaded(clock: SharedClock) -> Self {
        Revocations {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                retention: AtomicU64::new(DEFAULT_RETENTION.as_secs()),
                serve_unloaded: AtomicBool::new(false),
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Read the time from `clock` (for dropping expired rules and the status) instead of
    /// the system clock.
    ///
    /// ```
    /// use mka1_auth::{revocation::Revocations, ManualClock};
    /// let revocations = Revocations::in_process().clock(ManualClock::at_unix(1_000));
    /// # let _ = revocations;
    /// ```
    pub fn clock(self, clock: impl Clock) -> Self {
        let rules = self.rules();
        let loaded = self.status().loaded;
        let fresh = Revocations::unloaded(Arc::new(clock));
        fresh.shared.serve_unloaded.store(
            self.shared.serve_unloaded.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if loaded {
            fresh.publish_all(&rules, 0);
        }
        fresh
    }

    /// Until the rules are first loaded, serve as if there were none, instead of answering
    /// every request 503 with `Retry-After` (the default: fail closed). For a service that
    /// would rather accept a revoked token for a while than refuse everyone while Redis is
    /// down at its start.
    ///
    /// ```
    /// use mka1_auth::revocation::Revocations;
    /// let revocations = Revocations::in_process().serve_without_rules_until_loaded();
    /// # let _ = revocations;
    /// ```
    pub fn serve_without_rules_until_loaded(self) -> Self {
        self.shared.serve_unloaded.store(true, Ordering::Relaxed);
        self
    }

    /// Add `rule` to this process's rules; every later check obeys it. (With Redis, store
    /// rules through `RedisRevocations::store`, so that every replica learns of them.)
    pub fn revoke(&self, rule: Rule) {
        self.revoke_many(std::slice::from_ref(&rule));
    }

    /// Add several rules at once (one new snapshot for all of them).
    pub fn revoke_many(&self, rules: &[Rule]) {
        let mut state = self.lock();
        let now = self.now();
        let current = self.shared.current.load_full().unwrap_or_default();
        let set = current.with(rules, now, self.retention());
        self.publish(set);
        state.last_loaded.get_or_insert(self.shared.clock.now());
    }

    /// Drop the rules whose time has passed (their time plus the retention), if any has:
    /// without a change, the snapshot would keep them until the next one. A new snapshot
    /// only when something is dropped.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn drop_expired(&self) {
        let due = self
            .shared
            .current
            .load()
            .as_deref()
            .and_then(RuleSet::earliest)
            .is_some_and(|earliest| earliest.saturating_add(self.retention()) <= self.now());
        if due {
            self.revoke_many(&[]);
        }
    }

    /// The rules in force, merged: one per subject and issuer (the latest time), per token
    /// id, and for every token.
    pub fn rules(&self) -> Vec<Rule> {
        self.shared
            .current
            .load()
            .as_deref()
            .map(RuleSet::rules)
            .unwrap_or_default()
    }

    /// Where the rules stand: loaded or not, how many, since when stale. For health
    /// endpoints (`/readyz`).
    pub fn status(&self) -> RevocationStatus {
        let state = self.lock();
        let current = self.shared.current.load();
        RevocationStatus {
            loaded: current.is_some(),
            rule_count: current.as_deref().map_or(0, RuleSet::len),
            last_loaded: state.last_loaded,
            stale_since: state.stale_since,
            skipped_values: state.skipped,
            last_error: state.last_error.clone(),
        }
    }

    /// Keep rules at least `retention` after their time (the verifier's maximum lifetime
    /// plus leeway): rules are kept for the longest any verifier asked.
    pub(crate) fn retain_at_least(&self, retention: Duration) {
        self.shared
            .retention
            .fetch_max(retention.as_secs(), Ordering::Relaxed);
    }

    /// How long rules are kept after their time, in seconds.
    pub(crate) fn retention(&self) -> u64 {
        self.shared.retention.load(Ordering::Relaxed)
    }

    /// Make `set` the rules every later check obeys, and move the rules epoch on.
    fn publish(&self, set: RuleSet) {
        self.shared.current.store(Some(Arc::new(set)));
        // After the store: a token found not revoked from here on was checked against it.
        RULES_EPOCH.advance();
    }

    /// The check on every verification: the hot path. No lock, no shared write.
    #[inline]
    pub(crate) fn check(&self, token: &VerifiedToken) -> Result<(), Error> {
        let current = self.shared.current.load();
        match current.as_deref() {
            Some(set) if set.refuses(token) => Err(Error::new(ErrorKind::Revoked)),
            Some(_) => Ok(()),
            None if self.shared.serve_unloaded.load(Ordering::Relaxed) => Ok(()),
            None => Err(Error::new(ErrorKind::RevocationUnavailable)
                .with_retry_after(Duration::from_secs(1))),
        }
    }

    /// Replace every rule with `rules` (a full load); `skipped` values did not parse.
    pub(crate) fn publish_all(&self, rules: &[Rule], skipped: u64) {
        let mut state = self.lock();
        let set = RuleSet::default().with(rules, self.now(), self.retention());
        self.publish(set);
        state.last_loaded = Some(self.shared.clock.now());
        state.stale_since = None;
        state.last_error = None;
        state.skipped = state.skipped.saturating_add(skipped);
    }

    /// Note one more value that did not parse.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn note_skipped(&self) {
        let mut state = self.lock();
        state.skipped = state.skipped.saturating_add(1);
    }

    /// Mark the rules stale from now (the source is unreachable), unless already.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn mark_stale(&self, why: String) {
        let mut state = self.lock();
        state.stale_since.get_or_insert(self.shared.clock.now());
        state.last_error = Some(why);
    }

    /// The time now, in Unix seconds.
    pub(crate) fn now(&self) -> u64 {
        self.shared
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn unloaded_rules_fail_closed_unless_told_otherwise() {
        let token = set::test_token("a", None, Some(1), None);
        let closed = Revocations::unloaded(Arc::new(SystemClock));
        let err = closed.check(&token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RevocationUnavailable);
        assert_eq!(err.to_string(), "revocation rules are not loaded yet");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(!closed.status().loaded);
        let open = Revocations::unloaded(Arc::new(SystemClock)).serve_without_rules_until_loaded();
        assert!(open.check(&token).is_ok());
        closed.publish_all(&[], 0);
        assert!(closed.check(&token).is_ok());
        assert!(closed.status().loaded);
    }

    #[test]
    fn rules_expire_after_the_longest_retention_asked() {
        let clock = ManualClock::at_unix(1_000);
        let revocations = Revocations::in_process().clock(clock.clone());
        revocations.retain_at_least(Duration::from_secs(100));
        revocations.retain_at_least(Duration::from_secs(50));
        assert_eq!(revocations.retention(), DEFAULT_RETENTION.as_secs());
        let short = Revocations::unloaded(Arc::new(clock.clone()));
        short.shared.retention.store(100, Ordering::Relaxed);
        short.retain_at_least(Duration::from_secs(200));
        short.publish_all(&[Rule::all(1_000)], 0);
        clock.set_unix(1_199);
        short.revoke(Rule::user("a", 1_199));
        assert_eq!(short.status().rule_count, 2);
        clock.set_unix(1_200);
        short.revoke_many(&[]);
        assert_eq!(short.rules(), vec![Rule::user("a", 1_199)]);
        // Without a change: dropped when due, and no new snapshot before.
        let held = short.shared.current.load_full();
        short.drop_expired();
        assert!(Arc::ptr_eq(
            &held.unwrap(),
            &short.shared.current.load_full().unwrap()
        ));
        clock.set_unix(1_399);
        short.drop_expired();
        assert_eq!(short.status().rule_count, 0);
    }
}
