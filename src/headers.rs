//! Header-name rules shared by everything that reads or forwards headers.
//!
//! HTTP field names are case-insensitive, and CGI-style servers (WSGI, Rack, PHP) fold `_`
//! into `-` when they turn headers into variables: `X_On_Behalf_Of` reaches such an
//! application as the same `HTTP_X_ON_BEHALF_OF` as `X-On-Behalf-Of`. So every rule here
//! treats upper and lower case, and `_` and `-`, as the same name.

use http::header::{HeaderMap, HeaderName, CONNECTION};

/// Whether two header names are the same once case and `_`/`-` are ignored.
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
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

/// Whether a header called `name` must not cross a proxy: a hop-by-hop header in any
/// spelling, or one that a `Connection` header of `headers` names.
pub(crate) fn is_hop_by_hop(name: &str, headers: &HeaderMap) -> bool {
    HOP_BY_HOP.iter().any(|h| same_name(name, h)) || named_by_connection(name, headers)
}

/// Whether a `Connection` header in `headers` lists `name` (comma-separated tokens).
fn named_by_connection(name: &str, headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .filter_map(|token| std::str::from_utf8(token.trim_ascii()).ok())
            .any(|token| same_name(token, name))
    })
}

#[cfg(test)]
mod tests {
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
        h.append(CONNECTION, HeaderValue::from_static(" x_other_hop ,TE"));
        for name in [
            "connection",
            "keep-alive",
            "keep_alive",
            "proxy-authorization",
            "Proxy_Authorization",
            "transfer-encoding",
            "x-secret-hop",
            "x_secret_hop",
            "x-other-hop",
            "te",
        ] {
            assert!(is_hop_by_hop(name, &h), "{name}");
        }
        for name in ["content-type", "x-secret", "authorization", "cookie"] {
            assert!(!is_hop_by_hop(name, &h), "{name}");
        }
    }
}
