//! A local stand-in for MKA1's token service, for testing services that use `mka1-auth`.
//!
//! [`DevIssuer`] runs an HTTP/1 server on `127.0.0.1` (an ephemeral port, unless
//! [`DevIssuerBuilder::bind`] says otherwise) inside your tokio
//! runtime. It speaks the parts of MKA1 a downstream service meets:
//!
//! - `POST` [`EXCHANGE_TOKEN_PATH`] and the older [`LEGACY_EXCHANGE_TOKEN_PATH`] exchange the
//!   calling API key for a signed per-user JWT, validating the body as MKA1 documents it;
//! - the scoped API-key endpoints ([`SCOPED_API_KEY_PATH`] and its `list`, `update`,
//!   `regenerate` and `delete`) create and manage keys, as the official SDK's
//!   `auth.api_keys` calls them (see [API keys](#api-keys));
//! - `GET` [`JWKS_PATH`] serves its public keys. MKA1 publishes no JWKS path of its own; this
//!   one is the dev issuer's.
//!
//! Tokens can also be minted directly with [`DevIssuer::mint`], keys rotated with
//! [`DevIssuer::rotate_key`], API keys created and revoked with [`DevIssuer::create_key`] and
//! [`DevIssuer::revoke_key`], and `iat`/`exp` driven by an injected [`Clock`], so tests never
//! wait on the wall clock. The server stops when the handle is dropped.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth_dev_issuer::{DevIssuer, Mint};
//! use mka1_auth::Verifier;
//!
//! let issuer = DevIssuer::start().await?;
//! let verifier = Verifier::builder()
//!     .jwks(issuer.jwks_json()) // or `.jwks_url(issuer.jwks_url())`
//!     .audience("https://api.example.com")
//!     .issuer(issuer.issuer())
//!     .build()?;
//!
//! let token = issuer.mint(Mint::new("https://api.example.com", "user-42"));
//! let verified = verifier.verify(&token).await?;
//! assert_eq!(verified.subject(), "user-42");
//! assert!(verified.has_permission("agent:read"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # What the exchange endpoints check
//!
//! | input | rule | refusal |
//! |---|---|---|
//! | `Authorization` | exactly one `Bearer <api key>` naming a current key: not unknown, deleted, regenerated away or expired | 401 |
//! | body | a JSON object of at most [`MAX_BODY_BYTES`] bytes | 400 / 413 |
//! | `audience` | required; an absolute URI | 400 |
//! | `externalUserId` | required; 1-150 printable ASCII, not `*` (see [`validate_end_user_id`]) | 400 |
//! | `expiresIn` | optional JSON number (`300.0` too) in 300..=2592000; default 3600 | 400 |
//! | `permissions` | optional array of strings; omitted: all of the calling key's scopes | 400 |
//! | `permissions` | a subset of the calling key's scopes | 403 |
//!
//! Every refusal is JSON: `{"message": "...", "detail": [{"path": "...", "message": "..."}]}`,
//! with the list repeated under `details`, the name MKA1's SDKs read for the older path.
//! A valid exchange answers `200 {"token": "<jwt>"}`; the JWT's header has `alg`, `kid` and
//! `typ`, its claims `sub`, `aud`, `iss`, `iat`, `exp` and `permissions` (an array).
//!
//! # API keys
//!
//! The issuer starts with one key, the bootstrap key ([`DevIssuer::api_key`], id
//! [`BOOTSTRAP_KEY_ID`]). Its exchanges embed its scopes, the configured
//! [`permissions`](DevIssuerBuilder::permissions) and [`WRITE_APIKEYS_SCOPE`] (or the subset
//! asked for; any other gets 403). In managing keys it is the administrator and holds every
//! scope: it may grant any well-formed scope and update, regenerate or delete any key.
//! It stands for what the official SDK calls the session (a key is minted by "a session, or
//! a bearer key holding `write:apikeys`"; added scopes are bounded "by the caller's role
//! (and, for a key caller, the calling key's own scopes)"), and nothing in the SDK lets a
//! key manage the session. So no other key may update, regenerate or delete the bootstrap
//! key, whatever scopes it holds (403): one key can neither take it over (a regeneration
//! answers the new secret) nor disable it (narrow its scopes, expire or delete it). Only the
//! bootstrap key itself, or the handle ([`DevIssuer::regenerate_key`],
//! [`DevIssuer::revoke_key`]), does. More keys come from [`DevIssuerBuilder::key`],
//! [`DevIssuer::create_key`] or the endpoints below; each has scopes, an optional expiry on
//! the issuer's clock, and a secret the issuer keeps only as its SHA-256 digest (compared in
//! constant time, never logged). Every endpoint needs a calling key holding `write:apikeys`
//! (else 403) and answers refusals in the exchange's JSON shape, which the SDK's error
//! classes read (`message`).
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST` [`SCOPED_API_KEY_PATH`] | `name`, `teamId`, `scopes` required; `expiresIn` (seconds), `rateLimitEnabled`, `rateLimitTimeWindow`, `rateLimitMax`, `onBehalfOf` | 201, the key with its `key` (the secret, shown once) |
//! | `GET` [`SCOPED_API_KEY_LIST_PATH`] | `?teamId=&orgId=` narrow | 200, every key without a secret |
//! | `POST` [`SCOPED_API_KEY_UPDATE_PATH`] | `keyId`, `scopes` required; `name`, rate limits, `expiresAt` (RFC 3339 or `null`) | 200 `{id, scopes, userType, orgId, expiresAt}` |
//! | `POST` [`SCOPED_API_KEY_REGENERATE_PATH`] | `keyId` | 200 `{id, key, start}`; the old secret gets 401 at once |
//! | `POST` [`SCOPED_API_KEY_DELETE_PATH`] | `keyId` | 200 `{id, deleted: true}`; the key gets 401 at once |
//!
//! - **400** names every bad field: a missing `name`, `teamId` or `keyId`; `scopes` empty,
//!   not an array, or holding a string that is no scope ([`check_scope`]: two lowercase parts
//!   joined by `:`); an `expiresIn` that is not a whole number of seconds (1 s to 10 years);
//!   an `expiresAt` that is not a date-time.
//! - **403**: a key may grant only scopes it holds (on create, and for scopes an update
//!   adds; scopes already on the key may stay), and may regenerate or delete only keys whose
//!   every scope it holds (itself included). The bootstrap key holds them all, and no key
//!   but itself may update, regenerate or delete it.
//! - **404**: no key has the `keyId`.
//!
//! Every key belongs to one organization (`orgId` `dev-org`) and the user `dev-user` (or the
//! service account of `onBehalfOf`). Rate limits are stored and shown, not enforced.
//!
//! # Adding it
//!
//! A dev-dependency beside `mka1-auth`:
//!
//! ```toml
//! [dev-dependencies]
//! mka1-auth-dev-issuer = "0.1"
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[cfg(doc)]
use mka1_auth::claims::validate_end_user_id;
#[cfg(doc)]
use mka1_auth::Clock;
use mka1_auth::ConfigError;

