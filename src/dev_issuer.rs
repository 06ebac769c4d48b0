//! A local stand-in for MKA1's token service (feature `dev-issuer`), for tests and demos.
//!
//! [`DevIssuer`] runs an HTTP/1 server on `127.0.0.1` (an ephemeral port, unless
//! [`DevIssuerBuilder::bind`] says otherwise) inside your tokio
//! runtime. It speaks the parts of MKA1 a downstream service meets:
//!
//! - `POST` [`EXCHANGE_TOKEN_PATH`] and the older [`LEGACY_EXCHANGE_TOKEN_PATH`] exchange its
//!   API key for a signed per-user JWT, validating the body as MKA1 documents it;
//! - `GET` [`JWKS_PATH`] serves its public keys. MKA1 publishes no JWKS path of its own; this
//!   one is the dev issuer's.
//!
//! Tokens can also be minted directly with [`DevIssuer::mint`], keys rotated with
//! [`DevIssuer::rotate_key`], and `iat`/`exp` driven by an injected [`Clock`], so tests never
//! wait on the wall clock. The server stops when the handle is dropped.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth::dev_issuer::{DevIssuer, Mint};
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
//! | `Authorization` | exactly one `Bearer <api key>` naming this issuer's key | 401 |
//! | body | a JSON object of at most [`MAX_BODY_BYTES`] bytes | 400 / 413 |
//! | `audience` | required; an absolute URI | 400 |
//! | `externalUserId` | required; 1-150 printable ASCII, not `*` (see [`validate_end_user_id`]) | 400 |
//! | `expiresIn` | optional JSON number (`300.0` too) in 300..=2592000; default 3600 | 400 |
//! | `permissions` | optional array of strings | 400 |
//! | `permissions` | a subset of the key's permissions | 403 |
//!
//! Every refusal is JSON: `{"message": "...", "detail": [{"path": "...", "message": "..."}]}`,
//! with the list repeated under `details`, the name MKA1's SDKs read for the older path.
//! A valid exchange answers `200 {"token": "<jwt>"}`; the JWT's header has `alg`, `kid` and
//! `typ`, its claims `sub`, `aud`, `iss`, `iat`, `exp` and `permissions` (an array).

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::claims::validate_end_user_id;
use crate::clock::{Clock, SharedClock, SystemClock};

pub use crate::protocol::{
    DEFAULT_EXPIRES_IN, EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH, MAX_EXPIRES_IN,
    MIN_EXPIRES_IN,
};

/// Where the dev issuer serves its JWKS. MKA1 itself publishes no such path; this one is ours.
pub const JWKS_PATH: &str = "/api/v1/authentication/jwks";

/// The largest request body the exchange reads; larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The permissions an API key holds unless [`DevIssuerBuilder::permissions`] says otherwise.
pub const DEFAULT_PERMISSIONS: [&str; 2] = ["agent:read", "agent:write"];

/// The `max-age` the JWKS is served with unless [`DevIssuerBuilder::jwks_max_age`] says
/// otherwise.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How long a rotated-out key stays in the JWKS unless
/// [`DevIssuerBuilder::rotation_grace`] says otherwise: the longest token lifetime, so every
/// token the old key signed stays verifiable until it expires.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(MAX_EXPIRES_IN);

/// How long a connection may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The algorithm the dev issuer signs with.
///
/// ```
/// use mka1_auth::dev_issuer::SigningAlgorithm;
/// use mka1_auth::Algorithm;
///
/// assert_eq!(SigningAlgorithm::default(), SigningAlgorithm::EdDSA);
/// assert_eq!(SigningAlgorithm::ES256.algorithm(), Algorithm::ES256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// Ed25519 (`EdDSA`), MKA1's default.
    #[default]
    EdDSA,
    /// ECDSA over P-256 with SHA-256 (`ES256`).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key (`RS256`).
    RS256,
}

impl SigningAlgorithm {
    /// The JOSE algorithm, as a verifier names it.
    pub fn algorithm(self) -> crate::jwks::Algorithm {
        match self {
            SigningAlgorithm::EdDSA => crate::jwks::Algorithm::EdDSA,
            SigningAlgorithm::ES256 => crate::jwks::Algorithm::ES256,
            SigningAlgorithm::RS256 => crate::jwks::Algorithm::RS256,
        }
    }

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        self.algorithm().as_str()
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes, base64url-encoded.
fn random_b64(rng: &SystemRandom, len: usize) -> Result<String, Unspecified> {
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes)?;
    Ok(b64(bytes))
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its public JWK and random `kid`.
struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    jwk: Value,
}

