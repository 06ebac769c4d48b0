//! The HTTP client every part of the crate builds (the JWKS fetcher, the exchange client,
//! [`ReqwestService`](crate::outbound::ReqwestService)), and the checks on what it brings
//! back: one redirect rule, one origin check, one body cap, one set of timeouts.
//!
//! - **Redirects** are followed only while they stay on the first request's origin (scheme,
//!   host and port), and at most a given number of them (none for the exchange client).
//! - **Timeouts**: [`DEFAULT_CONNECT_TIMEOUT`] to connect, and [`DEFAULT_IDLE_TIMEOUT`] for
//!   any one read, the response head's or a body chunk's, so an upstream that accepts and
//!   never answers, or trickles, cannot hold a request forever.
//! - **Origin**: an answer is used only when it came from the origin asked ([`same_origin`]),
//!   whatever the client (a caller's own may follow redirects anywhere).
//! - **Body cap**: [`read_capped`] refuses an answer over the cap, by its `Content-Length` or
//!   as it streams.

use std::time::Duration;

use reqwest::{redirect, Url};

use crate::error::ConfigError;

/// How long the crate's clients (the JWKS fetcher, the exchange client,
/// [`ReqwestService::new`](crate::outbound::ReqwestService::new)) wait to connect (TCP and
/// TLS), by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the crate's clients (the JWKS fetcher, the exchange client,
/// [`ReqwestService::new`](crate::outbound::ReqwestService::new)) wait for any one read (the
/// response head, then each body chunk), by default.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A redirect policy following a redirect only while it stays on the first request's origin,
/// and at most `max` of them. A redirect it stops comes back as the 3xx answer.
pub(crate) fn redirect_policy(max: usize) -> redirect::Policy {
    if max == 0 {
        return redirect::Policy::none();
    }
    redirect::Policy::custom(move |attempt| {
        // `previous` holds the first request's url and every one followed since.
        let first = attempt.previous().first();
        match first {
            Some(first) if may_follow(first, attempt.url(), attempt.previous().len(), max) => {
                attempt.follow()
            }
            _ => attempt.stop(),
        }
    })
}

/// Whether to follow a redirect to `next` after `requested` requests (the first included)
/// that began at `first`: only while it stays in `first`'s origin (scheme, host and port, a
/// default port spelled out or not), and while fewer than `max` have been followed.
pub(crate) fn may_follow(first: &Url, next: &Url, requested: usize, max: usize) -> bool {
    requested <= max && same_origin(first, next)
}

/// Whether two URLs share an origin (scheme, host and port). Opaque origins (`data:`,
/// `file:`) match nothing.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    let (a, b) = (a.origin(), b.origin());
    a.is_tuple() && a == b
}

/// A client builder with the crate's rules: [`redirect_policy`]`(max_redirects)` and the
/// default timeouts. Callers add their own settings, then [`build`].
pub(crate) fn client_builder(max_redirects: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(redirect_policy(max_redirects))
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .read_timeout(DEFAULT_IDLE_TIMEOUT)
}

/// Build a client, as a [`ConfigError`] when it cannot be.
pub(crate) fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, ConfigError> {
    builder
        .build()
        .map_err(|e| ConfigError::with_detail(crate::ConfigErrorKind::HttpClient, e.to_string()))
}

/// Why [`read_capped`] returned no body.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is over the cap.
    TooLarge,
    /// Reading failed (a reset, a timeout).
    Transport(reqwest::Error),
}

/// Read the whole body, at most `cap` bytes: more, by `Content-Length` or as it streams, is
/// [`BodyError::TooLarge`] without reading further.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_followed_only_within_the_origin() {
        let u = |s| Url::parse(s).unwrap();
        let follows = |from, to| may_follow(&u(from), &u(to), 1, 3);
        // The same scheme, host and port: another path, query or spelling of the port.
        for (from, to) in [
            ("https://a.com/x", "https://a.com/y?z=1"),
            ("https://a.com/x", "https://a.com:443/y"),
            ("https://A.COM/x", "https://a.com/y"),
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.1:8080/moved"),
            ("http://127.0.0.1/jwks", "http://127.0.0.1:80/moved"),
        ] {
            assert!(follows(from, to), "{from} -> {to}");
        }
        for (from, to) in [
            // Another scheme: neither a downgrade nor an upgrade.
            ("https://a.com/x", "http://a.com/x"),
            ("http://a.com/x", "https://a.com/x"),
            ("http://127.0.0.1:8080/jwks", "https://127.0.0.1:8080/jwks"),
            // Another port on the same host.
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.1:8081/jwks"),
            ("https://a.com/x", "https://a.com:8443/x"),
            ("http://a.com/x", "http://a.com:443/x"),
            // Another host, also one naming the same address.
            ("https://a.com/x", "https://b.com/x"),
            ("https://a.com/x", "https://a.com.evil/x"),
            ("https://a.com/x", "https://sub.a.com/x"),
            ("http://127.0.0.1:8080/jwks", "http://localhost:8080/jwks"),
            ("http://127.0.0.1:8080/jwks", "http://127.0.0.2:8080/jwks"),
            ("http://127.0.0.1:8080/jwks", "http://[::1]:8080/jwks"),
            // Not a tuple origin at all.
            ("https://a.com/x", "data:text/plain,x"),
            ("https://a.com/x", "file:///etc/jwks.json"),
        ] {
            assert!(!follows(from, to), "{from} -> {to}");
        }
        // At most `max`, counting the first request in `requested`.
        let (from, to) = (u("https://a.com/x"), u("https://a.com/y"));
        assert!(may_follow(&from, &to, 3, 3));
        assert!(!may_follow(&from, &to, 4, 3));
        assert!(!may_follow(&from, &to, 1, 0));
        assert!(!same_origin(&u("file:///a"), &u("file:///a")));
    }
}
