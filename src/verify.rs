//! The [`Verifier`]: decides whether a raw JWT was issued by MKA1 for this service and one
//! valid end user, and turns it into a [`VerifiedToken`].
//!
//! The checks run in this order, each failure with its own [`ErrorKind`]:
//!
//! 1. size cap (before any parsing); exactly three segments; strict base64url; the header is
//!    a JSON object;
//! 2. `crit` absent; `kid` present; `alg` in the allow-list and agreeing with the key the
//!    `kid` names (`jku`, `jwk`, `x5u` and `x5c` are never used to find a key);
//! 3. the signature, against the already-parsed key;
//! 4. the payload is a JSON object without repeated claim names;
//! 5. `exp` required and a NumericDate, not expired, not further ahead than the maximum
//!    lifetime; `nbf` and `iat`, when present, NumericDates not in the future;
//! 6. `aud` a string or an array of strings naming a configured audience;
//! 7. `iss`, when issuers are configured, a string equal to one of them;
//! 8. `sub` a valid end-user id ([`validate_end_user_id`]);
//! 9. permissions an array of strings or one space-separated string, or absent.
//!
//! Leeway applies to every time comparison. NumericDates are JSON numbers; integers are used
//! as they are, and a fractional number (RFC 7519 allows one) is rounded toward the stricter
//! side: `exp` down, `nbf` and `iat` up. Negative numbers, numbers past the year 9999, and
//! strings, booleans, `null`, arrays or objects are refused as [`ErrorKind::InvalidClaim`].

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::claims::{validate_end_user_id, Fields, Permissions, VerifiedToken};
use crate::clock::{SharedClock, SystemClock};
use crate::error::{ConfigError, Error, ErrorKind};
pub use crate::jwks::IntoJwks;
use crate::jwks::{self, b64url_decode, KeySet, KeySetStatus, KeySource, Lookup};
use crate::token_cache::{self, TokenCache};

/// Default clock skew tolerated on every time check.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default longest lifetime a token may claim: 30 days, MKA1's largest `expiresIn`.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(crate::protocol::MAX_EXPIRES_IN);
/// Default largest token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default claim holding the permissions.
pub const DEFAULT_PERMISSIONS_CLAIM: &str = "permissions";

/// 9999-12-31T23:59:59Z: no real NumericDate lies beyond it.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;
const REGISTERED_CLAIMS: [&str; 7] = ["exp", "nbf", "iat", "aud", "sub", "iss", "jti"];

enum KeyConfig {
    Static(Result<Vec<Value>, ConfigError>),
    #[cfg(feature = "remote")]
    Remote(String),
}

/// Builds a [`Verifier`]. Every setting has a safe default except the audience and the key
/// source, which must be given.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::Verifier;
///
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .issuer("https://apigw.mka1.com")
///     .leeway(Duration::from_secs(30))
///     .build()?;
/// # let _ = verifier;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[must_use]
pub struct VerifierBuilder {
    keys: Option<KeyConfig>,
    conflicting_keys: bool,
    audiences: Vec<String>,
    issuers: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_lifetime: Duration,
    max_token_bytes: usize,
    permissions_claim: String,
    clock: Option<SharedClock>,
    cache_capacity: u64,
    #[cfg(feature = "remote")]
    remote: jwks::remote::RemoteJwksConfig,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        VerifierBuilder {
            keys: None,
            conflicting_keys: false,
            audiences: Vec::new(),
            issuers: Vec::new(),
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            permissions_claim: DEFAULT_PERMISSIONS_CLAIM.to_owned(),
            clock: None,
            cache_capacity: token_cache::DEFAULT_CAPACITY,
            #[cfg(feature = "remote")]
            remote: Default::default(),
        }
    }
}

impl VerifierBuilder {
    fn set_keys(mut self, keys: KeyConfig) -> Self {
        if self.keys.is_some() {
            self.conflicting_keys = true;
        }
        self.keys = Some(keys);
        self
    }

