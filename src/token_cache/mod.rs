//! The verified-token cache: a token verified once is answered from memory until its `exp`.
//!
//! The shared cache (moka, split into shards) is keyed by the SHA-256 digest of the whole
//! token (32 bytes, collision resistant, and the token text itself is not kept). Each entry
//! remembers the key that verified it, so a key that leaves the key set takes its tokens with
//! it; expiry and `nbf` are still checked on every hit with the verifier's clock. A hit does
//! no base64, no JSON and no signature work.
//!
//! In front of it, each thread keeps its most recent tokens with their text ([`front`]), so
//! a repeated token is usually found with no hashing and without touching anything another
//! thread writes. A front entry is the same entry moka holds and goes through the same
//! checks on every hit (key still held, times against the clock); it names the cache it came
//! from, so two verifiers never see each other's entries. Moka drops an entry at its `exp`
//! (plus leeway); a hit that finds its token expired drops it from the thread's front too.

mod front;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use http::HeaderValue;

use crate::claims::VerifiedToken;
use crate::jwks::Held;

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

/// What a cache hit gives.
pub(crate) struct Hit {
    pub(crate) token: VerifiedToken,
    /// The serial of the key that verified the token.
    pub(crate) key_serial: u64,
    /// When that key was last found held on this thread ([`Held::UNCHECKED`] when never).
    pub(crate) held: Held,
    /// The rules epoch in which this thread last found the token not revoked (0: never).
    pub(crate) rules_checked: u64,
    /// The user's id as a header value shared with the thread's front entry, for
    /// `X-On-Behalf-Of` (a front hit only).
    pub(crate) on_behalf_of: Option<HeaderValue>,
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

/// The next [`TokenCache::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A bounded map from token to verified token.
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

