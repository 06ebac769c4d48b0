//! The dev issuer's API keys: the bootstrap key and scoped keys, each with its scopes, an
//! optional expiry and a secret kept only as its SHA-256 digest, compared in constant time.
//!
//! This is the store, without HTTP: the handle's methods and the scoped-key endpoints
//! (`scoped.rs`) both act through it.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;

use super::signing::random_b64;
use mka1_auth::ConfigError;

/// The scope a key must hold to create, list, update, regenerate or delete API keys. The
/// bootstrap key ([`DevIssuer::api_key`](super::DevIssuer::api_key)) holds it, and every
/// other scope when managing keys.
pub const WRITE_APIKEYS_SCOPE: &str = "write:apikeys";

/// The id of the bootstrap key, the one [`DevIssuer::api_key`](super::DevIssuer::api_key)
/// returns.
pub const BOOTSTRAP_KEY_ID: &str = "bootstrap";

/// How every secret the dev issuer generates begins (the key's `prefix`).
pub const KEY_PREFIX: &str = "mka1_dev_";

/// The longest lifetime a key may be given: ten years.
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The organization every dev issuer key belongs to (`orgId`).
pub(super) const ORG_ID: &str = "dev-org";
/// The principal that owns keys not made on behalf of a service account (`userId`).
const USER_ID: &str = "dev-user";
const MAX_SECRET_BYTES: usize = 512;
const MAX_NAME_CHARS: usize = 128;
const MAX_SCOPE_PART_CHARS: usize = 64;

/// What a new API key holds: give it to [`DevIssuerBuilder::key`](super::DevIssuerBuilder::key)
/// or [`DevIssuer::create_key`](super::DevIssuer::create_key).
///
/// Its `Debug` does not show the secret.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth_dev_issuer::ApiKeySpec;
///
/// let spec = ApiKeySpec::new(["orders:read"])
///     .name("reports")
///     .team_id("team-1")
///     .expires_in(Duration::from_secs(86_400));
/// # let _ = spec;
/// ```
#[derive(Clone)]
#[must_use = "an `ApiKeySpec` does nothing until a key is created from it"]
pub struct ApiKeySpec {
    pub(super) scopes: Vec<String>,
    pub(super) name: Option<String>,
    pub(super) team_id: Option<String>,
    secret: Option<String>,
    expires_in: Option<Duration>,
}

impl ApiKeySpec {
    /// A key holding `scopes`: at least one, each two lowercase parts joined by `:` (like
    /// `read:responses` or `agent:read`; see [`check_scope`]). Order and repeats do not
    /// matter.
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ApiKeySpec {
            scopes: scopes.into_iter().map(Into::into).collect(),
            name: None,
            team_id: None,
            secret: None,
            expires_in: None,
        }
    }

    /// The key's name (at most 128 characters). Default: none.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The team the key is bound to (`teamId`). Default: none.
    pub fn team_id(mut self, team_id: impl Into<String>) -> Self {
        self.team_id = Some(team_id.into());
        self
    }

    /// A fixed secret instead of a random `mka1_dev_...` one: printable ASCII without
    /// spaces, at most 512 bytes, and no other key's.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// The key stops working this long after it is created, on the issuer's clock (whole
    /// seconds, at least one, at most [`MAX_KEY_LIFETIME`]). Default: never.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }
}

impl fmt::Debug for ApiKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySpec")
            .field("scopes", &self.scopes)
            .field("name", &self.name)
            .field("team_id", &self.team_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A key's id and plaintext secret, as the issuer hands them out once: on creation and on
/// regeneration. Its `Debug` does not show the secret.
#[derive(Clone)]
pub struct IssuedKey {
    id: String,
    secret: String,
}

impl IssuedKey {
    /// The key's id, for [`DevIssuer::revoke_key`](super::DevIssuer::revoke_key) and the
    /// endpoints' `keyId`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret to present as `Authorization: Bearer <secret>` (an exchange client's API
    /// key).
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What the issuer knows about a key, without its secret: what the list endpoint shows.
#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) team_id: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) start: String,
    pub(super) expires_at: Option<u64>,
    pub(super) owner: Owner,
    pub(super) rate_limit: RateLimit,
}

impl ApiKeyInfo {
    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The team it is bound to, if any.
    pub fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }

    /// Its scopes, sorted.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The first characters of its secret (`start`), to tell keys apart.
    pub fn start(&self) -> &str {
        &self.start
    }

    /// When it stops working, in seconds since the Unix epoch; `None` for never.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Replace its scopes (sorted, without repeats).
    pub(super) fn set_scopes(&mut self, scopes: Vec<String>) {
        self.scopes = sorted(scopes);
    }
}

