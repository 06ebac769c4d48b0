//! The headers a forward passes on, and those it drops (see the [module docs](super)).
//!
//! Every rule reads names as [`crate::headers`] does: case ignored, `_` the same as `-`.
//! The headers go in one pass: the `Connection` tokens are read once into a set, each name
//! is judged once, and the doomed ones are removed after, so a large request head costs
//! time in proportion to its size (issue 25).

use http::header::{HeaderName, COOKIE};
use http::{Extensions, HeaderMap, HeaderValue};

use crate::guard::{token_cookies, TokenCookies};
use crate::headers::{is_hop_by_hop, same_name, ConnectionTokens};

/// What a forward does with `Forwarded`, `X-Forwarded-*` and `X-Real-IP` from the client.
/// Set with [`ForwardLayerBuilder::forwarded_headers`](super::ForwardLayerBuilder::forwarded_headers).
///
/// ```
/// use mka1_auth::outbound::forward::{ForwardLayer, ForwardedHeaders};
///
/// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base").build()?;
/// let req = http::Request::get("/a").header("x-forwarded-for", "10.0.0.1").body(()).unwrap();
/// assert!(forward.onward_request(req).unwrap().headers().is_empty());
/// assert_eq!(ForwardedHeaders::default(), ForwardedHeaders::Drop);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeaders {
    /// Drop them (the default): any client can write them, so the upstream must not trust
    /// them.
    #[default]
    Drop,
    /// Pass them on as they came: only when a proxy in front of this service sets them and
    /// removes whatever clients sent.
    Keep,
}

/// What a forward does with the headers that ask a server to act on another path or method
/// than the request's own: `X-Original-URL`, `X-Original-URI`, `X-Rewrite-URL` (read by IIS,
/// Symfony, Laminas and others) and `X-HTTP-Method-Override`, `X-HTTP-Method`,
/// `X-Method-Override`, `X-Original-Method`. Set with
/// [`ForwardLayerBuilder::override_headers`](super::ForwardLayerBuilder::override_headers).
///
/// ```
/// use mka1_auth::outbound::forward::{ForwardLayer, OverrideHeaders};
///
/// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base").build()?;
/// let req = http::Request::get("/a").header("X-Original-URL", "/admin").body(()).unwrap();
/// let onward = forward.onward_request(req).unwrap();
/// assert!(onward.headers().get("x-original-url").is_none());
/// assert_eq!(OverrideHeaders::default(), OverrideHeaders::Drop);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverrideHeaders {
    /// Drop them (the default). The layers in front authorised this request's path and
    /// method; an upstream that honours an override would run another one.
    #[default]
    Drop,
    /// Pass them on. **A risk:** a caller allowed `GET /reports` can then have the upstream
    /// run `DELETE /admin/users`, past every per-route and per-method rule in front of it.
    /// Only for upstreams that need them and check them against their own rules.
    Keep,
}

/// What a forward does with the `Cookie` header. Set with
/// [`ForwardLayerBuilder::cookies`](super::ForwardLayerBuilder::cookies).
///
/// ```
/// use mka1_auth::outbound::forward::{ForwardCookies, ForwardLayer};
///
/// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base")
///     .cookies(ForwardCookies::Keep)
///     .build()?;
/// let req = http::Request::get("/a").header("cookie", "lang=en").body(()).unwrap();
/// let onward = forward.onward_request(req).unwrap();
/// assert_eq!(onward.headers()["cookie"], "lang=en");
/// assert_eq!(ForwardCookies::default(), ForwardCookies::Drop);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardCookies {
    /// Drop every `Cookie` header (the default): the upstream gets the caller's identity
    /// from the outbound layer, not from the caller's browser session.
    #[default]
    Drop,
    /// Pass cookies on, less the ones the [`Mka1AuthLayer`](crate::Mka1AuthLayer)s in front
    /// read tokens from ([`cookie`](crate::Mka1AuthLayer::cookie)): those never go onward,
    /// whatever this setting, in any case of their name.
    Keep,
}

/// Which headers a forward drops, beside those it always drops.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HeaderPolicy {
    pub(super) forwarded: ForwardedHeaders,
    pub(super) overrides: OverrideHeaders,
    pub(super) cookies: ForwardCookies,
}

