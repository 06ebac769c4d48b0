//! [`FetchError`]: why a fetch failed, in the words a key set's status and logs show.

use std::fmt;
use std::time::Duration;

use super::http::MAX_REDIRECTS;

/// Why a fetch failed. Messages are lowercase and never contain key material.
#[derive(Debug)]
pub(super) enum FetchError {
    Timeout(Duration),
    Transport(String),
    Status(u16),
    /// A redirect answer that was not followed, and why.
    Redirect {
        status: u16,
        why: Unfollowed,
    },
    /// The response came from outside the JWKS URL's origin (a caller's client followed a
    /// redirect there).
    OtherOrigin,
    TooLarge(usize),
    NotJwks(String),
    NoUsableKeys {
        skipped: usize,
    },
    Abandoned,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout(t) => write!(f, "no complete response within {t:?}"),
            FetchError::Transport(e) => write!(f, "request failed: {e}"),
            FetchError::Status(s) => write!(f, "unexpected http status {s}"),
            FetchError::Redirect { status, why } => {
                write!(f, "redirect not followed (status {status}): ")?;
                match why {
                    Unfollowed::NoLocation => f.write_str("it names no usable location"),
                    Unfollowed::OtherOrigin => f.write_str(
                        "it points to another origin (only redirects within the jwks url's \
                         scheme, host and port are followed)",
                    ),
                    Unfollowed::Limit => write!(
                        f,
                        "the limit of {MAX_REDIRECTS} redirects was reached (or the http \
                         client follows none)"
                    ),
                }
            }
            FetchError::OtherOrigin => f.write_str(
                "the response came from another origin than the jwks url's \
                 (scheme, host and port must match)",
            ),
            FetchError::TooLarge(cap) => write!(f, "the body exceeds the {cap}-byte cap"),
            FetchError::NotJwks(e) => write!(f, "the body is not a jwks document: {e}"),
            FetchError::NoUsableKeys { skipped } => {
                write!(f, "the key set holds no usable key ({skipped} skipped)")
            }
            FetchError::Abandoned => f.write_str("the fetch task ended without a result"),
        }
    }
}

/// Why a redirect answer was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unfollowed {
    /// No `Location`, or one that does not parse as a url.
    NoLocation,
    /// The location is outside the JWKS URL's origin.
    OtherOrigin,
    /// Within the origin, but past [`MAX_REDIRECTS`] (or the caller's client follows none).
    Limit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_errors_say_why_without_the_location() {
        let message = |why| FetchError::Redirect { status: 302, why }.to_string();
        assert_eq!(
            message(Unfollowed::OtherOrigin),
            "redirect not followed (status 302): it points to another origin (only redirects \
             within the jwks url's scheme, host and port are followed)"
        );
        assert!(message(Unfollowed::Limit).contains("limit of 3 redirects"));
        assert!(message(Unfollowed::NoLocation).contains("no usable location"));
        assert!(FetchError::OtherOrigin
            .to_string()
            .starts_with("the response came from another origin"));
    }
}
