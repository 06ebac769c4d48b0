//! The HTTP side of a fetch: the JWKS URL's rules, the client (the crate's shared one, see
//! [`crate::net::fetch`]), the request (conditional on the held set's validators), the origin
//! check on the answer, the body cap, and the freshness the answer's `Cache-Control` gives.

use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, LOCATION,
};
use reqwest::Url;

use super::error::{FetchError, Unfollowed};
use super::RemoteJwks;
use crate::error::ConfigError;
use crate::net::fetch::{self, BodyError};
use crate::net::{is_loopback_host, transport_error_text};

/// Redirects followed, each within the JWKS URL's origin, before a fetch counts as failed.
pub(super) const MAX_REDIRECTS: usize = 3;

/// The HTTP answer to a fetch: the body (`None` for a 304), the response's max-age and what
/// identifies the document.
pub(super) struct Answer {
    pub(super) body: Option<Vec<u8>>,
    pub(super) max_age: Option<Duration>,
    pub(super) validators: Validators,
}

/// What the server said identifies the document (`ETag`, `Last-Modified`), sent back on the
/// next fetch (`If-None-Match`, `If-Modified-Since`) so an unchanged set costs a 304.
#[derive(Clone, Default)]
pub(super) struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Validators {
        Validators {
            etag: headers.get(ETAG).cloned(),
            last_modified: headers.get(LAST_MODIFIED).cloned(),
        }
    }
}

impl RemoteJwks {
    /// The HTTP part of an unconditional fetch, under every rule but the document's: the
    /// body, and the response's `Cache-Control` max-age (see [`cache_max_age`]).
    pub(super) async fn fetch_body(&self) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let answer = self.fetch_answer(None).await?;
        // Only a conditional request is answered without a body.
        Ok((answer.body.unwrap_or_default(), answer.max_age))
    }

    /// The HTTP part of a fetch, conditional on `held` (what identifies the held set's
    /// document) when given: a 304 to it comes back without a body.
    pub(super) async fn fetch_answer(
        &self,
        held: Option<Validators>,
    ) -> Result<Answer, FetchError> {
        let inner = &*self.inner;
        let mut request = inner
            .client
            .get(inner.url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json");
        if let Some(held) = &held {
            if let Some(etag) = &held.etag {
                request = request.header(IF_NONE_MATCH, etag.clone());
            }
            if let Some(date) = &held.last_modified {
                request = request.header(IF_MODIFIED_SINCE, date.clone());
            }
        }
        let mut response = request.send().await.map_err(transport_error)?;
        // A caller's client may have followed redirects anywhere; only the origin's answer
        // is used.
        if !fetch::same_origin(response.url(), &inner.url) {
            return Err(FetchError::OtherOrigin);
        }
        let status = response.status();
        let max_age = cache_max_age(response.headers());
        // A 304 is a 3xx, but no redirect: the held set is current.
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return match held {
                Some(validators) => Ok(Answer {
                    body: None,
                    max_age,
                    validators,
                }),
                None => Err(FetchError::Status(304)),
            };
        }
        if status.is_redirection() {
            return Err(FetchError::Redirect {
                status: status.as_u16(),
                why: unfollowed_redirect(&response, &inner.url),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        let cap = inner.config.max_body_bytes;
        let validators = Validators::of(response.headers());
        let body = fetch::read_capped(&mut response, cap)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => FetchError::TooLarge(cap),
                BodyError::Transport(e) => transport_error(e),
            })?;
        Ok(Answer {
            body: Some(body),
            max_age,
            validators,
        })
    }
}

/// The client for a JWKS URL (the crate's one, see [`crate::net::fetch`]): it follows a
/// redirect only within the first request's origin, at most [`MAX_REDIRECTS`] of them. A
/// redirect it stops comes back as the 3xx answer, which [`RemoteJwks::fetch`] turns into a
/// failed fetch.
pub(super) fn build_client() -> Result<reqwest::Client, ConfigError> {
    fetch::build(fetch::client_builder(MAX_REDIRECTS))
}