    /// Fetch keys from this JWKS URL, and keep them fresh (see [`jwks::remote`]).
    ///
    /// `https` is required unless the host is a loopback address, or plain http is allowed
    /// explicitly with [`jwks_options`](Self::jwks_options).
    #[cfg(feature = "remote")]
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        self.set_keys(KeyConfig::Remote(url.into()))
    }

    /// Tune how the remote JWKS is fetched and cached.
    #[cfg(feature = "remote")]
    pub fn jwks_options(mut self, options: jwks::remote::RemoteJwksConfig) -> Self {
        self.remote = options;
        self
    }

    /// Use this fixed key set (JSON text, a `serde_json::Value` or a `jsonwebtoken` `JwkSet`),
    /// for tests and air-gapped services. Unusable keys are skipped; a set with no usable key
    /// is a [`ConfigError`].
    pub fn jwks(self, jwks: impl IntoJwks) -> Self {
        self.set_keys(KeyConfig::Static(jwks.into_jwk_entries()))
    }

    /// Accept tokens whose `aud` names this audience (your service's URL). Call again to
    /// accept several. At least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Require `iss` to equal this issuer. Call again to accept several. Optional: MKA1 does
    /// not document its issuer, so none is required by default.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// The algorithm allow-list (default EdDSA, ES256, RS256). Asymmetric algorithms only:
    /// an `HS*` entry is a [`ConfigError`].
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock skew tolerated on every time check (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest lifetime a token may claim, measured from now to its `exp` (default 30 days).
    pub fn max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// Largest token accepted, in bytes, checked before anything is parsed (default 8 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The claim holding permissions (default `permissions`; `scope` for space-separated
    /// OAuth-style scopes).
    pub fn permissions_claim(mut self, claim: impl Into<String>) -> Self {
        self.permissions_claim = claim.into();
        self
    }

    /// Where the verifier reads the time (default the system clock). For tests.
    pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many verified tokens to remember at most (default 10,000; under 1 KiB each). `0`
    /// turns the verified-token cache off.
    ///
    /// A large cache is split by token into shards (8 for the default, up to 16), each
    /// holding its share, so that threads answering repeated tokens contend less; a nearly
    /// full cache may therefore evict a little before it holds `capacity` tokens in all.
    /// Each thread that verifies also remembers the last tokens it saw (128 slots, shared by
    /// all verifiers on that thread, each entry tagged with its verifier's cache, and holding
    /// the token's text, when at most 2 KiB, to find it by), so a hit usually does no hashing
    /// and touches nothing other threads write; those entries pass the same checks on every
    /// hit and do not count against `capacity`. `0` turns these off too.
    pub fn token_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Check the configuration and build the verifier. Does no I/O.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        if self.conflicting_keys {
            return Err(ConfigError::ConflictingKeySources);
        }
        let audiences = non_empty_list("audience", self.audiences)?;
        if audiences.is_empty() {
            return Err(ConfigError::MissingAudience);
        }
        let issuers = non_empty_list("issuer", self.issuers)?;
        let algorithms = match self.algorithms {
            None => jwks::DEFAULT_ALGORITHMS.to_vec(),
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::NoAlgorithms);
                }
                if let Some(bad) = list.iter().find(|a| !jwks::is_supported(**a)) {
                    return Err(ConfigError::UnsupportedAlgorithm(format!("{bad:?}")));
                }
                list
            }
        };
        let claim = self.permissions_claim;
        if claim.is_empty() || REGISTERED_CLAIMS.contains(&claim.as_str()) {
            return Err(ConfigError::InvalidSetting {
                name: "permissions_claim",
                reason: "must be a non-empty name other than a registered claim".into(),
            });
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::InvalidSetting {
                name: "max_token_bytes",
                reason: "must be above zero".into(),
            });
        }
        let clock: SharedClock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let keys = match self.keys {
            None => return Err(ConfigError::MissingKeySource),
            Some(KeyConfig::Static(entries)) => {
                let set = KeySet::from_entries(entries?, &algorithms);
                if set.is_empty() {
                    return Err(ConfigError::NoUsableKeys {
                        skipped: set.skipped().len(),
                    });
                }
                KeySource::Static(Arc::new(set))
            }
            #[cfg(feature = "remote")]
            Some(KeyConfig::Remote(url)) => KeySource::Remote(jwks::remote::RemoteJwks::new(
                &url,
                self.remote,
                clock.clone(),
                algorithms.clone(),
            )?),
        };
        let cache = (self.cache_capacity > 0).then(|| TokenCache::new(self.cache_capacity));
        Ok(Verifier {
            inner: Arc::new(Shared {
                audiences,
                issuers,
                algorithms,
                leeway: self.leeway.as_secs(),
                max_lifetime: self.max_lifetime.as_secs(),
                max_token_bytes: self.max_token_bytes,
                permissions_claim: claim.into_boxed_str(),
                clock,
                keys,
                cache,
            }),
        })
    }
}

