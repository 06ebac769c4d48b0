//! [`VerifierBuilder`]: a verifier's settings, checked once by [`VerifierBuilder::build`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::jwks::Algorithm;
use serde_json::Value;

use super::validate::ClaimRules;
use super::{Verifier, VerifierState};
use crate::clock::{SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::jwks::{self, IntoJwks, KeySet, KeySource};
use crate::token_cache::{self, TokenCache};

/// Default clock skew tolerated on every time check.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default longest lifetime a token may claim: 30 days, MKA1's largest `expiresIn`.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(crate::protocol::MAX_EXPIRES_IN);
/// Default largest token accepted, in bytes.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default claim holding the permissions.
const DEFAULT_PERMISSIONS_CLAIM: &str = "permissions";

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
    /// Default tolerance for clock skew on `exp`, `nbf` and `iat`: 60 s.
    pub const DEFAULT_LEEWAY: Duration = DEFAULT_LEEWAY;
    /// Default longest token lifetime accepted: 30 days, MKA1's largest `expiresIn`.
    pub const DEFAULT_MAX_LIFETIME: Duration = DEFAULT_MAX_LIFETIME;
    /// Default cap on a token's size, checked before any parsing: 8 KiB.
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = DEFAULT_MAX_TOKEN_BYTES;
    /// Default name of the permissions claim: `permissions`.
    pub const DEFAULT_PERMISSIONS_CLAIM: &'static str = DEFAULT_PERMISSIONS_CLAIM;

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

    /// Check the configuration and build the verifier. Does no I/O.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        if self.conflicting_keys {
            return Err(ConfigError::ConflictingKeySources);
        }
        let audiences = no_empty_strings("audience", self.audiences)?;
        if audiences.is_empty() {
            return Err(ConfigError::MissingAudience);
        }
        let issuers = no_empty_strings("issuer", self.issuers)?;
        let algorithms = allow_list(self.algorithms)?;
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
                static_keys(KeySet::from_entries(entries?, &algorithms))?
            }
            Some(KeyConfig::Loaded(set)) => static_keys(set)?,
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
                clock,
                keys,
                cache,
            }),
        })
    }
}

/// The algorithm allow-list: the default, or a non-empty list of supported algorithms.
fn allow_list(algorithms: Option<Vec<Algorithm>>) -> Result<Vec<Algorithm>, ConfigError> {
    let Some(list) = algorithms else {
        return Ok(jwks::DEFAULT_ALGORITHMS.to_vec());
    };
    if list.is_empty() {
        return Err(ConfigError::NoAlgorithms);
    }
    if let Some(bad) = list.iter().find(|a| !jwks::is_supported(**a)) {
        return Err(ConfigError::UnsupportedAlgorithm(format!("{bad:?}")));
    }
    Ok(list)
}

/// A static key set, which must hold at least one usable key.
fn static_keys(set: KeySet) -> Result<KeySource, ConfigError> {
    if set.is_empty() {
        return Err(ConfigError::NoUsableKeys {
            skipped: set.skipped().len(),
        });
    }
    Ok(KeySource::Static(Arc::new(set)))
}

/// A list setting's values, boxed; an empty string among them is refused.
fn no_empty_strings(name: &'static str, list: Vec<String>) -> Result<Box<[Box<str>]>, ConfigError> {
    if list.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::InvalidSetting {
            name,
            reason: "must not be empty".into(),
        });
    }
    Ok(list.into_iter().map(String::into_boxed_str).collect())
}
