//! Each thread's front cache: its most recent verified tokens ([`FRONT_SLOTS`], in sets of
//! [`FRONT_WAYS`], the least recently used giving way), each with its text.
//!
//! A repeated token is found by comparing its text (its last eight bytes and its length
//! first, each with an early exit, then every byte of it without one; see [`same_text`]),
//! with no hashing at all, and without touching
//! anything another thread writes, so hits scale with threads. The set is chosen by the
//! token's last bytes (signature bytes, random for any real token); that choice needs no
//! collision resistance, since only an exact match of the whole text answers, and only
//! verified tokens are ever put in front. Every entry is tagged with the id of the cache it
//! belongs to, and answers only that cache; one thread's front serves every cache used on
//! that thread. An entry nobody asks for again stays until a newer token takes its slot, so
//! a thread's front holds at most [`FRONT_SLOTS`] entries whatever their age.

use std::cell::RefCell;

use bytes::Bytes;
use http::HeaderValue;

use super::{Entry, Hit};
use crate::claims::{OnBehalfOf, VerifiedToken};
use crate::jwks::Held;

/// How many entries each thread keeps in front of the shared cache: a thread that serves
/// up to a couple of thousand users answers their repeated tokens without hashing or
/// touching shared memory. About 120 KiB of slots per thread once used, plus the tokens'
/// text (typically 300-800 bytes each, at most [`FRONT_MAX_TOKEN_BYTES`]).
pub(super) const FRONT_SLOTS: usize = 2048;
/// How many slots a token may use (one set). Tokens whose set overflows miss the front on
/// every turn of a rotation, so the sets must be many and wide for the working set: with
/// 256 sets of eight, 1,000 users' tokens in turn (the HTTP soak's "repeated" scenario)
/// overflow about 2% of the sets; 128 sets of eight overflowed about half, and the soak's
/// repeated tokens ran at 0.71-0.87 of the open route instead of 0.93-0.97.
pub(super) const FRONT_WAYS: usize = 8;
/// Longer tokens are not kept in front (they still are in the shared cache): this bounds a
/// thread's front to [`FRONT_SLOTS`] times this many bytes of token text.
pub(super) const FRONT_MAX_TOKEN_BYTES: usize = 2048;

/// What this thread's front holds for `token` on behalf of cache `cache`, marked as just
/// used: the token, its key's serial and last look-up, and the user's id as shared bytes.
#[inline]
pub(super) fn find(cache: u64, token: &[u8]) -> Option<Hit> {
    with_token_set(token, |set, now| {
        let slot = slot_holding(set, cache, token)?.as_mut()?;
        slot.used = now;
        Some(Hit {
            token: slot.verified.clone(),
            key_serial: slot.key_serial,
            held: slot.held,
            rules_checked: slot.rules_checked,
            on_behalf_of: slot.on_behalf_of().cloned(),
        })
    })
    .flatten()
}

/// Stamp this thread's front entry for `token` (of cache `cache`) with its key's look-up.
pub(super) fn stamp(cache: u64, token: &[u8], held: Held) {
    with_slot(cache, token, |slot| slot.held = held);
}

/// Stamp this thread's front entry for `token` (of cache `cache`): found not revoked by the
/// rules of this rules epoch.
pub(super) fn stamp_rules(cache: u64, token: &[u8], epoch: u64) {
    with_slot(cache, token, |slot| slot.rules_checked = epoch);
}

/// Run `f` on this thread's front entry for `token` (of cache `cache`), if it has one.
fn with_slot(cache: u64, token: &[u8], f: impl FnOnce(&mut FrontEntry)) {
    with_token_set(token, |set, _| {
        if let Some(Some(slot)) = slot_holding(set, cache, token) {
            f(slot);
        }
    });
}

