//! The bearer token a request carries: where the layer finds it (`Authorization: Bearer`,
//! or a named cookie), and [`BearerToken`], the token the layer verified, kept to forward it
//! onward.

use std::fmt;
use std::ops::Range;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

use crate::error::{Error, ErrorKind};

/// The bearer token a request was verified with, for forwarding it onward unchanged.
///
/// The layer keeps it beside the [`VerifiedToken`]; read it with
/// [`BearerToken::from_extensions`] (or the axum extractor). Its `Debug` is redacted, and
/// the header value it produces is marked sensitive. It shares the request header it was
/// found in (a reference count, no copy of the token).
///
/// [`VerifiedToken`]: crate::VerifiedToken
#[derive(Clone)]
pub struct BearerToken {
    /// The header the token was found in (or a header of the token alone), sensitive.
    header: HeaderValue,
    /// Where in `header` the token is.
    token: Range<usize>,
}

impl BearerToken {
    /// A token that was not read from a header: a copy of it.
    pub(crate) fn new(token: &str) -> Self {
        let mut header =
            HeaderValue::from_str(token).unwrap_or_else(|_| HeaderValue::from_static(""));
        header.set_sensitive(true);
        let token = 0..header.len();
        BearerToken { header, token }
    }

    /// The token `token`, a part of `header`'s bytes, sharing `header`. Bytes that are not
    /// text give an empty token (which no verifier accepts); the layer passes only a token it
    /// verified.
    pub(crate) fn within(header: &HeaderValue, token: &[u8]) -> Self {
        let bytes = header.as_bytes();
        let start = (token.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
        match bytes.get(start..start.saturating_add(token.len())) {
            Some(part) if part.as_ptr() == token.as_ptr() => {
                let mut header = header.clone();
                header.set_sensitive(true);
                BearerToken {
                    header,
                    token: start..start + token.len(),
                }
            }
            _ => BearerToken::new(std::str::from_utf8(token).unwrap_or_default()),
        }
    }

    /// The token text. Treat it as a secret.
    pub fn expose(&self) -> &str {
        let part = self.header.as_bytes().get(self.token.clone());
        std::str::from_utf8(part.unwrap_or_default()).unwrap_or_default()
    }

    /// `Bearer <token>` as a sensitive header value: the request's own header when it was
    /// exactly that, else a new one.
    pub fn authorization_value(&self) -> HeaderValue {
        let bytes = self.header.as_bytes();
        if self.token == (7..bytes.len()) && bytes.starts_with(b"Bearer ") {
            return self.header.clone();
        }
        bearer_header_value(self.expose())
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// `Bearer <secret>` as a header value marked sensitive.
///
/// Panics never: a secret with bytes a header cannot carry yields an empty sensitive value,
/// which the receiving side rejects.
pub(crate) fn bearer_header_value(secret: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Bearer {secret}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// A token as a request presents it: the header it is in, and its bytes there, not yet
/// known to be token text. [`text`](Found::text) checks that, and is only needed for a
/// token verified afresh: bytes equal to an already verified token's are that token.
#[derive(Clone, Copy)]
pub(crate) struct Found<'h> {
    /// The header the token is in.
    pub(crate) header: &'h HeaderValue,
    /// The token's bytes, within `header`.
    pub(crate) bytes: &'h [u8],
    /// The check of where it came from (an `Authorization` header, or a cookie).
    check: fn(&[u8]) -> Result<&str, Error>,
}

impl<'h> Found<'h> {
    /// The token as text, or what is wrong with it: the one check that reads all of it.
    pub(crate) fn text(self) -> Result<&'h str, Error> {
        (self.check)(self.bytes)
    }
}

/// The bearer token in `headers`, `Ok(None)` when there are no credentials at all. What is
/// wrong with the scheme or the header count is refused here; whether the token's own bytes
/// are token text is left to [`Found::text`].
pub(crate) fn find_token<'h>(
    headers: &'h HeaderMap,
    cookie: Option<&str>,
) -> Result<Option<Found<'h>>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(invalid_request("more than one `authorization` header"));
        }
        return split_bearer(value).map(|bytes| {
            Some(Found {
                header: value,
                bytes,
                check: bearer_text,
            })
        });
    }
    match cookie {
        Some(name) => find_cookie(headers, name),
        None => Ok(None),
    }
}