fn non_empty_list(name: &'static str, list: Vec<String>) -> Result<Box<[Box<str>]>, ConfigError> {
    if list.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::InvalidSetting {
            name,
            reason: "must not be empty".into(),
        });
    }
    Ok(list.into_iter().map(String::into_boxed_str).collect())
}

/// Verifies MKA1 tokens. Cheap to clone; clones share keys and the verified-token cache.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::{ErrorKind, Verifier};
///
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .build()?;
///
/// let err = verifier.verify("not-a-jwt").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Malformed);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Shared>,
}

struct Shared {
    audiences: Box<[Box<str>]>,
    issuers: Box<[Box<str>]>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    max_lifetime: u64,
    max_token_bytes: usize,
    permissions_claim: Box<str>,
    clock: SharedClock,
    keys: KeySource,
    cache: Option<TokenCache>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("audiences", &self.inner.audiences)
            .field("issuers", &self.inner.issuers)
            .field("algorithms", &self.inner.algorithms)
            .field("leeway", &self.inner.leeway)
            .field("token_cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// What a verification attempt that does no I/O came to.
pub(crate) enum Attempt {
    /// Finished, one way or the other.
    Done(Result<VerifiedToken, Error>),
    /// The token names a key that is not held; a guarded refetch may find it.
    NeedKey(Box<str>),
}

impl Verifier {
    /// Start building a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Verify a raw JWT (without the `Bearer ` prefix).
    ///
    /// Waits on I/O only when the token names a key that is not held and the key source is
    /// remote: then at most one guarded refetch, bounded by the fetch timeout.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, Error> {
        match self.verify_now(token) {
            Attempt::Done(result) => result,
            Attempt::NeedKey(kid) => {
                self.inner.keys.resolve_missing(&kid).await?;
                match self.verify_now(token) {
                    Attempt::Done(result) => result,
                    Attempt::NeedKey(_) => Err(Error::new(ErrorKind::UnknownKeyId)),
                }
            }
        }
    }

    /// Where the key set stands: key count, last fetch success and error, next refresh.
    /// For health endpoints; see [`KeySetStatus`].
    ///
    /// ```
    /// use mka1_auth::Verifier;
    ///
    /// let verifier = Verifier::builder()
    ///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .build()?;
    /// let status = verifier.key_set_status();
    /// assert!(status.usable);
    /// assert_eq!(status.key_count, 1);
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn key_set_status(&self) -> KeySetStatus {
        self.inner.keys.status()
    }

    /// Verify with what is held now; never waits.
    pub(crate) fn verify_now(&self, token: &str) -> Attempt {
        let s = &*self.inner;
        if token.len() > s.max_token_bytes {
            return Attempt::Done(Err(Error::new(ErrorKind::TokenTooLarge)));
        }
        // One reading of the clock for every check of this verification.
        let at = s.clock.now();
        let now = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut probe = s.cache.as_ref().map(|cache| cache.probe(token));
        if let Some(probe) = &mut probe {
            if let Some(entry) = probe.get() {
                if s.keys
                    .still_holds(entry.token.key_id(), entry.key_serial, at)
                {
                    let t = &entry.token;
                    let checked = s.check_times(now, t.expires_at(), t.not_before(), t.issued_at());
                    if checked
                        .as_ref()
                        .is_err_and(|e| e.kind() == ErrorKind::Expired)
                    {
                        // Moka drops it at `exp` too; this thread's front would keep it.
                        probe.remove();
                    }
                    return Attempt::Done(checked.map(|()| entry.token));
                }
                probe.remove();
            }
        }
        match s.verify_uncached(token, at, now) {
            Ok((verified, key_serial)) => {
                if let Some(probe) = &mut probe {
                    let ttl = (verified.expires_at() + s.leeway).saturating_sub(now);
                    probe.insert(verified.clone(), key_serial, Duration::from_secs(ttl));
                }
                Attempt::Done(Ok(verified))
            }
            Err(Miss::Failed(e)) => Attempt::Done(Err(e)),
            Err(Miss::Key(kid)) => Attempt::NeedKey(kid),
        }
    }
}

enum Miss {
    Failed(Error),
    Key(Box<str>),
}

impl From<Error> for Miss {
    fn from(e: Error) -> Self {
        Miss::Failed(e)
    }
}

fn malformed(detail: &'static str) -> Error {
    Error::with_detail(ErrorKind::Malformed, detail)
}

/// The header members this verifier reads; all others (including `jku`, `jwk`, `x5u`,
/// `x5c`) are ignored and never used to find a key.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<KidValue<'a>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// A `kid` of any JSON type, so a number or object is reported as a bad `kid`, not as a
/// malformed header.
enum KidValue<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for KidValue<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KidValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key id")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KidValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KidValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(KidValue::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(KidValue::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(KidValue::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(KidValue::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(KidValue::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KidValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KidValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

fn present<'de, D: de::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// Whether `bytes` is a JSON object (and not an array a derived struct would also accept).
fn starts_as_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

#[derive(Default)]
struct RawClaims {
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    iss: Option<Value>,
    jti: Option<Value>,
    permissions: Option<Value>,
}

struct ClaimsSeed<'a> {
    permissions_claim: &'a str,
    duplicate: &'a Cell<bool>,
}

