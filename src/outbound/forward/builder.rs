//! [`ForwardLayerBuilder`]: every setting of a forward, checked together when it is built.

use super::headers::HeaderPolicy;
use super::{
    ForwardCookies, ForwardLayer, ForwardedHeaders, OverrideHeaders, DEFAULT_MAX_BODY_BYTES,
};
use crate::error::ConfigError;

/// The settings of a [`ForwardLayer`], checked by [`build`](Self::build): the base URL and
/// the prefix to strip are refused there, never half-way through the chain. Made by
/// [`ForwardLayer::builder`].
///
/// ```
/// use mka1_auth::outbound::forward::{ForwardLayer, ForwardedHeaders};
///
/// let forward = ForwardLayer::builder("https://agents.internal.example/v1")
///     .strip_prefix("/proxy")
///     .max_body_bytes(1024 * 1024)
///     .forwarded_headers(ForwardedHeaders::Drop)
///     .build()?;
/// assert_eq!(forward.origin(), "https://agents.internal.example");
///
/// let req = http::Request::post("/proxy/runs/a%2Fb?page=2").body(()).unwrap();
/// let onward = forward.onward_request(req).unwrap();
/// assert_eq!(onward.uri(), "https://agents.internal.example/v1/runs/a%2Fb?page=2");
///
/// // A prefix that is not a path is refused when built.
/// assert!(ForwardLayer::builder("http://127.0.0.1/base").strip_prefix("proxy").build().is_err());
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ForwardLayerBuilder {
    pub(super) base: String,
    pub(super) strip_prefix: String,
    pub(super) max_body_bytes: u64,
    pub(super) headers: HeaderPolicy,
}

impl ForwardLayerBuilder {
    pub(super) fn new(base: &str) -> Self {
        ForwardLayerBuilder {
            base: base.to_owned(),
            strip_prefix: String::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            headers: HeaderPolicy::default(),
        }
    }

    /// Remove this prefix (`/proxy`) from the inbound path before it is joined to the base;
    /// requests outside it get 404. Not needed under axum's `nest_service`, which strips its
    /// own prefix. The prefix is compared with the raw path, whole segments only. It must
    /// start with `/` and be a plain path ([`build`](Self::build) checks it).
    pub fn strip_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.strip_prefix = prefix.into();
        self
    }

    /// The largest request body passed on, in bytes (default 10 MiB).
    pub fn max_body_bytes(mut self, max: u64) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// What to do with `Forwarded`, `X-Forwarded-*` and `X-Real-IP` (default
    /// [`ForwardedHeaders::Drop`]).
    pub fn forwarded_headers(mut self, policy: ForwardedHeaders) -> Self {
        self.headers.forwarded = policy;
        self
    }

    /// What to do with path and method overrides such as `X-Original-URL` and
    /// `X-HTTP-Method-Override` (default [`OverrideHeaders::Drop`]). Keeping them is a risk:
    /// see [`OverrideHeaders::Keep`].
    ///
    /// ```
    /// use mka1_auth::outbound::forward::{ForwardLayer, OverrideHeaders};
    ///
    /// let request = || {
    ///     http::Request::get("/reports")
    ///         .header("X_HTTP_Method_Override", "DELETE")
    ///         .body(())
    ///         .unwrap()
    /// };
    /// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base").build()?;
    /// let onward = forward.onward_request(request()).unwrap();
    /// assert!(onward.headers().is_empty());
    ///
    /// let keeping = ForwardLayer::builder("http://127.0.0.1:9000/base")
    ///     .override_headers(OverrideHeaders::Keep)
    ///     .build()?;
    /// let onward = keeping.onward_request(request()).unwrap();
    /// assert_eq!(onward.headers()["x_http_method_override"], "DELETE");
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn override_headers(mut self, policy: OverrideHeaders) -> Self {
        self.headers.overrides = policy;
        self
    }

    /// What to do with the `Cookie` header (default [`ForwardCookies::Drop`]). The cookie
    /// the inbound layer reads its token from never goes onward.
    ///
    /// ```
    /// use mka1_auth::outbound::forward::{ForwardCookies, ForwardLayer};
    ///
    /// let request = || {
    ///     http::Request::get("/me")
    ///         .header("cookie", "theme=dark; lang=en")
    ///         .body(())
    ///         .unwrap()
    /// };
    /// let forward = ForwardLayer::builder("http://127.0.0.1:9000/base").build()?;
    /// let onward = forward.onward_request(request()).unwrap();
    /// assert!(onward.headers().get("cookie").is_none());
    ///
    /// // Behind `Mka1AuthLayer::cookie(CookieName::new("mka1_token")?)`, `mka1_token` would still go.
    /// let keeping = ForwardLayer::builder("http://127.0.0.1:9000/base")
    ///     .cookies(ForwardCookies::Keep)
    ///     .build()?;
    /// let onward = keeping.onward_request(request()).unwrap();
    /// assert_eq!(onward.headers()["cookie"], "theme=dark; lang=en");
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn cookies(mut self, policy: ForwardCookies) -> Self {
        self.headers.cookies = policy;
        self
    }

    /// The layer, once the base URL and the prefix to strip are checked: the base an `http`
    /// or `https` URL with a host, an optional port and an optional path prefix, and no user
    /// info, query or fragment; the prefix empty or a plain path starting with `/`.
    pub fn build(self) -> Result<ForwardLayer, ConfigError> {
        ForwardLayer::from_builder(self)
    }
}
