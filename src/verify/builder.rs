//! [`VerifierBuilder`]: a verifier's settings, checked once by [`VerifierBuilder::build`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::jwks::Algorithm;
use serde_json::Value;

use super::checks::{Check, Checks, ClaimRefusal};
use super::validate::ClaimRules;
use super::{Verifier, VerifierState};
use crate::claims::VerifiedToken;
use crate::clock::{SharedClock, TickClock};
use crate::error::ConfigError;
use crate::jwks::{self, IntoJwks, KeySet, KeySource, KeySources};
use crate::token_cache::{self, TokenCache};

/// Default clock skew tolerated on every time check.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default longest lifetime a token may claim: 30 days, MKA1's largest `expiresIn`.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(crate::protocol::MAX_EXPIRES_IN);
/// Default largest token accepted, in bytes.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default claim holding the permissions.
pub(crate) const DEFAULT_PERMISSIONS_CLAIM: &str = "permissions";

const REGISTERED_CLAIMS: [&str; 7] = ["exp", "nbf", "iat", "aud", "sub", "iss", "jti"];

enum KeyConfig {
    Static(Result<Vec<Value>, ConfigError>),
    Loaded(KeySet),
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
    /// A key source per issuer, in the order given.
    issuer_keys: Vec<(String, KeyConfig)>,
    required_typ: Option<String>,
    checks: Vec<Check>,
    uncached_checks: Vec<Check>,
    audiences: Vec<String>,
    issuers: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_lifetime: Duration,
    max_token_bytes: usize,
    permissions_claim: String,
    clock: Option<SharedClock>,
    cache_capacity: u64,
    revocations: Option<crate::revocation::Revocations>,
    /// The remote key sets' settings (their setters are in `verify/remote.rs`).
    #[cfg(feature = "remote")]
    pub(super) remote: jwks::remote::RemoteJwksConfig,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field(
                "issuer_keys",
                &self.issuer_keys.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("required_typ", &self.required_typ)
            .field("checks", &self.checks.len())
            .field("uncached_checks", &self.uncached_checks.len())
            .finish_non_exhaustive()
    }
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        VerifierBuilder {
            keys: None,
            conflicting_keys: false,
            issuer_keys: Vec::new(),
            required_typ: None,
            checks: Vec::new(),
            uncached_checks: Vec::new(),
            audiences: Vec::new(),
            issuers: Vec::new(),
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            permissions_claim: DEFAULT_PERMISSIONS_CLAIM.to_owned(),
            clock: None,
            cache_capacity: token_cache::DEFAULT_CAPACITY,
            revocations: None,
            #[cfg(feature = "remote")]
            remote: Default::default(),
        }
    }
}

impl VerifierBuilder {
    /// Default tolerance for clock skew on `exp`, `nbf` and `iat`: 60 s.
    pub const DEFAULT_LEEWAY: Duration = DEFAULT_LEEWAY;
    /// Default longest token lifetime accepted: 30 days, MKA1's largest `expiresIn`.
    pub const DEFAULT_MAX_LIFETIME: Duration = DEFAULT_MAX_LIFETIME;
    /// Default cap on a token's size, checked before any parsing: 8 KiB.
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = DEFAULT_MAX_TOKEN_BYTES;
    /// The algorithms accepted unless [`algorithms`](Self::algorithms) says otherwise:
    /// MKA1's default (EdDSA) and the two other common asymmetric ones.
    ///
    /// ```
    /// use mka1_auth::{Algorithm, VerifierBuilder};
    ///
    /// assert_eq!(
    ///     VerifierBuilder::DEFAULT_ALGORITHMS,
    ///     [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
    /// );
    /// ```
    pub const DEFAULT_ALGORITHMS: [Algorithm; 3] = jwks::DEFAULT_ALGORITHMS;

    fn set_keys(mut self, keys: KeyConfig) -> Self {
        if self.keys.is_some() {
            self.conflicting_keys = true;
        }
        self.keys = Some(keys);
        self
    }

    cfg_feature! {
        #![feature = "remote"]

        /// Fetch keys from this JWKS URL, and keep them fresh (see [`jwks::remote`]).
        ///
        /// `https` is required unless the host is a loopback address, or plain http is allowed
        /// explicitly with [`jwks_allow_http`](Self::jwks_allow_http). How the set is fetched
        /// and cached is tuned with the `jwks_*` setters
        /// ([`jwks_fetch_timeout`](Self::jwks_fetch_timeout) and those after it).
        pub fn jwks_url(self, url: impl Into<String>) -> Self {
            self.set_keys(KeyConfig::Remote(url.into()))
        }
    }