impl SigningKey {
    fn generate(algorithm: SigningAlgorithm, rng: &SystemRandom) -> Result<Self, Unspecified> {
        let kid = random_b64(rng, 12)?;
        let (pair, mut jwk) = match algorithm {
            SigningAlgorithm::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| Unspecified)?;
                let x = b64(pair.public_key().as_ref());
                (
                    Pair::Ed(pair),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
            SigningAlgorithm::ES256 => {
                let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, rng)?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).map_err(|_| Unspecified)?;
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
                (
                    Pair::Ec(pair),
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                )
            }
            SigningAlgorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)?;
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let (n, e) = (b64(&public.n), b64(&public.e));
                (Pair::Rsa(pair), json!({"kty": "RSA", "n": n, "e": e}))
            }
        };
        jwk["kid"] = Value::from(kid.as_str());
        jwk["alg"] = Value::from(algorithm.name());
        Ok(SigningKey {
            kid,
            algorithm,
            pair,
            jwk,
        })
    }

    /// A compact JWS over `claims` with the header `{alg, kid, typ}`.
    fn sign(&self, rng: &SystemRandom, claims: &Value) -> Result<String, Unspecified> {
        let header = json!({"alg": self.algorithm.name(), "kid": self.kid, "typ": "JWT"});
        let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = match &self.pair {
            Pair::Ed(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
            Pair::Ec(pair) => pair.sign(rng, message.as_bytes())?.as_ref().to_vec(),
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message.as_bytes(), &mut signature)?;
                signature
            }
        };
        Ok(format!("{message}.{}", b64(signature)))
    }
}

/// The signing key and the rotated-out keys still listed in the JWKS.
struct KeyRing {
    current: Arc<SigningKey>,
    /// Old keys with the Unix time until which they stay listed.
    retired: Vec<(Arc<SigningKey>, u64)>,
}

/// What the server and the handle share.
struct IssuerState {
    api_key: String,
    issuer: String,
    permissions: Vec<String>,
    algorithm: SigningAlgorithm,
    clock: SharedClock,
    jwks_max_age: Duration,
    rotation_grace: Duration,
    rng: SystemRandom,
    keys: Mutex<KeyRing>,
}

impl IssuerState {
    fn keys(&self) -> std::sync::MutexGuard<'_, KeyRing> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.keys().current)
    }

    /// The JWKS document: the signing key first, then old keys still in their grace period.
    fn jwks(&self) -> Value {
        let now = self.clock.now_unix();
        let mut ring = self.keys();
        ring.retired.retain(|(_, until)| *until > now);
        let keys: Vec<Value> = std::iter::once(&ring.current)
            .chain(ring.retired.iter().map(|(key, _)| key))
            .map(|key| key.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    fn rotate(&self) -> Result<String, Unspecified> {
        let fresh = Arc::new(SigningKey::generate(self.algorithm, &self.rng)?);
        let until = self
            .clock
            .now_unix()
            .saturating_add(self.rotation_grace.as_secs());
        let kid = fresh.kid.clone();
        let mut ring = self.keys();
        let old = std::mem::replace(&mut ring.current, fresh);
        ring.retired.push((old, until));
        Ok(kid)
    }

    /// Sign the claims MKA1 puts in an exchanged token, plus any extra ones (which win).
    fn issue(
        &self,
        audience: &str,
        subject: &str,
        permissions: &[String],
        lifetime_secs: u64,
        extra: &Map<String, Value>,
    ) -> Result<String, Unspecified> {
        let now = self.clock.now_unix();
        let mut claims = json!({
            "sub": subject,
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "exp": now.saturating_add(lifetime_secs),
            "permissions": permissions,
        });
        if let Value::Object(map) = &mut claims {
            map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.current_key().sign(&self.rng, &claims)
    }
}

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
    bind: SocketAddr,
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
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
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

    /// The `iss` claim. Default: the issuer's base URL ([`DevIssuer::base_url`]),
    /// `http://127.0.0.1:<port>`.
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

    /// The address to listen on. Default: `127.0.0.1:0` (loopback, an ephemeral port).
    ///
    /// Nothing the dev issuer serves is secret, but its API key mints tokens: bind a
    /// non-loopback address only where that is what you want (a test network of containers).
    /// When the address is unspecified (`0.0.0.0`, `[::]`), [`DevIssuer::base_url`] names
    /// the loopback address of the same family, which is where this machine reaches it.
    ///
    /// ```
    /// # async fn demo() -> std::io::Result<()> {
    /// use mka1_auth::dev_issuer::DevIssuer;
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
            keys: Mutex::new(KeyRing {
                current: Arc::new(key),
                retired: Vec::new(),
            }),
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

/// Sorted, without empties or duplicates.
fn normalize(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| !n.is_empty());
    names.sort_unstable();
    names.dedup();
    names
}

/// A running local MKA1 stand-in. Dropping it stops the server.
///
/// See the [module docs](self) for what it serves.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::dev_issuer::DevIssuer;
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

    /// Start a dev issuer with the default settings: EdDSA, a random API key holding
    /// [`DEFAULT_PERMISSIONS`], the system clock.
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

    /// The API key the exchange endpoints accept. Treat it as a secret in real setups; here
    /// it is a test value.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The API key's permissions, sorted.
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
    /// use mka1_auth::dev_issuer::DevIssuer;
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
    /// use mka1_auth::dev_issuer::{DevIssuer, Mint};
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
    /// use mka1_auth::dev_issuer::DevIssuer;
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

    /// Stop accepting connections, let in-flight requests finish, and wait until they have.
    ///
    /// Dropping the handle stops the server the same way without waiting.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
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
/// use mka1_auth::dev_issuer::Mint;
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

// ----------------------------------------------------------------------------------------
// The server.

async fn serve(listener: TcpListener, shared: Arc<IssuerState>, mut signal: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared), signal.clone()));
                }
                Err(error) => tracing::debug!(%error, "dev issuer could not accept a connection"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut signal) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    tracing::debug!("dev issuer stopped");
}

