//! Header-name rules shared by everything that reads or forwards headers.
//!
//! HTTP field names are case-insensitive, and CGI-style servers (WSGI, Rack, PHP) fold `_`
//! into `-` when they turn headers into variables: `X_On_Behalf_Of` reaches such an
//! application as the same `HTTP_X_ON_BEHALF_OF` as `X-On-Behalf-Of`. So every rule here
//! treats upper and lower case, and `_` and `-`, as the same name.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use http::header::{HeaderMap, HeaderName, CONNECTION};

/// Whether two header names are the same once case and `_`/`-` are ignored.
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    Folded(a.as_bytes()) == Folded(b.as_bytes())
}

/// Whether `name` spells `canonical` in some other way than `canonical` itself (a name in a
/// `HeaderMap` is already lowercase, so this means: with `_` where `-` belongs).
#[inline]
pub(crate) fn is_variant_of(name: &HeaderName, canonical: &HeaderName) -> bool {
    name != canonical && same_name(name.as_str(), canonical.as_str())
}

/// Whether `headers` holds a name that spells `canonical` another way. Allocates nothing:
/// the per-request check, before the rare work on variants.
#[inline]
pub(crate) fn has_variant(headers: &HeaderMap, canonical: &HeaderName) -> bool {
    let canonical = canonical.as_str();
    headers.keys().any(|name| {
        let name = name.as_str();
        name.len() == canonical.len() && name != canonical && same_name(name, canonical)
    })
}

/// The names in `headers` that spell `canonical` another way (see [`is_variant_of`]).
/// Empty, and without allocating, in the usual case that there are none.
pub(crate) fn variants_of(headers: &HeaderMap, canonical: &HeaderName) -> Vec<HeaderName> {
    let mut found = Vec::new();
    for name in headers.keys() {
        if is_variant_of(name, canonical) {
            found.push(name.clone());
        }
    }
    found
}

/// Remove `canonical` and every other spelling of it from `headers`.
pub(crate) fn remove_every_spelling(headers: &mut HeaderMap, canonical: &HeaderName) {
    headers.remove(canonical);
    for name in variants_of(headers, canonical) {
        headers.remove(name);
    }
}

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1), plus
/// `Proxy-Authorization` and `Proxy-Authenticate`, which are for the next hop only
/// (sections 11.7.1 and 11.7.2). A proxy never passes these on.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Whether `name` is a hop-by-hop header in some spelling (see [`HOP_BY_HOP`]). The headers
/// a `Connection` header names are hop-by-hop too: see [`ConnectionTokens`].
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| same_name(name, h))
}

/// The header names the `Connection` headers of a request or answer list, read once: a
/// proxy asks about every other header, and a client may send thousands of tokens.
///
/// Tokens that are hop-by-hop anyway (and `close`) are left out, so the usual
/// `Connection: keep-alive` or `close` allocates nothing; other tokens go into a set keyed
/// by the folded name (case ignored, `_` = `-`), so each question costs one lookup whatever
/// the number of tokens.
pub(crate) struct ConnectionTokens<'h> {
    named: Option<HashSet<Folded<'h>>>,
}

impl<'h> ConnectionTokens<'h> {
    /// The tokens of every `Connection` header in `headers`.
    pub(crate) fn of(headers: &'h HeaderMap) -> Self {
        let mut named: Option<HashSet<Folded<'h>>> = None;
        for value in headers.get_all(CONNECTION) {
            #[cfg(test)]
            tests::CONNECTION_BYTES_READ.with(|n| n.set(n.get() + value.len()));
            for token in value.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                let Ok(text) = std::str::from_utf8(token) else {
                    continue; // Not a header name: names nothing.
                };
                if token.is_empty() || is_hop_by_hop(text) || same_name(text, "close") {
                    continue;
                }
                named.get_or_insert_with(HashSet::new).insert(Folded(token));
            }
        }
        ConnectionTokens { named }
    }

    /// Whether a `Connection` header lists `name`, in any spelling.
    pub(crate) fn name(&self, name: &str) -> bool {
        self.named
            .as_ref()
            .is_some_and(|set| set.contains(&Folded(name.as_bytes())))
    }
}

