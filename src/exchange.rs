//! The MKA1 exchange-token client (feature `remote`): trade your API key for a short-lived
//! token minted for another service's audience and one end user, cached until shortly
//! before it expires.
//!
//! [`ExchangeClient::token`] calls
//! `POST {base}/api/v1/authentication/api-keys/exchange-token` with
//! `Authorization: Bearer <api key>` and `{"audience", "externalUserId", "expiresIn",
//! "permissions"}`, and MKA1 answers `{"token": "<jwt>"}`.
//!
//! - **Permissions.** A request asks for [`Scopes::Exactly`] the permissions it names,
//!   none by default (`"permissions": []`), or, only when it says so with
//!   [`all_key_scopes`](ExchangeRequest::all_key_scopes), for [`Scopes::AllOfKey`] (the
//!   field left out). See [`Scopes`] for why the default is none.
//! - **Validation first.** The end-user id must pass
//!   [`validate_end_user_id`] and `expiresIn` lie in
//!   300..=2592000 seconds; a request that breaks either is refused without being sent.
//! - **Cache.** Tokens are kept per (audience, end user, [`Scopes`], lifetime asked for), so
//!   a token is never handed to a caller that asked for other permissions or a shorter
//!   life. The cache is bounded in number, and a token is reused until
//!   [`renew_before`](ExchangeClientBuilder::renew_before) its `exp` (read
//!   from the token's payload without checking its signature: it only schedules renewal, and
//!   is never trusted past the lifetime that was asked for). Time comes from the client's
//!   [`Clock`]. Concurrent callers for one key share one exchange. Failures are
//!   not cached; while a renewal fails, a token that has not yet expired is still used.
//! - **Retries.** 429 and 5xx answers and transport failures are retried with exponential
//!   backoff and jitter, honouring `Retry-After` (seconds or an HTTP date) up to
//!   [`max_retry_after`](ExchangeClientBuilder::max_retry_after): a longer wait is not
//!   waited for, the error is returned at once with [`ExchangeError::retry_after`].
//! - **Origin.** The API key is sent only to the configured endpoint: the client follows
//!   no redirect, not even one within the same origin. A redirect answer (3xx) is a failed
//!   exchange, [`ExchangeErrorKind::UnexpectedStatus`] with its status, and is not retried.
//! - **Errors.** Every failure is a [`Refusal`] of kind [`RefusalKind::Exchange`] (or
//!   [`RefusalKind::ApiKeyRejected`], below) whose
//!   [`ExchangeError`] (from [`ExchangeError::of`]) tells the status and what MKA1 refused,
//!   including the `{"detail":[{"path","message"}]}` list of a 400. The API key never
//!   appears in an error.
//! - **A rejected key.** A 401 means MKA1 no longer accepts the API key (unknown, revoked,
//!   regenerated or expired): the refusal is of kind [`RefusalKind::ApiKeyRejected`], is
//!   never retried, says to check the key, and the cache drops every token the key minted,
//!   so no caller is handed one again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth::exchange::{ExchangeClient, ExchangeRequest};
//!
//! let client = ExchangeClient::builder()
//!     .api_key(std::env::var("MKA1_API_KEY")?)
//!     .build()?;
//! let request = ExchangeRequest::new("https://agents.example.com", "user-42")
//!     .permissions(["agent:read"]);
//! let token = client.token(&request).await?;
//! println!("token valid until {}", token.expires_at());
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::claims::validate_end_user_id;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::jwks::b64url_decode;
use crate::net::{is_loopback_host, transport_error_text};
use crate::outbound::{
    ApiKey, Credential, CredentialSource, OutboundContext, Refusal, RefusalKind,
};
use crate::retry::{backoff, parse_retry_after};

mod scopes;
pub use scopes::Scopes;

pub use crate::protocol::{
    DEFAULT_BASE_URL, DEFAULT_EXPIRES_IN, EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH,
    MAX_EXPIRES_IN, MIN_EXPIRES_IN,
};
/// How many tokens the cache keeps by default.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// How long before `exp` a cached token is renewed by default.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(60);

const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_ISSUES: usize = 20;
const MAX_TEXT_CHARS: usize = 200;