    /// Use this fixed key set (JSON text, a `serde_json::Value` or a `jsonwebtoken` `JwkSet`),
    /// for tests and air-gapped services. Unusable keys are skipped; a set with no usable key
    /// is a [`ConfigError`].
    pub fn jwks(self, jwks: impl IntoJwks) -> Self {
        self.set_keys(KeyConfig::Static(jwks.into_jwk_entries()))
    }

    /// Use a key set you loaded (and perhaps inspected) yourself, for example to refuse to
    /// start when a key you expect was skipped:
    ///
    /// ```
    /// use mka1_auth::jwks::KeySet;
    /// use mka1_auth::Verifier;
    ///
    /// let keys = KeySet::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?;
    /// assert!(keys.skipped().is_empty(), "skipped: {:?}", keys.skipped());
    /// let verifier = Verifier::builder()
    ///     .key_set(keys)
    ///     .audience("https://api.example.com")
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    ///
    /// The verifier's [`algorithms`](Self::algorithms) still decide which tokens verify; a
    /// key only verifies the algorithms it was loaded for
    /// ([`KeySet::from_json`] loads every supported one).
    pub fn key_set(self, keys: KeySet) -> Self {
        self.set_keys(KeyConfig::Loaded(keys))
    }

    cfg_feature! {
        #![feature = "remote"]

        /// Accept tokens of `issuer`, verified only with keys fetched from `url` (kept fresh
        /// like [`jwks_url`](Self::jwks_url), with the same `jwks_*` settings).
        /// Call once per issuer, for example a staging and a production MKA1 while you move
        /// between them:
        ///
        /// ```
        /// use mka1_auth::Verifier;
        ///
        /// let verifier = Verifier::builder()
        ///     .issuer_jwks_url("https://staging.mka1.example", "https://staging.mka1.example/jwks")
        ///     .issuer_jwks_url("https://apigw.mka1.com", "https://apigw.mka1.com/jwks")
        ///     .audience("https://api.example.com")
        ///     .build()?;
        /// assert_eq!(verifier.key_set_status().per_issuer.len(), 2);
        /// # Ok::<(), mka1_auth::ConfigError>(())
        /// ```
        ///
        /// The token's `iss`, read right after the token's shape is checked and before any key
        /// work, picks the source. A token of any other issuer, or with no `iss`, is refused
        /// ([`ErrorKind::InvalidIssuer`](crate::ErrorKind::InvalidIssuer)) without a fetch; a
        /// `kid` is looked up only in its issuer's source, so a key one issuer publishes never
        /// verifies another's token, even under a `kid` both use. Each source fetches, cools
        /// down and reports ([`KeySetStatus::per_issuer`](crate::jwks::KeySetStatus::per_issuer))
        /// on its own.
        ///
        /// Per-issuer sources replace [`jwks_url`](Self::jwks_url), [`jwks`](Self::jwks),
        /// [`key_set`](Self::key_set) and [`issuer`](Self::issuer): mixing them is a
        /// [`ConfigError`].
        pub fn issuer_jwks_url(mut self, issuer: impl Into<String>, url: impl Into<String>) -> Self {
            self.issuer_keys
                .push((issuer.into(), KeyConfig::Remote(url.into())));
            self
        }
    }