impl HeaderPolicy {
    /// Make an inbound request's headers the onward request's: hop-by-hop, identity,
    /// forwarding, override and cookie headers go as the policy says. `extensions` tell
    /// which cookies carried tokens.
    pub(super) fn clean_request(&self, headers: &mut HeaderMap, extensions: &Extensions) {
        drop_headers(headers, |name| {
            is_identity_header(name)
                || (self.forwarded == ForwardedHeaders::Drop && is_forwarded_header(name))
                || (self.overrides == OverrideHeaders::Drop && is_override_header(name))
                || (self.cookies == ForwardCookies::Drop && same_name(name, "cookie"))
        });
        if self.cookies == ForwardCookies::Keep {
            remove_token_cookies(headers, token_cookies(extensions));
        }
    }
}

/// Headers that carry who is calling: only the outbound layer sets these.
fn is_identity_header(name: &str) -> bool {
    ["authorization", "x-on-behalf-of", "host"]
        .iter()
        .any(|h| same_name(name, h))
}

/// `Forwarded`, `X-Forwarded-*` and `X-Real-IP`, in any spelling.
fn is_forwarded_header(name: &str) -> bool {
    const FAMILY: &str = "x-forwarded-";
    same_name(name, "forwarded")
        || same_name(name, "x-real-ip")
        || (name.len() > FAMILY.len()
            && name.is_char_boundary(FAMILY.len())
            && same_name(&name[..FAMILY.len()], FAMILY))
}

/// The path and method overrides of [`OverrideHeaders`].
const OVERRIDES: [&str; 7] = [
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
];

/// A path or method override, in any spelling.
fn is_override_header(name: &str) -> bool {
    OVERRIDES.iter().any(|h| same_name(name, h))
}

/// Remove every hop-by-hop header (those a `Connection` header names included, then the
/// `Connection` headers themselves) and every header whose name `doomed` picks, in one pass:
/// `doomed` is asked once per name. Allocates nothing unless the `Connection` headers name
/// unusual headers or more than [`INLINE`] names go.
pub(super) fn drop_headers(headers: &mut HeaderMap, mut doomed: impl FnMut(&str) -> bool) {
    let mut gone = Doomed::default();
    let named = ConnectionTokens::of(headers);
    for name in headers.keys() {
        let text = name.as_str();
        if is_hop_by_hop(text) || named.name(text) || doomed(text) {
            gone.push(name.clone());
        }
    }
    drop(named);
    for name in gone.into_iter() {
        headers.remove(name);
    }
}

/// How many doomed names [`Doomed`] holds without allocating.
const INLINE: usize = 8;

/// The names to remove, the first [`INLINE`] held inline: a usual request drops `Host`,
/// `Authorization` and `Connection`, and allocates nothing for that.
#[derive(Default)]
struct Doomed {
    inline: [Option<HeaderName>; INLINE],
    len: usize,
    more: Vec<HeaderName>,
}

impl Doomed {
    fn push(&mut self, name: HeaderName) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(name);
                self.len += 1;
            }
            None => self.more.push(name),
        }
    }

    fn into_iter(self) -> impl Iterator<Item = HeaderName> {
        self.inline.into_iter().flatten().chain(self.more)
    }
}