/// Resolves once the handle asks the server to stop (or is gone).
async fn stopped(signal: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, never held across an await.
    let _ = signal.wait_for(|stop| *stop).await;
}

async fn connection(
    stream: TcpStream,
    shared: Arc<IssuerState>,
    mut signal: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(&shared, request).await) }
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut signal) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "dev issuer connection ended with an error");
    }
}

async fn route(shared: &IssuerState, request: Request<Incoming>) -> Response<String> {
    match request.uri().path() {
        EXCHANGE_TOKEN_PATH | LEGACY_EXCHANGE_TOKEN_PATH => {
            if request.method() == Method::POST {
                exchange(shared, request).await
            } else {
                method_not_allowed("POST")
            }
        }
        JWKS_PATH => match *request.method() {
            Method::GET | Method::HEAD => {
                let max_age = shared.jwks_max_age.as_secs();
                let mut response = json_response(StatusCode::OK, &shared.jwks());
                if let Ok(value) = HeaderValue::try_from(format!("public, max-age={max_age}")) {
                    response.headers_mut().insert(header::CACHE_CONTROL, value);
                }
                response
            }
            _ => method_not_allowed("GET, HEAD"),
        },
        _ => refusal(
            StatusCode::NOT_FOUND,
            "no such endpoint on the dev issuer",
            Vec::new(),
        ),
    }
}

async fn exchange(shared: &IssuerState, request: Request<Incoming>) -> Response<String> {
    if let Err(message) = check_api_key(&shared.api_key, request.headers()) {
        return unauthorized(message);
    }
    let declared_too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY_BYTES as u64);
    if declared_too_large {
        return body_too_large();
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return body_too_large(),
        Err(_) => {
            return bad_request(vec![Issue::new("", "the request body could not be read")]);
        }
    };
    let exchange = match ExchangeRequest::parse(&body) {
        Ok(exchange) => exchange,
        Err(issues) => return bad_request(issues),
    };
    let permissions = match granted_permissions(&shared.permissions, exchange.permissions) {
        Ok(permissions) => permissions,
        Err(missing) => {
            return refusal(
                StatusCode::FORBIDDEN,
                "the requested permissions are not a subset of the api key's",
                missing,
            )
        }
    };
    match shared.issue(
        &exchange.audience,
        &exchange.external_user_id,
        &permissions,
        exchange.expires_in,
        &Map::new(),
    ) {
        Ok(token) => {
            let mut response = json_response(StatusCode::OK, &json!({ "token": token }));
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(Unspecified) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the token could not be signed",
            Vec::new(),
        ),
    }
}