/// What to mint: a token for `audience` acting for one end user.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::exchange::ExchangeRequest;
///
/// let request = ExchangeRequest::new("https://agents.example.com", "user-42")
///     .expires_in(Duration::from_secs(900))
///     .permissions(["agent:read", "agent:write"]);
/// assert_eq!(request.external_user_id(), "user-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    audience: String,
    external_user_id: String,
    expires_in: Option<Duration>,
    scopes: Scopes,
}

impl ExchangeRequest {
    /// A token for `audience` (the target service's URL) and the end user
    /// `external_user_id`, with no permissions until
    /// [`permissions`](Self::permissions) names some (see [`Scopes`]).
    pub fn new(audience: impl Into<String>, external_user_id: impl Into<String>) -> Self {
        ExchangeRequest {
            audience: audience.into(),
            external_user_id: external_user_id.into(),
            expires_in: None,
            scopes: Scopes::Exactly(Vec::new()),
        }
    }

    /// The lifetime to ask for: 300 s to 30 days in whole seconds (default one hour).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// Exactly the permissions to embed (for example `agent:read`): [`Scopes::Exactly`].
    /// Order and repeats do not matter; an empty list asks for a token with none.
    pub fn permissions<I>(mut self, permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = Scopes::exactly(permissions);
        self
    }

    /// Every scope the API key holds, whatever they are when the token is minted:
    /// [`Scopes::AllOfKey`]. The widest token the key can get; prefer
    /// [`permissions`](Self::permissions) with what the call needs.
    pub fn all_key_scopes(mut self) -> Self {
        self.scopes = Scopes::AllOfKey;
        self
    }

    /// Which permissions the token is to carry.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The end user.
    pub fn external_user_id(&self) -> &str {
        &self.external_user_id
    }

    /// Check everything MKA1 would check about the request's shape, and return the lifetime
    /// in seconds.
    fn validate(&self) -> Result<u64, ExchangeError> {
        let issue = |path: &str, message: String| {
            ExchangeError::new(ExchangeErrorKind::InvalidRequest).with_issue(path, message)
        };
        if self.audience.is_empty() || self.audience.chars().any(char::is_control) {
            return Err(issue(
                "audience",
                "is empty or has control characters".into(),
            ));
        }
        if let Err(e) = validate_end_user_id(&self.external_user_id) {
            let why = e.detail().unwrap_or("it breaks the end-user id rule");
            return Err(issue("externalUserId", why.to_owned()));
        }
        let secs = match self.expires_in {
            None => DEFAULT_EXPIRES_IN,
            Some(d) if d.subsec_nanos() != 0 => {
                return Err(issue(
                    "expiresIn",
                    "is not a whole number of seconds".into(),
                ))
            }
            Some(d) => d.as_secs(),
        };
        if !(MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&secs) {
            return Err(issue(
                "expiresIn",
                format!("is {secs} s; it must lie in {MIN_EXPIRES_IN}..={MAX_EXPIRES_IN}"),
            ));
        }
        if self
            .scopes
            .field()
            .is_some_and(|list| list.iter().any(String::is_empty))
        {
            return Err(issue("permissions", "holds an empty permission".into()));
        }
        Ok(secs)
    }
}

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
    token: Arc<str>,
    credential: Credential,
    expires_at: u64,
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

/// What kind of exchange failure an [`ExchangeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExchangeErrorKind {
    /// The request was refused before sending: a bad end-user id, lifetime or audience.
    InvalidRequest,
    /// MKA1 answered 400: it found the request invalid (see [`ExchangeError::issues`]).
    BadRequest,
    /// MKA1 answered 401: the API key is missing, unknown, revoked, regenerated or expired.
    /// Never retried; the client drops every token it cached, and the [`Refusal`] is of kind
    /// [`RefusalKind::ApiKeyRejected`].
    Unauthorized,
    /// MKA1 answered 403: the API key may not mint this token (audience or permissions).
    Forbidden,
    /// MKA1 answered 429 and retrying did not help, or asked to wait too long.
    RateLimited,
    /// MKA1 answered 5xx on every attempt.
    Unavailable,
    /// MKA1 answered another status, a redirect included (redirects are never followed, so
    /// the API key never leaves the configured origin).
    UnexpectedStatus,
    /// MKA1 could not be reached, or the connection failed.
    Transport,
    /// MKA1 answered success, but not with `{"token": "<jwt>"}`.
    InvalidResponse,
}

