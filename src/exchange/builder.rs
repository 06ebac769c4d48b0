//! [`ExchangeClientBuilder`]: the client's settings, their defaults and their checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::cache::token_cache;
use super::client::{ExchangeClient, ExchangeClientState};
use super::pacing::Pacing;
use super::{DEFAULT_BASE_URL, EXCHANGE_TOKEN_PATH};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::net::fetch;
use crate::net::is_loopback_host;
use crate::outbound::ApiKey;

/// How many tokens the cache keeps by default.
pub(crate) const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// How long before `exp` a cached token is renewed by default.
pub(crate) const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(60);
/// How many exchanges may be in flight to MKA1 at once by default.
pub(crate) const DEFAULT_MAX_CONCURRENT_EXCHANGES: usize = 64;
/// The timeout of one exchange by default: the wait for a slot and the request.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many requests one exchange may send by default.
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The backoff between retries by default: the first delay, and the longest.
pub(crate) const DEFAULT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(200), Duration::from_secs(5));
/// The longest `Retry-After` waited for by default.
pub(crate) const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

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
    max_concurrent: usize,
    http: Option<reqwest::Client>,
    env_error: Option<&'static str>,
}

/// The environment variable [`ExchangeClientBuilder::base_url_from_env`] reads.
const SERVER_URL_VAR: &str = "MKA1_SERVER_URL";

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

    /// MKA1's base URL from the environment variable `MKA1_SERVER_URL`, as the official SDK
    /// and MKA1's command line read it; unset or blank, the base URL stays what it was
    /// ([`DEFAULT_BASE_URL`] unless [`base_url`](Self::base_url) set another). The value is
    /// read now and checked by [`build`](Self::build) like any base URL; one that is not
    /// valid unicode fails the build.
    ///
    /// The builder never reads the environment unless asked: a client built without this
    /// call talks to [`DEFAULT_BASE_URL`] or the URL given in code, whatever the process's
    /// environment holds.
    ///
    /// ```
    /// use mka1_auth::exchange::ExchangeClient;
    ///
    /// // With `MKA1_SERVER_URL=http://127.0.0.1:43023` this client talks to that dev issuer;
    /// // without it, to https://apigw.mka1.com.
    /// let client = ExchangeClient::builder()
    ///     .api_key("mk_live_example")
    ///     .base_url_from_env()
    ///     .build()?;
    /// # let _ = client;
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn base_url_from_env(self) -> Self {
        self.base_url_from_var(std::env::var_os(SERVER_URL_VAR))
    }

    fn base_url_from_var(mut self, value: Option<std::ffi::OsString>) -> Self {
        match value.map(std::ffi::OsString::into_string) {
            None => {}
            Some(Ok(url)) if url.trim().is_empty() => {}
            Some(Ok(url)) => self.base_url = url.trim().to_owned(),
            Some(Err(_)) => self.env_error = Some("MKA1_SERVER_URL is not valid unicode"),
        }
        self
    }

    /// The endpoint's path (default [`EXCHANGE_TOKEN_PATH`]; [`LEGACY_EXCHANGE_TOKEN_PATH`](crate::protocol::LEGACY_EXCHANGE_TOKEN_PATH) for older
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

    /// How many tokens the cache keeps (default 10,000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long before `exp` a cached token is renewed (default 60 s;
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
    /// most `max`, with jitter (default 200 ms and 5 s; exact on a clock that
    /// [pins jitter](crate::Clock::pins_jitter)). Waited on the client's clock.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The longest `Retry-After` waited for (default 30 s). A longer one ends the exchange
    /// with [`ExchangeErrorKind::RateLimited`](super::ExchangeErrorKind::RateLimited) (or `Unavailable`) at once.
    ///
    /// Whatever the wait, it holds back every exchange of the client, not only the one
    /// that was answered: until then an exchange waits for the moment (when it is at most
    /// this far off) or fails at once without being sent, and a caller whose token is due
    /// for renewal but still valid keeps using it. One answer pauses the client for at most
    /// 5 minutes, or this setting when it is longer.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The timeout of one request to MKA1, the wait for a free
    /// [slot](Self::max_concurrent_exchanges) included (default 10 s; more than zero).
    /// A request that times out fails with
    /// [`ExchangeErrorKind::Timeout`](super::ExchangeErrorKind::Timeout) and is not retried,
    /// so a hanging MKA1 fails each exchange within this time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many exchanges may be in flight to MKA1 at once, whatever the number of users
    /// asking (default 64; at least 1). Concurrent callers for one token share one
    /// exchange; callers for different tokens beyond the cap wait for a slot, and the wait
    /// counts against the [`timeout`](Self::timeout), so nothing queues forever: at 100 ms
    /// an exchange, 64 slots serve 640 new tokens a second, and a burst larger than the
    /// timeout allows fails its tail with
    /// [`ExchangeErrorKind::Timeout`](super::ExchangeErrorKind::Timeout).
    ///
    /// ```
    /// use mka1_auth::exchange::ExchangeClient;
    ///
    /// let client = ExchangeClient::builder()
    ///     .api_key("mk_live_example")
    ///     .max_concurrent_exchanges(16)
    ///     .build()?;
    /// # let _ = client;
    /// assert!(ExchangeClient::builder()
    ///     .api_key("mk_live_example")
    ///     .max_concurrent_exchanges(0)
    ///     .build()
    ///     .is_err());
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn max_concurrent_exchanges(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// Send the exchanges with this client instead of one built for the purpose: for a
    /// proxy, private CA roots or other transport settings, as
    /// [`VerifierBuilder::jwks_http_client`](crate::VerifierBuilder::jwks_http_client)
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
                return Err(ConfigError::invalid_setting(
                    "api_key",
                    "no api key configured",
                ))
            }
            Some(key) => ApiKey::new(key)?,
        };
        if let Some(reason) = self.env_error {
            return Err(ConfigError::invalid_setting("base_url", reason));
        }
        let endpoint = endpoint_url(&self.base_url, &self.path)?;
        if self.max_concurrent == 0 || self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::invalid_setting(
                "max_concurrent_exchanges",
                "it must be at least 1 (and fit a semaphore)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid_setting(
                "timeout",
                "it must be more than zero",
            ));
        }
        // No redirect is ever followed by the built-in client: the API key goes to the
        // endpoint and nowhere else, and a 3xx comes back as the answer (a failed exchange).
        // A caller's client may follow some; an answer from another origin is refused.
        let http = match self.http {
            Some(client) => client,
            None => fetch::build(fetch::client_builder(0))?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let cache = token_cache(self.capacity, clock.clone());
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
                pacing: Pacing::new(self.max_concurrent, self.max_retry_after),
            }),
        })
    }
}