mod api_keys;
mod builder;
mod exchange;
mod faults;
mod fields;
mod reply;
mod request;
mod rfc3339;
mod scoped;
mod server;
mod signing;
mod state;

use self::api_keys::NewKey;
pub use self::api_keys::{
    check_scope, ApiKeyInfo, ApiKeySpec, IssuedKey, BOOTSTRAP_KEY_ID, KEY_PREFIX, MAX_KEY_LIFETIME,
    WRITE_APIKEYS_SCOPE,
};
pub use self::builder::DevIssuerBuilder;
pub use self::faults::JwksFault;
pub use self::signing::SigningAlgorithm;
use self::state::IssuerState;
pub use mka1_auth::protocol::{
    DEFAULT_EXPIRES_IN, EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH, MAX_EXPIRES_IN,
    MIN_EXPIRES_IN,
};

/// Creating a scoped API key (`POST`), as the official SDK's `auth.api_keys.create` calls it.
pub const SCOPED_API_KEY_PATH: &str = "/api/v1/authentication/api-key/scoped";

/// Listing scoped API keys (`GET`, `?teamId=&orgId=`).
pub const SCOPED_API_KEY_LIST_PATH: &str = "/api/v1/authentication/api-key/scoped/list";

/// Updating a scoped API key's scopes, name, rate limit or expiry (`POST`).
pub const SCOPED_API_KEY_UPDATE_PATH: &str = "/api/v1/authentication/api-key/scoped/update";

