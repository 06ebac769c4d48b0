//! The Redis source (feature `redis`): rules shared by every replica.
//!
//! Layout, for `redis-cli` (with the default names):
//!
//! - one string key per rule, `mka1-auth:revoked:` followed by [`Rule::key`]'s tail
//!   (`all:<before>`, `user:<before>:<sub>[:<iss>]`, `jti:<jti>`), whose value is the rule's
//!   JSON ([`Rule::to_json`]) and which expires with the rule (`SET … EX`);
//! - the channel `mka1-auth:revocations`: a writer publishes the rule's JSON there after
//!   storing it, and every replica applies it at once; the message `reload` makes every
//!   replica load every rule again (after a rule was deleted by hand, say).
//!
//! Each replica subscribes first, then loads every key under the prefix (`SCAN` + `MGET`),
//! so no rule stored in between is missed; it does so at start and after every reconnect.
//! While Redis is unreachable it keeps its last snapshot, marks it stale
//! ([`RevocationStatus::stale_since`](super::RevocationStatus::stale_since)) and
//! reconnects with jittered exponential backoff (100 ms doubling to 5 s). A connection is
//! checked with `PING` every 2 s (the command connection and the subscription's both, each
//! given 2 s to answer), so a silent loss is found too; rules whose time has passed leave
//! the snapshot then, even when nothing changes. Values that do not parse
//! are skipped with a warning.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::AsyncCommands;

use super::{Revocations, Rule};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::shown::Shown;

/// The key prefix rules are stored under unless [`RedisSetup::prefix`] says otherwise.
const DEFAULT_PREFIX: &str = "mka1-auth:revoked:";
/// The channel changes are announced on unless [`RedisSetup::channel`] says otherwise.
pub(crate) const DEFAULT_CHANNEL: &str = "mka1-auth:revocations";

/// The message that makes every replica reload every rule.
const RELOAD: &str = "reload";
/// First and longest backoff between reconnects.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a connection is checked, and how long a command may take.
const PING_EVERY: Duration = Duration::from_secs(2);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys per `SCAN` step and per `MGET`.
const BATCH: usize = 1_000;

/// How to reach the rules in Redis ([`Revocations::redis`]).
///
/// ```
/// use mka1_auth::revocation::Revocations;
/// let setup = Revocations::redis("redis://127.0.0.1:6379/")
///     .prefix("myapp:revoked:")
///     .channel("myapp:revocations");
/// # let _ = setup;
/// ```
#[derive(Clone)]
pub struct RedisSetup {
    url: String,
    prefix: String,
    channel: String,
    serve_unloaded: bool,
    clock: SharedClock,
}

impl std::fmt::Debug for RedisSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is left out.
        f.debug_struct("RedisSetup")
            .field("prefix", &self.prefix)
            .field("channel", &self.channel)
            .field("serve_unloaded", &self.serve_unloaded)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Rules from Redis, shared by every replica: see [`RedisSetup`], then
    /// [`RedisSetup::start`].
    pub fn redis(url: impl Into<String>) -> RedisSetup {
        RedisSetup {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            channel: DEFAULT_CHANNEL.to_owned(),
            serve_unloaded: false,
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

impl RedisSetup {
    /// The key prefix (default `mka1-auth:revoked:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The channel (default `mka1-auth:revocations`).
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Until the first load from Redis succeeds, serve as if there were no rules, instead
    /// of answering 503 with `Retry-After` (the default: fail closed).
    pub fn serve_without_rules_until_loaded(mut self) -> Self {
        self.serve_unloaded = true;
        self
    }

    /// Read time from `clock` (for the rules' expiry and the status) instead of the system
    /// clock, as [`Revocations::clock`] does for in-process rules.
    ///
    /// ```
    /// use mka1_auth::{revocation::Revocations, ManualClock};
    /// let setup = Revocations::redis("redis://127.0.0.1:6379/").clock(ManualClock::at_unix(1_000));
    /// # let _ = setup;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = std::sync::Arc::new(clock);
        self
    }

    /// A handle on the rules in Redis that only writes and reads them (no snapshot, no
    /// task): for the command line and for operators' tools.
    pub fn store(&self) -> Result<RedisStore, ConfigError> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| invalid_url(&e))?;
        Ok(RedisStore {
            client,
            prefix: self.prefix.clone(),
            channel: self.channel.clone(),
        })
    }

    /// Start following the rules in Redis: a Tokio task loads them, then applies every
    /// change announced, and reconnects when Redis goes away. Until the first load, the
    /// rules are not loaded (503, unless serving without rules). The task stops when the
    /// returned handle is dropped. Fails on an invalid URL, or outside a Tokio runtime.
    pub fn start(self) -> Result<RedisRevocations, ConfigError> {
        let clock = self.clock.clone();
        let store = self.store()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConfigError::invalid_setting("revocations", "the redis source needs a tokio runtime")
        })?;
        let revocations = Revocations::unloaded(clock);
        if self.serve_unloaded {
            revocations
                .shared
                .serve_unloaded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        crate::metrics::watch(revocations.gauges_while_alive());
        let task = runtime.spawn(follow(store.clone(), revocations.clone()));
        Ok(RedisRevocations {
            revocations,
            store,
            task,
        })
    }
}

