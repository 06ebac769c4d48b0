//! The verified-token cache: a token verified once is answered from memory until its `exp`.
//!
//! Entries are keyed by the SHA-256 digest of the whole token (32 bytes, collision resistant,
//! and the token text itself is not kept). Each entry remembers the key that verified it, so a
//! key that leaves the key set takes its tokens with it; expiry and `nbf` are still checked on
//! every hit with the verifier's clock. A hit does no base64, no JSON and no signature work.
//!
//! In front of the shared moka cache, each thread keeps a few recent entries of its own
//! ([`FRONT_SLOTS`], in sets of [`FRONT_WAYS`] chosen by digest, the least recently used
//! giving way): a repeated token is then answered without
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
/// How many slots a digest may use (one set): with four, 32 tokens in turn all stay in
/// front, where one slot per digest would lose a few to collisions.
const FRONT_WAYS: usize = 4;

/// One slot of a thread's front cache.
struct FrontEntry {
    /// The [`TokenCache::id`] of the cache the entry belongs to.
    cache: u64,
    digest: Digest,
    entry: Entry,
    /// When the entry was last used, on the thread's own [`Front::tick`].
    used: u64,
}

/// A thread's front cache.
#[derive(Default)]
struct Front {
    /// [`FRONT_SLOTS`] slots once used, in sets of [`FRONT_WAYS`].
    slots: Box<[Option<FrontEntry>]>,
    /// Counts uses, to find a set's least recently used slot.
    tick: u64,
}

impl Front {
    /// The set `digest` belongs to, and a fresh use stamp.
    fn set(&mut self, digest: &Digest) -> (&mut [Option<FrontEntry>], u64) {
        if self.slots.is_empty() {
            self.slots = (0..FRONT_SLOTS).map(|_| None).collect();
        }
        self.tick += 1;
        // Bytes the shard choice does not use.
        let set =
            usize::from(u16::from_le_bytes([digest[1], digest[2]])) % (FRONT_SLOTS / FRONT_WAYS);
        let set = &mut self.slots[set * FRONT_WAYS..(set + 1) * FRONT_WAYS];
        (set, self.tick)
    }
}

thread_local! {
    /// This thread's front cache, shared by every cache.
    static FRONT: RefCell<Front> = RefCell::new(Front::default());
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

    /// Run `f` on this thread's front set for `digest`, with a fresh use stamp; `None` while
    /// the thread is being torn down (its thread-locals are gone).
    fn front<R>(digest: &Digest, f: impl FnOnce(&mut [Option<FrontEntry>], u64) -> R) -> Option<R> {
        FRONT
            .try_with(|front| {
                let mut front = front.try_borrow_mut().ok()?;
                let (set, now) = front.set(digest);
                Some(f(set, now))
            })
            .ok()
            .flatten()
    }

    /// The slot of a front set that holds this cache's entry for `digest`.
    fn owned<'s>(
        &self,
        set: &'s mut [Option<FrontEntry>],
        digest: &Digest,
    ) -> Option<&'s mut Option<FrontEntry>> {
        set.iter_mut().find(|slot| {
            slot.as_ref()
                .is_some_and(|s| s.cache == self.id && s.digest == *digest)
        })
    }

    /// Put an entry in this thread's front: in the slot that already holds it, else an empty
    /// slot of its set, else the set's least recently used.
    fn remember(&self, digest: &Digest, entry: &Entry) {
        Self::front(digest, |set, now| {
            let fresh = Some(FrontEntry {
                cache: self.id,
                digest: *digest,
                entry: entry.clone(),
                used: now,
            });
            if let Some(slot) = self.owned(set, digest) {
                *slot = fresh;
            } else if let Some(slot) = set
                .iter_mut()
                .min_by_key(|slot| slot.as_ref().map_or(0, |s| s.used))
            {
                *slot = fresh;
            }
        });
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Entry> {
        let front = Self::front(digest, |set, now| {
            let held = self.owned(set, digest)?.as_mut()?;
            held.used = now;
            Some(held.entry.clone())
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
        Self::front(digest, |set, _| {
            if let Some(slot) = self.owned(set, digest) {
                *slot = None;
            }
        });
        self.shard(digest).invalidate(digest);
    }

    /// Whether this thread's front holds this cache's entry for `digest`.
    #[cfg(test)]
    pub(crate) fn in_front(&self, digest: &Digest) -> bool {
        Self::front(digest, |set, _| self.owned(set, digest).is_some()) == Some(true)
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
        // Same digest, same set: each cache finds its own entry, never the other's.
        b.insert(digest, for_b.clone(), 0, Duration::from_secs(60));
        assert!(a.in_front(&digest) && b.in_front(&digest));
        assert!(b.get(&digest).unwrap().token.same(&for_b));
        assert!(a.get(&digest).unwrap().token.same(&for_a));
        // A clone of b shares its cache, front entries included; removing from b leaves a's.
        assert!(b.clone().in_front(&digest));
        b.remove(&digest);
        assert!(!b.in_front(&digest) && a.in_front(&digest));
        assert!(b.get(&digest).is_none());
        assert!(a.get(&digest).unwrap().token.same(&for_a));
    }

    #[test]
    fn a_full_front_set_gives_up_its_least_recently_used_entry() {
        let cache = TokenCache::new(8);
        // Digests that differ only in bytes the set choice does not read: all one set.
        let digests: Vec<Digest> = (0..=FRONT_WAYS as u8)
            .map(|i| {
                let mut d = [7; 32];
                d[31] = i;
                d
            })
            .collect();
        for d in &digests[..FRONT_WAYS] {
            cache.insert(*d, token("u"), 0, Duration::from_secs(60));
        }
        assert!(digests[..FRONT_WAYS].iter().all(|d| cache.in_front(d)));
        // Use the first again: the second is now the least recently used, and gives way.
        assert!(cache.get(&digests[0]).is_some());
        cache.insert(digests[FRONT_WAYS], token("u"), 0, Duration::from_secs(60));
        let held: Vec<bool> = digests.iter().map(|d| cache.in_front(d)).collect();
        assert_eq!(held, [true, false, true, true, true]);
        // It is still in the shared cache, and a hit brings it back to the front.
        assert!(cache.get(&digests[1]).is_some());
        assert!(cache.in_front(&digests[1]));
    }

    #[test]
    fn digests_differ_for_different_tokens() {
        assert_ne!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.d"));
        assert_eq!(TokenCache::digest("a.b.c"), TokenCache::digest("a.b.c"));
    }
}
