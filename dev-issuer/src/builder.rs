//! [`DevIssuerBuilder`]: the dev issuer's settings, and starting it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::api_keys::{
    check_secret, ApiKeySpec, KeyStore, NewKey, Owner, RateLimit, BOOTSTRAP_KEY_ID,
    WRITE_APIKEYS_SCOPE,
};
use super::faults::Faults;
use super::server::serve;
use super::signing::{KeyRing, SigningAlgorithm, SigningKey};
use super::state::IssuerState;
use super::{
    normalize, DevIssuer, DEFAULT_JWKS_MAX_AGE, DEFAULT_PERMISSIONS, DEFAULT_ROTATION_GRACE,
};
use crate::state::SharedClock;
use mka1_auth::clock::Clock;
use mka1_auth::ConfigError;

/// Settings for a [`DevIssuer`]; start it with [`DevIssuerBuilder::start`].
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// use mka1_auth_dev_issuer::{DevIssuer, SigningAlgorithm};
/// use mka1_auth::ManualClock;
///
/// let clock = ManualClock::at_unix(1_800_000_000);
/// let issuer = DevIssuer::builder()
///     .algorithm(SigningAlgorithm::ES256)
///     .api_key("my-test-key")
///     .permissions(["agent:read", "files:write"])
///     .clock(clock.clone())
///     .rotation_grace(Duration::from_secs(600))
///     .start()
///     .await?;
/// assert_eq!(issuer.api_key(), "my-test-key");
/// assert_eq!(issuer.algorithm(), SigningAlgorithm::ES256);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct DevIssuerBuilder {
    api_key: Option<String>,
    permissions: Vec<String>,
    algorithm: SigningAlgorithm,
    clock: SharedClock,
    issuer: Option<String>,
    jwks_max_age: Duration,
    rotation_grace: Duration,
    bind: SocketAddr,
    keys: Vec<ApiKeySpec>,
}

impl Default for DevIssuerBuilder {
    fn default() -> Self {
        DevIssuerBuilder {
            api_key: None,
            permissions: DEFAULT_PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            algorithm: SigningAlgorithm::default(),
            clock: Arc::new(std::time::SystemTime::now),
            issuer: None,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            rotation_grace: DEFAULT_ROTATION_GRACE,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            keys: Vec::new(),
        }
    }
}

