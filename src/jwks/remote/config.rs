//! [`RemoteJwksConfig`]: the settings of a remote key set (set through
//! [`VerifierBuilder`](crate::VerifierBuilder)'s `jwks_*` setters), their defaults (the
//! `DEFAULT_*` constants) and the checks made when the verifier is built.

use std::time::Duration;

use crate::error::ConfigError;
use crate::retry::backoff_ceiling;

/// Default bound on a whole fetch: connect, request, response and body.
pub(crate) const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the size of a JWKS response body.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default pause after a refetch for an unknown `kid` before another may run.
pub(crate) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Default freshness of a key set whose response has no `Cache-Control: max-age`.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Default lower bound applied to a response's `max-age`.
pub(crate) const DEFAULT_MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// Default upper bound applied to a response's `max-age`.
pub(crate) const DEFAULT_MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default time the last good key set keeps serving past its max-age while fetches fail.
pub(crate) const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(24 * 60 * 60);
/// Default first delay before retrying a failed fetch (doubled on each further failure).
pub(crate) const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(30);
/// Default longest delay between retries of a failing fetch.
pub(crate) const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// Settings for fetching and caching a remote JWKS; each setter is documented on the
/// `VerifierBuilder` setter that calls it (`jwks_` and its name).
#[derive(Debug, Clone)]
pub(crate) struct RemoteJwksConfig {
    pub(super) fetch_timeout: Duration,
    pub(super) max_body_bytes: usize,
    pub(super) cooldown: Duration,
    pub(super) default_max_age: Duration,
    pub(super) min_max_age: Duration,
    pub(super) max_max_age: Duration,
    pub(super) stale_if_error: Duration,
    pub(super) retry_initial: Duration,
    pub(super) retry_max: Duration,
    pub(super) allow_http: bool,
    pub(super) client: Option<reqwest::Client>,
}

impl Default for RemoteJwksConfig {
    fn default() -> Self {
        RemoteJwksConfig {
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            cooldown: DEFAULT_COOLDOWN,
            default_max_age: DEFAULT_MAX_AGE,
            min_max_age: DEFAULT_MIN_MAX_AGE,
            max_max_age: DEFAULT_MAX_MAX_AGE,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            allow_http: false,
            client: None,
        }
    }
}

impl RemoteJwksConfig {
    /// Bound on a whole fetch, from connecting to the last body byte (default 5 s). Requests
    /// waiting for a key that is not held wait at most this long.
    #[must_use]
    pub(crate) fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Largest response body accepted, in bytes (default 256 KiB); a larger one is a failed
    /// fetch.
    #[must_use]
    pub(crate) fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// After a refetch made for an unknown `kid` (or at a cold start) completes, how long
    /// unknown keys fail fast without another fetch (default 30 s). This bounds what a flood
    /// of made-up `kid`s can cost: one fetch per cooldown.
    #[must_use]
    pub(crate) fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long a fetched set stays fresh when the response has no `Cache-Control: max-age`
    /// (default 10 minutes). Clamped to [`max_age_bounds`](Self::max_age_bounds) too.
    #[must_use]
    pub(crate) fn default_max_age(mut self, max_age: Duration) -> Self {
        self.default_max_age = max_age;
        self
    }

    /// The range a response's `max-age` is clamped to (default 1 minute ..= 24 hours).
    /// `no-cache` and `no-store` count as `max-age=0`, so they get the lower bound.
    #[must_use]
    pub(crate) fn max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_max_age = min;
        self.max_max_age = max;
        self
    }

    /// How long past its max-age the last good set keeps serving while fetches fail
    /// (default 24 hours). After that, verification fails with
    /// [`ErrorKind::KeysUnavailable`](crate::ErrorKind::KeysUnavailable) until a fetch succeeds.
    #[must_use]
    pub(crate) fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Delay before retrying a failed fetch: `initial`, doubled after each further failure,
    /// at most `max` (default 30 s up to 5 minutes). Unknown-`kid` refetches wait for it too.
    ///
    /// That is the longest delay: each one is shortened at random by up to half (jitter), so
    /// replicas that failed together do not retry together; with a clock that
    /// [pins jitter](crate::Clock::pins_jitter), such as [`ManualClock`](crate::ManualClock),
    /// it is exact.
    #[must_use]
    pub(crate) fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// Allow a plain `http` JWKS URL for any host (default: only for loopback hosts). Keys
    /// fetched over plain http can be swapped by anyone on the network path; use this only
    /// inside a trusted network.
    #[must_use]
    pub(crate) fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Fetch with this client instead of one built for the purpose (for proxies or custom
    /// roots). The fetch timeout and body cap still apply.
    ///
    /// Its own redirect policy decides which redirects it follows, so a lax one may send the
    /// request to another origin; but a response that did not come from the JWKS URL's
    /// origin (scheme, host and port) is refused, and the fetch fails. The built-in client
    /// does not follow a redirect out of that origin at all; to get the same from yours,
    /// give it a redirect policy that stops at another origin, or
    /// `reqwest::redirect::Policy::none()`.
    #[must_use]
    pub(crate) fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: &str| Err(ConfigError::invalid_setting(name, reason));
        if self.fetch_timeout.is_zero() {
            return invalid("jwks_fetch_timeout", "must be above zero");
        }
        if self.max_body_bytes == 0 {
            return invalid("jwks_max_body_bytes", "must be above zero");
        }
        if self.min_max_age.is_zero() || self.min_max_age > self.max_max_age {
            return invalid("jwks_max_age_bounds", "need 0 < min <= max");
        }
        if self.retry_initial.is_zero() || self.retry_initial > self.retry_max {
            return invalid("jwks_retry_backoff", "need 0 < initial <= max");
        }
        Ok(())
    }

    pub(super) fn clamp_max_age(&self, max_age: Duration) -> Duration {
        max_age.clamp(self.min_max_age, self.max_max_age)
    }

    /// The longest retry delay after `failures` consecutive failures (1 or more); the one
    /// scheduled is shortened by jitter (see [`retry_backoff`](Self::retry_backoff)).
    pub(super) fn backoff(&self, failures: u32) -> Duration {
        backoff_ceiling(self.retry_initial, self.retry_max, failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_clamped_to_the_bounds() {
        let config = RemoteJwksConfig::default();
        let clamp = |s| config.clamp_max_age(Duration::from_secs(s)).as_secs();
        assert_eq!(clamp(0), 60);
        assert_eq!(clamp(59), 60);
        assert_eq!(clamp(600), 600);
        assert_eq!(clamp(86_401), 86_400);
        assert_eq!(clamp(u64::MAX), 86_400);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let config = RemoteJwksConfig::default();
        let secs: Vec<u64> = (1..=6).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300]);
        assert_eq!(config.backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let zero = Duration::ZERO;
        let second = Duration::from_secs(1);
        for config in [
            RemoteJwksConfig::default().fetch_timeout(zero),
            RemoteJwksConfig::default().max_body_bytes(0),
            RemoteJwksConfig::default().max_age_bounds(zero, second),
            RemoteJwksConfig::default().max_age_bounds(second * 2, second),
            RemoteJwksConfig::default().retry_backoff(zero, second),
            RemoteJwksConfig::default().retry_backoff(second * 2, second),
        ] {
            assert_eq!(
                config.check().map_err(|e| e.kind()),
                Err(crate::ConfigErrorKind::InvalidSetting)
            );
        }
        assert!(RemoteJwksConfig::default().check().is_ok());
    }
}