/// Who owns a key: the dev issuer's user, or a service account it was made on behalf of.
#[derive(Debug, Clone, Default)]
pub(super) struct Owner {
    pub(super) service_account: Option<String>,
}

impl Owner {
    pub(super) fn user_id(&self) -> &str {
        self.service_account.as_deref().unwrap_or(USER_ID)
    }

    pub(super) fn user_type(&self) -> &'static str {
        match self.service_account {
            Some(_) => "service-account",
            None => "user",
        }
    }
}

/// The rate-limit settings a key carries. The dev issuer stores and shows them; it does not
/// enforce them.
#[derive(Debug, Clone, Default)]
pub(super) struct RateLimit {
    pub(super) enabled: bool,
    pub(super) time_window: Option<f64>,
    pub(super) max: Option<f64>,
}

/// An authenticated caller: the key that presented its secret.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    /// The key's scopes: what its exchanges may embed.
    pub(super) scopes: Vec<String>,
    /// The bootstrap key, the issuer's administrator: in managing keys it holds every
    /// scope, so it may grant any scope and regenerate or delete any key.
    administrator: bool,
}

impl Caller {
    /// Whether, in managing keys, the caller holds every one of `scopes`.
    pub(super) fn holds_all(&self, scopes: &[String]) -> bool {
        scopes.iter().all(|s| self.holds(s))
    }

    /// Whether, in managing keys, the caller holds `scope`.
    pub(super) fn holds(&self, scope: &str) -> bool {
        self.administrator || self.scopes.iter().any(|held| held == scope)
    }

    /// Whether the caller is the bootstrap key, the only key that may update, regenerate or
    /// delete the bootstrap key.
    pub(super) fn is_administrator(&self) -> bool {
        self.administrator
    }
}

/// Why a presented secret does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denied {
    /// No key has this secret (never had, deleted, or regenerated away).
    Unknown,
    /// The key's expiry has passed.
    Expired,
}

/// `Ok` when `scope` is two parts joined by one `:`, each 1-64 characters of lowercase ASCII
/// letters, digits, `_`, `-` and `.` (MKA1's scopes look like `read:responses`); else why not.
///
/// ```
/// use mka1_auth_dev_issuer::check_scope;
///
/// assert!(check_scope("read:responses").is_ok());
/// assert!(check_scope("agent:read").is_ok());
/// assert!(check_scope("admin").is_err());
/// assert!(check_scope("Read:Responses").is_err());
/// ```
pub fn check_scope(scope: &str) -> Result<(), &'static str> {
    let Some((action, resource)) = scope.split_once(':') else {
        return Err("a scope is two parts joined by `:`, like `read:responses`");
    };
    let part_ok = |part: &str| {
        (1..=MAX_SCOPE_PART_CHARS).contains(&part.len())
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            })
    };
    if part_ok(action) && part_ok(resource) {
        Ok(())
    } else {
        Err("each part of a scope is 1-64 lowercase letters, digits, `_`, `-` or `.`")
    }
}

/// Sorted, without duplicates.
fn sorted(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid_setting(name, reason)
}

/// `Ok` when `secret` can travel as `Bearer <secret>`.
pub(super) fn check_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.is_empty()
        || secret.len() > MAX_SECRET_BYTES
        || !secret.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(
            "secret",
            "an api key must be 1-512 bytes of printable ascii without spaces",
        ));
    }
    Ok(())
}

