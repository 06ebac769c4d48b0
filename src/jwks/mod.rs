//! Key sets: parsing a JWKS document into [`VerificationKey`]s by `kid`, skipping (never
//! failing on) keys that cannot be trusted, and the sources a verifier reads keys from.
//!
//! [`KeySet`] is also yours to use: load a JWKS with [`KeySet::from_json`] to see which keys
//! it holds and why any were skipped ([`KeySet::skipped`], [`SkipReason`]), in a start-up
//! check or a diagnostic tool, then hand it to
//! [`VerifierBuilder::key_set`](crate::VerifierBuilder::key_set).
//!
//! A key's public material is parsed and validated once, when the set is loaded; a token's
//! signature is then checked against the already-parsed key.

mod alg;
mod document;
#[cfg(feature = "remote")]
pub mod remote;
mod sources;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::error::{ConfigError, Error, ErrorKind};

use alg::{algorithms_of, row_of, KeyFamily, Verification};
pub(crate) use alg::{is_supported, parse_alg};
pub use alg::{Algorithm, UnknownAlgorithm};
pub use document::IntoJwks;
pub(crate) use document::JwksDocument;
pub(crate) use sources::{KeySources, SourceId};

/// The algorithms accepted when none are configured: MKA1's default (EdDSA) and the two
/// other common asymmetric ones.
pub const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

/// Strict base64url: the URL-safe alphabet, no padding, no whitespace, canonical trailing bits.
pub(crate) fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// The family of a key, fixed by its `kty` and `crv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: RSA`, with the modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
}

impl KeyType {
    fn family(self) -> KeyFamily {
        match self {
            KeyType::Ed25519 => KeyFamily::Ed25519,
            KeyType::P256 => KeyFamily::P256,
            KeyType::P384 => KeyFamily::P384,
            KeyType::Rsa { .. } => KeyFamily::Rsa,
        }
    }

    /// The algorithms a key of this type verifies.
    fn algorithms(self) -> impl Iterator<Item = Algorithm> {
        algorithms_of(self.family())
    }
}

/// One public key from a key set, parsed and ready to verify signatures.
///
/// It verifies only with the algorithms its type allows, narrowed by its JWK `alg` when that
/// is set. `Debug` shows the `kid` and type, never key material.
///
/// ```
/// use mka1_auth::jwks::KeySet;
/// use mka1_auth::Algorithm;
///
/// // An Ed25519 key in the shape better-auth publishes: no `use`, opaque `kid`.
/// let set = KeySet::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA",
///     "kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
/// let key = set.get("k1").unwrap();
/// assert!(key.accepts(Algorithm::EdDSA));
/// assert!(!key.accepts(Algorithm::ES256));
/// assert!(!key.verify(Algorithm::EdDSA, b"message", &[0u8; 64]));
/// ```
pub struct VerificationKey {
    kid: Box<str>,
    /// Unique among all keys this process loads: names this key for the token cache, which
    /// must not confuse it with a later key (a later key may reuse its address).
    serial: u64,
    key_type: KeyType,
    /// One parsed key per algorithm this key may verify.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

/// The next [`VerificationKey::serial`].
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

impl VerificationKey {
    /// This key's serial number, never shared with another key.
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether a token header's `alg` agrees with this key.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.parsed.iter().any(|(a, _)| *a == alg)
    }

    /// Verify `signature` (raw bytes, already base64url-decoded) over `message` with `alg`.
    ///
    /// False when the algorithm does not fit the key or the signature is wrong. ECDSA
    /// signatures are the fixed-width `r || s` form JWS uses; DER is refused.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field(
                "algorithms",
                &self.parsed.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why a key in a JWKS document was not loaded.
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

/// A key that was skipped while loading a set, and why.
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
    keys: HashMap<Box<str>, Arc<VerificationKey>>,
    skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// Parse a JWKS document, keeping keys usable with any supported algorithm.
    pub fn from_json(json: &str) -> Result<KeySet, ConfigError> {
        Self::from_json_for(json, &SUPPORTED_ALGORITHMS)
    }