struct MapKey<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MapKey<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MapKey(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MapKey(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawClaims, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
        let mut out = RawClaims::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(12);
        while let Some(MapKey(name)) = map.next_key()? {
            if seen.contains(&name) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate claim"));
            }
            let slot = match &*name {
                "exp" => Some(&mut out.exp),
                "nbf" => Some(&mut out.nbf),
                "iat" => Some(&mut out.iat),
                "aud" => Some(&mut out.aud),
                "sub" => Some(&mut out.sub),
                "iss" => Some(&mut out.iss),
                "jti" => Some(&mut out.jti),
                other if other == self.permissions_claim => Some(&mut out.permissions),
                _ => None,
            };
            match slot {
                Some(slot) => *slot = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            seen.push(name);
        }
        Ok(out)
    }
}

fn invalid_claim(detail: &'static str) -> Error {
    Error::with_detail(ErrorKind::InvalidClaim, detail)
}

/// A NumericDate, rounded toward the stricter side (`round_up` for `nbf`/`iat`).
fn numeric_date(value: &Value, round_up: bool, wrong: &'static str) -> Result<u64, Error> {
    let Value::Number(n) = value else {
        return Err(invalid_claim(wrong));
    };
    let secs = if let Some(u) = n.as_u64() {
        u
    } else if n.is_i64() {
        return Err(invalid_claim(wrong));
    } else {
        let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0);
        let Some(f) = f.filter(|f| *f <= MAX_NUMERIC_DATE as f64) else {
            return Err(invalid_claim(wrong));
        };
        (if round_up { f.ceil() } else { f.floor() }) as u64
    };
    if secs > MAX_NUMERIC_DATE {
        return Err(invalid_claim(wrong));
    }
    Ok(secs)
}