    /// Accept tokens of `issuer`, verified only with this fixed key set: like
    /// [`issuer_jwks_url`](Self::issuer_jwks_url), with keys given like [`jwks`](Self::jwks).
    ///
    /// ```
    /// use mka1_auth::Verifier;
    ///
    /// let verifier = Verifier::builder()
    ///     .issuer_jwks("https://staging.mka1.example", r#"{"keys":[{"kty":"OKP",
    ///         "crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn issuer_jwks(mut self, issuer: impl Into<String>, jwks: impl IntoJwks) -> Self {
        self.issuer_keys
            .push((issuer.into(), KeyConfig::Static(jwks.into_jwk_entries())));
        self
    }

    /// Accept tokens of `issuer`, verified only with a key set you loaded: like
    /// [`issuer_jwks`](Self::issuer_jwks), with keys given like [`key_set`](Self::key_set).
    pub fn issuer_key_set(mut self, issuer: impl Into<String>, keys: KeySet) -> Self {
        self.issuer_keys
            .push((issuer.into(), KeyConfig::Loaded(keys)));
        self
    }

    /// Require the token header's `typ` to be this type (RFC 8725 3.11), for example `JWT`,
    /// so that a token minted for another purpose by the same issuer is refused. Off by
    /// default, since MKA1 does not document the `typ` it sets.
    ///
    /// Compared as RFC 7515 compares media types: case-insensitively, with `application/`
    /// implied (`JWT`, `jwt` and `application/jwt` are one type). A token with another
    /// `typ`, or none, is refused with
    /// [`ErrorKind::InvalidType`](crate::ErrorKind::InvalidType) before any key work.
    ///
    /// ```
    /// # use mka1_auth::Verifier;
    /// let verifier = Verifier::builder()
    /// #   .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    /// #       "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .require_typ("JWT")
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.required_typ = Some(typ.into());
        self
    }

    /// Add a claim check of your own, run after the built-in rules (and after the checks
    /// added before it), on a token seen for the first time. Any number may be added.
    ///
    /// A check sees the verified token: its claims, custom ones through
    /// [`VerifiedToken::claim`]. A refusal ([`ClaimRefusal`]) is answered 401
    /// `invalid_token` with [`ErrorKind::CheckFailed`](crate::ErrorKind::CheckFailed) and
    /// its reason: like a wrong `aud` or `iss`, it says this token is not acceptable here at
    /// all, wherever the verifier is used (also in [`Verifier::verify`]), and a client must
    /// come back with another token. 403 is left to what a valid token may do on one
    /// route: [`RequirePermissionsLayer`](crate::RequirePermissionsLayer) and
    /// [`Require`](crate::extract::Require) answer that. (For another status, map the kind
    /// in [`Mka1AuthLayer::reject_with`](crate::Mka1AuthLayer::reject_with).)
    ///
    /// **Its verdict is cached with the token**: a check runs before the token enters the
    /// verified-token cache, and a token answered from the cache is not checked again. So a
    /// check must depend only on the token: not on the time, the request, or state that
    /// changes (a revocation list, say). For those, use
    /// [`check_uncached`](Self::check_uncached).
    ///
    /// A check that panics does not take the service down: the token is answered 500 with
    /// [`ErrorKind::CheckPanicked`](crate::ErrorKind::CheckPanicked), is not cached, and the
    /// next request is verified as usual (unless the build sets `panic = "abort"`).
    ///
    /// ```
    /// use mka1_auth::{ClaimRefusal, Verifier};
    ///
    /// let verifier = Verifier::builder()
    /// #   .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    /// #       "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .check(|token| match token.claim::<String>("org")? {
    ///         Some(org) if org == "acme" => Ok(()),
    ///         _ => Err(ClaimRefusal::new("`org` must be acme")),
    ///     })
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn check<F>(mut self, check: F) -> Self
    where
        F: Fn(&VerifiedToken) -> Result<(), ClaimRefusal> + Send + Sync + 'static,
    {
        self.checks.push(Arc::new(check));
        self
    }

    /// Add a claim check that runs on **every** verification, answers from the
    /// verified-token cache included, after every [`check`](Self::check). Its verdict is
    /// never cached, so it may depend on the time or on state that changes, such as a
    /// revocation list. Refusals and panics are answered as for [`check`](Self::check).
    ///
    /// It costs its own run on every request, which a cache hit otherwise spares (see the
    /// layer bench in the README's Performance section).
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::sync::{Arc, RwLock};
    /// use mka1_auth::{ClaimRefusal, Verifier};
    ///
    /// let revoked: Arc<RwLock<HashSet<String>>> = Arc::default();
    /// let list = Arc::clone(&revoked);
    /// let verifier = Verifier::builder()
    /// #   .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    /// #       "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .check_uncached(move |token| match token.jti() {
    ///         Some(jti) if list.read().unwrap().contains(jti) => {
    ///             Err(ClaimRefusal::new("the token was revoked"))
    ///         }
    ///         _ => Ok(()),
    ///     })
    ///     .build()?;
    /// revoked.write().unwrap().insert("a-jti".into());
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn check_uncached<F>(mut self, check: F) -> Self
    where
        F: Fn(&VerifiedToken) -> Result<(), ClaimRefusal> + Send + Sync + 'static,
    {
        self.uncached_checks.push(Arc::new(check));
        self
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

    /// Where the verifier reads the time. For tests. The default is the system clock read to
    /// the kernel's tick on Linux (`CLOCK_REALTIME_COARSE` plus one tick, 4 ms on most
    /// kernels, at most 10): a cache hit reads the clock once, and that reading costs
    /// about 3 ns instead of 20-30. It runs up to a tick ahead, never behind, so `exp` is
    /// enforced up to a tick early; elsewhere it is `SystemTime::now`.
    pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many verified tokens to remember at most (default 10,000; under 1 KiB each). `0`
    /// turns the verified-token cache off.
    ///
    /// A token verified once is then answered from memory until its `exp`, without base64,
    /// JSON or signature work; every answer from memory still checks that the key that
    /// verified the token is held, and the token's times against the clock. Only tokens
    /// that passed every check are remembered, only the exact same token is answered from
    /// memory, and no verifier answers from another's memory (clones share one cache).
    ///
    /// A nearly full cache may evict a little before it holds `capacity` tokens. Each
    /// thread that verifies also keeps a few of its most recent tokens close at hand, so
    /// that repeated tokens are answered without contention between threads; these do not
    /// count against `capacity`, and `0` turns them off too.
    pub fn token_cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Obey these revocation rules: every answer, cache hits included, is checked against
    /// them, and a revoked token is refused with [`ErrorKind::Revoked`](crate::ErrorKind::Revoked).
    /// Rules are kept at least this verifier's maximum lifetime plus leeway after their
    /// time. See [`crate::revocation`].
    ///
    /// ```
    /// use mka1_auth::{revocation::Revocations, Verifier};
    ///
    /// let verifier = Verifier::builder()
    ///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .revocations(Revocations::in_process())
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn revocations(mut self, revocations: crate::revocation::Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Check the configuration and build the verifier. Does no I/O.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let audiences = no_empty_strings("audience", self.audiences)?;
        if audiences.is_empty() {
            return Err(ConfigError::new(crate::ConfigErrorKind::MissingAudience));
        }
        let algorithms = allow_list(self.algorithms)?;
        let claim = self.permissions_claim;
        if claim.is_empty() || REGISTERED_CLAIMS.contains(&claim.as_str()) {
            return Err(ConfigError::invalid_setting(
                "permissions_claim",
                "must be a non-empty name other than a registered claim",
            ));
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::invalid_setting(
                "max_token_bytes",
                "must be above zero",
            ));
        }
        let required_typ = match self.required_typ {
            Some(typ) if typ.is_empty() => return Err(invalid("require_typ", "must not be empty")),
            typ => typ.map(String::into_boxed_str),
        };
        #[cfg(feature = "remote")]
        self.remote.check()?;
        let clock: SharedClock = self.clock.unwrap_or_else(|| Arc::new(TickClock));
        let sources = Sources {
            single: self.keys,
            conflicting: self.conflicting_keys,
            per_issuer: self.issuer_keys,
            #[cfg(feature = "remote")]
            remote: self.remote,
        };
        let issuers = no_empty_strings("issuer", self.issuers)?;
        let (keys, issuers) = sources.build(issuers, &algorithms, &clock)?;
        let cache = (self.cache_capacity > 0).then(|| TokenCache::new(self.cache_capacity));
        Ok(Verifier {
            inner: Arc::new(VerifierState {
                rules: ClaimRules {
                    audiences,
                    issuers,
                    leeway: self.leeway.as_secs(),
                    max_lifetime: self.max_lifetime.as_secs(),
                },
                algorithms,
                max_token_bytes: self.max_token_bytes,
                permissions_claim: claim.into_boxed_str(),
                required_typ,
                clock,
                keys,
                checks: Checks::new(self.checks),
                uncached_checks: Checks::new(self.uncached_checks),
                cache,
                revocations: self.revocations.inspect(|r| {
                    r.retain_at_least(self.max_lifetime.saturating_add(self.leeway));
                }),
            }),
        })
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid_setting(name, reason)
}