    /// Parse a JWKS document, keeping only keys usable with one of `algorithms`.
    pub fn from_json_for(json: &str, algorithms: &[Algorithm]) -> Result<KeySet, ConfigError> {
        // serde_json's messages name the problem and position, never echo the input.
        let doc =
            JwksDocument::from_text(json).map_err(|e| ConfigError::InvalidJwks(e.to_string()))?;
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

/// Every algorithm the crate can verify (asymmetric only), for an allow-list that accepts
/// them all.
///
/// ```
/// use mka1_auth::jwks::SUPPORTED_ALGORITHMS;
/// use mka1_auth::{Algorithm, Verifier};
///
/// assert!(!SUPPORTED_ALGORITHMS.contains(&Algorithm::HS256));
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .algorithms(SUPPORTED_ALGORITHMS)
///     .build();
/// assert!(verifier.is_ok());
/// ```
pub const SUPPORTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Parse and check one JWK entry, in this order: its shape, `kty`, `kid`, `use`/`key_ops`,
/// its own `alg`, the key material, then one parsed key per algorithm it may verify.
fn parse_key(
    entry: serde_json::Value,
    allowed: &[Algorithm],
) -> Result<VerificationKey, SkipReason> {
    if !entry.is_object() {
        return Err(SkipReason::NotAnObject);
    }
    let jwk: RawJwk = serde_json::from_value(entry).map_err(|_| SkipReason::NotAnObject)?;
    match jwk.kty.as_str() {
        "OKP" | "EC" | "RSA" => {}
        "oct" => return Err(SkipReason::SymmetricKey),
        _ => return Err(SkipReason::UnsupportedKeyType),
    }
    let kid = match jwk.kid.as_deref() {
        Some(k) if !k.is_empty() => Box::<str>::from(k),
        _ => return Err(SkipReason::MissingKid),
    };
    check_signature_use(&jwk)?;
    let pinned = pinned_algorithm(&jwk)?;
    let (key_type, material) = key_material(&jwk)?;
    if let Some(p) = pinned {
        if !key_type.algorithms().any(|a| a == p) {
            return Err(SkipReason::CurveMismatch);
        }
    }
    let parsed = parse_for_algorithms(key_type, &material, pinned, allowed)?;
    Ok(VerificationKey {
        kid,
        serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        key_type,
        parsed,
    })
}

/// `use`, when present, must be `sig`; `key_ops`, when present, must allow `verify`.
fn check_signature_use(jwk: &RawJwk) -> Result<(), SkipReason> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(SkipReason::NotForSignatures);
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err(SkipReason::NotForSignatures);
    }
    Ok(())
}

/// The JWK's own `alg`, when set: it pins the key to that one algorithm.
fn pinned_algorithm(jwk: &RawJwk) -> Result<Option<Algorithm>, SkipReason> {
    match jwk.alg.as_deref() {
        None => Ok(None),
        Some(name) => match parse_alg(name) {
            Some(a) if is_supported(a) => Ok(Some(a)),
            _ => Err(SkipReason::UnsupportedAlgorithm),
        },
    }
}

/// A key's public material, decoded and checked for size.
enum KeyMaterial {
    /// An Ed25519 public key, or an uncompressed EC point (`0x04 || x || y`).
    PublicBytes(Vec<u8>),
    /// An RSA modulus (without leading zeros) and exponent.
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
}

/// A base64url member of the JWK, required.
fn b64_member(value: &Option<String>) -> Result<Vec<u8>, SkipReason> {
    value
        .as_deref()
        .and_then(b64url_decode)
        .ok_or(SkipReason::InvalidKeyMaterial)
}

/// The key's type (from `kty` and `crv`) and its decoded public material.
fn key_material(jwk: &RawJwk) -> Result<(KeyType, KeyMaterial), SkipReason> {
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => {
            let x = b64_member(&jwk.x)?;
            if x.len() != 32 {
                return Err(SkipReason::InvalidKeyMaterial);
            }
            Ok((KeyType::Ed25519, KeyMaterial::PublicBytes(x)))
        }
        ("OKP", _) => Err(SkipReason::CurveMismatch),
        ("EC", Some("P-256")) => ec_point(jwk, 32).map(|p| (KeyType::P256, p)),
        ("EC", Some("P-384")) => ec_point(jwk, 48).map(|p| (KeyType::P384, p)),
        ("EC", _) => Err(SkipReason::CurveMismatch),
        _ => rsa_components(jwk),
    }
}

/// An EC key's uncompressed point, from `x` and `y` of `width` bytes each.
fn ec_point(jwk: &RawJwk, width: usize) -> Result<KeyMaterial, SkipReason> {
    let (x, y) = (b64_member(&jwk.x)?, b64_member(&jwk.y)?);
    if x.len() != width || y.len() != width {
        return Err(SkipReason::InvalidKeyMaterial);
    }
    let mut point = Vec::with_capacity(1 + 2 * width);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(KeyMaterial::PublicBytes(point))
}

