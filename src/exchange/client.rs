//! [`ExchangeClient`]: one exchange with MKA1, its retries, and reading MKA1's answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::cache::{Cached, TokenCache};
use super::pacing::Pacing;
use super::{ExchangeError, ExchangeErrorKind, ExchangeRequest};
use crate::clock::SharedClock;
use crate::jwks::b64url_decode;
use crate::net::fetch::{self, BodyError};
use crate::net::transport_error_text;
use crate::outbound::{ApiKey, Credential, Refusal};
use crate::retry::{backoff_ceiling, jittered_on, parse_retry_after};

/// The largest answer from MKA1 that is read.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest token accepted.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_ISSUES: usize = 20;
const MAX_TEXT_CHARS: usize = 200;

/// A token MKA1 minted. Its `Debug` is redacted.
///
/// ```
/// # async fn demo(client: mka1_auth::exchange::ExchangeClient) -> Result<(), mka1_auth::outbound::Refusal> {
/// # let request = mka1_auth::exchange::ExchangeRequest::new("https://agents.example.com", "user-42");
/// let token = client.token(&request).await?;
/// let mut req = http::Request::get("https://agents.example.com/run").body(()).unwrap();
/// req.headers_mut().insert(http::header::AUTHORIZATION, token.authorization_value());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ExchangedToken {
    pub(super) token: Arc<str>,
    pub(super) credential: Credential,
    pub(super) expires_at: u64,
}

impl ExchangedToken {
    /// The token text. Treat it as a secret.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// `Bearer <token>`, marked sensitive.
    pub fn authorization_value(&self) -> http::HeaderValue {
        self.credential.authorization_value()
    }

    /// The token as a [`Credential`].
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// When the token expires, in seconds since the Unix epoch: its `exp`, capped at the
    /// lifetime that was asked for (or that lifetime from now when `exp` is unreadable).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Exchanges an MKA1 API key for per-user tokens, and caches them. Cheap to clone (shared
/// inside); keep one per API key.
///
/// See the [module docs](crate::exchange) for the cache and retry rules.
///
/// ```
/// use mka1_auth::exchange::ExchangeClient;
/// use mka1_auth::outbound::OutboundLayer;
///
/// let client = ExchangeClient::builder().api_key("mk_live_example").build()?;
/// // As a credential source: one token per end user, for this audience.
/// let layer = OutboundLayer::builder(
///     client.source("https://agents.example.com").permissions(["agent:read"]),
/// )
/// .allow_origin("https://agents.example.com")
/// .build()?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ExchangeClient {
    pub(super) inner: Arc<ExchangeClientState>,
}

/// What an [`ExchangeClient`] and its clones share: the http client, the key, the settings
/// and the token cache.
pub(super) struct ExchangeClientState {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: reqwest::Url,
    pub(super) api_key: ApiKey,
    /// The key's text, only to scrub it from anything MKA1 sends back.
    pub(super) secret: String,
    pub(super) clock: SharedClock,
    pub(super) cache: TokenCache,
    pub(super) renew_before: Duration,
    pub(super) max_attempts: u32,
    pub(super) backoff_base: Duration,
    pub(super) backoff_max: Duration,
    pub(super) max_retry_after: Duration,
    pub(super) timeout: Duration,
    pub(super) pacing: Pacing,
}