/// One problem MKA1 (or local validation) found with the request: a field path and a
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIssue {
    path: String,
    message: String,
}

impl ExchangeIssue {
    /// The field, like `externalUserId` (empty when MKA1 named none).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The typed view of a failed exchange: what kind, which HTTP status, and what MKA1 said.
///
/// Get it from the [`Refusal`] with [`ExchangeError::of`]. Texts from MKA1 are
/// shortened and never contain the API key.
///
/// ```
/// # async fn demo(client: mka1_auth::exchange::ExchangeClient) {
/// use mka1_auth::exchange::{ExchangeError, ExchangeErrorKind, ExchangeRequest};
///
/// let request = ExchangeRequest::new("https://agents.example.com", "*");
/// let err = client.token(&request).await.unwrap_err();
/// let exchange = ExchangeError::of(&err).unwrap();
/// assert_eq!(exchange.kind(), ExchangeErrorKind::InvalidRequest);
/// assert_eq!(exchange.issues()[0].path(), "externalUserId");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeError {
    kind: ExchangeErrorKind,
    status: Option<u16>,
    message: Option<String>,
    issues: Vec<ExchangeIssue>,
    retry_after: Option<Duration>,
    attempts: u32,
}

impl ExchangeError {
    fn new(kind: ExchangeErrorKind) -> Self {
        ExchangeError {
            kind,
            status: None,
            message: None,
            issues: Vec::new(),
            retry_after: None,
            attempts: 0,
        }
    }

    fn with_issue(mut self, path: &str, message: String) -> Self {
        self.issues.push(ExchangeIssue {
            path: path.to_owned(),
            message,
        });
        self
    }