impl DevIssuerBuilder {
    /// The bootstrap API key's secret. Default: a random `mka1_dev_...` key.
    ///
    /// The bootstrap key (id [`BOOTSTRAP_KEY_ID`]) holds the [`permissions`](Self::permissions)
    /// and [`WRITE_APIKEYS_SCOPE`], so it can exchange tokens and manage keys; as the
    /// administrator it may grant any scope to the keys it creates. Its
    /// secret must be 1-512 bytes of printable ASCII without spaces, as it travels in an
    /// `Authorization` header; otherwise [`start`](Self::start) fails.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The permissions the bootstrap key holds besides [`WRITE_APIKEYS_SCOPE`], and that
    /// [`DevIssuer::mint`] puts in tokens by default. An exchange with the bootstrap key
    /// embeds all of its scopes, or the subset the request asks for. Default:
    /// [`DEFAULT_PERMISSIONS`]. Empty names are dropped.
    pub fn permissions<I, P>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.permissions = normalize(permissions.into_iter().map(Into::into).collect());
        self
    }

    /// The signing algorithm. Default: EdDSA (Ed25519), as MKA1.
    pub fn algorithm(mut self, algorithm: SigningAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Where `iat` and `exp` come from, and the clock rotation grace periods are measured
    /// on. Default: the system clock (`SystemTime::now`).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The `iss` claim. Default: the issuer's base URL, `http://127.0.0.1:<port>`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `Cache-Control: max-age` the JWKS is served with. Default: [`DEFAULT_JWKS_MAX_AGE`].
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// How long [`DevIssuer::rotate_key`] keeps the old key in the JWKS. Default:
    /// [`DEFAULT_ROTATION_GRACE`].
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// Another API key, created at start beside the bootstrap key. It needs a fixed secret
    /// ([`ApiKeySpec::secret`]), as the issuer shows secrets only once; find its id with
    /// [`DevIssuer::keys`]. A spec that breaks a rule makes [`start`](Self::start) fail.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use mka1_auth_dev_issuer::{ApiKeySpec, DevIssuer};
    ///
    /// let issuer = DevIssuer::builder()
    ///     .key(ApiKeySpec::new(["agent:read"]).name("reader").secret("reader-key"))
    ///     .start()
    ///     .await?;
    /// let reader = issuer.keys().into_iter().find(|k| k.name() == Some("reader")).unwrap();
    /// assert_eq!(reader.scopes(), ["agent:read"]);
    /// assert!(issuer.revoke_key(reader.id()));
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn key(mut self, spec: ApiKeySpec) -> Self {
        self.keys.push(spec);
        self
    }

    /// The address to listen on. Default: `127.0.0.1:0` (loopback, an ephemeral port).
    ///
    /// Nothing the dev issuer serves is secret, but its API key mints tokens: bind a
    /// non-loopback address only where that is what you want (a test network of containers).
    /// When the address is unspecified (`0.0.0.0`, `[::]`), [`DevIssuer::base_url`] names
    /// the loopback address of the same family, which is where this machine reaches it.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use mka1_auth_dev_issuer::DevIssuer;
    ///
    /// let issuer = DevIssuer::builder().bind("0.0.0.0:0".parse().unwrap()).start().await?;
    /// assert!(issuer.local_addr().ip().is_unspecified());
    /// assert!(issuer.base_url().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Generate the first key, bind the [`bind`](Self::bind) address (default
    /// `127.0.0.1:0`) and start serving on the current tokio runtime.
    ///
    /// Fails when the socket cannot be bound, an API key is unusable, or no key can be
    /// generated.
    pub async fn start(self) -> io::Result<DevIssuer> {
        let rng = SystemRandom::new();
        let (api_key, api_keys) = self.key_store()?;
        let key = SigningKey::generate(self.algorithm, &rng).map_err(no_randomness)?;

        let listener = TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{}", reachable(addr));
        let shared = Arc::new(IssuerState {
            api_key,
            issuer: self.issuer.unwrap_or_else(|| base_url.clone()),
            permissions: self.permissions,
            algorithm: self.algorithm,
            clock: self.clock,
            jwks_max_age: self.jwks_max_age,
            rotation_grace: self.rotation_grace,
            rng,
            api_keys,
            keys: Mutex::new(KeyRing {
                current: Arc::new(key),
                retired: Vec::new(),
            }),
            faults: Faults::new(),
        });
        let (shutdown, signal) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::clone(&shared), signal));
        tracing::debug!(%addr, "dev issuer listening");
        Ok(DevIssuer {
            addr,
            base_url,
            shared,
            shutdown,
            server: Some(server),
        })
    }
}

impl DevIssuerBuilder {
    /// The bootstrap key's secret, and a store holding it and the builder's other keys.
    fn key_store(&self) -> io::Result<(String, KeyStore)> {
        let store = KeyStore::new();
        let invalid = |error: ConfigError| io::Error::new(io::ErrorKind::InvalidInput, error);
        if let Some(secret) = &self.api_key {
            check_secret(secret).map_err(invalid)?;
        }
        let mut scopes = self.permissions.clone();
        scopes.push(WRITE_APIKEYS_SCOPE.to_owned());
        let bootstrap = NewKey {
            scopes,
            name: Some("bootstrap".into()),
            team_id: None,
            expires_at: None,
            owner: Owner::default(),
            rate_limit: RateLimit::default(),
        };
        let (issued, _) = store
            .insert(bootstrap, Some(BOOTSTRAP_KEY_ID), self.api_key.clone())
            .map_err(invalid)?;
        let now = self.clock.now_unix();
        for spec in &self.keys {
            let (key, secret) = NewKey::from_spec(spec.clone(), now).map_err(invalid)?;
            let Some(secret) = secret else {
                return Err(invalid(ConfigError::invalid_setting(
                    "secret",
                    "a key given to the builder needs a fixed secret",
                )));
            };
            store.insert(key, None, Some(secret)).map_err(invalid)?;
        }
        Ok((issued.secret().to_owned(), store))
    }
}

/// Where this machine reaches a server listening on `addr`: an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on the loopback address of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

fn no_randomness(_: Unspecified) -> io::Error {
    io::Error::other("the system random source failed while generating keys")
}
