//! The verified-token cache: a token verified once is answered from memory until its `exp`.
//!
//! Entries are keyed by the SHA-256 digest of the whole token (32 bytes, collision resistant,
//! and the token text itself is not kept). Each entry remembers the key that verified it, so a
//! key that leaves the key set takes its tokens with it; expiry and `nbf` are still checked on
//! every hit with the verifier's clock. A hit does no base64, no JSON and no signature work.
//!
//! In front of the shared moka cache, each thread keeps a few recent entries of its own
//! ([`FRONT_SLOTS`], direct-mapped by digest): a repeated token is then answered without
//! touching anything another thread writes, so hits scale with threads. A front entry is
//! the same entry moka holds and goes through the same checks on every hit (key still held,
//! times against the clock); it names the cache it came from, so two verifiers never see
//! each other's entries.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// How many entries each thread keeps in front of the shared cache.
const FRONT_SLOTS: usize = 128;

/// One slot of a thread's front cache.
struct FrontEntry {
    /// The [`TokenCache::id`] of the cache the entry belongs to.
    cache: u64,
    digest: Digest,
    entry: Entry,
}

thread_local! {
    /// This thread's front cache: [`FRONT_SLOTS`] slots once used, shared by every cache.
    static FRONT: RefCell<Box<[Option<FrontEntry>]>> = RefCell::new(Box::default());
}

/// The next [`TokenCache::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A bounded map from token digest to verified token.
///
/// It is split into shards by digest, each its own moka cache with its own log of reads and
/// its own housekeeping, so threads answering hits for different users rarely touch the
/// same shard (one shared cache would have every hit of every thread append to one log).
/// Before the shards, each thread's front cache answers the tokens it saw last.
#[derive(Clone)]
pub(crate) struct TokenCache {
    /// Unique to this cache (and its clones), never reused: what front entries are tagged with.
    id: u64,
    shards: Box<[moka::sync::Cache<Digest, Entry>]>,
}

impl TokenCache {
    /// A cache of at most `capacity` entries in all.
    pub(crate) fn new(capacity: u64) -> Self {
        // A power of two, so a digest byte picks the shard without bias.
        let shards = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let shards = 1 << shards.ilog2();
        TokenCache {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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

    /// Run `f` on this thread's front slot for `digest`; `None` while the thread is being torn
    /// down (its thread-locals are gone).
    fn front<R>(digest: &Digest, f: impl FnOnce(&mut Option<FrontEntry>) -> R) -> Option<R> {
        FRONT
            .try_with(|front| {
                let mut front = front.try_borrow_mut().ok()?;
                if front.is_empty() {
                    *front = (0..FRONT_SLOTS).map(|_| None).collect();
                }
                // Bytes the shard choice does not use.
                let slot = usize::from(u16::from_le_bytes([digest[1], digest[2]])) % FRONT_SLOTS;
                Some(f(&mut front[slot]))
            })
            .ok()
            .flatten()
    }

    /// Whether a front slot holds this cache's entry for `digest`.
    fn owns(&self, slot: &Option<FrontEntry>, digest: &Digest) -> bool {
        slot.as_ref()
            .is_some_and(|s| s.cache == self.id && s.digest == *digest)
    }

    /// Put an entry in this thread's front slot, replacing whatever was there.
    fn remember(&self, digest: &Digest, entry: &Entry) {
        Self::front(digest, |slot| {
            *slot = Some(FrontEntry {
                cache: self.id,
                digest: *digest,
                entry: entry.clone(),
            });
        });
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Entry> {
        let front = Self::front(digest, |slot| {
            if self.owns(slot, digest) {
                slot.as_ref().map(|s| s.entry.clone())
            } else {
                None
            }
        });
        if let Some(Some(entry)) = front {
            return Some(entry);
        }
        let entry = self.shard(digest).get(digest)?;
        self.remember(digest, &entry);
        Some(entry)
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
        self.remember(&digest, &entry);
        self.shard(&digest).insert(digest, entry);
    }

    /// Drop the entry, from the shared cache and from this thread's front. Other threads'
    /// fronts may still hold it; they drop it on their next hit, which fails the same check.
    pub(crate) fn remove(&self, digest: &Digest) {
        Self::front(digest, |slot| {
            if self.owns(slot, digest) {
                *slot = None;
            }
        });
        self.shard(digest).invalidate(digest);
    }

    /// Whether this thread's front holds this cache's entry for `digest`.
    #[cfg(test)]
    pub(crate) fn in_front(&self, digest: &Digest) -> bool {
        Self::front(digest, |slot| self.owns(slot, digest)) == Some(true)
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
    fn the_front_answers_this_threads_recent_tokens() {
        let cache = TokenCache::new(8);
        let digest = TokenCache::digest("t");
        cache.insert(digest, token("u"), 7, Duration::from_secs(60));
        assert!(cache.in_front(&digest));
        // Gone from the shared cache, but this thread still remembers it.
        cache.shard(&digest).invalidate(&digest);
        let entry = cache.get(&digest).unwrap();
        assert_eq!((entry.token.subject(), entry.key_serial), ("u", 7));
        // Another thread has a front of its own, and asks the shared cache.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!cache.in_front(&digest));
                assert!(cache.get(&digest).is_none());
            });
        });
        cache.remove(&digest);
        assert!(!cache.in_front(&digest));
        assert!(cache.get(&digest).is_none());
    }

    #[test]
    fn a_shared_hit_fills_the_front_of_the_thread_that_asked() {
        let cache = TokenCache::new(8);
        let digest = TokenCache::digest("t");
        let held = token("u");
        cache.insert(digest, held.clone(), 0, Duration::from_secs(60));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!cache.in_front(&digest));
                assert!(cache.get(&digest).unwrap().token.same(&held));
                assert!(cache.in_front(&digest));
            });
        });
    }

    #[test]
    fn caches_never_see_each_others_front_entries() {
        let (a, b) = (TokenCache::new(8), TokenCache::new(8));
        let digest = TokenCache::digest("t");
        let (for_a, for_b) = (token("a"), token("b"));
        a.insert(digest, for_a.clone(), 0, Duration::from_secs(60));
        assert!(a.in_front(&digest) && !b.in_front(&digest));
        assert!(b.get(&digest).is_none());
        // Same digest, same slot: b's entry takes the slot, a still answers from moka.
        b.insert(digest, for_b.clone(), 0, Duration::from_secs(60));
        assert!(b.get(&digest).unwrap().token.same(&for_b));
        assert!(a.get(&digest).unwrap().token.same(&for_a));
        assert!(b.get(&digest).unwrap().token.same(&for_b));
        // The slot is b's now; a clone of b shares its cache, front entries included.
        assert!(b.clone().in_front(&digest) && !a.in_front(&digest));
    }

    #[test]
    fn digests_differ_for_different_tokens() {
        assert_ne!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.d"));
        assert_eq!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.c"));
    }
}