/// A header name compared and hashed as [`same_name`] reads it: case ignored, `_` = `-`.
#[derive(Clone, Copy)]
struct Folded<'a>(&'a [u8]);

fn fold(c: u8) -> u8 {
    if c == b'_' {
        b'-'
    } else {
        c.to_ascii_lowercase()
    }
}

impl PartialEq for Folded<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0)
                .all(|(a, b)| fold(*a) == fold(*b))
    }
}

impl Eq for Folded<'_> {}

impl Hash for Folded<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        let mut buf = [0u8; 64];
        for chunk in self.0.chunks(buf.len()) {
            for (to, from) in buf.iter_mut().zip(chunk) {
                *to = fold(*from);
            }
            state.write(&buf[..chunk.len()]);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn names_match_across_case_and_underscores() {
        assert!(same_name("x-on-behalf-of", "x-on-behalf-of"));
        assert!(same_name("X_On_Behalf_Of", "x-on-behalf-of"));
        assert!(same_name("x_on-behalf_of", "x-on-behalf-of"));
        assert!(!same_name("x-on-behalf-ofx", "x-on-behalf-of"));
        assert!(!same_name("x.on.behalf.of", "x-on-behalf-of"));
        assert!(same_name("A-b", "a_B"));
    }

    #[test]
    fn variants_are_found_and_removed() {
        let canonical = HeaderName::from_static("x-on-behalf-of");
        let mut h = HeaderMap::new();
        h.append("x-on-behalf-of", HeaderValue::from_static("a"));
        h.append("x_on_behalf_of", HeaderValue::from_static("b"));
        h.append("x_on-behalf_of", HeaderValue::from_static("c"));
        h.append("x-other", HeaderValue::from_static("d"));
        assert_eq!(variants_of(&h, &canonical).len(), 2);
        remove_every_spelling(&mut h, &canonical);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-other"));
    }

    #[test]
    fn hop_by_hop_includes_what_connection_names() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("close, X-Secret-Hop"));
        h.append(CONNECTION, HeaderValue::from_static(" x_other_hop ,TE,,"));
        let named = ConnectionTokens::of(&h);
        let hop = |name: &str| is_hop_by_hop(name) || named.name(name);
        for name in [
            "connection",
            "keep-alive",
            "keep_alive",
            "proxy-authorization",
            "Proxy_Authorization",
            "transfer-encoding",
            "x-secret-hop",
            "x_secret_hop",
            "X_SECRET-HOP",
            "x-other-hop",
            "te",
        ] {
            assert!(hop(name), "{name}");
        }
        for name in [
            "content-type",
            "x-secret",
            "authorization",
            "cookie",
            "close",
            "",
        ] {
            assert!(!hop(name), "{name}");
        }
    }

    #[test]
    fn usual_connection_tokens_need_no_set() {
        let mut h = HeaderMap::new();
        h.append(
            CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade, close"),
        );
        assert!(ConnectionTokens::of(&h).named.is_none());
        assert!(ConnectionTokens::of(&HeaderMap::new()).named.is_none());
    }

    #[test]
    fn folded_names_hash_alike() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let long = "X_Long".repeat(40);
        for (a, b) in [
            ("X_On-Behalf_Of", "x-on-behalf-of"),
            (long.as_str(), &long.to_lowercase().replace('_', "-")),
        ] {
            assert!(Folded(a.as_bytes()) == Folded(b.as_bytes()));
            assert_eq!(
                state.hash_one(Folded(a.as_bytes())),
                state.hash_one(Folded(b.as_bytes()))
            );
        }
    }

    thread_local! {
        /// Bytes of `Connection` values [`ConnectionTokens::of`] has read on this thread.
        pub(crate) static CONNECTION_BYTES_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
}
