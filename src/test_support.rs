//! The tests' signing keys: keys generated in the test, JWKS documents for them, and token
//! minting with any header and payload (including broken ones). The unit tests use it as
//! `crate::test_support`; the integration tests (`tests/support/common.rs`) and the benches
//! (`benches/support`) include this file by path, so there is one key helper, not a copy per
//! kind of test. It names nothing from this crate, so it compiles in all three.
#![allow(dead_code)] // each includer uses its own part

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

pub const AUDIENCE: &str = "https://api.example.test";
pub const ISSUER: &str = "https://mka1.example.test";
pub const NOW: u64 = 1_800_000_000;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    pair: Pair,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: "EdDSA",
            pair: Pair::Ed(pair),
        }
    }

    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: "ES256",
            pair: Pair::Ec(pair),
        }
    }

    pub fn rs256(kid: &str) -> Self {
        Self::rsa(kid, KeySize::Rsa2048)
    }

    pub fn rsa(kid: &str, size: KeySize) -> Self {
        let pair = RsaKeyPair::generate(size).unwrap();
        TestKey {
            kid: kid.into(),
            alg: "RS256",
            pair: Pair::Rsa(pair),
        }
    }

    /// All three kinds MKA1 may sign with.
    pub fn all() -> Vec<TestKey> {
        vec![
            TestKey::ed25519("ed-1"),
            TestKey::es256("ec-1"),
            TestKey::rs256("rsa-1"),
        ]
    }

    /// The public JWK, better-auth style: `{kty, crv, x, kid, alg}`, no `use`.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Ed(p) => json!({
                "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA",
                "x": b64(p.public_key().as_ref()),
            }),
            Pair::Ec(p) => {
                let point = p.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Pair::Rsa(p) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(p.public_key());
                json!({
                    "kty": "RSA", "kid": self.kid, "alg": "RS256",
                    "n": b64(&c.n), "e": b64(&c.e),
                })
            }
        }
    }

    /// Raw signature bytes over `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
            Pair::Ec(p) => p.sign(&rng, message).unwrap().as_ref().to_vec(),
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .unwrap();
                sig
            }
        }
    }

    /// The standard header for this key: `{alg, kid, typ}`.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"})
    }

    /// A token with the standard header and these claims.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// A token with any header and claims, both given as JSON values.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A token over raw header and payload bytes (for malformed JSON, duplicates, BOMs ...).
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_bytes(message.as_bytes());
        format!("{message}.{}", b64(sig))
    }
}

/// A JWKS document holding these keys' public halves.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Claims MKA1 would put in an exchanged token issued at `now`.
pub fn claims_at(now: u64) -> Value {
    json!({
        "sub": "user-42",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "permissions": ["agent:read", "agent:write"],
    })
}

/// `claims_at(NOW)` with some members replaced (a `null` value removes the member).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims_at(NOW);
    let map = claims.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            map.remove(k);
        } else {
            map.insert(k.clone(), v.clone());
        }
    }
    claims
}