/// Put cache `cache`'s entry for `token` in this thread's front: in the slot that already
/// holds it, else an empty slot of its set, else the set's least recently used. Tokens
/// over [`FRONT_MAX_TOKEN_BYTES`] are not kept.
#[inline]
pub(super) fn remember(cache: u64, token: &[u8], entry: &Entry) {
    if token.len() > FRONT_MAX_TOKEN_BYTES {
        return;
    }
    with_token_set(token, |set, now| {
        let fresh = Some(FrontEntry {
            cache,
            tail: tail(token),
            token: Box::from(token),
            verified: entry.token.clone(),
            key_serial: entry.key_serial,
            on_behalf_of: None,
            held: Held::UNCHECKED,
            rules_checked: 0,
            used: now,
        });
        if let Some(slot) = slot_holding(set, cache, token) {
            *slot = fresh;
        } else if let Some(slot) = set
            .iter_mut()
            .min_by_key(|slot| slot.as_ref().map_or(0, |s| s.used))
        {
            *slot = fresh;
        }
    });
}

impl FrontEntry {
    /// The user's id as a header value (see [`on_behalf_of`]), made at the entry's first
    /// hit: a token seen once costs no more than the box's pointer.
    fn on_behalf_of(&mut self) -> Option<&HeaderValue> {
        if self.on_behalf_of.is_none() {
            self.on_behalf_of = on_behalf_of(&self.verified).map(Box::new);
        }
        self.on_behalf_of.as_deref()
    }
}

/// The verified user's id as a header value whose bytes are the token's own text (no copy,
/// one small allocation): what the layer's `X-On-Behalf-Of` is, with a reference count
/// instead of an allocation, a copy and a byte check per request. Kept per front entry that
/// is hit, not per cached token, so the shared cache's memory per token does not grow.
/// `None` if the id were no header value (never: ids are checked printable ASCII).
fn on_behalf_of(token: &VerifiedToken) -> Option<HeaderValue> {
    /// The subject of a verified token, as bytes that live as long as the token.
    struct Subject(OnBehalfOf);
    impl AsRef<[u8]> for Subject {
        fn as_ref(&self) -> &[u8] {
            self.0.as_str().as_bytes()
        }
    }
    let bytes = Bytes::from_owner(Subject(token.on_behalf_of().clone()));
    HeaderValue::from_maybe_shared(bytes).ok()
}

/// Drop cache `cache`'s entry for `token` from this thread's front.
#[inline]
pub(super) fn forget(cache: u64, token: &[u8]) {
    with_token_set(token, |set, _| {
        if let Some(slot) = slot_holding(set, cache, token) {
            *slot = None;
        }
    });
}

/// Whether this thread's front holds cache `cache`'s entry for `token`.
#[cfg(test)]
pub(super) fn holds(cache: u64, token: &[u8]) -> bool {
    with_token_set(token, |set, _| slot_holding(set, cache, token).is_some()) == Some(true)
}

/// One slot of a thread's front cache.
struct FrontEntry {
    /// The id of the cache the entry belongs to.
    cache: u64,
    /// The token's last eight bytes (see [`tail`]): compared first, so a lookup reads
    /// the whole text of no other token.
    tail: u64,
    /// The whole token, compared when the tail matches.
    token: Box<[u8]>,
    verified: VerifiedToken,
    /// The serial of the key that verified it.
    key_serial: u64,
    /// The user's id as a header value, shared (see [`on_behalf_of`]); made at the first
    /// hit, boxed so that an entry never hit holds one pointer for it.
    on_behalf_of: Option<Box<HeaderValue>>,
    /// When the key that verified the token was last found held (see [`Held`]): a hit
    /// within it skips the look-up. Kept here, not in the shared cache, so it costs no
    /// memory per cached token.
    held: Held,
    /// The rules epoch in which the token was last found not revoked on this thread (0:
    /// never): a hit in the same epoch skips the rules.
    rules_checked: u64,
    /// When the entry was last used, on the thread's own [`ThreadFront::tick`].
    used: u64,
}

/// A thread's front cache.
#[derive(Default)]
struct ThreadFront {
    /// [`FRONT_SLOTS`] slots once used, in sets of [`FRONT_WAYS`].
    slots: Box<[Option<FrontEntry>]>,
    /// Counts uses, to find a set's least recently used slot.
    tick: u64,
}

impl ThreadFront {
    /// The slots `token` may occupy (its set), and a fresh use stamp.
    fn set_and_stamp_for(&mut self, token: &[u8]) -> (&mut [Option<FrontEntry>], u64) {
        if self.slots.is_empty() {
            self.slots = (0..FRONT_SLOTS).map(|_| None).collect();
        }
        self.tick += 1;
        let set = set_of(token);
        let set = &mut self.slots[set * FRONT_WAYS..(set + 1) * FRONT_WAYS];
        (set, self.tick)
    }
}