/// The scopes of a new or updated key: at least one, each well-formed; sorted.
pub(super) fn checked_scopes(scopes: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if scopes.is_empty() {
        return Err(invalid("scopes", "a key must hold at least one scope"));
    }
    for scope in &scopes {
        check_scope(scope).map_err(|why| invalid("scopes", format!("`{scope}`: {why}")))?;
    }
    Ok(sorted(scopes))
}

/// A key name's rule, shared with the endpoints.
pub(super) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err("a name is 1-128 characters");
    }
    Ok(())
}

/// A key lifetime's rule, in whole seconds, shared with the endpoints.
pub(super) fn check_lifetime(secs: u64) -> Result<(), &'static str> {
    if secs == 0 || secs > MAX_KEY_LIFETIME.as_secs() {
        return Err("a key lifetime is 1 second to 10 years");
    }
    Ok(())
}

type Digest = [u8; 32];

fn digest_of(secret: &str) -> Digest {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
    out
}

/// The `start` shown for a secret: its first characters, never more than half of it.
pub(super) fn start_of(secret: &str) -> String {
    let shown = (KEY_PREFIX.len() + 4).min(secret.len() / 2);
    secret[..shown].to_owned()
}

struct StoredKey {
    info: ApiKeyInfo,
    digest: Digest,
}

/// A new key, checked, before it has a secret.
pub(super) struct NewKey {
    pub(super) scopes: Vec<String>,
    pub(super) name: Option<String>,
    pub(super) team_id: Option<String>,
    pub(super) expires_at: Option<u64>,
    pub(super) owner: Owner,
    pub(super) rate_limit: RateLimit,
}

impl NewKey {
    /// Check `spec` at `now`; return the key and its fixed secret, if it has one.
    pub(super) fn from_spec(
        spec: ApiKeySpec,
        now: u64,
    ) -> Result<(NewKey, Option<String>), ConfigError> {
        if let Some(secret) = &spec.secret {
            check_secret(secret)?;
        }
        if let Some(name) = &spec.name {
            check_name(name).map_err(|why| invalid("name", why))?;
        }
        let expires_at = match spec.expires_in {
            None => None,
            Some(d) if d.subsec_nanos() != 0 => {
                return Err(invalid("expires_in", "not a whole number of seconds"))
            }
            Some(d) => {
                check_lifetime(d.as_secs()).map_err(|why| invalid("expires_in", why))?;
                Some(now.saturating_add(d.as_secs()))
            }
        };
        let key = NewKey {
            scopes: checked_scopes(spec.scopes)?,
            name: spec.name,
            team_id: spec.team_id,
            expires_at,
            owner: Owner::default(),
            rate_limit: RateLimit::default(),
        };
        Ok((key, spec.secret))
    }
}

/// Every key the issuer knows. Locked briefly; nothing awaits while holding it.
pub(super) struct KeyStore {
    keys: Mutex<Vec<StoredKey>>,
    rng: SystemRandom,
}