/// The issuers a verifier accepts (none: any issuer, or none).
type Issuers = Box<[Box<str>]>;

/// The key sources as configured, before they are checked.
struct Sources {
    single: Option<KeyConfig>,
    /// Two single sources were given.
    conflicting: bool,
    per_issuer: Vec<(String, KeyConfig)>,
    #[cfg(feature = "remote")]
    remote: jwks::remote::RemoteJwksConfig,
}

impl Sources {
    /// The verifier's key sources, and the issuers it accepts: those configured with
    /// `issuer` for a single source, each source's issuer for per-issuer ones.
    fn build(
        self,
        issuers: Issuers,
        algorithms: &[Algorithm],
        clock: &SharedClock,
    ) -> Result<(KeySources, Issuers), ConfigError> {
        if self.conflicting || (self.single.is_some() && !self.per_issuer.is_empty()) {
            return Err(ConfigError::new(
                crate::ConfigErrorKind::ConflictingKeySources,
            ));
        }
        let load = Loader {
            algorithms,
            clock,
            #[cfg(feature = "remote")]
            remote: &self.remote,
        };
        if self.per_issuer.is_empty() {
            let Some(single) = self.single else {
                return Err(ConfigError::new(crate::ConfigErrorKind::MissingKeySource));
            };
            return Ok((KeySources::One(load.source(single)?), issuers));
        }
        if !issuers.is_empty() {
            return Err(invalid(
                "issuer",
                "with a key source per issuer, the issuers accepted are those sources' issuers: \
                 remove `issuer`",
            ));
        }
        let mut sources: Vec<(Box<str>, KeySource)> = Vec::with_capacity(self.per_issuer.len());
        for (issuer, config) in self.per_issuer {
            if issuer.is_empty() {
                return Err(invalid("issuer_jwks", "an issuer must not be empty"));
            }
            if sources.iter().any(|(known, _)| **known == *issuer) {
                let reason = format!("issuer `{issuer}` is given more than one key source");
                return Err(invalid("issuer_jwks", reason));
            }
            sources.push((issuer.into_boxed_str(), load.source(config)?));
        }
        let issuers = sources.iter().map(|(issuer, _)| issuer.clone()).collect();
        Ok((KeySources::ByIssuer(sources.into_boxed_slice()), issuers))
    }
}

