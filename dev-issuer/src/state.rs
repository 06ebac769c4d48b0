//! What the server and the handle share: the issuer's settings, its API keys, its signing
//! keys, and token issuance.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use serde_json::{json, Map, Value};

use super::api_keys::KeyStore;
use super::faults::Faults;
use super::signing::{KeyRing, SigningAlgorithm, SigningKey};
use mka1_auth::Clock;

/// The clock handle the issuer holds.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// What the server and the handle share.
pub(super) struct IssuerState {
    /// The bootstrap key's secret, as the issuer started.
    pub(super) api_key: String,
    pub(super) issuer: String,
    pub(super) permissions: Vec<String>,
    pub(super) algorithm: SigningAlgorithm,
    pub(super) clock: SharedClock,
    pub(super) jwks_max_age: Duration,
    pub(super) rotation_grace: Duration,
    pub(super) rng: SystemRandom,
    /// The API keys: the bootstrap key and scoped keys.
    pub(super) api_keys: KeyStore,
    /// The signing keys.
    pub(super) keys: Mutex<KeyRing>,
    /// Test-only controls of the JWKS endpoint.
    pub(super) faults: Faults,
}

impl IssuerState {
    pub(super) fn keys(&self) -> std::sync::MutexGuard<'_, KeyRing> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.keys().current)
    }

    /// The JWKS document: the signing key first, then old keys still in their grace period.
    pub(super) fn jwks(&self) -> Value {
        let now = self.clock.now_unix();
        let mut ring = self.keys();
        ring.retired.retain(|(_, until)| *until > now);
        let keys: Vec<Value> = std::iter::once(&ring.current)
            .chain(ring.retired.iter().map(|(key, _)| key))
            .map(|key| key.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    pub(super) fn rotate(&self) -> Result<String, Unspecified> {
        let fresh = Arc::new(SigningKey::generate(self.algorithm, &self.rng)?);
        let until = self
            .clock
            .now_unix()
            .saturating_add(self.rotation_grace.as_secs());
        let kid = fresh.kid.clone();
        let mut ring = self.keys();
        let old = std::mem::replace(&mut ring.current, fresh);
        ring.retired.push((old, until));
        Ok(kid)
    }

    /// Sign the claims MKA1 puts in an exchanged token, plus any extra ones (which win).
    pub(super) fn issue(
        &self,
        audience: &str,
        subject: &str,
        permissions: &[String],
        lifetime_secs: u64,
        extra: &Map<String, Value>,
    ) -> Result<String, Unspecified> {
        let now = self.clock.now_unix();
        let mut claims = json!({
            "sub": subject,
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "exp": now.saturating_add(lifetime_secs),
            "permissions": permissions,
        });
        if let Value::Object(map) = &mut claims {
            map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.current_key().sign(&self.rng, &claims)
    }
}
