//! One public key of a set: its type ([`KeyType`]), the key parsed once per algorithm it
//! may verify ([`VerificationKey`]), and the rules that turn one JWK entry into it or say
//! why it is skipped ([`SkipReason`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use serde::Deserialize;

use super::alg::{algorithms_of, row_of, KeyFamily, Verification};
use super::{b64url_decode, is_supported, parse_alg, Algorithm, SkipReason};

/// The family of a key, fixed by its `kty` and `crv`.
///
/// ```
/// use mka1_auth::jwks::{KeySet, KeyType};
///
/// let set = KeySet::from_json(r#"{"keys":[
///     {"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
/// ]}"#)?;
/// assert_eq!(set.get("e").unwrap().key_type(), KeyType::Ed25519);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
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
    pub(super) kid: Box<str>,
    /// Unique among all keys this process loads: names this key for the token cache, which
    /// must not confuse it with a later key (a later key may reuse its address).
    pub(super) serial: u64,
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

/// Parse and check one JWK entry, in this order: its shape, `kty`, `kid`, `use`/`key_ops`,
/// its own `alg`, the key material, then one parsed key per algorithm it may verify.
pub(super) fn parse_key(
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

#[cfg(test)]
mod tests {
    use super::super::SUPPORTED_ALGORITHMS;
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