/// The permissions an exchanged token carries: the API key's, or the subset the request
/// asks for; else the requested ones the key does not hold.
fn granted_permissions(
    held: &[String],
    requested: Option<Vec<String>>,
) -> Result<Vec<String>, Vec<Issue>> {
    let Some(requested) = requested else {
        return Ok(held.to_vec());
    };
    let missing: Vec<Issue> = requested
        .iter()
        .enumerate()
        .filter(|(_, p)| held.binary_search(p).is_err())
        .map(|(i, p)| {
            Issue::new(
                format!("permissions.{i}"),
                format!("`{p}` is not granted to this api key"),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(normalize(requested))
}

/// `Ok` when the request carries exactly one `Authorization: Bearer <the api key>`; else why
/// not.
fn check_api_key(api_key: &str, headers: &HeaderMap) -> Result<(), &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err("no api key was presented"),
        (Some(_), Some(_)) => return Err("more than one authorization header"),
        (Some(value), None) => value,
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim_matches(' '))
        .ok_or("the authorization header is not `Bearer <api key>`")?;
    verify_slices_are_equal(presented.as_bytes(), api_key.as_bytes())
        .map_err(|_| "the api key is not valid")
}

fn unauthorized(message: &'static str) -> Response<String> {
    let mut response = refusal(
        StatusCode::UNAUTHORIZED,
        message,
        vec![Issue::new("authorization", message)],
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A valid exchange request body.
struct ExchangeRequest {
    audience: String,
    external_user_id: String,
    expires_in: u64,
    permissions: Option<Vec<String>>,
}

impl ExchangeRequest {
    /// Check every field, reporting every problem at once. Unknown fields are ignored.
    fn parse(body: &[u8]) -> Result<ExchangeRequest, Vec<Issue>> {
        let mut fields = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(vec![Issue::new("", "the body must be a json object")]),
            Err(_) => return Err(vec![Issue::new("", "the body is not valid json")]),
        };
        let mut issues = Vec::new();
        let audience = audience_field(fields.remove("audience"), &mut issues);
        let external_user_id = external_user_id_field(fields.remove("externalUserId"), &mut issues);
        let expires_in = expires_in_field(fields.remove("expiresIn"), &mut issues);
        let permissions = permissions_field(fields.remove("permissions"), &mut issues);
        match (audience, external_user_id) {
            (Some(audience), Some(external_user_id)) if issues.is_empty() => Ok(ExchangeRequest {
                audience,
                external_user_id,
                expires_in,
                permissions,
            }),
            _ => Err(issues),
        }
    }
}

/// `audience`: required, an absolute URI.
fn audience_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<String> {
    match value {
        Some(Value::String(audience)) if is_absolute_uri(&audience) => Some(audience),
        Some(Value::String(_)) => {
            issues.push(Issue::new("audience", "must be an absolute uri"));
            None
        }
        Some(_) => {
            issues.push(Issue::new("audience", "expected a string"));
            None
        }
        None => {
            issues.push(Issue::new("audience", "required"));
            None
        }
    }
}

/// `externalUserId`: required, a valid end-user id ([`validate_end_user_id`]).
fn external_user_id_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<String> {
    match value {
        Some(Value::String(id)) => match validate_end_user_id(&id) {
            Ok(()) => Some(id),
            Err(error) => {
                let reason = error.detail().unwrap_or("not a valid end-user id");
                issues.push(Issue::new(
                    "externalUserId",
                    format!("must be 1-150 printable ascii characters and not `*`: {reason}"),
                ));
                None
            }
        },
        Some(_) => {
            issues.push(Issue::new("externalUserId", "expected a string"));
            None
        }
        None => {
            issues.push(Issue::new("externalUserId", "required"));
            None
        }
    }
}

/// `expiresIn`: optional, a number of seconds in range; [`DEFAULT_EXPIRES_IN`] when absent.
fn expires_in_field(value: Option<Value>, issues: &mut Vec<Issue>) -> u64 {
    let range = format!("must be between {MIN_EXPIRES_IN} and {MAX_EXPIRES_IN} seconds");
    match value {
        None => DEFAULT_EXPIRES_IN,
        Some(Value::Number(n)) => match n.as_f64() {
            // Whole seconds: 300.0 (as the SDKs send it) is 300; 300.5 is 300 too.
            Some(secs) if (MIN_EXPIRES_IN as f64..=MAX_EXPIRES_IN as f64).contains(&secs) => {
                secs as u64
            }
            _ => {
                issues.push(Issue::new("expiresIn", range));
                DEFAULT_EXPIRES_IN
            }
        },
        Some(_) => {
            issues.push(Issue::new("expiresIn", "expected a number"));
            DEFAULT_EXPIRES_IN
        }
    }
}

/// `permissions`: optional, an array of non-empty strings.
fn permissions_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<Vec<String>> {
    match value {
        None => None,
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(name) if !name.is_empty() => names.push(name),
                    _ => issues.push(Issue::new(
                        format!("permissions.{i}"),
                        "expected a non-empty string",
                    )),
                }
            }
            Some(names)
        }
        Some(_) => {
            issues.push(Issue::new("permissions", "expected an array of strings"));
            None
        }
    }
}