thread_local! {
    /// This thread's front cache, shared by every cache.
    static FRONT: RefCell<ThreadFront> = RefCell::new(ThreadFront::default());
}

/// Run `f` on this thread's front set for `token`, with a fresh use stamp; `None` while
/// the thread is being torn down (its thread-locals are gone).
#[inline]
fn with_token_set<R>(
    token: &[u8],
    f: impl FnOnce(&mut [Option<FrontEntry>], u64) -> R,
) -> Option<R> {
    FRONT
        .try_with(|front| {
            let mut front = front.try_borrow_mut().ok()?;
            let (set, now) = front.set_and_stamp_for(token);
            Some(f(set, now))
        })
        .ok()
        .flatten()
}

/// The slot of a front set that holds cache `cache`'s entry for `token`.
#[inline]
fn slot_holding<'s>(
    set: &'s mut [Option<FrontEntry>],
    cache: u64,
    token: &[u8],
) -> Option<&'s mut Option<FrontEntry>> {
    let tail = tail(token);
    set.iter_mut().find(|slot| {
        slot.as_ref()
            .is_some_and(|s| s.tail == tail && s.cache == cache && same_text(&s.token, token))
    })
}

/// A token's last eight bytes as a word (fewer, zero-padded, for a shorter token).
fn tail(token: &[u8]) -> u64 {
    if let Some(last) = token.last_chunk::<8>() {
        // One load (a copy of a length known only at run time is a call to `memcpy`).
        return u64::from_le_bytes(*last);
    }
    let tail = &token[token.len().saturating_sub(8)..];
    let mut word = [0u8; 8];
    word[..tail.len()].copy_from_slice(tail);
    u64::from_le_bytes(word)
}

/// Whether two tokens are the same text. Texts of different lengths differ at once (a
/// token's length is no secret); texts of one length are compared in full, with no early
/// exit at the first difference, so the time a lookup takes says nothing about how much of
/// a held token a probe got right. What a lookup's time can show is only whether a probe
/// matched a held token's [`tail`] (compared first, with an early exit: 48 bits of its
/// signature, guessed whole or not at all) and its length.
fn same_text(held: &[u8], probe: &[u8]) -> bool {
    if held.len() != probe.len() {
        return false;
    }
    // An OR of XORs over every byte: the compiler makes it vector code, with no branch.
    let differ = held
        .iter()
        .zip(probe)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    differ == 0
}

/// Which front set a token belongs to: a mix of its [`tail`].
pub(super) fn set_of(token: &[u8]) -> usize {
    let mixed = tail(token).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // The top bits are the best mixed; FRONT_SLOTS / FRONT_WAYS is a power of two.
    (mixed >> (64 - (FRONT_SLOTS / FRONT_WAYS).trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_compares_every_byte() {
        let token: &[u8] = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        assert!(same_text(token, token) && same_text(b"", b""));
        for i in 0..token.len() {
            let mut other = token.to_vec();
            other[i] ^= 1;
            assert!(!same_text(token, &other), "byte {i}");
        }
        assert!(!same_text(token, &token[..token.len() - 1]));
        assert!(
            !same_text(b"abcdefgh", b"abcdefgh\0"),
            "a shorter text is not padded to match"
        );
    }

    #[test]
    fn a_tail_is_the_last_eight_bytes() {
        assert_eq!(tail(b"a.b.0123456789"), u64::from_le_bytes(*b"23456789"));
        assert_eq!(tail(b"23456789"), u64::from_le_bytes(*b"23456789"));
        assert_eq!(tail(b"abc"), u64::from_le_bytes(*b"abc\0\0\0\0\0"));
        assert_eq!(tail(b""), 0);
    }

    #[test]
    fn sets_spread_over_the_whole_front() {
        let sets: std::collections::HashSet<usize> = (0..20_000)
            .map(|i| set_of(format!("a.b.sig{i:05}").as_bytes()))
            .collect();
        assert_eq!(sets.len(), FRONT_SLOTS / FRONT_WAYS);
        assert!(set_of(b"") < FRONT_SLOTS / FRONT_WAYS);
    }
}
