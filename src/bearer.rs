//! The bearer token a request carries: [`BearerToken`], the token the layer verified, kept
//! to forward it onward.

use std::fmt;
use std::ops::Range;

use http::HeaderValue;

/// The bearer token a request was verified with, for forwarding it onward unchanged.
///
/// The layer puts it in request extensions beside the [`VerifiedToken`]. Its `Debug` is
/// redacted, and the header value it produces is marked sensitive. It shares the request
/// header it was found in (a reference count, no copy of the token).
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

    /// The token `token`, a part of `header`'s text, sharing `header`.
    pub(crate) fn within(header: &HeaderValue, token: &str) -> Self {
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
            _ => BearerToken::new(token),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_shares_its_header_and_forwards_it_as_is() {
        let header = HeaderValue::from_static("Bearer a.b.c");
        let token = BearerToken::within(&header, &header.to_str().unwrap()[7..]);
        assert_eq!(token.expose(), "a.b.c");
        let forwarded = token.authorization_value();
        assert_eq!(forwarded, "Bearer a.b.c");
        assert!(forwarded.is_sensitive());
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
        // Another spelling of the scheme is forwarded in the canonical one.
        let header = HeaderValue::from_static("bearer  \ta.b.c");
        let token = BearerToken::within(&header, &header.to_str().unwrap()[9..]);
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
        assert!(token.authorization_value().is_sensitive());
        // A cookie's value, inside a longer header.
        let header = HeaderValue::from_static("x=1; tok=a.b.c; y=2");
        let token = BearerToken::within(&header, &header.to_str().unwrap()[9..14]);
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
    }

    #[test]
    fn a_token_from_elsewhere_is_copied() {
        let header = HeaderValue::from_static("Bearer a.b.c");
        let elsewhere = String::from("a.b.c");
        let token = BearerToken::within(&header, &elsewhere);
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(token.authorization_value(), "Bearer a.b.c");
        let token = BearerToken::new("d.e.f");
        assert_eq!(token.expose(), "d.e.f");
        assert_eq!(token.authorization_value(), "Bearer d.e.f");
        // Text no header can carry: nothing, never a panic.
        assert_eq!(BearerToken::new("a\nb").expose(), "");
    }
}