/// What loading a key source takes besides its configuration.
struct Loader<'a> {
    algorithms: &'a [Algorithm],
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    clock: &'a SharedClock,
    #[cfg(feature = "remote")]
    remote: &'a jwks::remote::RemoteJwksConfig,
}

impl Loader<'_> {
    /// One key source, as configured.
    fn source(&self, config: KeyConfig) -> Result<KeySource, ConfigError> {
        match config {
            KeyConfig::Static(entries) => {
                static_keys(KeySet::from_entries(entries?, self.algorithms))
            }
            KeyConfig::Loaded(set) => static_keys(set),
            #[cfg(feature = "remote")]
            KeyConfig::Remote(url) => Ok(KeySource::Remote(jwks::remote::RemoteJwks::new(
                &url,
                self.remote.clone(),
                self.clock.clone(),
                self.algorithms.to_vec(),
            )?)),
        }
    }
}

/// The algorithm allow-list: the default, or a non-empty list of supported algorithms.
fn allow_list(algorithms: Option<Vec<Algorithm>>) -> Result<Vec<Algorithm>, ConfigError> {
    let Some(list) = algorithms else {
        return Ok(jwks::DEFAULT_ALGORITHMS.to_vec());
    };
    if list.is_empty() {
        return Err(ConfigError::new(crate::ConfigErrorKind::NoAlgorithms));
    }
    if let Some(bad) = list.iter().find(|a| !jwks::is_supported(**a)) {
        return Err(ConfigError::with_detail(
            crate::ConfigErrorKind::UnsupportedAlgorithm,
            format!("{bad:?}"),
        ));
    }
    Ok(list)
}

/// A static key set, which must hold at least one usable key.
fn static_keys(set: KeySet) -> Result<KeySource, ConfigError> {
    if set.is_empty() {
        return Err(ConfigError::no_usable_keys(set.skipped().len()));
    }
    Ok(KeySource::Static(Arc::new(set)))
}

/// A list setting's values, boxed; an empty string among them is refused.
fn no_empty_strings(name: &'static str, list: Vec<String>) -> Result<Box<[Box<str>]>, ConfigError> {
    if list.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::invalid_setting(name, "must not be empty"));
    }
    Ok(list.into_iter().map(String::into_boxed_str).collect())
}
