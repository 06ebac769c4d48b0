//! [`ConfigError`]: a verifier, layer or client could not be built. The crate's one error
//! style, as [`Error`](crate::Error): an opaque error with [`kind`](ConfigError::kind) and a
//! `#[non_exhaustive]` kind enum; messages lowercase, never echoing a secret.

use std::fmt;

/// What was wrong with a configuration, in a form code can match on.
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
///
/// ```
/// use mka1_auth::{ConfigErrorKind, Verifier};
///
/// let err = Verifier::builder().audience("https://api.example.com").build().unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::MissingKeySource);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// No audience was configured; without one a token minted for another service would pass.
    MissingAudience,
    /// No key source was configured.
    MissingKeySource,
    /// More than one key source was configured for the verifier as a whole (a static key set
    /// and a JWKS URL, say), or one for the whole verifier beside per-issuer ones.
    ConflictingKeySources,
    /// The algorithm allow-list names a symmetric or unsupported algorithm.
    UnsupportedAlgorithm,
    /// The algorithm allow-list is empty.
    NoAlgorithms,
    /// The static key set could not be parsed.
    InvalidJwks,
    /// The static key set holds no key this verifier can use
    /// ([`ConfigError::skipped`] tells how many were skipped).
    NoUsableKeys,
    /// The JWKS URL is not valid, or not `https` for a non-loopback host.
    InvalidJwksUrl,
    /// An audience, issuer or other setting is empty or otherwise unusable
    /// ([`ConfigError::setting`] names it).
    InvalidSetting,
    /// The HTTP client could not be built.
    HttpClient,
}

/// A verifier, layer or client could not be built from its configuration.
///
/// ```
/// use mka1_auth::{ConfigErrorKind, Verifier};
///
/// let err = Verifier::builder()
///     .jwks(r#"{"keys":[]}"#)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::MissingAudience);
/// assert_eq!(err.to_string(), "no audience configured: set at least one with `audience`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    /// The setting at fault ([`ConfigErrorKind::InvalidSetting`]).
    setting: Option<&'static str>,
    /// What is wrong: the algorithm, the parse error, the reason.
    detail: Option<String>,
    /// How many keys were skipped ([`ConfigErrorKind::NoUsableKeys`]).
    skipped: Option<usize>,
}

impl ConfigError {
    /// An error of `kind` with nothing more to say.
    pub(crate) fn new(kind: ConfigErrorKind) -> Self {
        ConfigError {
            kind,
            setting: None,
            detail: None,
            skipped: None,
        }
    }

    /// An error of `kind` with what was wrong (an algorithm's name, a parse error).
    pub(crate) fn with_detail(kind: ConfigErrorKind, detail: impl Into<String>) -> Self {
        ConfigError {
            detail: Some(detail.into()),
            ..ConfigError::new(kind)
        }
    }

    /// The setting `name` is unusable, for `reason` (lowercase, never a secret): the one
    /// constructor open to crates that build on this one (the dev issuer's builder uses it).
    ///
    /// ```
    /// use mka1_auth::{ConfigError, ConfigErrorKind};
    ///
    /// let err = ConfigError::invalid_setting("bind", "it is not a socket address");
    /// assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    /// assert_eq!(err.setting(), Some("bind"));
    /// ```
    pub fn invalid_setting(name: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            setting: Some(name),
            ..ConfigError::with_detail(ConfigErrorKind::InvalidSetting, reason)
        }
    }

    /// A key set with no usable key, `skipped` keys skipped.
    pub(crate) fn no_usable_keys(skipped: usize) -> Self {
        ConfigError {
            skipped: Some(skipped),
            ..ConfigError::new(ConfigErrorKind::NoUsableKeys)
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The setting at fault, for [`ConfigErrorKind::InvalidSetting`].
    ///
    /// ```
    /// use mka1_auth::{ConfigErrorKind, Verifier};
    ///
    /// let err = Verifier::builder().jwks(r#"{"keys":[]}"#).audience("").build().unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    /// assert_eq!(err.setting(), Some("audience"));
    /// ```
    pub fn setting(&self) -> Option<&'static str> {
        self.setting
    }

    /// How many keys were skipped, for [`ConfigErrorKind::NoUsableKeys`].
    ///
    /// ```
    /// use mka1_auth::{ConfigErrorKind, Verifier};
    ///
    /// let err = Verifier::builder()
    ///     .jwks(r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::NoUsableKeys);
    /// assert_eq!(err.skipped(), Some(1));
    /// ```
    pub fn skipped(&self) -> Option<usize> {
        self.skipped
    }

    /// What was wrong, beside the kind (a parse error, a reason).
    #[cfg(test)]
    pub(crate) fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.detail.as_deref().unwrap_or("");
        match self.kind {
            ConfigErrorKind::MissingAudience => {
                f.write_str("no audience configured: set at least one with `audience`")
            }
            ConfigErrorKind::MissingKeySource => f.write_str(
                "no key source configured: set `jwks_url` or `jwks` (or one per issuer with \
                 `issuer_jwks_url` or `issuer_jwks`)",
            ),
            ConfigErrorKind::ConflictingKeySources => f.write_str(
                "more than one key source was configured; choose one, or give every issuer its \
                 own with `issuer_jwks_url` or `issuer_jwks`",
            ),
            ConfigErrorKind::UnsupportedAlgorithm => write!(
                f,
                "algorithm {detail} is not allowed: only EdDSA, ES256, ES384, RS256, RS384, \
                 RS512, PS256, PS384 and PS512 are supported"
            ),
            ConfigErrorKind::NoAlgorithms => f.write_str("the algorithm allow-list is empty"),
            ConfigErrorKind::InvalidJwks => {
                write!(
                    f,
                    "the static key set is not a valid jwks document: {detail}"
                )
            }
            ConfigErrorKind::NoUsableKeys => write!(
                f,
                "the static key set holds no usable key ({} skipped)",
                self.skipped.unwrap_or(0)
            ),
            ConfigErrorKind::InvalidJwksUrl => write!(f, "invalid jwks url: {detail}"),
            ConfigErrorKind::InvalidSetting => write!(
                f,
                "invalid setting `{}`: {detail}",
                self.setting.unwrap_or("?")
            ),
            ConfigErrorKind::HttpClient => {
                write!(f, "the http client could not be built: {detail}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
