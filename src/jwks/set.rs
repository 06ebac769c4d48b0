//! [`KeySet`]: a parsed JWKS, its usable keys by `kid` and a record of the keys it skipped
//! ([`SkippedKey`], [`SkipReason`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::key::parse_key;
use super::{Algorithm, JwksDocument, VerificationKey, SUPPORTED_ALGORITHMS};
use crate::error::ConfigError;

/// Why a key in a JWKS document was not loaded.
///
/// New reasons may be added in minor releases, so match with a wildcard arm.
///
/// ```
/// use mka1_auth::jwks::SkipReason;
///
/// assert_eq!(SkipReason::WeakRsaKey.to_string(), "rsa modulus under 2048 bits");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The entry is not a JSON object with string members where strings belong.
    NotAnObject,
    /// The entry has no `kid` (tokens are matched to keys by `kid`, so it can never be used).
    MissingKid,
    /// `kty` is `oct`: a symmetric key in a public key set is never trusted.
    SymmetricKey,
    /// `kty` is not `OKP`, `EC` or `RSA`.
    UnsupportedKeyType,
    /// `alg` is unknown, symmetric, or not allowed by this verifier.
    UnsupportedAlgorithm,
    /// `use` is present and not `sig`, or `key_ops` does not allow `verify`.
    NotForSignatures,
    /// The curve is unknown, or does not match the key's `alg`.
    CurveMismatch,
    /// An RSA modulus under 2048 bits.
    WeakRsaKey,
    /// The key material is missing or invalid (bad base64url, wrong length, not on the curve).
    InvalidKeyMaterial,
    /// Two keys share this `kid`; both are dropped since neither can be told apart.
    DuplicateKid,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NotAnObject => "entry is not a valid jwk object",
            SkipReason::MissingKid => "no kid",
            SkipReason::SymmetricKey => "symmetric (oct) keys are never trusted",
            SkipReason::UnsupportedKeyType => "unsupported kty",
            SkipReason::UnsupportedAlgorithm => "alg unknown, symmetric or not allowed",
            SkipReason::NotForSignatures => "not a signature key (use/key_ops)",
            SkipReason::CurveMismatch => "curve unknown or does not match alg",
            SkipReason::WeakRsaKey => "rsa modulus under 2048 bits",
            SkipReason::InvalidKeyMaterial => "invalid key material",
            SkipReason::DuplicateKid => "duplicate kid",
        })
    }
}

/// A key that was skipped while loading a set, and why ([`KeySet::skipped`]).
///
/// ```
/// use mka1_auth::jwks::{KeySet, SkipReason};
///
/// let set = KeySet::from_json(r#"{"keys":[
///     {"kty":"oct","kid":"h","k":"c2VjcmV0"},
///     {"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
/// ]}"#)?;
/// let skipped = &set.skipped()[0];
/// assert_eq!(skipped.kid.as_deref(), Some("h"));
/// assert_eq!(skipped.reason, SkipReason::SymmetricKey);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, when it had a string one (cut to 64 characters).
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// A parsed JWKS: usable keys by `kid`, plus a record of what was skipped.
///
/// Loading never fails because of one bad key: it is skipped, logged with `tracing` and
/// counted. Only a document that is not `{"keys": [...]}` is an error.
///
/// ```
/// use mka1_auth::jwks::{KeySet, SkipReason};
///
/// let set = KeySet::from_json(r#"{"keys":[
///     {"kty":"oct","kid":"h","k":"c2VjcmV0"},
///     {"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
/// ]}"#).unwrap();
/// assert_eq!(set.len(), 1);
/// assert_eq!(set.skipped()[0].reason, SkipReason::SymmetricKey);
/// ```
#[derive(Default)]
pub struct KeySet {
    pub(super) keys: HashMap<Box<str>, Arc<VerificationKey>>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// Parse a JWKS document, keeping keys usable with any supported algorithm.
    pub fn from_json(json: &str) -> Result<KeySet, ConfigError> {
        Self::from_json_for(json, &SUPPORTED_ALGORITHMS)
    }

    /// Parse a JWKS document, keeping only keys usable with one of `algorithms`.
    pub fn from_json_for(json: &str, algorithms: &[Algorithm]) -> Result<KeySet, ConfigError> {
        // serde_json's messages name the problem and position, never echo the input.
        let doc = JwksDocument::from_text(json).map_err(|e| {
            ConfigError::with_detail(crate::ConfigErrorKind::InvalidJwks, e.to_string())
        })?;
        Ok(Self::from_entries(doc.keys, algorithms))
    }

    /// Build from already-parsed JWK entries.
    pub(crate) fn from_entries(
        entries: Vec<serde_json::Value>,
        algorithms: &[Algorithm],
    ) -> KeySet {
        let mut keys: HashMap<Box<str>, Arc<VerificationKey>> =
            HashMap::with_capacity(entries.len());
        let mut skipped = Vec::new();
        let mut duplicates: Vec<Box<str>> = Vec::new();
        for entry in entries {
            let kid_hint = entry
                .get("kid")
                .and_then(|k| k.as_str())
                .map(|k| k.chars().take(64).collect::<String>());
            match parse_key(entry, algorithms) {
                Ok(key) => {
                    if duplicates.contains(&key.kid) {
                        skipped.push(SkippedKey {
                            kid: kid_hint,
                            reason: SkipReason::DuplicateKid,
                        });
                    } else if keys.remove(&key.kid).is_some() {
                        skipped.push(SkippedKey {
                            kid: kid_hint.clone(),
                            reason: SkipReason::DuplicateKid,
                        });
                        skipped.push(SkippedKey {
                            kid: kid_hint,
                            reason: SkipReason::DuplicateKid,
                        });
                        duplicates.push(key.kid.clone());
                    } else {
                        keys.insert(key.kid.clone(), Arc::new(key));
                    }
                }
                Err(reason) => skipped.push(SkippedKey {
                    kid: kid_hint,
                    reason,
                }),
            }
        }
        for s in &skipped {
            let kid = s.kid.as_deref().map(crate::shown::Shown);
            tracing::warn!(kid = ?kid, reason = %s.reason, "skipped a jwks key");
        }
        // Tokens cached under other sets look their keys up again (see `epoch`).
        super::epoch::advance();
        KeySet { keys, skipped }
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.keys.get(kid)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.keys().map(|k| &**k)
    }

    /// The keys that were skipped while loading, and why.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys.values().collect::<Vec<_>>())
            .field("skipped", &self.skipped.len())
            .finish()
    }
}