impl Revocations {
    /// These rules' gauge reading, for as long as they live (for the metrics gauges, which
    /// must not keep them alive): how many, and how long stale, on their clock.
    fn gauges_while_alive(
        &self,
    ) -> impl Fn() -> Option<crate::metrics::RevocationGauges> + Send + Sync + 'static {
        let weak = std::sync::Arc::downgrade(&self.shared);
        move || {
            let revocations = Revocations {
                shared: weak.upgrade()?,
            };
            let status = revocations.status();
            let now = revocations.shared.clock.now();
            Some(crate::metrics::RevocationGauges {
                rules: status.rule_count,
                stale_for: status
                    .stale_since
                    .map(|since| now.duration_since(since).unwrap_or_default()),
            })
        }
    }
}

fn invalid_url(e: &redis::RedisError) -> ConfigError {
    ConfigError::invalid_setting("redis_url", e.to_string())
}

/// A running Redis source: its [`Revocations`] (give them to the verifier) and the task
/// that keeps them in step with Redis, stopped when this is dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::revocation::{Revocations, Rule};
/// use mka1_auth::Verifier;
///
/// let source = Revocations::redis("redis://127.0.0.1:6379/").start()?;
/// let verifier = Verifier::builder()
///     .jwks_url("https://mka1.example.com/.well-known/jwks.json")
///     .audience("https://api.example.com")
///     .revocations(source.revocations())
///     .build()?;
/// // Every replica refuses user-42's tokens issued before this time within a second.
/// source.store(&Rule::user("user-42", 1_900_000_000)).await?;
/// # let _ = verifier;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisRevocations {
    revocations: Revocations,
    store: RedisStore,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RedisRevocations {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisRevocations {
    /// The rules, for [`VerifierBuilder::revocations`](crate::VerifierBuilder::revocations)
    /// and the status.
    pub fn revocations(&self) -> Revocations {
        self.revocations.clone()
    }

    /// Store `rule` in Redis for every replica, kept as long as this replica's verifiers
    /// need it (their longest lifetime plus leeway after the rule's time).
    pub async fn store(&self, rule: &Rule) -> Result<(), StoreError> {
        let retention = Duration::from_secs(self.revocations.retention());
        self.store
            .store(rule, retention, self.revocations.now())
            .await
    }
}

/// Reading and writing the rules in Redis, without following them.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::revocation::Revocations;
///
/// let store = Revocations::redis("redis://127.0.0.1:6379/").store()?;
/// let (rules, unreadable) = store.load().await?;
/// println!("{} rules stored, {unreadable} unreadable", rules.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    channel: String,
}

/// What kind of [`StoreError`]; see [`StoreError::kind`].
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The rule has an empty or too long field; nothing was sent.
    InvalidRule,
    /// The rule has already expired (no token it refuses can still be valid); nothing was
    /// sent.
    Expired,
    /// Redis was unreachable, did not answer in time, or answered an error.
    Redis,
}

/// Storing or reading rules in Redis failed. Opaque: inspect it with
/// [`kind`](StoreError::kind); its message is lowercase and never holds the Redis URL.
///
/// ```
/// use mka1_auth::revocation::{Revocations, Rule, StoreErrorKind};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Revocations::redis("redis://127.0.0.1:1/").store()?;
/// // A rule whose tokens have all expired is refused before Redis is asked.
/// let err = store.store(&Rule::all(10), std::time::Duration::from_secs(60), 1_000).await.unwrap_err();
/// assert_eq!(err.kind(), StoreErrorKind::Expired);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct StoreError {
    kind: StoreErrorKind,
    detail: String,
}

impl StoreError {
    fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            detail: detail.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::new(StoreErrorKind::Redis, format!("redis: {e}"))
    }
}