    pub(crate) fn digest(token: &[u8]) -> Digest {
        let d = digest::digest(&digest::SHA256, token);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// One token's dealings with this cache (see [`Probe`]): `token` as presented, not yet
    /// known to be token text (only verified tokens are ever put in, so bytes that match
    /// one are that token).
    pub(crate) fn probe<'a>(&'a self, token: &'a [u8]) -> Probe<'a> {
        Probe {
            cache: self,
            token,
            digest: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, token: &str) -> Option<Hit> {
        self.probe(token.as_bytes()).get()
    }

    /// How long the shared cache keeps `token`.
    #[cfg(test)]
    pub(crate) fn ttl(&self, token: &str) -> Option<Duration> {
        let digest = TokenCache::digest(token.as_bytes());
        self.shard(&digest).get(&digest).map(|entry| entry.ttl)
    }

    #[cfg(test)]
    pub(crate) fn insert(&self, token: &str, verified: VerifiedToken, serial: u64, ttl: Duration) {
        self.probe(token.as_bytes()).insert(verified, serial, ttl);
    }

    #[cfg(test)]
    pub(crate) fn remove(&self, token: &str) {
        self.probe(token.as_bytes()).remove();
    }

    /// Whether this thread's front holds this cache's entry for `token`.
    #[cfg(test)]
    pub(crate) fn in_front(&self, token: &str) -> bool {
        front::holds(self.id, token.as_bytes())
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

/// One token's dealings with a [`TokenCache`] during one verification: look it up, drop it,
/// or put it in. Its SHA-256 digest is computed at most once, and only when the shared cache
/// is reached (a front hit needs none), so a token verified afresh is hashed once, not once
/// for the lookup and again for the insert.
pub(crate) struct Probe<'a> {
    cache: &'a TokenCache,
    token: &'a [u8],
    digest: Option<Digest>,
}

impl Probe<'_> {
    fn digest(&mut self) -> Digest {
        *self
            .digest
            .get_or_insert_with(|| TokenCache::digest(self.token))
    }

    /// The entry for the token: from this thread's front, else from the shared cache (which
    /// then puts it in front).
    #[cfg(test)]
    pub(crate) fn get(&mut self) -> Option<Hit> {
        self.front().or_else(|| self.shared())
    }

    /// The token in this thread's front: no hashing, nothing shared touched.
    #[inline]
    pub(crate) fn front(&mut self) -> Option<Hit> {
        front::find(self.cache.id, self.token)
    }

    /// The token in the shared cache, which then puts it in this thread's front (its key
    /// not looked up yet on this thread: [`Held::UNCHECKED`]).
    pub(crate) fn shared(&mut self) -> Option<Hit> {
        let digest = self.digest();
        let entry = self.cache.shard(&digest).get(&digest)?;
        front::remember(self.cache.id, self.token, &entry);
        Some(Hit {
            token: entry.token,
            key_serial: entry.key_serial,
            held: Held::UNCHECKED,
            rules_checked: 0,
            on_behalf_of: None,
        })
    }

    /// Stamp the token's front entry on this thread: its key was found held.
    pub(crate) fn stamp(&mut self, held: Held) {
        front::stamp(self.cache.id, self.token, held);
    }

    /// Stamp the token's front entry on this thread: found not revoked by the rules of
    /// this rules epoch.
    pub(crate) fn stamp_rules(&mut self, epoch: u64) {
        front::stamp_rules(self.cache.id, self.token, epoch);
    }

    /// Keep the token, verified by the key with this serial, for `ttl` at most.
    pub(crate) fn insert(&mut self, verified: VerifiedToken, key_serial: u64, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let entry = Entry {
            token: verified,
            key_serial,
            ttl,
        };
        front::remember(self.cache.id, self.token, &entry);
        let digest = self.digest();
        self.cache.shard(&digest).insert(digest, entry);
    }

    /// Drop the entry, from the shared cache and from this thread's front. Other threads'
    /// fronts may still hold it; they drop it on their next hit, which fails the same check.
    pub(crate) fn remove(&mut self) {
        front::forget(self.cache.id, self.token);
        let digest = self.digest();
        self.cache.shard(&digest).invalidate(&digest);
    }
}

#[cfg(test)]
mod tests {
    use super::front::{set_of, FRONT_MAX_TOKEN_BYTES, FRONT_WAYS};
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
            algorithm: crate::jwks::Algorithm::EdDSA,
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

    fn cache_one(cache: &TokenCache, token_text: &str) {
        cache.insert(token_text, token("u"), 0, Duration::from_secs(60));
    }

    #[test]
    fn capacity_bounds_the_entry_count() {
        let cache = TokenCache::new(8);
        for i in 0..100u32 {
            cache_one(&cache, &format!("token-{i}"));
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
            cache_one(&cache, &format!("token-{i}"));
        }
        assert_eq!(cache.entry_count(), 2_000);
        let busy = cache.shards.iter().filter(|s| s.entry_count() > 0).count();
        assert_eq!(busy, 8, "digests spread over every shard");
    }

    #[test]
    fn a_zero_ttl_is_not_stored() {
        let cache = TokenCache::new(8);
        cache.insert("t", token("u"), 0, Duration::ZERO);
        assert!(cache.get("t").is_none());
        cache.insert("t", token("u"), 0, Duration::from_secs(1));
        assert!(cache.get("t").is_some());
        cache.remove("t");
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn the_front_answers_this_threads_recent_tokens() {
        let cache = TokenCache::new(8);
        cache.insert("t", token("u"), 7, Duration::from_secs(60));
        assert!(cache.in_front("t"));
        // Gone from the shared cache, but this thread still remembers it.
        let digest = TokenCache::digest(b"t");
        cache.shard(&digest).invalidate(&digest);
        let entry = cache.get("t").unwrap();
        assert_eq!((entry.token.subject(), entry.key_serial), ("u", 7));
        // Another thread has a front of its own, and asks the shared cache.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!cache.in_front("t"));
                assert!(cache.get("t").is_none());
            });
        });
        cache.remove("t");
        assert!(!cache.in_front("t"));
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn only_the_whole_token_answers_from_the_front() {
        let cache = TokenCache::new(8);
        let held = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        cache_one(&cache, held);
        // Same set (same last bytes), same length, one byte apart; and shorter or longer.
        let twin = held.replacen("eyJzdWIiOiJhIn0", "eyJzdWIiOiJiIn0", 1);
        let others = [
            twin.as_str(),
            &held[1..],
            &held[..held.len() - 1],
            &format!("x{held}"),
        ];
        for other in others {
            assert_eq!(
                set_of(other.as_bytes()) == set_of(held.as_bytes()),
                other.ends_with("bmF0dXJl")
            );
            assert!(cache.get(other).is_none(), "{other}");
            assert!(!cache.in_front(other), "{other}");
        }
        assert!(cache.get(held).is_some());
    }