    fn with_message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }

    /// The exchange failure inside a [`Refusal`], if it is one.
    pub fn of(error: &Refusal) -> Option<&ExchangeError> {
        std::error::Error::source(error)?.downcast_ref()
    }

    /// What kind of failure.
    pub fn kind(&self) -> ExchangeErrorKind {
        self.kind
    }

    /// MKA1's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// MKA1's `detail` (or `message`) when it was a single text, or the transport failure.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The problems listed in MKA1's `{"detail": [{"path", "message"}]}`, or found locally.
    pub fn issues(&self) -> &[ExchangeIssue] {
        &self.issues
    }

    /// How long MKA1 asked to wait (`Retry-After`) on the last answer, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How many requests were sent (0 when refused before sending).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn into_error(self) -> Refusal {
        let kind = match self.kind {
            ExchangeErrorKind::Unauthorized => RefusalKind::ApiKeyRejected,
            _ => RefusalKind::Exchange,
        };
        Refusal::with_detail(kind, self.to_string()).with_source(self)
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ExchangeErrorKind::InvalidRequest => "the exchange request is invalid",
            ExchangeErrorKind::BadRequest => "mka1 rejected the exchange request as invalid",
            ExchangeErrorKind::Unauthorized => "mka1 did not accept the api key",
            ExchangeErrorKind::Forbidden => "mka1 refused to mint this token for the api key",
            ExchangeErrorKind::RateLimited => "mka1 is rate limiting exchanges",
            ExchangeErrorKind::Unavailable => "mka1 failed to serve the exchange",
            ExchangeErrorKind::UnexpectedStatus => "mka1 answered the exchange unexpectedly",
            ExchangeErrorKind::Transport => "mka1 could not be reached",
            ExchangeErrorKind::InvalidResponse => "mka1's exchange answer holds no usable token",
        };
        f.write_str(what)?;
        if let Some(status) = self.status {
            write!(f, " (status {status})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        for (i, issue) in self.issues.iter().enumerate() {
            let sep = if i == 0 && self.message.is_none() {
                ": "
            } else {
                "; "
            };
            if issue.path.is_empty() {
                write!(f, "{sep}{}", issue.message)?;
            } else {
                write!(f, "{sep}`{}` {}", issue.path, issue.message)?;
            }
        }
        if let Some(wait) = self.retry_after {
            write!(f, " (retry after {} s)", wait.as_secs())?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        if self.kind == ExchangeErrorKind::Unauthorized {
            f.write_str(
                "; check the configured api key: mka1 does not know it, or it was revoked, \
                 regenerated or has expired",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ExchangeError {}

/// Builds an [`ExchangeClient`]. Only the API key is required.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::exchange::ExchangeClient;
///
/// let client = ExchangeClient::builder()
///     .api_key("mk_live_example")
///     .base_url("https://apigw.mka1.com")
///     .renew_before(Duration::from_secs(120))
///     .max_attempts(4)
///     .build()?;
/// # let _ = client;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[must_use]
pub struct ExchangeClientBuilder {
    base_url: String,
    path: String,
    api_key: Option<String>,
    clock: Option<SharedClock>,
    capacity: u64,
    renew_before: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for ExchangeClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeClientBuilder")
            .field("base_url", &self.base_url)
            .field("path", &self.path)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ExchangeClientBuilder {
    /// MKA1's base URL (default [`DEFAULT_BASE_URL`]). `https` is required unless the host
    /// is loopback.
    ///
    /// The API key is sent to this origin (scheme, host and port) and nowhere else: a
    /// redirect answer is not followed but fails the exchange.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The endpoint's path (default [`EXCHANGE_TOKEN_PATH`]; [`LEGACY_EXCHANGE_TOKEN_PATH`] for older
    /// deployments).
    pub fn endpoint_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The MKA1 API key to exchange. Required.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Where the cache reads the time (default the system clock). For tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many tokens the cache keeps (default [`DEFAULT_CACHE_CAPACITY`]).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long before `exp` a cached token is renewed (default [`DEFAULT_RENEW_BEFORE`];
    /// at most half of the token's lifetime is used).
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = margin;
        self
    }

    /// How many requests one exchange may send, the first included (default 3, minimum 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff between retries without `Retry-After`: `base`, doubling per retry, at
    /// most `max`, with jitter (default 200 ms and 5 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The longest `Retry-After` waited for (default 30 s). A longer one ends the exchange
    /// with [`ExchangeErrorKind::RateLimited`] (or `Unavailable`) at once.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The timeout of one request to MKA1 (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Send the exchanges with this client instead of one built for the purpose: for a
    /// proxy, private CA roots or other transport settings, as
    /// [`RemoteJwksConfig::http_client`](crate::jwks::remote::RemoteJwksConfig::http_client)
    /// does for the JWKS. The [`timeout`](Self::timeout) still applies to each request.
    ///
    /// The built-in client follows no redirect, so the API key goes to the configured origin
    /// only. Give yours `reqwest::redirect::Policy::none()` to keep that; whatever its
    /// policy, an answer that did not come from the configured origin (scheme, host and
    /// port) is refused, and the exchange fails.
    ///
    /// ```
    /// use mka1_auth::exchange::ExchangeClient;
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()?;
    /// let client = ExchangeClient::builder()
    ///     .api_key("mk_live_example")
    ///     .http_client(http)
    ///     .build()?;
    /// # let _ = client;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Check the settings and build the client.
    pub fn build(self) -> Result<ExchangeClient, ConfigError> {
        let api_key = match &self.api_key {
            None => {
                return Err(ConfigError::InvalidSetting {
                    name: "api_key",
                    reason: "no api key configured".into(),
                })
            }
            Some(key) => ApiKey::new(key)?,
        };
        let endpoint = endpoint_url(&self.base_url, &self.path)?;
        // No redirect is ever followed by the built-in client: the API key goes to the
        // endpoint and nowhere else, and a 3xx comes back as the answer (a failed exchange).
        // A caller's client may follow some; an answer from another origin is refused.
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ConfigError::HttpClient(e.to_string()))?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let cache = moka::future::Cache::builder()
            .max_capacity(self.capacity)
            .expire_after(UntilRenewal {
                clock: clock.clone(),
            })
            .build();
        Ok(ExchangeClient {
            inner: Arc::new(ExchangeClientState {
                http,
                endpoint,
                secret: self.api_key.unwrap_or_default(),
                api_key,
                clock,
                cache,
                renew_before: self.renew_before,
                max_attempts: self.max_attempts,
                backoff_base: self.backoff_base,
                backoff_max: self.backoff_max,
                max_retry_after: self.max_retry_after,
                timeout: self.timeout,
            }),
        })
    }
}

fn endpoint_url(base: &str, path: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidSetting {
        name: "base_url",
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(base).map_err(|_| invalid("it is not a valid url"))?;
    let Some(host) = url.host_str() else {
        return Err(invalid("it has no host"));
    };
    let loopback = is_loopback_host(host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid("it must use https (plain http only on loopback)")),
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(invalid("it may not carry credentials or a query"));
    }
    if !path.starts_with('/') {
        return Err(ConfigError::InvalidSetting {
            name: "endpoint_path",
            reason: "it must begin with `/`".into(),
        });
    }
    let joined = format!("{}{}", url.as_str().trim_end_matches('/'), path);
    reqwest::Url::parse(&joined).map_err(|_| invalid("it does not join with the endpoint path"))
}

/// Exchanges an MKA1 API key for per-user tokens, and caches them. Cheap to clone (shared
/// inside); keep one per API key.
///
/// See the [module docs](self) for the cache and retry rules.
///
/// ```
/// use mka1_auth::exchange::ExchangeClient;
/// use mka1_auth::outbound::Outbound;
///
/// let client = ExchangeClient::builder().api_key("mk_live_example").build()?;
/// // As a credential source: one token per end user, for this audience.
/// let layer = Outbound::layer(
///     client.source("https://agents.example.com").permissions(["agent:read"]),
///     ["https://agents.example.com"],
/// )?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ExchangeClient {
    inner: Arc<ExchangeClientState>,
}

/// What an [`ExchangeClient`] and its clones share: the http client, the key, the settings
/// and the token cache.
struct ExchangeClientState {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    api_key: ApiKey,
    /// The key's text, only to scrub it from anything MKA1 sends back.
    secret: String,
    clock: SharedClock,
    cache: moka::future::Cache<CacheKey, Cached>,
    renew_before: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    timeout: Duration,
}

impl fmt::Debug for ExchangeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("cached", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// What a cached token was asked for. The lifetime is part of it: a token minted for 30
/// days is never handed to a caller that asked for 300 s.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    audience: Box<str>,
    user: Box<str>,
    scopes: Scopes,
    lifetime: u64,
}

#[derive(Clone)]
struct Cached {
    token: ExchangedToken,
    /// Unix seconds from which the token is renewed rather than reused.
    renew_at: u64,
}

/// Lets moka drop an entry once it is due for renewal (by the client's clock at insertion).
struct UntilRenewal {
    clock: SharedClock,
}

impl UntilRenewal {
    fn ttl(&self, value: &Cached) -> Option<Duration> {
        Some(Duration::from_secs(
            value.renew_at.saturating_sub(self.clock.now_unix()),
        ))
    }
}

impl moka::Expiry<CacheKey, Cached> for UntilRenewal {
    fn expire_after_create(&self, _: &CacheKey, value: &Cached, _: Instant) -> Option<Duration> {
        self.ttl(value)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        value: &Cached,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.ttl(value)
    }
}

/// What one attempt's failure means for the next.
struct Failure {
    error: ExchangeError,
    retryable: bool,
}

impl ExchangeClient {
    /// Start building a client.
    pub fn builder() -> ExchangeClientBuilder {
        ExchangeClientBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            path: EXCHANGE_TOKEN_PATH.to_owned(),
            api_key: None,
            clock: None,
            capacity: DEFAULT_CACHE_CAPACITY,
            renew_before: DEFAULT_RENEW_BEFORE,
            max_attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            http: None,
        }
    }

    /// A token for this request: from the cache while it is fresh, else exchanged.
    ///
    /// Concurrent calls for the same (audience, user, scopes, lifetime) share one exchange.
    pub async fn token(&self, request: &ExchangeRequest) -> Result<ExchangedToken, Refusal> {
        let lifetime = request.validate().map_err(ExchangeError::into_error)?;
        let key = CacheKey {
            audience: request.audience.as_str().into(),
            user: request.external_user_id.as_str().into(),
            scopes: request.scopes.clone(),
            lifetime,
        };
        let cache = &self.inner.cache;
        let mut stale: Option<Cached> = None;
        // Twice at most: a stale entry found on the first pass is dropped and renewed.
        for _ in 0..2 {
            let ran = AtomicBool::new(false);
            let init = async {
                ran.store(true, Ordering::Relaxed);
                let exchanged = self.exchange(request, lifetime).await;
                crate::metrics::count(match exchanged {
                    Ok(_) => crate::metrics::Event::ExchangeOk,
                    Err(_) => crate::metrics::Event::ExchangeError,
                });
                exchanged
            };
            let cached = match cache.try_get_with(key.clone(), init).await {
                Ok(cached) => cached,
                Err(error) if error.kind() == RefusalKind::ApiKeyRejected => {
                    self.drop_tokens_of_rejected_key();
                    return Err((*error).clone());
                }
                Err(error) => {
                    // A token that has not expired yet still beats no token.
                    let now = self.inner.clock.now_unix();
                    if let Some(old) = stale.filter(|s| s.token.expires_at > now) {
                        tracing::warn!(error = %error, "mka1 token renewal failed; using the current token until it expires");
                        return Ok(old.token);
                    }
                    return Err((*error).clone());
                }
            };
            if ran.load(Ordering::Relaxed) {
                return Ok(cached.token);
            }
            if cached.renew_at > self.inner.clock.now_unix() {
                crate::metrics::count(crate::metrics::Event::ExchangeCached);
                return Ok(cached.token);
            }
            self.evict(&key, &cached).await;
            stale = Some(cached);
        }
        // Someone else refreshed between our passes with a token already due; use it.
        match stale {
            Some(s) => Ok(s.token),
            None => Err(Refusal::new(RefusalKind::Exchange)),
        }
    }

    /// A [`CredentialSource`] for the outbound layer: tokens for `audience`, one per end
    /// user (a request without an end user fails with
    /// [`RefusalKind::CredentialUnavailable`]), with no permissions until
    /// [`ExchangeSource::permissions`] names some (see [`Scopes`]).
    pub fn source(&self, audience: impl Into<String>) -> ExchangeSource {
        ExchangeSource {
            client: self.clone(),
            audience: audience.into().into(),
            scopes: Scopes::Exactly(Vec::new()),
            expires_in: None,
        }
    }

    /// MKA1 no longer accepts the key: forget every token it minted, so none is handed out
    /// again (not even an unexpired one while a renewal fails).
    fn drop_tokens_of_rejected_key(&self) {
        let cached = self.inner.cache.entry_count();
        self.inner.cache.invalidate_all();
        tracing::warn!(
            cached,
            "mka1 rejected the api key; dropped the tokens it minted. check the configured key"
        );
    }

    /// Drop `entry` for `key`, unless another caller already replaced it.
    async fn evict(&self, key: &CacheKey, entry: &Cached) {
        self.inner
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let same = current
                    .is_some_and(|c| Arc::ptr_eq(&c.value().token.token, &entry.token.token));
                std::future::ready(if same {
                    moka::ops::compute::Op::Remove
                } else {
                    moka::ops::compute::Op::Nop
                })
            })
            .await;
    }

    /// One exchange, with retries. Never reads or writes the cache.
    async fn exchange(&self, request: &ExchangeRequest, lifetime: u64) -> Result<Cached, Refusal> {
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

        let inner = &self.inner;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(&body).await {
                Ok(token) => return Ok(self.schedule(token, lifetime)),
                Err(failure) => failure,
            };
            let mut error = failure.error;
            error.attempts = attempt;
            if !failure.retryable || attempt >= inner.max_attempts {
                return Err(error.into_error());
            }
            let wait = match error.retry_after {
                Some(wait) if wait > inner.max_retry_after => return Err(error.into_error()),
                Some(wait) => wait,
                None => backoff(inner.backoff_base, inner.backoff_max, attempt),
            };
            crate::metrics::count(crate::metrics::Event::ExchangeRetried);
            tracing::debug!(attempt, ?wait, error = %error, "retrying the mka1 token exchange");
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            attempt += 1;
        }
    }

    /// One request to MKA1.
    async fn attempt(&self, body: &[u8]) -> Result<ExchangedToken, Failure> {
        let inner = &self.inner;
        let transport = |e: reqwest::Error| Failure {
            error: ExchangeError::new(ExchangeErrorKind::Transport)
                .with_message(self.scrub(&transport_error_text(e))),
            retryable: true,
        };
        let response = inner
            .http
            .post(inner.endpoint.clone())
            .header(
                http::header::AUTHORIZATION,
                inner.api_key.credential().authorization_value(),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body.to_vec())
            .timeout(inner.timeout)
            .send()
            .await
            .map_err(transport)?;
        if response.url().origin() != inner.endpoint.origin() {
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
        let body = read_limited(response).await.map_err(transport)?;
        if status.is_success() {
            return self.parse_token(&body).map_err(|error| Failure {
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
            self.parse_refusal(kind, &body)
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

    /// When to renew: `exp` (capped at the lifetime asked for) less the margin, the margin
    /// being at most half the lifetime left.
    fn schedule(&self, mut token: ExchangedToken, lifetime: u64) -> Cached {
        let now = self.inner.clock.now_unix();
        let asked = now.saturating_add(lifetime);
        let exp = match token.expires_at {
            0 => asked,
            exp => exp.min(asked),
        };
        token.expires_at = exp;
        let left = exp.saturating_sub(now);
        let margin = self.inner.renew_before.as_secs().min(left / 2);
        if left == 0 {
            tracing::warn!("mka1 minted a token that is already expired by this clock");
        }
        Cached {
            token,
            renew_at: exp - margin,
        }
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
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

/// The outbound layer's credential source backed by an [`ExchangeClient`]; made by
/// [`ExchangeClient::source`].
///
/// ```
/// use std::time::Duration;
/// # let client = mka1_auth::exchange::ExchangeClient::builder().api_key("mk_live_example").build().unwrap();
/// let source = client
///     .source("https://agents.example.com")
///     .permissions(["agent:read"])
///     .expires_in(Duration::from_secs(900));
/// # let _ = source;
/// ```
#[derive(Clone)]
pub struct ExchangeSource {
    client: ExchangeClient,
    audience: Arc<str>,
    scopes: Scopes,
    expires_in: Option<Duration>,
}

impl ExchangeSource {
    /// Exactly the permissions every token carries ([`Scopes::Exactly`]; default none, see
    /// [`Scopes`] for why).
    pub fn permissions<I>(mut self, permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = Scopes::exactly(permissions);
        self
    }

    /// Every token carries every scope the API key holds ([`Scopes::AllOfKey`]): the widest
    /// tokens the key can get, for every user. Prefer [`permissions`](Self::permissions).
    pub fn all_key_scopes(mut self) -> Self {
        self.scopes = Scopes::AllOfKey;
        self
    }

    /// The lifetime to ask for (300 s to 30 days; default one hour).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }
}

impl fmt::Debug for ExchangeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeSource")
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl CredentialSource for ExchangeSource {
    type Future = ExchangeFuture;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        let Some(user) = cx.end_user() else {
            let error = Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "an exchanged token needs an end user, and the request names none",
            );
            return ExchangeFuture(Box::pin(std::future::ready(Err(error))));
        };
        let mut request = ExchangeRequest::new(&*self.audience, user);
        request.scopes = self.scopes.clone();
        request.expires_in = self.expires_in;
        let client = self.client.clone();
        ExchangeFuture(Box::pin(async move {
            client.token(&request).await.map(|t| t.credential)
        }))
    }
}

/// The future of [`ExchangeSource`]: a cache lookup, or an exchange.
pub struct ExchangeFuture(Pin<Box<dyn Future<Output = Result<Credential, Refusal>> + Send>>);

impl Future for ExchangeFuture {
    type Output = Result<Credential, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for ExchangeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExchangeFuture")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn endpoint_urls() {
        let url = endpoint_url("https://apigw.mka1.com/", EXCHANGE_TOKEN_PATH).unwrap();
        assert_eq!(
            url.as_str(),
            "https://apigw.mka1.com/api/v1/authentication/api-keys/exchange-token"
        );
        assert!(endpoint_url("http://127.0.0.1:9/", EXCHANGE_TOKEN_PATH).is_ok());
        assert!(endpoint_url("http://apigw.mka1.com", EXCHANGE_TOKEN_PATH).is_err());
        assert!(endpoint_url("https://k:s@apigw.mka1.com", EXCHANGE_TOKEN_PATH).is_err());
        assert!(endpoint_url("nonsense", EXCHANGE_TOKEN_PATH).is_err());
        assert!(endpoint_url("https://apigw.mka1.com", "api").is_err());
    }
}
