//! [`VerifierBuilder`]'s settings for remote key sets (feature `remote`): how the sets of
//! [`jwks_url`](VerifierBuilder::jwks_url) and
//! [`issuer_jwks_url`](VerifierBuilder::issuer_jwks_url) are fetched and cached. One set of
//! settings serves every remote set of the verifier; each is checked by
//! [`build`](VerifierBuilder::build), which fails with a [`ConfigError`](crate::ConfigError)
//! of kind [`InvalidSetting`](crate::ConfigErrorKind::InvalidSetting) naming the setting.

use std::time::Duration;

use super::VerifierBuilder;

impl VerifierBuilder {
    cfg_feature! {
        #![feature = "remote"]

        /// Bound on a whole JWKS fetch, from connecting to the last body byte (default 5 s;
        /// above zero). Requests waiting for a key that is not held wait at most this long.
        ///
        /// ```
        /// use std::time::Duration;
        /// use mka1_auth::{ConfigErrorKind, Verifier};
        ///
        /// let builder = || {
        ///     Verifier::builder()
        ///         .jwks_url("https://apigw.mka1.com/api/v1/authentication/jwks")
        ///         .audience("https://api.example.com")
        /// };
        /// assert!(builder().jwks_fetch_timeout(Duration::from_secs(2)).build().is_ok());
        /// let err = builder().jwks_fetch_timeout(Duration::ZERO).build().unwrap_err();
        /// assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
        /// ```
        pub fn jwks_fetch_timeout(mut self, timeout: Duration) -> Self {
            self.remote = self.remote.fetch_timeout(timeout);
            self
        }

        /// Largest JWKS response body accepted, in bytes (default 256 KiB; above zero); a
        /// larger one is a failed fetch.
        ///
        /// ```
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder().jwks_max_body_bytes(32 * 1024);
        /// # let _ = builder;
        /// ```
        pub fn jwks_max_body_bytes(mut self, max: usize) -> Self {
            self.remote = self.remote.max_body_bytes(max);
            self
        }

        /// After a refetch made for an unknown `kid` (or at a cold start) completes, how long
        /// unknown keys fail fast without another fetch (default 30 s). This bounds what a
        /// flood of made-up `kid`s can cost: one fetch per cooldown.
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder().jwks_cooldown(Duration::from_secs(60));
        /// # let _ = builder;
        /// ```
        pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
            self.remote = self.remote.cooldown(cooldown);
            self
        }

        /// How long a fetched set stays fresh when the response has no
        /// `Cache-Control: max-age` (default 10 minutes). Clamped to
        /// [`jwks_max_age_bounds`](Self::jwks_max_age_bounds) too.
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder().jwks_default_max_age(Duration::from_secs(300));
        /// # let _ = builder;
        /// ```
        pub fn jwks_default_max_age(mut self, max_age: Duration) -> Self {
            self.remote = self.remote.default_max_age(max_age);
            self
        }

        /// The range a response's `max-age` is clamped to (default 1 minute ..= 24 hours;
        /// `0 < min <= max`). `no-cache` and `no-store` count as `max-age=0`, so they get the
        /// lower bound.
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder()
        ///     .jwks_max_age_bounds(Duration::from_secs(30), Duration::from_secs(3600));
        /// # let _ = builder;
        /// ```
        pub fn jwks_max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
            self.remote = self.remote.max_age_bounds(min, max);
            self
        }

        /// How long past its max-age the last good set keeps serving while fetches fail
        /// (default 24 hours). After that, verification fails with
        /// [`ErrorKind::KeysUnavailable`](crate::ErrorKind::KeysUnavailable) until a fetch
        /// succeeds.
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder().jwks_stale_if_error(Duration::from_secs(3600));
        /// # let _ = builder;
        /// ```
        pub fn jwks_stale_if_error(mut self, window: Duration) -> Self {
            self.remote = self.remote.stale_if_error(window);
            self
        }

        /// Delay before retrying a failed fetch: `initial`, doubled after each further
        /// failure, at most `max` (default 30 s up to 5 minutes; `0 < initial <= max`).
        /// Unknown-`kid` refetches wait for it too.
        ///
        /// That is the longest delay: each one is shortened at random by up to half
        /// (jitter), so replicas that failed together do not retry together; with a clock
        /// that [pins jitter](crate::Clock::pins_jitter), such as
        /// [`ManualClock`](crate::ManualClock), it is exact.
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use mka1_auth::Verifier;
        /// let builder = Verifier::builder()
        ///     .jwks_retry_backoff(Duration::from_secs(5), Duration::from_secs(60));
        /// # let _ = builder;
        /// ```
        pub fn jwks_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
            self.remote = self.remote.retry_backoff(initial, max);
            self
        }

        /// Allow a plain `http` JWKS URL for any host (default: only for loopback hosts).
        /// Keys fetched over plain http can be swapped by anyone on the network path; use
        /// this only inside a trusted network.
        ///
        /// ```
        /// use mka1_auth::Verifier;
        ///
        /// let builder = || {
        ///     Verifier::builder()
        ///         .jwks_url("http://jwks.internal.example/keys")
        ///         .audience("https://api.example.com")
        /// };
        /// assert!(builder().build().is_err());
        /// assert!(builder().jwks_allow_http(true).build().is_ok());
        /// ```
        pub fn jwks_allow_http(mut self, allow: bool) -> Self {
            self.remote = self.remote.allow_http(allow);
            self
        }

        /// Fetch with this client instead of one built for the purpose (for proxies or
        /// custom roots). The fetch timeout and body cap still apply.
        ///
        /// Its own redirect policy decides which redirects it follows, so a lax one may send
        /// the request to another origin; but a response that did not come from the JWKS
        /// URL's origin (scheme, host and port) is refused, and the fetch fails. The built-in
        /// client does not follow a redirect out of that origin at all; to get the same from
        /// yours, give it a redirect policy that stops at another origin, or
        /// `reqwest::redirect::Policy::none()`.
        ///
        /// ```
        /// # use mka1_auth::Verifier;
        /// let http = reqwest::Client::builder()
        ///     .redirect(reqwest::redirect::Policy::none())
        ///     .build()?;
        /// let builder = Verifier::builder().jwks_http_client(http);
        /// # let _ = builder;
        /// # Ok::<(), reqwest::Error>(())
        /// ```
        pub fn jwks_http_client(mut self, client: reqwest::Client) -> Self {
            self.remote = self.remote.http_client(client);
            self
        }
    }
}