    #[test]
    fn a_probe_hashes_only_past_the_front_and_at_most_once() {
        let cache = TokenCache::new(8);
        let mut probe = cache.probe(b"t");
        assert!(probe.get().is_none());
        let digest = probe.digest.expect("a miss reached the shared cache");
        probe.insert(token("u"), 0, Duration::from_secs(60));
        assert_eq!(probe.digest, Some(digest));
        assert_eq!(digest, TokenCache::digest(b"t"));
        // A front hit computes no digest.
        let mut probe = cache.probe(b"t");
        assert!(probe.get().is_some());
        assert!(probe.digest.is_none());
        // A stamp stays with the front entry until it is replaced.
        let held = Held::stamp(Held::begin(), u64::MAX);
        probe.stamp(held);
        assert_eq!(cache.probe(b"t").get().unwrap().held, held);
        cache.insert("t", token("u"), 0, Duration::from_secs(60));
        assert_eq!(cache.probe(b"t").get().unwrap().held, Held::UNCHECKED);
    }

    #[test]
    fn long_tokens_skip_the_front_but_are_cached() {
        let cache = TokenCache::new(8);
        let long = "a".repeat(FRONT_MAX_TOKEN_BYTES + 1);
        let longest_kept = "b".repeat(FRONT_MAX_TOKEN_BYTES);
        cache_one(&cache, &long);
        cache_one(&cache, &longest_kept);
        assert!(!cache.in_front(&long) && cache.in_front(&longest_kept));
        assert!(cache.get(&long).is_some());
        assert!(
            !cache.in_front(&long),
            "a shared hit does not bring it to the front"
        );
    }

    #[test]
    fn a_shared_hit_fills_the_front_of_the_thread_that_asked() {
        let cache = TokenCache::new(8);
        let held = token("u");
        cache.insert("t", held.clone(), 0, Duration::from_secs(60));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!cache.in_front("t"));
                assert!(cache.get("t").unwrap().token.same(&held));
                assert!(cache.in_front("t"));
            });
        });
    }

    #[test]
    fn caches_never_see_each_others_front_entries() {
        let (a, b) = (TokenCache::new(8), TokenCache::new(8));
        let (for_a, for_b) = (token("a"), token("b"));
        a.insert("t", for_a.clone(), 0, Duration::from_secs(60));
        assert!(a.in_front("t") && !b.in_front("t"));
        assert!(b.get("t").is_none());
        // Same token, same set: each cache finds its own entry, never the other's.
        b.insert("t", for_b.clone(), 0, Duration::from_secs(60));
        assert!(a.in_front("t") && b.in_front("t"));
        assert!(b.get("t").unwrap().token.same(&for_b));
        assert!(a.get("t").unwrap().token.same(&for_a));
        // A clone of b shares its cache, front entries included; removing from b leaves a's.
        assert!(b.clone().in_front("t"));
        b.remove("t");
        assert!(!b.in_front("t") && a.in_front("t"));
        assert!(b.get("t").is_none());
        assert!(a.get("t").unwrap().token.same(&for_a));
    }

    #[test]
    fn a_full_front_set_gives_up_its_least_recently_used_entry() {
        let cache = TokenCache::new(8);
        // Tokens that differ only before their last eight bytes: all one set, one tail.
        let tokens: Vec<String> = (0..=FRONT_WAYS)
            .map(|i| format!("{i}.payload.signature"))
            .collect();
        assert!(tokens
            .iter()
            .all(|t| set_of(t.as_bytes()) == set_of(tokens[0].as_bytes())));
        for t in &tokens[..FRONT_WAYS] {
            cache_one(&cache, t);
        }
        assert!(tokens[..FRONT_WAYS].iter().all(|t| cache.in_front(t)));
        // Use the first again: the second is now the least recently used, and gives way.
        assert!(cache.get(&tokens[0]).is_some());
        cache_one(&cache, &tokens[FRONT_WAYS]);
        let held: Vec<usize> = (0..tokens.len())
            .filter(|i| cache.in_front(&tokens[*i]))
            .collect();
        let expected: Vec<usize> = (0..tokens.len()).filter(|i| *i != 1).collect();
        assert_eq!(held, expected);
        // It is still in the shared cache, and a hit brings it back to the front.
        assert!(cache.get(&tokens[1]).is_some());
        assert!(cache.in_front(&tokens[1]));
    }

    #[test]
    fn digests_differ_for_different_tokens() {
        assert_ne!(TokenCache::digest(b"a.b.c"), TokenCache::digest(b"a.b.d"));
        assert_eq!(TokenCache::digest(b"a.b.c"), TokenCache::digest(b"a.b.c"));
    }
}