fn endpoint_url(base: &str, path: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::invalid_setting("base_url", reason.to_owned());
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
        return Err(ConfigError::invalid_setting(
            "endpoint_path",
            "it must begin with `/`",
        ));
    }
    let joined = format!("{}{}", url.as_str().trim_end_matches('/'), path);
    reqwest::Url::parse(&joined).map_err(|_| invalid("it does not join with the endpoint path"))
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
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF.0,
            backoff_max: DEFAULT_BACKOFF.1,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            timeout: DEFAULT_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT_EXCHANGES,
            http: None,
            env_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_comes_from_mka1_server_url_only_when_asked() {
        let endpoint =
            |b: ExchangeClientBuilder| b.api_key("k").build().unwrap().inner.endpoint.to_string();
        let exchange = |base: &str| format!("{base}{EXCHANGE_TOKEN_PATH}");
        // The only test of this binary that touches the variable.
        std::env::set_var(SERVER_URL_VAR, " http://127.0.0.1:43023 ");
        assert_eq!(
            endpoint(ExchangeClient::builder().base_url_from_env()),
            exchange("http://127.0.0.1:43023")
        );
        // Not asked: the default, whatever the environment says.
        assert_eq!(
            endpoint(ExchangeClient::builder()),
            exchange(DEFAULT_BASE_URL)
        );
        // The last call wins, so code can override the environment.
        assert_eq!(
            endpoint(
                ExchangeClient::builder()
                    .base_url_from_env()
                    .base_url("http://localhost:9")
            ),
            exchange("http://localhost:9")
        );
        // A bad value fails the build, as a bad `base_url` does.
        std::env::set_var(SERVER_URL_VAR, "http://apigw.mka1.com");
        let err = ExchangeClient::builder()
            .api_key("k")
            .base_url_from_env()
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        // Unset or blank: the default, or what `base_url` set before.
        for value in [None, Some("  ")] {
            match value {
                Some(v) => std::env::set_var(SERVER_URL_VAR, v),
                None => std::env::remove_var(SERVER_URL_VAR),
            }
            assert_eq!(
                endpoint(ExchangeClient::builder().base_url_from_env()),
                exchange(DEFAULT_BASE_URL)
            );
            assert_eq!(
                endpoint(
                    ExchangeClient::builder()
                        .base_url("http://localhost:9")
                        .base_url_from_env()
                ),
                exchange("http://localhost:9")
            );
        }
        std::env::remove_var(SERVER_URL_VAR);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let bad = std::ffi::OsString::from_vec(vec![0x68, 0xff]);
            let err = ExchangeClient::builder()
                .api_key("k")
                .base_url_from_var(Some(bad))
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("MKA1_SERVER_URL"), "{err}");
        }
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