/// An RSA key's modulus and exponent; the modulus must be at least 2048 bits.
fn rsa_components(jwk: &RawJwk) -> Result<(KeyType, KeyMaterial), SkipReason> {
    let (n, e) = (b64_member(&jwk.n)?, b64_member(&jwk.e)?);
    let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    let n_trimmed = &n[first..];
    if n_trimmed.is_empty() || e.is_empty() || e.len() > 8 {
        return Err(SkipReason::InvalidKeyMaterial);
    }
    let bits = n_trimmed.len() * 8 - n_trimmed[0].leading_zeros() as usize;
    if bits < 2048 {
        return Err(SkipReason::WeakRsaKey);
    }
    let n = n_trimmed.to_vec();
    Ok((KeyType::Rsa { bits }, KeyMaterial::RsaComponents { n, e }))
}

/// One parsed key for each algorithm the key's type verifies, that its own `alg` (when set)
/// names and the verifier allows.
fn parse_for_algorithms(
    key_type: KeyType,
    material: &KeyMaterial,
    pinned: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Vec<(Algorithm, ParsedPublicKey)>, SkipReason> {
    let mut parsed = Vec::new();
    for alg in key_type.algorithms() {
        if pinned.is_some_and(|p| p != alg) || !allowed.contains(&alg) {
            continue;
        }
        let row = row_of(alg);
        let key = match (row.verification, material) {
            (Verification::PublicBytes(verification), KeyMaterial::PublicBytes(bytes)) => {
                ParsedPublicKey::new(verification, bytes)
            }
            (Verification::RsaComponents(parameters), KeyMaterial::RsaComponents { n, e }) => {
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(parameters)
            }
            // A family's rows all verify the way its material is parsed.
            _ => continue,
        }
        .map_err(|_| SkipReason::InvalidKeyMaterial)?;
        parsed.push((alg, key));
    }
    if parsed.is_empty() {
        return Err(SkipReason::UnsupportedAlgorithm);
    }
    Ok(parsed)
}

/// The outcome of looking a `kid` up without doing any I/O.
///
/// A static set lends its key: a fresh verification then writes to no memory that another
/// thread's verification also writes (no shared reference count), so threads scale.
pub(crate) enum Lookup<'a> {
    /// The key is held.
    Found(Cow<'a, Arc<VerificationKey>>),
    /// Not held; a refetch may find it (or it is not worth one: the source decides).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    NeedsFetch,
    /// Not held, and nothing could find it (a static set): fail at once, no slow path.
    Unknown,
}

/// Where a verifier's keys come from.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A fixed key set given at build time.
    Static(Arc<KeySet>),
    /// A JWKS URL, fetched and cached.
    #[cfg(feature = "remote")]
    Remote(remote::RemoteJwks),
}

impl KeySource {
    /// Look a key up in what is held at `now` (the verification's one clock reading),
    /// without waiting on I/O.
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    pub(crate) fn lookup(&self, kid: &str, now: SystemTime) -> Lookup<'_> {
        match self {
            KeySource::Static(set) => match set.get(kid) {
                Some(k) => Lookup::Found(Cow::Borrowed(k)),
                None => Lookup::Unknown,
            },
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.lookup(kid, now),
        }
    }

    /// After a miss: try to obtain `kid` (remote: one guarded refetch). Returns the key, or
    /// `UnknownKeyId` / `KeysUnavailable`.
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    pub(crate) async fn resolve_missing(&self, kid: &str) -> Result<Arc<VerificationKey>, Error> {
        match self {
            KeySource::Static(_) => Err(Error::new(ErrorKind::UnknownKeyId)),
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.resolve_missing(kid).await,
        }
    }

    /// Fetch a remote set now (or wait for the fetch in flight); a static set is ready.
    pub(crate) async fn refresh(&self) -> Result<KeySetStatus, Error> {
        match self {
            KeySource::Static(_) => Ok(self.status()),
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.refresh().await,
        }
    }

    /// Keep a remote set fresh in the background; a static set needs nothing.
    #[cfg(feature = "remote")]
    pub(crate) fn spawn_refresher(&self) -> Result<remote::Refresher, ConfigError> {
        match self {
            KeySource::Static(_) => Ok(remote::Refresher::idle()),
            KeySource::Remote(remote) => remote.spawn_refresher(),
        }
    }

    /// Where the key set stands, for health endpoints.
    pub(crate) fn status(&self) -> KeySetStatus {
        match self {
            KeySource::Static(set) => KeySetStatus {
                remote: false,
                key_count: set.len(),
                skipped_keys: set.skipped().len(),
                usable: true,
                stale: false,
                fetching: false,
                last_success: None,
                last_error: None,
                last_error_at: None,
                consecutive_failures: 0,
                next_refresh: None,
                per_issuer: Vec::new(),
            },
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.status(),
        }
    }

    /// Whether the key held for `kid` at `now` is still the one with this serial (a key that
    /// left the set, or was replaced, takes its cached tokens with it). This writes nothing
    /// shared, so threads answering cache hits do not slow each other (a remote set reads the
    /// snapshot the thread remembers, after one atomic load).
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    pub(crate) fn still_holds(&self, kid: &str, serial: u64, now: SystemTime) -> bool {
        match self {
            KeySource::Static(set) => set.get(kid).is_some_and(|k| k.serial == serial),
            #[cfg(feature = "remote")]
            KeySource::Remote(remote) => remote.holds(kid, serial, now),
        }
    }
}

