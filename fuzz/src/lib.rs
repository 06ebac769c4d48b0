//! Shared set-up for the fuzz targets: one trusted Ed25519 key from a fixed seed (so the
//! genuine tokens are the same on every run), a verifier that trusts it, and a way to drive
//! `verify` without an async runtime (a static key set never waits).

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth::{Error, ManualClock, VerifiedToken, Verifier};

pub const AUDIENCE: &str = "https://api.example.test";
pub const NOW: u64 = 1_800_000_000;
pub const KID: &str = "fuzz-ed";

pub struct Fixture {
    pub verifier: Verifier,
    pub key: Ed25519KeyPair,
    /// Tokens the trusted key really signed; the only ones anything may verify as.
    pub genuine: Vec<String>,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Fixture {
    /// `header.payload.signature` over exactly these bytes, signed by the trusted key.
    pub fn sign(&self, header: &[u8], payload: &[u8]) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let sig = self.key.sign(message.as_bytes());
        format!("{message}.{}", b64(sig.as_ref()))
    }

    /// Verify on this thread; a static key set completes on the first poll.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, Error> {
        let mut fut = pin!(self.verifier.verify(token));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("verify waited with a static key set"),
        }
    }
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("fixed seed");
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KID,
            "x": b64(key.public_key().as_ref()),
        }]});
        let verifier = Verifier::builder()
            .jwks(jwks)
            .audience(AUDIENCE)
            .clock(ManualClock::at_unix(NOW))
            .token_cache_capacity(0)
            .build()
            .expect("fuzz verifier");
        let mut fixture = Fixture {
            verifier,
            key,
            genuine: Vec::new(),
        };
        let header = serde_json::json!({"alg": "EdDSA", "kid": KID, "typ": "JWT"}).to_string();
        let claims = serde_json::json!({
            "sub": "user-42", "aud": AUDIENCE, "iat": NOW, "exp": NOW + 3600,
            "permissions": ["agent:read"],
        })
        .to_string();
        let token = fixture.sign(header.as_bytes(), claims.as_bytes());
        assert!(
            fixture.verify(&token).is_ok(),
            "the genuine token must verify"
        );
        fixture.genuine.push(token);
        fixture
    })
}