/// Why a redirect answer to a request for `url` was not followed. The location is not kept
/// (it may carry a query string).
fn unfollowed_redirect(response: &reqwest::Response, url: &Url) -> Unfollowed {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| response.url().join(value).ok());
    match location {
        None => Unfollowed::NoLocation,
        Some(next) if !fetch::same_origin(&next, url) => Unfollowed::OtherOrigin,
        Some(_) => Unfollowed::Limit,
    }
}

fn transport_error(error: reqwest::Error) -> FetchError {
    FetchError::Transport(transport_error_text(error))
}

/// Parse and check a JWKS URL: `https`, or `http` for loopback hosts or when allowed.
pub(super) fn check_url(url: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let invalid =
        |reason: &str| ConfigError::with_detail(crate::ConfigErrorKind::InvalidJwksUrl, reason);
    let parsed = Url::parse(url).map_err(|e| {
        ConfigError::with_detail(crate::ConfigErrorKind::InvalidJwksUrl, e.to_string())
    })?;
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("the url has no host"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback_host(host) => {}
        "http" => {
            return Err(invalid(
                "https is required for a non-loopback host (or allow plain http explicitly)",
            ))
        }
        _ => return Err(invalid("the scheme must be https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials in the url are not supported"));
    }
    Ok(parsed)
}

/// The smallest `max-age` in the `Cache-Control` headers; `no-cache` and `no-store` count
/// as zero. `None` when no directive says anything about freshness.
fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found: Option<u64> = None;
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for directive in directives {
        let (name, argument) = match directive.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (directive.trim(), None),
        };
        let secs = if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store")
        {
            Some(0)
        } else if name.eq_ignore_ascii_case("max-age") {
            argument.and_then(delta_seconds)
        } else {
            None
        };
        if let Some(secs) = secs {
            found = Some(found.map_or(secs, |f| f.min(secs)));
        }
    }
    found.map(Duration::from_secs)
}

/// RFC 9111 delta-seconds (quotes tolerated); too large a number saturates.
fn delta_seconds(argument: &str) -> Option<u64> {
    let digits = argument
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(argument);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn max_age(values: &[&str]) -> Option<u64> {
        cache_max_age(&headers(values)).map(|d| d.as_secs())
    }

    #[test]
    fn cache_control_max_age_is_read() {
        assert_eq!(max_age(&["max-age=300"]), Some(300));
        assert_eq!(
            max_age(&["public, max-age=120, must-revalidate"]),
            Some(120)
        );
        assert_eq!(max_age(&["Max-Age = 45"]), Some(45));
        assert_eq!(max_age(&["max-age=\"90\""]), Some(90));
        assert_eq!(max_age(&["max-age=600", "max-age=60"]), Some(60));
        assert_eq!(
            max_age(&["max-age=99999999999999999999999"]),
            Some(u64::MAX)
        );
    }

    #[test]
    fn cache_control_without_freshness_is_none() {
        assert_eq!(max_age(&[]), None);
        assert_eq!(max_age(&["public"]), None);
        assert_eq!(max_age(&["max-age="]), None);
        assert_eq!(max_age(&["max-age=-5"]), None);
        assert_eq!(max_age(&["max-age=1.5"]), None);
        assert_eq!(max_age(&["s-maxage=100"]), None);
    }

    #[test]
    fn no_cache_and_no_store_count_as_zero() {
        assert_eq!(max_age(&["no-cache"]), Some(0));
        assert_eq!(max_age(&["max-age=600, no-store"]), Some(0));
    }

    #[test]
    fn urls_need_https_unless_loopback_or_allowed() {
        for ok in [
            "https://apigw.mka1.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.5.6.7/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://apigw.mka1.com/jwks",
            "http://10.0.0.1/jwks",
            "ftp://example.com/jwks",
            "file:///etc/jwks.json",
            "not a url",
            "https://user:pass@example.com/jwks",
        ] {
            let err = check_url(bad, false).unwrap_err();
            assert_eq!(err.kind(), crate::ConfigErrorKind::InvalidJwksUrl, "{bad}");
        }
        assert!(check_url("http://jwks.internal/keys", true).is_ok());
    }

    #[test]
    fn url_errors_never_echo_credentials() {
        let err = check_url("https://user:hunter2@example.com/jwks", false).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