fn string_list(value: Value, wrong: &'static str) -> Result<Box<[Box<str>]>, Error> {
    match value {
        Value::String(s) => Ok(vec![s.into_boxed_str()].into_boxed_slice()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.into_boxed_str()),
                _ => Err(invalid_claim(wrong)),
            })
            .collect(),
        _ => Err(invalid_claim(wrong)),
    }
}

fn optional_string(value: Option<Value>, wrong: &'static str) -> Result<Option<Box<str>>, Error> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.into_boxed_str())),
        Some(_) => Err(invalid_claim(wrong)),
    }
}

fn permissions(value: Option<Value>) -> Result<Permissions, Error> {
    let wrong = || {
        Error::with_detail(
            ErrorKind::InvalidPermissions,
            "expected an array of strings or a space-separated string",
        )
    };
    let names = match value {
        None => Vec::new(),
        Some(Value::String(s)) => return Ok(Permissions::from_names(s.split(' '))),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(wrong()),
    };
    Ok(Permissions::from_names(names))
}

impl Shared {
    fn check_times(
        &self,
        now: u64,
        exp: u64,
        nbf: Option<u64>,
        iat: Option<u64>,
    ) -> Result<(), Error> {
        if exp.saturating_add(self.leeway) <= now {
            return Err(Error::new(ErrorKind::Expired));
        }
        let latest = now.saturating_add(self.leeway);
        if nbf.is_some_and(|nbf| nbf > latest) {
            return Err(Error::new(ErrorKind::NotYetValid));
        }
        if iat.is_some_and(|iat| iat > latest) {
            return Err(Error::new(ErrorKind::IssuedInFuture));
        }
        Ok(())
    }

    fn verify_uncached(
        &self,
        token: &str,
        at: SystemTime,
        now: u64,
    ) -> Result<(VerifiedToken, u64), Miss> {
        // 1. Shape.
        let (header_b64, rest) = token
            .split_once('.')
            .ok_or_else(|| malformed("expected three segments"))?;
        let (payload_b64, signature_b64) = rest
            .split_once('.')
            .ok_or_else(|| malformed("expected three segments"))?;
        if signature_b64.contains('.') {
            return Err(malformed("expected three segments").into());
        }
        let header_bytes =
            b64url_decode(header_b64).ok_or_else(|| malformed("header is not base64url"))?;
        if !starts_as_object(&header_bytes) {
            return Err(malformed("header is not a json object").into());
        }
        let header: Header<'_> = serde_json::from_slice(&header_bytes)
            .map_err(|_| malformed("header is not a valid jose header"))?;

        // 2. Header rules and key selection.
        if header.crit {
            return Err(Error::new(ErrorKind::CriticalHeader).into());
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(jwks::parse_alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| Error::new(ErrorKind::AlgorithmNotAllowed))?;
        let kid = match &header.kid {
            Some(KidValue::Str(k)) if !k.is_empty() => k,
            _ => return Err(Error::new(ErrorKind::MissingKeyId).into()),
        };
        let key = match self.keys.lookup(kid, at) {
            Lookup::Found(key) => key,
            Lookup::NeedsFetch => return Err(Miss::Key(Box::from(&**kid))),
            Lookup::Unknown => return Err(Error::new(ErrorKind::UnknownKeyId).into()),
        };
        if !key.accepts(alg) {
            return Err(Error::new(ErrorKind::AlgorithmMismatch).into());
        }

        // 3. Signature.
        let signature =
            b64url_decode(signature_b64).ok_or_else(|| Error::new(ErrorKind::InvalidSignature))?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify(alg, signed, &signature) {
            return Err(Error::new(ErrorKind::InvalidSignature).into());
        }

        // 4. Payload.
        let payload =
            b64url_decode(payload_b64).ok_or_else(|| malformed("payload is not base64url"))?;
        let payload = String::from_utf8(payload).map_err(|_| malformed("payload is not utf-8"))?;
        if !starts_as_object(payload.as_bytes()) {
            return Err(malformed("payload is not a json object").into());
        }
        let duplicate = Cell::new(false);
        let seed = ClaimsSeed {
            permissions_claim: &self.permissions_claim,
            duplicate: &duplicate,
        };
        let mut de = serde_json::Deserializer::from_str(&payload);
        let claims = seed
            .deserialize(&mut de)
            .and_then(|c| de.end().map(|()| c))
            .map_err(|_| {
                if duplicate.get() {
                    invalid_claim("a claim name appears more than once")
                } else {
                    malformed("payload is not a valid json object")
                }
            })?;

        // 5. Times.
        let exp = claims
            .exp
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::MissingExpiry))?;
        let exp = numeric_date(exp, false, "`exp` must be a numeric date")?;
        let nbf = claims
            .nbf
            .as_ref()
            .map(|v| numeric_date(v, true, "`nbf` must be a numeric date"))
            .transpose()?;
        let iat = claims
            .iat
            .as_ref()
            .map(|v| numeric_date(v, true, "`iat` must be a numeric date"))
            .transpose()?;
        self.check_times(now, exp, nbf, iat)?;
        if exp
            > now
                .saturating_add(self.max_lifetime)
                .saturating_add(self.leeway)
        {
            return Err(Error::new(ErrorKind::LifetimeTooLong).into());
        }