/// Remove the cookies named in `cookies` (any case) from every `Cookie` header, and the
/// headers left empty. Allocates only when there is one to remove.
fn remove_token_cookies(headers: &mut HeaderMap, cookies: &TokenCookies) {
    let is_token = |pair: &[u8]| {
        let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
        let name = name.trim_ascii();
        cookies
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
    };
    let pairs = |value: &HeaderValue| -> Vec<Vec<u8>> {
        value
            .as_bytes()
            .split(|b| *b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|pair| !pair.is_empty() && !is_token(pair))
            .map(<[u8]>::to_vec)
            .collect()
    };
    let has_token = headers
        .get_all(COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|b| *b == b';').any(is_token));
    if !has_token {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            let rest = pairs(value).join(&b"; "[..]);
            // What is left is part of a valid value, so it is one.
            let mut rest = HeaderValue::from_bytes(&rest)
                .ok()
                .filter(|v| !v.is_empty())?;
            rest.set_sensitive(true);
            Some(rest)
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Guarded;
    use std::sync::Arc;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        h.keys().map(HeaderName::as_str).collect()
    }

    #[test]
    fn a_large_head_is_judged_in_one_pass() {
        // A `Connection` header with 500 tokens beside 400 headers, every other one
        // named by it or doomed: each name is judged once, the `Connection` value is read
        // once, whatever the counts (the scan used to restart after every removal, and to
        // read the whole `Connection` value for every header it judged).
        let tokens: Vec<String> = (0..500).map(|i| format!("x-hop-{i}")).collect();
        let connection = tokens.join(", ");
        let mut h = map(&[("connection", &connection)]);
        for i in 0..400 {
            let name = match i % 4 {
                0 => format!("x-hop-{i}"),
                1 => format!("x-doomed-{i}"),
                _ => format!("x-kept-{i}"),
            };
            h.append(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        let distinct = h.keys_len();
        let before = crate::headers::tests::CONNECTION_BYTES_READ.with(|n| n.get());
        let mut asked = 0;
        drop_headers(&mut h, |name| {
            asked += 1;
            name.starts_with("x-doomed-")
        });
        let read = crate::headers::tests::CONNECTION_BYTES_READ.with(|n| n.get()) - before;
        assert_eq!(read, connection.len(), "the connection value is read once");
        assert!(asked <= distinct, "{asked} questions for {distinct} names");
        assert_eq!(h.len(), 200);
        assert!(h.keys().all(|n| n.as_str().starts_with("x-kept-")));
    }

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stay() {
        let mut h = map(&[
            ("host", "a"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("x-one", "1"),
            ("x-two", "2"),
        ]);
        drop_headers(&mut h, |_| false);
        let mut kept = names(&h);
        kept.sort_unstable();
        assert_eq!(kept, ["host", "x-one", "x-two"]);
    }

    #[test]
    fn overrides_go_in_every_spelling_unless_kept() {
        let spellings = [
            ("X-Original-URL", "/admin"),
            ("x_original_url", "/admin"),
            ("X-Original-Uri", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X_Rewrite_Url", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_http_method_override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("X_Method-Override", "DELETE"),
            ("X-Original-Method", "DELETE"),
            ("x-kept", "1"),
        ];
        let mut h = map(&spellings);
        HeaderPolicy::default().clean_request(&mut h, &Extensions::new());
        assert_eq!(names(&h), ["x-kept"]);
        let mut h = map(&spellings);
        let keep = HeaderPolicy {
            overrides: OverrideHeaders::Keep,
            ..HeaderPolicy::default()
        };
        keep.clean_request(&mut h, &Extensions::new());
        assert_eq!(h.len(), spellings.len());
    }

    fn guarded(cookies: &[&str]) -> Extensions {
        let mut ext = Extensions::new();
        let mut marks = TokenCookies::None;
        for name in cookies {
            let before = Guarded {
                realm: crate::rejection::Realm::named(Arc::from("r")),
                grpc: None,
                token_cookies: marks,
                verified: None,
            };
            marks = TokenCookies::with(Some(&Arc::from(*name)), Some(&before));
        }
        ext.insert(Guarded {
            realm: crate::rejection::Realm::named(Arc::from("r")),
            grpc: None,
            token_cookies: marks,
            verified: None,
        });
        ext
    }

    #[test]
    fn cookies_go_unless_kept_and_the_token_cookie_always_goes() {
        let cookies = [
            ("cookie", "theme=dark; mka1_token=a.b.c; lang=en"),
            ("cookie", "MKA1_TOKEN=d.e.f"),
            ("cookie", "sid=1;other_token=x"),
        ];
        let mut h = map(&cookies);
        HeaderPolicy::default().clean_request(&mut h, &guarded(&["mka1_token"]));
        assert!(h.is_empty(), "{h:?}");

        let keep = HeaderPolicy {
            cookies: ForwardCookies::Keep,
            ..HeaderPolicy::default()
        };
        let mut h = map(&cookies);
        keep.clean_request(&mut h, &guarded(&["mka1_token", "other_token"]));
        let values: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(values, ["theme=dark; lang=en", "sid=1"]);
        assert!(values.iter().all(|v| v.is_sensitive()));

        // No layer read a cookie: all pass, untouched.
        let mut h = map(&cookies);
        keep.clean_request(&mut h, &Extensions::new());
        assert_eq!(h.get_all(COOKIE).iter().count(), 3);
        assert_eq!(h.get(COOKIE).unwrap(), cookies[0].1);
    }
}