impl fmt::Debug for ExchangeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("cached", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// What one attempt's failure means for the next.
struct Failure {
    error: ExchangeError,
    retryable: bool,
}

/// The error of an exchange not sent (after `sent` requests) because every exchange is
/// paused for `left` more.
fn paused(left: Duration, sent: u32) -> ExchangeError {
    let mut error = ExchangeError::new(ExchangeErrorKind::RateLimited).with_message(
        "not sent: every exchange is paused until the moment mka1's retry-after named".into(),
    );
    error.retry_after = Some(left);
    error.attempts = sent;
    error
}

impl ExchangeClient {
    /// One exchange, with retries, paced by the client's slots and pause. Never reads or
    /// writes the cache.
    ///
    /// `has_fallback`: the caller holds a token that is still valid, and would rather use it
    /// than wait out a pause.
    pub(super) async fn exchange(
        &self,
        request: &ExchangeRequest,
        lifetime: u64,
        has_fallback: bool,
    ) -> Result<Cached, Refusal> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            audience: &'a str,
            external_user_id: &'a str,
            // The official SDK sends a float such as `300.0`.
            expires_in: f64,
            // `[]` asks for none; only `Scopes::AllOfKey` leaves the field out.
            #[serde(skip_serializing_if = "Option::is_none")]
            permissions: Option<&'a [String]>,
        }
        let body = serde_json::to_vec(&Body {
            audience: &request.audience,
            external_user_id: &request.external_user_id,
            expires_in: lifetime as f64,
            permissions: request.scopes.field(),
        })
        .map_err(|e| {
            ExchangeError::new(ExchangeErrorKind::InvalidRequest)
                .with_message(e.to_string())
                .into_error()
        })?;

        self.send_paced(&body, lifetime, has_fallback).await
    }

    /// Send `body` until MKA1 mints, a failure is final, or the attempts run out; every send
    /// in a slot, none while the client is paused.
    async fn send_paced(
        &self,
        body: &[u8],
        lifetime: u64,
        has_fallback: bool,
    ) -> Result<Cached, Refusal> {
        let inner = &self.inner;
        let clock = &*inner.clock;
        let pacing = &inner.pacing;
        // Requests sent, and pauses waited out, by this exchange.
        let (mut sent, mut waited) = (0u32, 0u32);
        loop {
            if let Some(until) = pacing.paused_until(clock.now()) {
                let left = until
                    .duration_since(clock.now())
                    .unwrap_or(Duration::ZERO);
                // A caller holding a token that is still valid uses it rather than wait; a
                // pause past max_retry_after, or one too many, is not waited for.
                if has_fallback || left > inner.max_retry_after || waited >= inner.max_attempts {
                    return Err(paused(left, sent).into_error());
                }
                waited += 1;
                clock.sleep_until(until).await;
                continue;
            }
            // The wait for a slot and the request share one deadline.
            let deadline = tokio::time::Instant::now() + inner.timeout;
            let slot = match tokio::time::timeout_at(deadline, pacing.slot()).await {
                Ok(Some(slot)) => slot,
                _ => {
                    let mut error = ExchangeError::new(ExchangeErrorKind::Timeout).with_message(
                        format!(
                            "no exchange slot came free within {:?} ({} exchanges in flight)",
                            inner.timeout,
                            pacing.limit()
                        ),
                    );
                    error.attempts = sent;
                    return Err(error.into_error());
                }
            };
            // A pause may have begun while this caller waited for the slot.
            if pacing.paused_until(clock.now()).is_some() {
                continue;
            }
            sent += 1;
            let failure = match tokio::time::timeout_at(deadline, self.attempt(body)).await {
                Ok(Ok(token)) => return Ok(self.schedule(token, lifetime)),
                Ok(Err(failure)) => failure,
                Err(_) => Failure {
                    error: ExchangeError::new(ExchangeErrorKind::Timeout).with_message(format!(
                        "mka1 did not answer within {:?}",
                        inner.timeout
                    )),
                    retryable: false,
                },
            };
            let mut error = failure.error;
            error.attempts = sent;
            let status = error.status.unwrap_or(0);
            // A rate limit, or a 5xx naming a time to come back, pauses every exchange; the
            // pause is set before the slot is given back, so whoever takes it sees the pause.
            let pause = match error.retry_after {
                Some(wait) if status == 429 || status >= 500 => Some(wait),
                None if status == 429 => Some(self.backoff(sent)),
                _ => None,
            };
            if let Some(wait) = pause {
                if pacing.pause(clock.now(), wait) {
                    tracing::warn!(
                        status,
                        wait_ms = wait.as_millis() as u64,
                        "mka1 asked to wait; every exchange of this client is paused until then"
                    );
                }
            }
            drop(slot);
            let too_long = error.retry_after.is_some_and(|w| w > inner.max_retry_after);
            if !failure.retryable || sent >= inner.max_attempts || too_long {
                return Err(error.into_error());
            }
            if has_fallback && pause.is_some() {
                return Err(error.into_error());
            }
            crate::metrics::count(crate::metrics::Event::ExchangeRetried);
            tracing::debug!(attempt = sent, error = %error, "retrying the mka1 token exchange");
            // Paused: the top of the loop waits. Else the backoff, on the client's clock.
            if pause.is_none() {
                let wait = self.backoff(sent);
                if !wait.is_zero() {
                    clock.sleep_until(clock.now() + wait).await;
                }
            }
        }
    }

    /// The backoff before retry number `attempt`: jittered, unless the clock pins jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let inner = &self.inner;
        let ceiling = backoff_ceiling(inner.backoff_base, inner.backoff_max, attempt);
        jittered_on(&*inner.clock, ceiling)
    }

    /// One request to MKA1.
    async fn attempt(&self, body: &[u8]) -> Result<ExchangedToken, Failure> {
        let inner = &self.inner;
        let transport = |e: reqwest::Error| {
            // A timeout (reqwest's connect or read timeout) is not retried: MKA1 had its time.
            let timed_out = crate::net::is_timeout(&e);
            let kind = match timed_out {
                true => ExchangeErrorKind::Timeout,
                false => ExchangeErrorKind::Transport,
            };
            Failure {
                error: ExchangeError::new(kind).with_message(self.scrub(&transport_error_text(e))),
                retryable: !timed_out,
            }
        };
        let mut response = inner
            .http
            .post(inner.endpoint.clone())
            .header(
                http::header::AUTHORIZATION,
                inner.api_key.credential().authorization_value(),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport)?;
        if !fetch::same_origin(response.url(), &inner.endpoint) {
            return Err(Failure {
                error: ExchangeError::new(ExchangeErrorKind::UnexpectedStatus).with_message(
                    "the answer came from another origin than the configured one (the http \
                     client followed a redirect); it is not used"
                        .into(),
                ),
                retryable: false,
            });
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, inner.clock.now_unix()));
        // An answer over the cap is not read: a token or an error fits in far less.
        let body = match fetch::read_capped(&mut response, MAX_BODY_BYTES).await {
            Ok(body) => Some(body),
            Err(BodyError::TooLarge) => None,
            Err(BodyError::Transport(e)) => return Err(transport(e)),
        };
        if status.is_success() {
            let parsed = match &body {
                Some(body) => self.parse_token(body),
                None => Err(ExchangeError::new(ExchangeErrorKind::InvalidResponse)
                    .with_message("the body is over 64 KiB".into())),
            };
            return parsed.map_err(|error| Failure {
                error,
                retryable: false,
            });
        }
        let kind = match status {
            StatusCode::BAD_REQUEST => ExchangeErrorKind::BadRequest,
            StatusCode::UNAUTHORIZED => ExchangeErrorKind::Unauthorized,
            StatusCode::FORBIDDEN => ExchangeErrorKind::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ExchangeErrorKind::RateLimited,
            s if s.is_server_error() => ExchangeErrorKind::Unavailable,
            _ => ExchangeErrorKind::UnexpectedStatus,
        };
        let mut error = if status.is_redirection() {
            // Whatever the body says, what matters is that it was not followed.
            ExchangeError::new(kind).with_message(
                "a redirect, which is not followed (the api key is sent only to the \
                 configured origin)"
                    .into(),
            )
        } else {
            self.parse_refusal(kind, body.as_deref().unwrap_or_default())
        };
        error.status = Some(status.as_u16());
        error.retry_after = retry_after;
        Err(Failure {
            error,
            retryable: matches!(
                kind,
                ExchangeErrorKind::RateLimited | ExchangeErrorKind::Unavailable
            ),
        })
    }

    fn parse_token(&self, body: &[u8]) -> Result<ExchangedToken, ExchangeError> {
        let invalid = |why: &str| {
            ExchangeError::new(ExchangeErrorKind::InvalidResponse).with_message(why.to_owned())
        };
        let value: Value =
            serde_json::from_slice(body).map_err(|_| invalid("the body is not json"))?;
        let token = value
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("`token` is missing or not a string"))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("`token` is too long"));
        }
        let credential = Credential::bearer(token)
            .map_err(|_| invalid("`token` is empty or not a bearer token"))?;
        Ok(ExchangedToken {
            token: token.into(),
            credential,
            expires_at: jwt_exp(token).unwrap_or(0),
        })
    }

    /// MKA1's error body: `{"detail": [{"path", "message"}]}`, `{"detail": "..."}` or
    /// `{"message": "..."}`; anything else is left out.
    fn parse_refusal(&self, kind: ExchangeErrorKind, body: &[u8]) -> ExchangeError {
        let mut error = ExchangeError::new(kind);
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return error;
        };
        let detail = value
            .get("detail")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("error"));
        match detail {
            Some(Value::String(text)) => error.message = Some(self.scrub(text)),
            Some(Value::Array(items)) => {
                for item in items.iter().take(MAX_ISSUES) {
                    let path = match item.get("path").or_else(|| item.get("loc")) {
                        Some(Value::String(p)) => p.clone(),
                        Some(Value::Array(parts)) => parts
                            .iter()
                            .map(|p| match p {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join("."),
                        _ => String::new(),
                    };
                    let message = item
                        .get("message")
                        .or_else(|| item.get("msg"))
                        .and_then(Value::as_str)
                        .unwrap_or("is invalid");
                    error = error.with_issue(&self.scrub(&path), self.scrub(message));
                }
            }
            _ => {}
        }
        error
    }

    /// Shorten text from the outside world, drop control characters (line and paragraph
    /// separators and bidi controls too), and blank out the API key should it appear.
    fn scrub(&self, text: &str) -> String {
        let text = text.replace(&self.inner.secret, "<redacted>");
        let mut out: String = text
            .chars()
            .filter(|c| !crate::shown::must_escape(*c))
            .take(MAX_TEXT_CHARS)
            .collect();
        if text.chars().count() > MAX_TEXT_CHARS {
            out.push('…');
        }
        out
    }
}

/// The `exp` of a JWT's payload, without any signature check. `None` when unreadable.
fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = b64url_decode(payload)?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("exp")? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    }
    .filter(|exp| *exp > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::backoff;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let d = backoff(base, max, attempt);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert_eq!(backoff(Duration::ZERO, max, 3), Duration::ZERO);
    }

    #[test]
    fn exp_is_read_from_the_payload_only_when_sane() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let tok = |payload: &str| format!("e30.{}.sig", b64(payload));
        assert_eq!(jwt_exp(&tok(r#"{"exp":1800000000}"#)), Some(1_800_000_000));
        assert_eq!(
            jwt_exp(&tok(r#"{"exp":1800000000.9}"#)),
            Some(1_800_000_000)
        );
        assert_eq!(jwt_exp(&tok(r#"{"exp":"1800000000"}"#)), None);
        assert_eq!(jwt_exp(&tok(r#"{"exp":-5}"#)), None);
        assert_eq!(jwt_exp(&tok("not json")), None);
        assert_eq!(jwt_exp("opaque-token"), None);
    }
}