        // 6. Audience.
        let audiences = match claims.aud {
            None => {
                return Err(Error::with_detail(ErrorKind::InvalidAudience, "no `aud` claim").into())
            }
            Some(aud) => string_list(aud, "`aud` must be a string or an array of strings")?,
        };
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            return Err(Error::new(ErrorKind::InvalidAudience).into());
        }

        // 7. Issuer.
        let issuer = match claims.iss {
            Some(Value::String(s)) => Some(s.into_boxed_str()),
            None => None,
            Some(_) => {
                let kind = if self.issuers.is_empty() {
                    ErrorKind::InvalidClaim
                } else {
                    ErrorKind::InvalidIssuer
                };
                return Err(Error::with_detail(kind, "`iss` must be a single string").into());
            }
        };
        if !self.issuers.is_empty() {
            match &issuer {
                Some(iss) if self.issuers.contains(iss) => {}
                Some(_) => return Err(Error::new(ErrorKind::InvalidIssuer).into()),
                None => {
                    return Err(
                        Error::with_detail(ErrorKind::InvalidIssuer, "no `iss` claim").into(),
                    )
                }
            }
        }

        // 8. Subject.
        let subject = match claims.sub {
            Some(Value::String(s)) => {
                validate_end_user_id(&s)?;
                s
            }
            None => {
                return Err(Error::with_detail(ErrorKind::InvalidSubject, "no `sub` claim").into())
            }
            Some(_) => {
                return Err(
                    Error::with_detail(ErrorKind::InvalidSubject, "`sub` must be a string").into(),
                )
            }
        };
        let jti = optional_string(claims.jti, "`jti` must be a string")?;

        // 9. Permissions.
        let permissions = permissions(claims.permissions)?;

        let verified = VerifiedToken::new(Fields {
            raw_claims: payload,
            subject: &subject,
            audiences: &audiences,
            issuer: issuer.as_deref(),
            jti: jti.as_deref(),
            key_id: key.kid(),
            expires_at: exp,
            issued_at: iat,
            not_before: nbf,
            algorithm: alg,
            permissions,
        })?;
        Ok((verified, key.serial()))
    }
}

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_keys;

/// The verified-token cache's contract, seen through the verifier.
#[cfg(test)]
mod cache_tests {
    use serde_json::json;

    use super::test_keys::{claims_at, claims_with, jwks, TestKey, AUDIENCE, NOW};
    use super::*;
    use crate::clock::ManualClock;

