//! The verified-token cache: a token verified once is answered from memory until its `exp`.
//!
//! Entries are keyed by the SHA-256 digest of the whole token (32 bytes, collision resistant,
//! and the token text itself is not kept). Each entry remembers the key that verified it, so a
//! key that leaves the key set takes its tokens with it; expiry and `nbf` are still checked on
//! every hit with the verifier's clock. A hit does no base64, no JSON and no signature work.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use crate::claims::VerifiedToken;

/// How many verified tokens are kept by default.
pub const DEFAULT_CAPACITY: u64 = 10_000;

pub(crate) type Digest = [u8; 32];

/// Cloned on every hit, so it holds nothing shared by all entries (an `Arc` of the key
/// would be a reference count every thread bumps).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) token: VerifiedToken,
    /// The [serial](crate::jwks::VerificationKey) of the key that verified the token.
    pub(crate) key_serial: u64,
    /// How long the entry may live: until `exp` plus leeway, as seen at insertion.
    pub(crate) ttl: Duration,
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

/// Most shards a cache is split into.
const MAX_SHARDS: u64 = 16;
/// Fewest entries a shard is given: smaller caches are not split.
const MIN_SHARD_CAPACITY: u64 = 1024;

/// A bounded map from token digest to verified token.
///
/// It is split into shards by digest, each its own moka cache with its own log of reads and
/// its own housekeeping, so threads answering hits for different users rarely touch the
/// same shard (one shared cache would have every hit of every thread append to one log).
#[derive(Clone)]
pub(crate) struct TokenCache {
    shards: Box<[moka::sync::Cache<Digest, Entry>]>,
}

impl TokenCache {
    /// A cache of at most `capacity` entries in all.
    pub(crate) fn new(capacity: u64) -> Self {
        // A power of two, so a digest byte picks the shard without bias.
        let shards = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let shards = 1 << shards.ilog2();
        TokenCache {
            shards: (0..shards)
                .map(|_| {
                    moka::sync::Cache::builder()
                        .max_capacity(capacity / shards)
                        .expire_after(UntilExpiry)
                        .build()
                })
                .collect(),
        }
    }

    fn shard(&self, digest: &Digest) -> &moka::sync::Cache<Digest, Entry> {
        &self.shards[usize::from(digest[0]) % self.shards.len()]
    }

    pub(crate) fn digest(token: &str) -> Digest {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Entry> {
        self.shard(digest).get(digest)
    }

    pub(crate) fn insert(
        &self,
        digest: Digest,
        token: VerifiedToken,
        key_serial: u64,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        let entry = Entry {
            token,
            key_serial,
            ttl,
        };
        self.shard(&digest).insert(digest, entry);
    }

    pub(crate) fn remove(&self, digest: &Digest) {
        self.shard(digest).invalidate(digest);
    }

    #[cfg(test)]
    #[allow(dead_code)] // for the cache's unit tests
    pub(crate) fn entry_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard.run_pending_tasks();
                shard.entry_count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Fields, Permissions};

    fn token(sub: &str) -> VerifiedToken {
        VerifiedToken::new(Fields {
            raw_claims: "{}".into(),
            subject: sub,
            audiences: &[Box::from("https://api.example.test")],
            issuer: None,
            jti: None,
            key_id: "k1",
            expires_at: 1_800_003_600,
            issued_at: None,
            not_before: None,
            algorithm: jsonwebtoken::Algorithm::EdDSA,
            permissions: Permissions::default(),
        })
        .unwrap()
    }

    #[test]
    fn entries_expire_after_their_own_ttl() {
        let entry = Entry {
            token: token("u"),
            key_serial: 0,
            ttl: Duration::from_secs(3660),
        };
        let expiry = UntilExpiry;
        let ttl = moka::Expiry::expire_after_create(&expiry, &[0; 32], &entry, Instant::now());
        assert_eq!(ttl, Some(Duration::from_secs(3660)));
    }

    #[test]
    fn capacity_bounds_the_entry_count() {
        let cache = TokenCache::new(8);
        for i in 0..100u32 {
            let digest = TokenCache::digest(&format!("token-{i}"));
            cache.insert(digest, token("u"), 0, Duration::from_secs(60));
        }
        let count = cache.entry_count();
        assert!((1..=8).contains(&count), "{count} entries held");
    }

    #[test]
    fn a_large_cache_is_sharded_within_its_capacity() {
        let cache = TokenCache::new(10_000);
        assert_eq!(cache.shards.len(), 8);
        let total: u64 = cache
            .shards
            .iter()
            .map(|s| s.policy().max_capacity().unwrap())
            .sum();
        assert!(total <= 10_000);
        assert_eq!(TokenCache::new(100_000).shards.len(), 16);
        assert_eq!(TokenCache::new(2_048).shards.len(), 2);
        assert_eq!(TokenCache::new(1_000).shards.len(), 1);

        for i in 0..2_000u32 {
            let digest = TokenCache::digest(&format!("token-{i}"));
            cache.insert(digest, token("u"), 0, Duration::from_secs(60));
        }
        assert_eq!(cache.entry_count(), 2_000);
        let busy = cache.shards.iter().filter(|s| s.entry_count() > 0).count();
        assert_eq!(busy, 8, "digests spread over every shard");
    }

    #[test]
    fn a_zero_ttl_is_not_stored() {
        let cache = TokenCache::new(8);
        let digest = TokenCache::digest("t");
        cache.insert(digest, token("u"), 0, Duration::ZERO);
        assert!(cache.get(&digest).is_none());
        cache.insert(digest, token("u"), 0, Duration::from_secs(1));
        assert!(cache.get(&digest).is_some());
        cache.remove(&digest);
        assert!(cache.get(&digest).is_none());
    }

    #[test]
    fn digests_differ_for_different_tokens() {
        assert_ne!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.d"));
        assert_eq!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.c"));
    }
}