fn invalid_request(detail: &'static str) -> Error {
    Error::with_detail(ErrorKind::InvalidRequest, detail)
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// `Bearer <token>`: scheme case-insensitive (RFC 7235), one or more spaces, then the
/// token's bytes (surrounding spaces trimmed), not yet checked (see [`bearer_text`]).
fn split_bearer(value: &HeaderValue) -> Result<&[u8], Error> {
    let value = value.as_bytes();
    // The common spelling, `Bearer <token>` with nothing around it, read at a glance.
    if let Some(token) = value.strip_prefix(b"Bearer ") {
        let plain = |b: Option<&u8>| b.is_some_and(|b| !is_space(b));
        if plain(token.first()) && plain(token.last()) {
            return Ok(token);
        }
    }
    let start = value
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    let value = &value[start..end];
    let (scheme, token) = match value.iter().position(is_space) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(other_scheme(scheme));
    }
    let skip = token.iter().take_while(|b| is_space(b)).count();
    let token = &token[skip..];
    if token.is_empty() {
        return Err(invalid_request("the bearer token is empty"));
    }
    Ok(token)
}

/// A bearer token's bytes as text: visible ASCII only, so no space, tab or byte past 0x7e.
/// One pass that compiles to vector code, then the conversion.
fn bearer_text(token: &[u8]) -> Result<&str, Error> {
    if !token
        .iter()
        .fold(true, |ok, b| ok & (0x21..=0x7e).contains(b))
    {
        return Err(if token.iter().any(is_space) {
            invalid_request("the bearer token contains whitespace")
        } else {
            invalid_request("the `authorization` header is not visible ascii")
        });
    }
    std::str::from_utf8(token)
        .map_err(|_| invalid_request("the `authorization` header is not visible ascii"))
}