/// An absolute URI by RFC 3986's outline: a scheme, `:`, something after it (a non-empty
/// authority when it starts with `//`), printable ASCII only.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = match rest.strip_prefix("//") {
        Some(after) => after
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|authority| !authority.is_empty()),
        None => !rest.is_empty(),
    };
    scheme_ok && authority_ok && s.len() <= 2048 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// One problem with a request, MKA1 style: a dot-path into the body and what is wrong there.
struct Issue {
    path: String,
    message: String,
}

impl Issue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error response: `{"message", "detail": [{path, message}], "details": (the same)}`.
fn refusal(status: StatusCode, message: &str, issues: Vec<Issue>) -> Response<String> {
    let detail: Vec<Value> = issues
        .into_iter()
        .map(|issue| json!({"path": issue.path, "message": issue.message}))
        .collect();
    json_response(
        status,
        &json!({"message": message, "detail": detail, "details": detail}),
    )
}

fn bad_request(issues: Vec<Issue>) -> Response<String> {
    refusal(StatusCode::BAD_REQUEST, "invalid request body", issues)
}

fn body_too_large() -> Response<String> {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
        vec![Issue::new(
            "",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        )],
    )
}

fn method_not_allowed(allow: &'static str) -> Response<String> {
    let mut response = refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
        Vec::new(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(body: &str) -> Vec<(String, String)> {
        match ExchangeRequest::parse(body.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.into_iter().map(|i| (i.path, i.message)).collect(),
        }
    }

    fn paths_of(body: &str) -> Vec<String> {
        issues_of(body).into_iter().map(|(path, _)| path).collect()
    }

    #[test]
    fn absolute_uris() {
        for ok in [
            "https://api.example.com",
            "http://127.0.0.1:8080/v1?x=1",
            "urn:mka1:service",
        ] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "api.example.com",
            "/relative",
            "https://",
            "https:",
            "1http://x",
            "https://exa mple.com",
            "https://caf\u{e9}.example",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
        assert!(!is_absolute_uri(&format!("https://{}", "a".repeat(2048))));
    }

    #[test]
    fn parses_a_full_request() {
        let r = ExchangeRequest::parse(
            br#"{"audience":"https://a.example","externalUserId":"u-1","expiresIn":300.0,
                 "permissions":["agent:read"],"unknown":true}"#,
        )
        .unwrap_or_else(|_| panic!("refused"));
        assert_eq!(r.audience, "https://a.example");
        assert_eq!(r.external_user_id, "u-1");
        assert_eq!(r.expires_in, 300);
        assert_eq!(r.permissions, Some(vec!["agent:read".to_string()]));
    }

    #[test]
    fn expires_in_bounds() {
        let body =
            |e: &str| format!(r#"{{"audience":"urn:a","externalUserId":"u","expiresIn":{e}}}"#);
        for ok in ["300", "300.0", "2592000", "2592000.0", "3600.9"] {
            assert!(issues_of(&body(ok)).is_empty(), "{ok}");
        }
        for bad in [
            "299",
            "299.99",
            "2592000.5",
            "2592001",
            "-1",
            "1e300",
            "\"3600\"",
            "null",
        ] {
            assert_eq!(paths_of(&body(bad)), ["expiresIn"], "{bad}");
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        assert_eq!(
            paths_of(r#"{"expiresIn":1,"permissions":["a",2,""]}"#),
            [
                "audience",
                "externalUserId",
                "expiresIn",
                "permissions.1",
                "permissions.2"
            ]
        );
        assert_eq!(paths_of("[]"), [""]);
        assert_eq!(paths_of("{"), [""]);
        assert_eq!(paths_of(""), [""]);
    }

    #[test]
    fn keys_sign_what_their_jwks_entry_verifies() {
        let rng = SystemRandom::new();
        for alg in [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
        ] {
            let key = SigningKey::generate(alg, &rng).unwrap();
            assert!(key.jwk.get("use").is_none());
            let set =
                crate::jwks::KeySet::from_json(&json!({"keys": [key.jwk]}).to_string()).unwrap();
            let public = set.get(&key.kid).expect("key loads");
            let token = key.sign(&rng, &json!({"sub": "u"})).unwrap();
            let (signed, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert!(public.verify(alg.algorithm(), signed.as_bytes(), &signature));
            assert!(!public.verify(alg.algorithm(), b"other", &signature));
        }
    }
}