/// Giving a scoped API key a new secret (`POST`); the old one stops working.
pub const SCOPED_API_KEY_REGENERATE_PATH: &str = "/api/v1/authentication/api-key/scoped/regenerate";

/// Deleting a scoped API key (`POST`).
pub const SCOPED_API_KEY_DELETE_PATH: &str = "/api/v1/authentication/api-key/scoped/delete";

/// Where the dev issuer serves its JWKS. MKA1 itself publishes no such path; this one is ours.
pub const JWKS_PATH: &str = "/api/v1/authentication/jwks";

/// The largest request body the endpoints read; larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The permissions the bootstrap key holds (besides [`WRITE_APIKEYS_SCOPE`]) and minted
/// tokens carry, unless [`DevIssuerBuilder::permissions`] says otherwise.
pub const DEFAULT_PERMISSIONS: [&str; 2] = ["agent:read", "agent:write"];

/// The `max-age` the JWKS is served with unless [`DevIssuerBuilder::jwks_max_age`] says
/// otherwise.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How long a rotated-out key stays in the JWKS unless
/// [`DevIssuerBuilder::rotation_grace`] says otherwise: the longest token lifetime, so every
/// token the old key signed stays verifiable until it expires.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(MAX_EXPIRES_IN);

/// A running local MKA1 stand-in. Dropping it stops the server.
///
/// See the [module docs](self) for what it serves.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth_dev_issuer::DevIssuer;
///
/// let issuer = DevIssuer::start().await?;
/// assert!(issuer.base_url().starts_with("http://127.0.0.1:"));
/// assert_eq!(issuer.jwks_url(), format!("{}/api/v1/authentication/jwks", issuer.base_url()));
/// assert_eq!(issuer.issuer(), issuer.base_url());
/// assert!(issuer.api_key().starts_with("mka1_dev_"));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct DevIssuer {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<IssuerState>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl DevIssuer {
    /// Settings for a dev issuer.
    pub fn builder() -> DevIssuerBuilder {
        DevIssuerBuilder::default()
    }

    /// Start a dev issuer with the default settings: EdDSA, a random bootstrap key holding
    /// [`DEFAULT_PERMISSIONS`] and [`WRITE_APIKEYS_SCOPE`], the system clock.
    pub async fn start() -> io::Result<DevIssuer> {
        DevIssuerBuilder::default().start().await
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (or the address given to [`DevIssuerBuilder::bind`]), without
    /// a trailing slash: the MKA1 base URL to give a client.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of the JWKS (see [`JWKS_PATH`]).
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.base_url)
    }

    /// The URL of the exchange-token endpoint (see [`EXCHANGE_TOKEN_PATH`]).
    pub fn exchange_token_url(&self) -> String {
        format!("{}{EXCHANGE_TOKEN_PATH}", self.base_url)
    }

    /// The `iss` claim of every token this issuer signs.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The bootstrap key's secret, as the issuer started: it holds [`permissions`] and
    /// [`WRITE_APIKEYS_SCOPE`], so it exchanges tokens and manages keys. Once the key is
    /// regenerated or deleted (id [`BOOTSTRAP_KEY_ID`]), this secret gets 401. Treat it as a
    /// secret in real setups; here it is a test value.
    ///
    /// [`permissions`]: Self::permissions
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The configured permissions, sorted: what the bootstrap key holds besides
    /// [`WRITE_APIKEYS_SCOPE`], and what [`mint`](Self::mint) puts in a token by default.
    pub fn permissions(&self) -> &[String] {
        &self.shared.permissions
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.shared.algorithm
    }

    /// The `kid` of the key that signs new tokens.
    pub fn current_kid(&self) -> String {
        self.shared.current_key().kid.clone()
    }

    /// The JWKS document the server serves right now, as JSON text: handy for a verifier
    /// with a static key set.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use mka1_auth_dev_issuer::DevIssuer;
    /// use mka1_auth::jwks::KeySet;
    ///
    /// let issuer = DevIssuer::start().await?;
    /// let set = KeySet::from_json(&issuer.jwks_json()).unwrap();
    /// assert!(set.get(&issuer.current_kid()).is_some());
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn jwks_json(&self) -> String {
        self.shared.jwks().to_string()
    }

    /// Sign a token directly, without HTTP.
    ///
    /// The token has the same shape as an exchanged one, but none of the exchange's input
    /// rules apply: tests can mint tokens a verifier must refuse (a `*` subject, a lifetime
    /// of zero, a foreign issuer through [`Mint::claim`]).
    ///
    /// # Panics
    ///
    /// Only if the system random source fails while signing (ES256 and RS256 use it).
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use mka1_auth_dev_issuer::{DevIssuer, Mint};
    ///
    /// let issuer = DevIssuer::start().await?;
    /// let token = issuer.mint(
    ///     Mint::new("https://api.example.com", "user-42")
    ///         .permissions(["agent:read"])
    ///         .expires_in(Duration::from_secs(600))
    ///         .claim("org", "acme"),
    /// );
    /// assert_eq!(token.split('.').count(), 3);
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn mint(&self, mint: Mint) -> String {
        let permissions = mint
            .permissions
            .as_deref()
            .unwrap_or(&self.shared.permissions);
        self.shared
            .issue(
                &mint.audience,
                &mint.subject,
                permissions,
                mint.expires_in.as_secs(),
                &mint.claims,
            )
            .expect("the system random source failed while signing")
    }

    /// Start signing with a fresh key (same algorithm, new random `kid`) and return its
    /// `kid`. The old key stays in the JWKS for the rotation grace period, measured on the
    /// issuer's clock, then disappears.
    ///
    /// # Panics
    ///
    /// Only if the system random source fails while generating the key.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use mka1_auth_dev_issuer::DevIssuer;
    ///
    /// let issuer = DevIssuer::start().await?;
    /// let old = issuer.current_kid();
    /// let new = issuer.rotate_key();
    /// assert_ne!(old, new);
    /// let jwks = issuer.jwks_json();
    /// assert!(jwks.contains(&old) && jwks.contains(&new));
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn rotate_key(&self) -> String {
        self.shared
            .rotate()
            .expect("the system random source failed while generating a key")
    }

    /// Create an API key without HTTP. Unlike the endpoint, any well-formed scopes may be
    /// given (the test is the administrator). The secret is random unless the spec fixes it.
    ///
    /// Fails when the spec breaks a rule: no scopes, a malformed scope ([`check_scope`]), a
    /// bad or already used secret, an empty or long name, a lifetime out of range.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use mka1_auth_dev_issuer::{ApiKeySpec, DevIssuer};
    ///
    /// let issuer = DevIssuer::start().await?;
    /// let key = issuer.create_key(ApiKeySpec::new(["orders:read"]).name("reports"))?;
    /// assert!(key.secret().starts_with("mka1_dev_"));
    /// assert!(issuer.keys().iter().any(|k| k.id() == key.id()));
    /// assert!(issuer.revoke_key(key.id()));
    /// assert!(!issuer.revoke_key(key.id()), "already gone");
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn create_key(&self, spec: ApiKeySpec) -> Result<IssuedKey, ConfigError> {
        let now = self.shared.clock.now_unix();
        let (key, secret) = NewKey::from_spec(spec, now)?;
        let (issued, _) = self.shared.api_keys.insert(key, None, secret)?;
        Ok(issued)
    }

    /// Delete the API key `id` (the bootstrap key too, [`BOOTSTRAP_KEY_ID`]): from now on
    /// its secret gets 401 on every endpoint. Tokens it already obtained stay valid until
    /// they expire, as at MKA1. `false` when no key has this id.
    pub fn revoke_key(&self, id: &str) -> bool {
        self.shared
            .api_keys
            .remove(id, |_| Ok::<_, Infallible>(()))
            .is_some()
    }

    /// Give the API key `id` a new random secret, and return it; the old secret gets 401
    /// from now on. `None` when no key has this id.
    ///
    /// # Panics
    ///
    /// Only if the system random source fails.
    pub fn regenerate_key(&self, id: &str) -> Option<IssuedKey> {
        let issued = self
            .shared
            .api_keys
            .regenerate(id, |_| Ok::<_, Infallible>(()))?;
        let Ok(issued) = issued;
        Some(issued.expect("the system random source failed while generating a secret"))
    }

    /// Every API key, the bootstrap key first, without secrets.
    pub fn keys(&self) -> Vec<ApiKeyInfo> {
        self.shared.api_keys.list()
    }

    /// **Test-only control**: make the JWKS endpoint answer 500 or hang (see [`JwksFault`]),
    /// or serve again with [`JwksFault::None`]. Requests held by [`JwksFault::Hang`] are
    /// answered as the new setting says once it changes, and released when the issuer stops.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use mka1_auth_dev_issuer::{DevIssuer, JwksFault};
    ///
    /// let issuer = DevIssuer::start().await?;
    /// let http = reqwest::Client::builder().no_proxy().build()?;
    /// issuer.set_jwks_fault(JwksFault::Error500);
    /// let answer = http.get(issuer.jwks_url()).send().await?;
    /// assert_eq!(answer.status(), 500);
    /// issuer.set_jwks_fault(JwksFault::None);
    /// assert_eq!(http.get(issuer.jwks_url()).send().await?.status(), 200);
    /// assert_eq!(issuer.jwks_requests(), 2);
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn set_jwks_fault(&self, fault: JwksFault) {
        self.shared.faults.set_jwks(fault);
    }

    /// The JWKS endpoint's current [`JwksFault`] setting.
    pub fn jwks_fault(&self) -> JwksFault {
        self.shared.faults.jwks()
    }

    /// How many requests the JWKS endpoint has received (answered, failed or held), to
    /// count a verifier's fetches in tests.
    pub fn jwks_requests(&self) -> u64 {
        self.shared.faults.jwks_requests()
    }

    /// Stop accepting connections, let in-flight requests finish, and wait until they have.
    ///
    /// Dropping the handle stops the server the same way without waiting.
    pub async fn shutdown(mut self) {
        // Held JWKS requests would keep the graceful shutdown waiting.
        self.shared.faults.set_jwks(JwksFault::None);
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.shared.faults.set_jwks(JwksFault::None);
        let _ = self.shutdown.send(true);
    }
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("base_url", &self.base_url)
            .field("issuer", &self.shared.issuer)
            .field("algorithm", &self.shared.algorithm)
            .field("api_key", &"<redacted>")
            .field("permissions", &self.shared.permissions)
            .field("api_keys", &self.shared.api_keys.list().len())
            .finish_non_exhaustive()
    }
}