/// A snapshot of where a verifier's key set stands, from
/// [`Verifier::key_set_status`](crate::Verifier::key_set_status): for health and readiness
/// endpoints.
///
/// A static key set is always usable and never refreshed. A remote one reports its last
/// fetch outcomes; `usable` turns false only when no key set is held at all, or the last good
/// one has outlived its stale-if-error window.
///
/// A verifier with a key source per issuer reports each in [`per_issuer`](Self::per_issuer)
/// and sums them up in the other fields: `remote`, `stale` and `fetching` when any source
/// is; `usable` when **any** source is (a source fetches on first use, so one that no token
/// has named yet is not usable; check `per_issuer` for each); counts added; the latest
/// `last_success` and `last_error` (prefixed with its issuer); the most
/// `consecutive_failures`; the earliest `next_refresh`.
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
/// assert!(status.usable && !status.remote);
/// assert_eq!(status.key_count, 1);
/// assert_eq!(status.next_refresh, None);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
///
/// It is `Serialize`, so a readiness endpoint can answer with it; times are whole seconds
/// since the Unix epoch:
///
/// ```
/// # let verifier = mka1_auth::Verifier::builder()
/// #     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
/// #     .audience("https://api.example.com")
/// #     .build()?;
/// let json = serde_json::to_value(verifier.key_set_status())?;
/// assert_eq!(json["usable"], true);
/// assert_eq!(json["key_count"], 1);
/// assert_eq!(json["last_success"], serde_json::Value::Null);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct KeySetStatus {
    /// Whether the keys come from a JWKS URL (false for a static set).
    pub remote: bool,
    /// How many usable keys the held set has (0 before the first successful fetch).
    pub key_count: usize,
    /// How many keys the held set skipped as unusable.
    pub skipped_keys: usize,
    /// Whether verification can use the held set now. False before the first successful
    /// fetch and after the stale-if-error window has run out; tokens then fail with
    /// [`ErrorKind::KeysUnavailable`].
    pub usable: bool,
    /// Whether the held set is past its max-age and served only because refreshing failed
    /// (or has not run yet).
    pub stale: bool,
    /// Whether a fetch is in flight.
    pub fetching: bool,
    /// When the key set was last fetched successfully.
    #[serde(serialize_with = "unix_seconds")]
    pub last_success: Option<SystemTime>,
    /// Why the most recent failed fetch failed (never contains a key or a secret). Kept after
    /// a later success; compare `last_error_at` with `last_success`.
    pub last_error: Option<String>,
    /// When the most recent failed fetch failed.
    #[serde(serialize_with = "unix_seconds")]
    pub last_error_at: Option<SystemTime>,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// When the next background refresh (or, after a failure, retry) is due.
    #[serde(serialize_with = "unix_seconds")]
    pub next_refresh: Option<SystemTime>,
    /// With a key source per issuer: each issuer and its source's status, in the order they
    /// were configured. Empty for a verifier with one key source.
    pub per_issuer: Vec<(String, KeySetStatus)>,
}

/// A time as whole seconds since the Unix epoch (`null` when absent).
fn unix_seconds<S: serde::Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let secs = time.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    serde::Serialize::serialize(&secs, serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_modulus_of_zeros_is_invalid_material() {
        for n in ["", "AAAA"] {
            let entry = serde_json::json!({"kty": "RSA", "kid": "r", "n": n, "e": "AQAB"});
            let err = parse_key(entry, &SUPPORTED_ALGORITHMS).unwrap_err();
            assert_eq!(err, SkipReason::InvalidKeyMaterial, "{n:?}");
        }
    }
}