impl KeyStore {
    pub(super) fn new() -> Self {
        KeyStore {
            keys: Mutex::new(Vec::new()),
            rng: SystemRandom::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<StoredKey>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh_secret(&self) -> Result<String, Unspecified> {
        Ok(format!("{KEY_PREFIX}{}", random_b64(&self.rng, 24)?))
    }

    /// The key whose secret `presented` is, at `now`. Every stored digest is compared, each
    /// in constant time, so the answer's timing does not depend on which key matched.
    pub(super) fn authenticate(&self, presented: &str, now: u64) -> Result<Caller, Denied> {
        let presented = digest_of(presented);
        let keys = self.lock();
        let mut found = None;
        for key in keys.iter() {
            if verify_slices_are_equal(&key.digest, &presented).is_ok() {
                found = Some(key);
            }
        }
        let key = found.ok_or(Denied::Unknown)?;
        if key.info.expires_at.is_some_and(|at| now >= at) {
            return Err(Denied::Expired);
        }
        Ok(Caller {
            scopes: key.info.scopes.clone(),
            administrator: key.info.id == BOOTSTRAP_KEY_ID,
        })
    }

    /// Store `key` under `id` (a random one when `None`) with `secret` (a random one when
    /// `None`). Fails when the id or the secret is already another key's.
    pub(super) fn insert(
        &self,
        key: NewKey,
        id: Option<&str>,
        secret: Option<String>,
    ) -> Result<(IssuedKey, ApiKeyInfo), ConfigError> {
        let no_randomness = |_| invalid("secret", "the system random source failed");
        let secret = match secret {
            Some(secret) => secret,
            None => self.fresh_secret().map_err(no_randomness)?,
        };
        let id = match id {
            Some(id) => id.to_owned(),
            None => format!("key_{}", random_b64(&self.rng, 12).map_err(no_randomness)?),
        };
        let digest = digest_of(&secret);
        let mut keys = self.lock();
        if keys.iter().any(|k| k.info.id == id) {
            return Err(invalid(
                "id",
                format!("a key with id `{id}` already exists"),
            ));
        }
        if keys.iter().any(|k| k.digest == digest) {
            return Err(invalid("secret", "another key already has this secret"));
        }
        let info = ApiKeyInfo {
            id: id.clone(),
            name: key.name,
            team_id: key.team_id,
            scopes: sorted(key.scopes),
            start: start_of(&secret),
            expires_at: key.expires_at,
            owner: key.owner,
            rate_limit: key.rate_limit,
        };
        keys.push(StoredKey {
            info: info.clone(),
            digest,
        });
        Ok((IssuedKey { id, secret }, info))
    }

    /// Every key, oldest first.
    pub(super) fn list(&self) -> Vec<ApiKeyInfo> {
        self.lock().iter().map(|k| k.info.clone()).collect()
    }

    /// Run `change` on the key `id`; `None` when there is no such key.
    pub(super) fn modify<R>(
        &self,
        id: &str,
        change: impl FnOnce(&mut ApiKeyInfo) -> R,
    ) -> Option<R> {
        let mut keys = self.lock();
        let key = keys.iter_mut().find(|k| k.info.id == id)?;
        Some(change(&mut key.info))
    }

    /// Give the key `id` a new random secret, if `allowed` says so; its old secret stops
    /// working at once. `None` when there is no such key.
    pub(super) fn regenerate<E>(
        &self,
        id: &str,
        allowed: impl FnOnce(&ApiKeyInfo) -> Result<(), E>,
    ) -> Option<Result<Result<IssuedKey, Unspecified>, E>> {
        let secret = self.fresh_secret();
        let mut keys = self.lock();
        let key = keys.iter_mut().find(|k| k.info.id == id)?;
        if let Err(refused) = allowed(&key.info) {
            return Some(Err(refused));
        }
        Some(Ok(secret.map(|secret| {
            key.digest = digest_of(&secret);
            key.info.start = start_of(&secret);
            IssuedKey {
                id: id.to_owned(),
                secret,
            }
        })))
    }

    /// Delete the key `id`, if `allowed` says so; it stops working at once. `None` when
    /// there is no such key.
    pub(super) fn remove<E>(
        &self,
        id: &str,
        allowed: impl FnOnce(&ApiKeyInfo) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let mut keys = self.lock();
        let at = keys.iter().position(|k| k.info.id == id)?;
        if let Err(refused) = allowed(&keys[at].info) {
            return Some(Err(refused));
        }
        keys.remove(at);
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_key(scopes: &[&str], expires_at: Option<u64>) -> NewKey {
        NewKey {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            name: None,
            team_id: None,
            expires_at,
            owner: Owner::default(),
            rate_limit: RateLimit::default(),
        }
    }

    #[test]
    fn scope_format() {
        for ok in [
            "read:responses",
            "agent:read",
            "write:apikeys",
            "a:b",
            "x.y:z-1_2",
        ] {
            assert!(check_scope(ok).is_ok(), "{ok}");
        }
        let long = format!("read:{}", "a".repeat(65));
        for bad in [
            "", "admin", ":read", "read:", "read:a:b", "Read:x", "read x:y", "read:*", "réad:x",
            &long,
        ] {
            assert!(check_scope(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_authenticate_until_deleted_regenerated_or_expired() {
        let store = KeyStore::new();
        let (a, _) = store
            .insert(new_key(&["b:x", "a:x"], None), None, None)
            .unwrap();
        let (b, _) = store
            .insert(
                new_key(&["a:x"], Some(100)),
                Some("b"),
                Some("fixed-b".into()),
            )
            .unwrap();
        assert_eq!((b.id(), b.secret()), ("b", "fixed-b"));
        assert!(a.secret().starts_with(KEY_PREFIX) && a.secret().len() > 40);
        assert_eq!(
            store.authenticate(a.secret(), 0).unwrap().scopes,
            ["a:x", "b:x"]
        );
        assert!(store.authenticate("fixed-b", 99).is_ok());
        assert_eq!(
            store.authenticate("fixed-b", 100).unwrap_err(),
            Denied::Expired
        );
        assert_eq!(
            store.authenticate("fixed-", 0).unwrap_err(),
            Denied::Unknown
        );

        let renewed = store.regenerate(a.id(), |_| Ok::<_, ()>(())).unwrap();
        let renewed = renewed.unwrap().unwrap();
        assert_eq!(renewed.id(), a.id());
        assert_eq!(
            store.authenticate(a.secret(), 0).unwrap_err(),
            Denied::Unknown
        );
        assert!(store.authenticate(renewed.secret(), 0).is_ok());

        assert_eq!(store.remove("b", |_| Err("no")), Some(Err("no")));
        assert!(store.authenticate("fixed-b", 0).is_ok());
        assert_eq!(store.remove("b", |_| Ok::<_, ()>(())), Some(Ok(())));
        assert_eq!(
            store.authenticate("fixed-b", 0).unwrap_err(),
            Denied::Unknown
        );
        assert!(store.remove("b", |_| Ok::<_, ()>(())).is_none());
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn ids_and_secrets_are_unique() {
        let store = KeyStore::new();
        store
            .insert(new_key(&["a:x"], None), Some("k"), Some("s1".into()))
            .unwrap();
        let same_id = store.insert(new_key(&["a:x"], None), Some("k"), Some("s2".into()));
        assert!(same_id.is_err());
        let same_secret = store.insert(new_key(&["a:x"], None), None, Some("s1".into()));
        assert!(same_secret
            .unwrap_err()
            .to_string()
            .contains("already has this secret"));
    }

    #[test]
    fn start_never_shows_more_than_half_a_secret() {
        assert_eq!(
            start_of("mka1_dev_abcdefghijklmnopqrstuvwxyz"),
            "mka1_dev_abcd"
        );
        assert_eq!(start_of("short"), "sh");
        assert_eq!(start_of("x"), "");
    }

    #[test]
    fn specs_are_checked() {
        let bad = [
            ApiKeySpec::new(Vec::<String>::new()),
            ApiKeySpec::new(["admin"]),
            ApiKeySpec::new(["a:x"]).secret("has space"),
            ApiKeySpec::new(["a:x"]).secret(""),
            ApiKeySpec::new(["a:x"]).name(""),
            ApiKeySpec::new(["a:x"]).expires_in(Duration::ZERO),
            ApiKeySpec::new(["a:x"]).expires_in(Duration::from_millis(1500)),
            ApiKeySpec::new(["a:x"]).expires_in(MAX_KEY_LIFETIME + Duration::from_secs(1)),
        ];
        for spec in bad {
            let shown = format!("{spec:?}");
            assert!(NewKey::from_spec(spec, 0).is_err(), "{shown}");
        }
        let (key, secret) = NewKey::from_spec(
            ApiKeySpec::new(["b:x", "a:x", "a:x"])
                .secret("s")
                .expires_in(Duration::from_secs(5)),
            10,
        )
        .unwrap();
        assert_eq!(key.scopes, ["a:x", "b:x"]);
        assert_eq!(key.expires_at, Some(15));
        assert_eq!(secret.as_deref(), Some("s"));
        let debug = format!("{:?}", ApiKeySpec::new(["a:x"]).secret("sekrit"));
        assert!(!debug.contains("sekrit"), "{debug}");
    }
}