/// What to put in a token minted with [`DevIssuer::mint`].
///
/// Defaults: the API key's permissions, a lifetime of [`DEFAULT_EXPIRES_IN`] seconds, no
/// extra claims.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth_dev_issuer::Mint;
///
/// let mint = Mint::new("https://api.example.com", "user-42")
///     .permissions(["agent:read"])
///     .expires_in(Duration::from_secs(300))
///     .claim("exp", 1); // extra claims replace the standard ones: an expired token
/// # let _ = mint;
/// ```
#[derive(Debug, Clone)]
#[must_use = "a `Mint` does nothing until passed to `DevIssuer::mint`"]
pub struct Mint {
    audience: String,
    subject: String,
    permissions: Option<Vec<String>>,
    expires_in: Duration,
    claims: Map<String, Value>,
}

impl Mint {
    /// A token for `subject` (the end-user id, `sub`) to present to `audience` (`aud`).
    pub fn new(audience: impl Into<String>, subject: impl Into<String>) -> Self {
        Mint {
            audience: audience.into(),
            subject: subject.into(),
            permissions: None,
            expires_in: Duration::from_secs(DEFAULT_EXPIRES_IN),
            claims: Map::new(),
        }
    }

    /// The permissions claim (any names; not checked against the API key's).
    pub fn permissions<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.permissions = Some(normalize(permissions.into_iter().map(Into::into).collect()));
        self
    }

    /// `exp` = `iat` + this (whole seconds).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = lifetime;
        self
    }

    /// Add a claim, or replace a standard one (`sub`, `aud`, `iss`, `iat`, `exp`,
    /// `permissions`).
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }
}

/// Sorted, without empties or duplicates.
fn normalize(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| !n.is_empty());
    names.sort_unstable();
    names.dedup();
    names
}
