//! [`DevIssuerBuilder`]: the dev issuer's settings, and starting it.

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::faults::Faults;
use super::server::serve;
use super::signing::{random_b64, KeyRing, SigningAlgorithm, SigningKey};
use super::state::IssuerState;
use super::{
    normalize, DevIssuer, DEFAULT_JWKS_MAX_AGE, DEFAULT_PERMISSIONS, DEFAULT_ROTATION_GRACE,
};
use crate::clock::{Clock, SharedClock, SystemClock};

/// Settings for a [`DevIssuer`]; start it with [`DevIssuerBuilder::start`].
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// use mka1_auth::dev_issuer::{DevIssuer, SigningAlgorithm};
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
}

impl Default for DevIssuerBuilder {
    fn default() -> Self {
        DevIssuerBuilder {
            api_key: None,
            permissions: DEFAULT_PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            algorithm: SigningAlgorithm::default(),
            clock: Arc::new(SystemClock),
            issuer: None,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
            rotation_grace: DEFAULT_ROTATION_GRACE,
        }
    }
}

impl DevIssuerBuilder {
    /// The API key the exchange endpoints accept. Default: a random `mka1_dev_...` key.
    ///
    /// It must be printable ASCII without spaces, as it travels in an `Authorization` header;
    /// otherwise [`start`](Self::start) fails.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The permissions the API key holds: exchanged tokens carry these, or the subset the
    /// request asks for. Default: [`DEFAULT_PERMISSIONS`]. Empty names are dropped.
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
    /// on. Default: [`SystemClock`].
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

    /// Generate the first key, bind `127.0.0.1:0` and start serving on the current tokio
    /// runtime.
    ///
    /// Fails when the socket cannot be bound, the API key is unusable, or no key can be
    /// generated.
    pub async fn start(self) -> io::Result<DevIssuer> {
        let rng = SystemRandom::new();
        let api_key = match self.api_key {
            Some(key) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()) => key,
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the api key must be non-empty printable ascii without spaces",
                ))
            }
            None => format!("mka1_dev_{}", random_b64(&rng, 24).map_err(no_randomness)?),
        };
        let key = SigningKey::generate(self.algorithm, &rng).map_err(no_randomness)?;

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(IssuerState {
            api_key,
            issuer: self.issuer.unwrap_or_else(|| base_url.clone()),
            permissions: self.permissions,
            algorithm: self.algorithm,
            clock: self.clock,
            jwks_max_age: self.jwks_max_age,
            rotation_grace: self.rotation_grace,
            rng,
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

fn no_randomness(_: Unspecified) -> io::Error {
    io::Error::other("the system random source failed while generating keys")
}
