//! The verified-token cache: a token verified once is answered from memory until its `exp`.
//!
//! Entries are keyed by the SHA-256 digest of the whole token (32 bytes, collision resistant,
//! and the token text itself is not kept). Each entry remembers the key that verified it, so a
//! key that leaves the key set takes its tokens with it; expiry and `nbf` are still checked on
//! every hit with the verifier's clock. A hit does no base64, no JSON and no signature work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use crate::claims::VerifiedToken;
use crate::jwks::VerificationKey;

/// How many verified tokens are kept by default.
pub const DEFAULT_CAPACITY: u64 = 10_000;

pub(crate) type Digest = [u8; 32];

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) token: VerifiedToken,
    pub(crate) key: Arc<VerificationKey>,
    /// How long the entry may live: until `exp` plus leeway, as seen at insertion.
    ttl: Duration,
}

struct UntilExpiry;

impl moka::Expiry<Digest, Entry> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded map from token digest to verified token.
#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: moka::sync::Cache<Digest, Entry>,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        TokenCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    pub(crate) fn digest(token: &str) -> Digest {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Entry> {
        self.cache.get(digest)
    }

    pub(crate) fn insert(
        &self,
        digest: Digest,
        token: VerifiedToken,
        key: Arc<VerificationKey>,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(digest, Entry { token, key, ttl });
    }

    pub(crate) fn remove(&self, digest: &Digest) {
        self.cache.invalidate(digest);
    }

    #[cfg(test)]
    #[allow(dead_code)] // for the cache's unit tests
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}