/// The answer to credentials under a scheme other than `Bearer`.
///
/// RFC 6750 section 3.1: a request that tried an unsupported authentication method lacks
/// bearer credentials, so it is answered like one without any (401, a bare challenge), not
/// as malformed. A word that is no scheme name at all (not an RFC 9110 token, or holding
/// the `.` of a bare JWT, which no registered scheme name has) stays a malformed request.
fn other_scheme(scheme: &[u8]) -> Error {
    let is_scheme_name = !scheme.is_empty()
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-^_`|~".contains(b));
    if is_scheme_name {
        Error::with_detail(
            ErrorKind::MissingCredentials,
            "the authorization scheme is not `Bearer`",
        )
    } else {
        invalid_request("the `authorization` header holds no authentication scheme")
    }
}

/// RFC 6265 `cookie-name`: a token (visible ASCII except separators).
pub(crate) fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// The value of the cookie `name` across every `Cookie` header; a name seen twice is refused.
fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<Found<'h>>, Error> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(invalid_request("the token cookie appears more than once"));
            }
            let raw = pair[eq + 1..].trim_ascii();
            let raw = raw
                .strip_prefix(b"\"")
                .and_then(|r| r.strip_suffix(b"\""))
                .unwrap_or(raw);
            found = Some((header, raw));
        }
    }
    match found {
        None => Ok(None),
        Some((_, [])) => Err(invalid_request("the token cookie is empty")),
        Some((header, bytes)) => Ok(Some(Found {
            header,
            bytes,
            check: cookie_text,
        })),
    }
}

/// A cookie's token bytes as text.
fn cookie_text(token: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(token).map_err(|_| invalid_request("the token cookie is not ascii"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_shares_its_header_and_forwards_it_as_is() {
        let header = HeaderValue::from_static("Bearer a.b.c");
        let token = BearerToken::within(&header, &header.as_bytes()[7..]);
        assert_eq!(token.expose(), "a.b.c");
        let forwarded = token.authorization_value();
        assert_eq!(forwarded, "Bearer a.b.c");
        assert!(forwarded.is_sensitive());
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
        // Another spelling of the scheme is forwarded in the canonical one.
        let header = HeaderValue::from_static("bearer  \ta.b.c");
        let token = BearerToken::within(&header, &header.as_bytes()[9..]);
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
        assert!(token.authorization_value().is_sensitive());
        // A cookie's value, inside a longer header.
        let header = HeaderValue::from_static("x=1; tok=a.b.c; y=2");
        let token = BearerToken::within(&header, &header.as_bytes()[9..14]);
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
    }

    #[test]
    fn a_token_from_elsewhere_is_copied() {
        let header = HeaderValue::from_static("Bearer a.b.c");
        let elsewhere = String::from("a.b.c");
        let token = BearerToken::within(&header, elsewhere.as_bytes());
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
        let token = BearerToken::new("d.e.f");
        assert_eq!(token.expose(), "d.e.f");
        assert_eq!(token.authorization_value(), "Bearer d.e.f");
        // Text no header can carry: nothing, never a panic.
        assert_eq!(BearerToken::new("a\nb").expose(), "");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn kind(result: Result<Option<&str>, Error>) -> ErrorKind {
        result.unwrap_err().kind()
    }

    /// The token text `find_token` finds, checking that it lies in the header it names.
    fn token<'h>(headers: &'h HeaderMap, cookie: Option<&str>) -> Result<Option<&'h str>, Error> {
        let Some(found) = find_token(headers, cookie)? else {
            return Ok(None);
        };
        let token = found.text()?;
        let within = BearerToken::within(found.header, token.as_bytes());
        assert_eq!(within.expose(), token);
        Ok(Some(token))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_spaces_are_tolerated() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER   a.b.c",
            "bEaReR\ta.b.c ",
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(token(&h, None).unwrap(), Some("a.b.c"), "{value}");
        }
    }

    #[test]
    fn other_schemes_are_missing_credentials() {
        for value in [
            "Basic dXNlcjpwdw==",
            "basic eyJhbGciOiJFZERTQSJ9.e30.c2ln",
            "Bearerx a",
            "Negotiate",
            "DPoP a.b.c",
            "SCRAM-SHA-256 x",
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(
                kind(token(&h, None)),
                ErrorKind::MissingCredentials,
                "{value:?}"
            );
        }
    }

    #[test]
    fn malformed_authorization_is_an_invalid_request() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "",
            "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
            "Bearer: a",
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(
                kind(token(&h, None)),
                ErrorKind::InvalidRequest,
                "{value:?}"
            );
        }
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer a")]);
        assert_eq!(kind(token(&h, None)), ErrorKind::InvalidRequest);
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").unwrap(),
        );
        assert_eq!(kind(token(&h, None)), ErrorKind::InvalidRequest);
    }

    #[test]
    fn each_malformed_bearer_says_what_was_wrong() {
        let detail = |value: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            token(&h, None).unwrap_err().detail().unwrap().to_owned()
        };
        assert!(detail(b"Token a").contains("not `Bearer`"));
        assert!(detail(b"Bearer \t ").contains("empty"));
        assert!(detail(b"Bearer a.b\tc").contains("whitespace"));
        assert!(detail(b"Bearer a.b c").contains("whitespace"));
        assert!(detail(b"Bearer a.\xffb").contains("visible ascii"));
        assert!(detail(b"Bearer \x80").contains("visible ascii"));
        // Both bounds of visible ASCII are token bytes.
        let h = headers(&[("authorization", "Bearer !~")]);
        assert_eq!(token(&h, None).unwrap(), Some("!~"));
    }

    #[test]
    fn no_credentials_is_none() {
        assert_eq!(token(&HeaderMap::new(), None).unwrap(), None);
        let h = headers(&[("cookie", "tok=a.b.c")]);
        assert_eq!(token(&h, None).unwrap(), None, "cookie not configured");
    }

    #[test]
    fn cookie_is_found_across_headers_and_header_wins() {
        let h = headers(&[("cookie", "x=1; tok=a.b.c"), ("cookie", "y=2")]);
        assert_eq!(token(&h, Some("tok")).unwrap(), Some("a.b.c"));
        let h = headers(&[("cookie", "tok=\"a.b.c\"")]);
        assert_eq!(token(&h, Some("tok")).unwrap(), Some("a.b.c"));
        let h = headers(&[("cookie", "tok=a.b.c"), ("authorization", "Bearer d.e.f")]);
        assert_eq!(token(&h, Some("tok")).unwrap(), Some("d.e.f"));
        let h = headers(&[("cookie", "xtok=a.b.c; tokx=1")]);
        assert_eq!(token(&h, Some("tok")).unwrap(), None);
    }

    #[test]
    fn duplicate_or_empty_cookie_is_an_invalid_request() {
        let h = headers(&[("cookie", "tok=a"), ("cookie", "tok=b")]);
        assert_eq!(kind(token(&h, Some("tok"))), ErrorKind::InvalidRequest);
        let h = headers(&[("cookie", "tok=")]);
        assert_eq!(kind(token(&h, Some("tok"))), ErrorKind::InvalidRequest);
    }

    #[test]
    fn cookie_names_are_checked() {
        assert!(is_cookie_name("mka1_token"));
        assert!(!is_cookie_name(""));
        assert!(!is_cookie_name("a b"));
        assert!(!is_cookie_name("a=b"));
        assert!(!is_cookie_name("a;b"));
    }
}