    fn verifier(key: &TestKey, clock: &ManualClock, capacity: u64) -> Verifier {
        Verifier::builder()
            .jwks(jwks(&[key]))
            .audience(AUDIENCE)
            .clock(clock.clone())
            .token_cache_capacity(capacity)
            .build()
            .unwrap()
    }

    fn check(verifier: &Verifier, token: &str) -> Result<VerifiedToken, Error> {
        match verifier.verify_now(token) {
            Attempt::Done(result) => result,
            Attempt::NeedKey(_) => Err(Error::new(ErrorKind::UnknownKeyId)),
        }
    }

    /// Whether two results share one allocation, i.e. the second came from the cache.
    fn same(a: &VerifiedToken, b: &VerifiedToken) -> bool {
        std::ptr::eq(a.raw_claims(), b.raw_claims())
    }

    fn cache(verifier: &Verifier) -> &TokenCache {
        verifier.inner.cache.as_ref().unwrap()
    }

    #[test]
    fn a_repeated_token_is_answered_from_memory() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        let second = check(&v, &token).unwrap();
        assert!(same(&first, &second));
        assert_eq!(cache(&v).entry_count(), 1);

        // Another user's claims under this token's signature.
        let other = key.sign(&claims_with(json!({"sub": "user-43"})));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (other_signed, _) = other.rsplit_once('.').unwrap();
        assert_ne!(signed, other_signed);
        let forged = format!("{other_signed}.{signature}");
        for _ in 0..2 {
            let err = check(&v, &forged).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        }
        assert_eq!(cache(&v).entry_count(), 1, "failures are not cached");
    }

    #[test]
    fn cache_off_verifies_every_time() {
        let key = TestKey::es256("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 0);
        assert!(v.inner.cache.is_none());
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        let second = check(&v, &token).unwrap();
        assert!(!same(&first, &second));
        assert_eq!(second.subject(), "user-42");
    }

    #[test]
    fn an_entry_never_outlives_exp() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let exp = NOW + 3600;
        let token = key.sign(&claims_at(NOW));

        // Verified late in its life: the entry lives only until exp plus leeway.
        clock.set_unix(exp - 100);
        let first = check(&v, &token).unwrap();
        let entry = cache(&v).get(&token).unwrap();
        assert_eq!(
            entry.ttl,
            Duration::from_secs(100 + DEFAULT_LEEWAY.as_secs())
        );

        // Every hit re-checks exp with the current clock.
        clock.set_unix(exp + DEFAULT_LEEWAY.as_secs() - 1);
        assert!(same(&first, &check(&v, &token).unwrap()));
        clock.set_unix(exp + DEFAULT_LEEWAY.as_secs());
        let err = check(&v, &token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Expired);
    }

    #[test]
    fn a_hit_rechecks_nbf_and_iat() {
        let key = TestKey::rs256("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let nbf = key.sign(&claims_with(json!({"nbf": NOW + 30})));
        let iat = key.sign(&claims_with(json!({"iat": NOW + 30})));
        let cached_nbf = check(&v, &nbf).unwrap();
        let cached_iat = check(&v, &iat).unwrap();

        // The clock steps back: both are now too early, though cached.
        clock.set_unix(NOW - 31);
        assert_eq!(check(&v, &nbf).unwrap_err().kind(), ErrorKind::NotYetValid);
        assert_eq!(
            check(&v, &iat).unwrap_err().kind(),
            ErrorKind::IssuedInFuture
        );

        // The entries were kept, and answer again once the time is right.
        clock.set_unix(NOW);
        assert!(same(&cached_nbf, &check(&v, &nbf).unwrap()));
        assert!(same(&cached_iat, &check(&v, &iat).unwrap()));
    }

    fn replace_keys(v: &mut Verifier, keys: &[&TestKey]) {
        let set = KeySet::from_json(&jwks(keys).to_string()).unwrap();
        Arc::get_mut(&mut v.inner).unwrap().keys = KeySource::Static(Arc::new(set));
    }

    /// Cache `signer`'s token, then swap the key set for `keys` and verify it again.
    fn after_key_change(signer: &TestKey, keys: &[&TestKey]) -> ErrorKind {
        let clock = ManualClock::at_unix(NOW);
        let mut v = verifier(signer, &clock, 16);
        let token = signer.sign(&claims_at(NOW));
        check(&v, &token).unwrap();
        assert_eq!(cache(&v).entry_count(), 1);

        replace_keys(&mut v, keys);
        let kind = check(&v, &token).unwrap_err().kind();
        assert_eq!(cache(&v).entry_count(), 0, "the entry was evicted");
        kind
    }

    #[test]
    fn a_key_leaving_the_set_takes_its_tokens_with_it() {
        let (a, b) = (TestKey::ed25519("a"), TestKey::ed25519("b"));
        assert_eq!(after_key_change(&a, &[&b]), ErrorKind::UnknownKeyId);
    }

    #[test]
    fn a_key_replaced_under_the_same_kid_takes_its_tokens_with_it() {
        let (old, new) = (TestKey::ed25519("k1"), TestKey::ed25519("k1"));
        assert_eq!(after_key_change(&old, &[&new]), ErrorKind::InvalidSignature);
    }

    #[test]
    fn a_front_hit_still_rechecks_times_and_the_key() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let mut v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        assert!(cache(&v).in_front(&token));
        assert!(same(&first, &check(&v, &token).unwrap()));

        // Not yet valid (a clock set back): refused, and still held for when it is.
        clock.set_unix(NOW - DEFAULT_LEEWAY.as_secs() - 1);
        assert_eq!(
            check(&v, &token).unwrap_err().kind(),
            ErrorKind::IssuedInFuture
        );
        assert!(cache(&v).in_front(&token));
        clock.set_unix(NOW);
        assert!(same(&first, &check(&v, &token).unwrap()));

        replace_keys(&mut v, &[&TestKey::ed25519("k2")]);
        assert!(cache(&v).in_front(&token));
        let err = check(&v, &token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownKeyId);
        assert!(!cache(&v).in_front(&token), "the front entry was dropped");
    }

    #[test]
    fn an_expired_hit_drops_the_entry() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        assert!(cache(&v).in_front(&token));
        clock.set_unix(NOW + 3600 + DEFAULT_LEEWAY.as_secs());
        assert!(
            cache(&v).get(&token).is_some(),
            "held until a hit finds it expired"
        );
        assert_eq!(check(&v, &token).unwrap_err().kind(), ErrorKind::Expired);
        assert!(!cache(&v).in_front(&token) && cache(&v).get(&token).is_none());
        // Had the clock been wrong, the token is verified afresh, not answered from memory.
        clock.set_unix(NOW);
        assert!(!same(&first, &check(&v, &token).unwrap()));
    }

    #[test]
    fn verifiers_never_answer_from_each_others_entries() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let ours = verifier(&key, &clock, 16);
        // The same key, but another service: our tokens are not for it.
        let theirs = Verifier::builder()
            .jwks(jwks(&[&key]))
            .audience("https://other.example.test")
            .clock(clock.clone())
            .build()
            .unwrap();
        let token = key.sign(&claims_at(NOW));
        check(&ours, &token).unwrap();
        assert!(cache(&ours).in_front(&token));
        for _ in 0..2 {
            let err = check(&theirs, &token).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidAudience);
        }
        // A clone shares the cache.
        assert!(same(
            &check(&ours, &token).unwrap(),
            &check(&ours.clone(), &token).unwrap()
        ));
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 4);
        for i in 0..20 {
            let token = key.sign(&claims_with(json!({"sub": format!("user-{i}")})));
            assert_eq!(check(&v, &token).unwrap().subject(), format!("user-{i}"));
        }
        let count = cache(&v).entry_count();
        assert!((1..=4).contains(&count), "{count} entries held");
    }
}