impl RedisStore {
    /// The prefix of the keys rules are stored under ([`RedisSetup::prefix`]; by default
    /// `mka1-auth:revoked:`), for [`Rule::key`].
    ///
    /// ```
    /// use mka1_auth::revocation::{Revocations, Rule};
    ///
    /// # fn main() -> Result<(), mka1_auth::ConfigError> {
    /// let store = Revocations::redis("redis://127.0.0.1:6379/").store()?;
    /// assert_eq!(store.prefix(), "mka1-auth:revoked:");
    /// assert_eq!(Rule::all(1_900_000_000).key(store.prefix()), "mka1-auth:revoked:all:1900000000");
    /// # Ok(()) }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Store `rule`, expiring `retention` after its time (`now` in Unix seconds), and
    /// announce it to every replica.
    pub async fn store(
        &self,
        rule: &Rule,
        retention: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        if !rule.is_valid() {
            return Err(StoreError::new(
                StoreErrorKind::InvalidRule,
                "the rule has an empty or too long field",
            ));
        }
        let until = rule.before().saturating_add(retention.as_secs());
        if until <= now {
            return Err(StoreError::new(
                StoreErrorKind::Expired,
                "the rule has already expired: no token it refuses can still be valid",
            ));
        }
        let value = rule.to_json();
        let mut conn = connect(&self.client).await?;
        redis::pipe()
            .atomic()
            .set_ex(rule.key(&self.prefix), &value, until - now)
            .ignore()
            .publish(&self.channel, &value)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Every rule stored, and how many values did not parse.
    pub async fn load(&self) -> Result<(Vec<Rule>, u64), StoreError> {
        let mut conn = connect(&self.client).await?;
        Ok(load(&mut conn, &self.prefix).await?)
    }

    /// Ask every replica to load every rule again.
    pub async fn announce_reload(&self) -> Result<(), StoreError> {
        let mut conn = connect(&self.client).await?;
        conn.publish::<_, _, ()>(&self.channel, RELOAD).await?;
        Ok(())
    }
}

/// Every rule under `prefix`, and how many values were skipped.
async fn load(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<(Vec<Rule>, u64)> {
    let pattern = format!("{}*", escape_glob(prefix));
    let (mut rules, mut skipped) = (Vec::new(), 0);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(conn)
            .await?;
        for chunk in keys.chunks(BATCH) {
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(chunk).query_async(conn).await?;
            for (key, value) in chunk.iter().zip(values) {
                // A key that expired between SCAN and MGET is simply gone.
                let Some(value) = value else { continue };
                match Rule::parse(&value) {
                    Some(rule) => rules.push(rule),
                    None => {
                        skipped += 1;
                        tracing::warn!(key = ?Shown(key), value = ?Shown(&value), "revocation rule in redis does not parse; skipped");
                    }
                }
            }
        }
        if next == 0 {
            return Ok((rules, skipped));
        }
        cursor = next;
    }
}

/// `s` with Redis glob characters escaped.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Keep `revocations` in step with Redis, forever (until aborted).
async fn follow(store: RedisStore, revocations: Revocations) {
    let mut attempt: u32 = 0;
    loop {
        let error = session(&store, &revocations, &mut attempt).await;
        attempt = attempt.saturating_add(1);
        tracing::warn!(error = %error, attempt, "revocation rules: redis unreachable; keeping the last snapshot");
        revocations.mark_stale(error.to_string());
        tokio::time::sleep(crate::retry::backoff(BACKOFF_BASE, BACKOFF_MAX, attempt)).await;
    }
}

/// One connection's life: subscribe, load everything, then apply announcements until the
/// connection fails. Resets `attempt` once loaded. Returns why it ended.
async fn session(
    store: &RedisStore,
    revocations: &Revocations,
    attempt: &mut u32,
) -> redis::RedisError {
    let run = async {
        let subscribe = async {
            let mut pubsub = store.client.get_async_pubsub().await?;
            pubsub.subscribe(&store.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(COMMAND_TIMEOUT, subscribe)
            .await
            .map_err(|_| timed_out())??;
        let mut conn = connect(&store.client).await?;
        reload(&mut conn, store, revocations).await?;
        *attempt = 0;
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(first) = message else {
                        return Err(lost());
                    };
                    // Apply every announcement already here in one new snapshot.
                    let mut batch = vec![first];
                    while let Some(Some(more)) = messages.next().now_or_never() {
                        batch.push(more);
                    }
                    let mut rules = Vec::with_capacity(batch.len());
                    let mut full_reload = false;
                    for message in batch {
                        let payload: String = message.get_payload().unwrap_or_default();
                        if payload == RELOAD {
                            full_reload = true;
                        } else if let Some(rule) = Rule::parse(&payload) {
                            rules.push(rule);
                        } else {
                            revocations.note_skipped();
                            tracing::warn!(value = ?Shown(&payload), "revocation announcement does not parse; skipped");
                        }
                    }
                    if full_reload {
                        reload(&mut conn, store, revocations).await?;
                    } else {
                        revocations.revoke_many(&rules);
                    }
                }
                _ = ping.tick() => {
                    redis::cmd("PING").query_async::<()>(&mut conn).await?;
                    // The subscription too: a connection that went silent delivers nothing
                    // and never ends.
                    tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>())
                        .await
                        .map_err(|_| timed_out())??;
                    revocations.drop_expired();
                }
            }
        }
    };
    match run.await {
        Ok(()) => lost(),
        Err(e) => e,
    }
}

async fn reload(
    conn: &mut redis::aio::MultiplexedConnection,
    store: &RedisStore,
    revocations: &Revocations,
) -> redis::RedisResult<()> {
    let (rules, skipped) = load(conn, &store.prefix).await?;
    revocations.publish_all(&rules, skipped);
    tracing::info!(
        rules = rules.len(),
        skipped,
        "revocation rules loaded from redis"
    );
    Ok(())
}

/// A connection for commands, with connect and response timeouts.
async fn connect(client: &redis::Client) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "redis did not answer in time"))
}

fn lost() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "connection to redis lost"))
}
