//! The dev issuer's signing keys: the algorithms it signs with, key generation, the public
//! JWK of each key, and compact-JWS signing.

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

/// The algorithm the dev issuer signs with.
///
/// ```
/// use mka1_auth_dev_issuer::SigningAlgorithm;
/// use mka1_auth::Algorithm;
///
/// assert_eq!(SigningAlgorithm::default(), SigningAlgorithm::EdDSA);
/// assert_eq!(SigningAlgorithm::ES256.algorithm(), Algorithm::ES256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// Ed25519 (`EdDSA`), MKA1's default.
    #[default]
    EdDSA,
    /// ECDSA over P-256 with SHA-256 (`ES256`).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key (`RS256`).
    RS256,
}

impl SigningAlgorithm {
    /// The JOSE algorithm, as a verifier names it.
    pub fn algorithm(self) -> mka1_auth::jwks::Algorithm {
        match self {
            SigningAlgorithm::EdDSA => mka1_auth::jwks::Algorithm::EdDSA,
            SigningAlgorithm::ES256 => mka1_auth::jwks::Algorithm::ES256,
            SigningAlgorithm::RS256 => mka1_auth::jwks::Algorithm::RS256,
        }
    }

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        self.algorithm().as_str()
    }
}

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes, base64url-encoded.
pub(super) fn random_b64(rng: &SystemRandom, len: usize) -> Result<String, Unspecified> {
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes)?;
    Ok(b64(bytes))
}

pub(super) enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its public JWK and random `kid`.
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) algorithm: SigningAlgorithm,
    pub(super) pair: Pair,
    pub(super) jwk: Value,
}

impl SigningKey {
    pub(super) fn generate(
        algorithm: SigningAlgorithm,
        rng: &SystemRandom,
    ) -> Result<Self, Unspecified> {
        let kid = random_b64(rng, 12)?;
        let (pair, mut jwk) = match algorithm {
            SigningAlgorithm::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| Unspecified)?;
                let x = b64(pair.public_key().as_ref());
                (
                    Pair::Ed(pair),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
            SigningAlgorithm::ES256 => {
                let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, rng)?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).map_err(|_| Unspecified)?;
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                (
                    Pair::Ec(pair),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            SigningAlgorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)?;
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let (n, e) = (b64(&public.n), b64(&public.e));
                (Pair::Rsa(pair), json!({"kty": "RSA", "n": n, "e": e}))
            }
        };
        jwk["kid"] = Value::from(kid.as_str());
        jwk["alg"] = Value::from(algorithm.name());
        Ok(SigningKey {
            kid,
            algorithm,
            pair,
            jwk,
        })
    }

    /// A compact JWS over `claims` with the header `{alg, kid, typ}`.
    pub(super) fn sign(&self, rng: &SystemRandom, claims: &Value) -> Result<String, Unspecified> {
        let header = json!({"alg": self.algorithm.name(), "kid": self.kid, "typ": "JWT"});
        let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match &self.pair {
            Pair::Ed(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
            Pair::Ec(pair) => pair.sign(rng, message.as_bytes())?.as_ref().to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message.as_bytes(), &mut signature)?;
                signature
            }
        };
        Ok(format!("{message}.{}", b64(signature)))
    }
}

/// The signing key and the rotated-out keys still listed in the JWKS.
pub(super) struct KeyRing {
    pub(super) current: Arc<SigningKey>,
    /// Old keys with the Unix time until which they stay listed.
    pub(super) retired: Vec<(Arc<SigningKey>, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_what_their_jwks_entry_verifies() {
        let rng = SystemRandom::new();
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let key = SigningKey::generate(alg, &rng).unwrap();
            assert!(key.jwk.get("use").is_none());
            let set = mka1_auth::jwks::KeySet::from_json(&json!({"keys": [key.jwk]}).to_string())
                .unwrap();
            let public = set.get(&key.kid).expect("key loads");
            let token = key.sign(&rng, &json!({"sub": "u"})).unwrap();
            let (signed, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert!(public.verify(alg.algorithm(), signed.as_bytes(), &signature));
            assert!(!public.verify(alg.algorithm(), b"other", &signature));
        }
    }
}
