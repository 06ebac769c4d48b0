//! Remote JWKS behaviour against a JWKS server on 127.0.0.1 with a request counter and
//! switchable faults. Freshness, cooldown and stale windows move with a `ManualClock`; the
//! only real waits are for the local server's I/O (and, in the hanging-endpoint tests, a
//! fetch timeout of a few hundred milliseconds).
#![cfg(feature = "remote")]

use crate::common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use http_body::{Body, Frame, SizeHint};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mka1_auth::jwks::remote::JwksProbe;
use mka1_auth::jwks::SkipReason;
use mka1_auth::{
    Algorithm, Clock, ConfigErrorKind, Error, ErrorKind, ManualClock, Verifier, VerifierBuilder,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

// ---------------------------------------------------------------------------------------
// The JWKS server.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Serve the document.
    Serve,
    /// Serve the document once the test releases a permit.
    Hold,
    /// Close connections without answering.
    Down,
    /// Answer 500.
    Error500,
    /// Accept the request and never answer.
    Hang,
    /// A valid document padded past 64 KiB, with a `Content-Length`.
    Oversized,
    /// The same, chunked, with no length announced.
    OversizedChunked,
    /// Answer 302 with the location set by [`JwksServer::redirect_to`], except on `/moved`,
    /// which serves the document.
    Redirect,
    /// A truncated JSON body.
    Malformed,
    /// An HTML error page with status 200.
    Html,
    /// `{"keys": []}`.
    Empty,
}

struct ServerState {
    addr: SocketAddr,
    mode: Mutex<Mode>,
    document: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    requests: AtomicUsize,
    connections: AtomicUsize,
    hosts: Mutex<Vec<String>>,
    /// Where [`Mode::Redirect`] points.
    location: Mutex<String>,
    /// What a request naming another host than `127.0.0.1` in `Host` (such as `localhost`,
    /// the same socket under another name) is served, in any mode, when set.
    foreign: Mutex<Option<Value>>,
    /// Connections that opened with a TLS handshake (a client that came here for `https`);
    /// they are closed at once, so they are counted in `connections` but not `requests`.
    tls_hellos: AtomicUsize,
    release: Semaphore,
    arrived: Notify,
}

struct JwksServer {
    state: Arc<ServerState>,
}

impl JwksServer {
    async fn start(document: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let state = Arc::new(ServerState {
            addr: listener.local_addr().unwrap(),
            mode: Mutex::new(Mode::Serve),
            document: Mutex::new(document),
            cache_control: Mutex::new(None),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            hosts: Mutex::new(Vec::new()),
            location: Mutex::new(String::new()),
            foreign: Mutex::new(None),
            tls_hellos: AtomicUsize::new(0),
            release: Semaphore::new(0),
            arrived: Notify::new(),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                if shared.mode() == Mode::Down {
                    drop(stream);
                    continue;
                }
                let per_conn = shared.clone();
                tokio::spawn(async move {
                    // A TLS record starts with 0x16 (handshake); no HTTP request does.
                    let mut first = [0u8; 1];
                    if matches!(stream.peek(&mut first).await, Ok(1)) && first[0] == 0x16 {
                        per_conn.tls_hellos.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    let service = service_fn(move |req| handle(per_conn.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer { state }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.state.addr)
    }

    fn port(&self) -> u16 {
        self.state.addr.port()
    }

    /// Answer every path but `/moved` with a 302 to `location`.
    fn redirect_to(&self, location: impl Into<String>) {
        *self.state.location.lock().unwrap() = location.into();
        self.set_mode(Mode::Redirect);
    }

    /// Serve `document` to requests that name another host than `127.0.0.1`.
    fn serve_foreign(&self, document: Value) {
        *self.state.foreign.lock().unwrap() = Some(document);
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn serve(&self, document: Value) {
        *self.state.document.lock().unwrap() = document;
        self.set_mode(Mode::Serve);
    }

    fn cache_control(&self, value: &str) {
        *self.state.cache_control.lock().unwrap() = Some(value.to_owned());
    }

    /// HTTP requests answered or held (not connections dropped in `Down` mode).
    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn hosts(&self) -> Vec<String> {
        self.state.hosts.lock().unwrap().clone()
    }

    fn tls_hellos(&self) -> usize {
        self.state.tls_hellos.load(Ordering::SeqCst)
    }
}

impl ServerState {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn document_response(&self, padding: usize, sized: bool) -> Response<Chunks> {
        let document = self.document.lock().unwrap().clone();
        self.respond_with(document, padding, sized)
    }

    fn respond_with(&self, mut document: Value, padding: usize, sized: bool) -> Response<Chunks> {
        if padding > 0 {
            document["padding"] = Value::String("x".repeat(padding));
        }
        let mut response = Response::builder()
            .status(200)
            .header("content-type", "application/json");
        if let Some(cc) = &*self.cache_control.lock().unwrap() {
            response = response.header("cache-control", cc.as_str());
        }
        response
            .body(Chunks::new(document.to_string().into_bytes(), sized))
            .unwrap()
    }
}

async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<Chunks>, std::io::Error> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.hosts.lock().unwrap().push(host.clone());
    state.arrived.notify_one();
    let text = |status: u16, body: &str| {
        Response::builder()
            .status(status)
            .body(Chunks::new(body.as_bytes().to_vec(), true))
            .unwrap()
    };
    if !host.starts_with("127.0.0.1") {
        if let Some(document) = state.foreign.lock().unwrap().clone() {
            return Ok(state.respond_with(document, 0, true));
        }
    }
    Ok(match state.mode() {
        Mode::Serve => state.document_response(0, true),
        // On a kept-alive connection: close it without an answer.
        Mode::Down => return Err(std::io::ErrorKind::ConnectionAborted.into()),
        Mode::Hold => {
            state.release.acquire().await.unwrap().forget();
            state.document_response(0, true)
        }
        Mode::Error500 => text(500, "internal error"),
        Mode::Hang => std::future::pending().await,
        Mode::Oversized => state.document_response(64 * 1024, true),
        Mode::OversizedChunked => state.document_response(64 * 1024, false),
        Mode::Redirect if req.uri().path() == "/moved" => state.document_response(0, true),
        Mode::Redirect => Response::builder()
            .status(302)
            .header("location", state.location.lock().unwrap().as_str())
            .body(Chunks::new(Vec::new(), true))
            .unwrap(),
        Mode::Malformed => text(200, r#"{"keys": [{"kty": "OKP","#),
        Mode::Html => text(200, "<html><body>maintenance</body></html>"),
        Mode::Empty => text(200, r#"{"keys": []}"#),
    })
}

/// A response body sent in 1 KiB frames, with or without an exact length.
struct Chunks {
    frames: VecDeque<Bytes>,
    len: u64,
    sized: bool,
}

impl Chunks {
    fn new(bytes: Vec<u8>, sized: bool) -> Chunks {
        let len = bytes.len() as u64;
        let frames = bytes.chunks(1024).map(Bytes::copy_from_slice).collect();
        Chunks { frames, len, sized }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .frames
                .pop_front()
                .map(|f| Ok(Frame::data(f))),
        )
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.len)
        } else {
            SizeHint::default()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// The `jwks_*` settings a test gives the verifier builder, gathered so that a fixture takes
/// them as one value.
#[derive(Clone, Default)]
struct Config {
    fetch_timeout: Option<Duration>,
    max_body_bytes: Option<usize>,
    cooldown: Option<Duration>,
    default_max_age: Option<Duration>,
    max_age_bounds: Option<(Duration, Duration)>,
    stale_if_error: Option<Duration>,
    allow_http: bool,
    http_client: Option<reqwest::Client>,
}

impl Config {
    fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = Some(timeout);
        self
    }

    fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = Some(max);
        self
    }

    fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    fn default_max_age(mut self, max_age: Duration) -> Self {
        self.default_max_age = Some(max_age);
        self
    }

    fn max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.max_age_bounds = Some((min, max));
        self
    }

    fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// `builder` with these settings.
    fn apply(self, mut builder: VerifierBuilder) -> VerifierBuilder {
        if let Some(timeout) = self.fetch_timeout {
            builder = builder.jwks_fetch_timeout(timeout);
        }
        if let Some(max) = self.max_body_bytes {
            builder = builder.jwks_max_body_bytes(max);
        }
        if let Some(cooldown) = self.cooldown {
            builder = builder.jwks_cooldown(cooldown);
        }
        if let Some(max_age) = self.default_max_age {
            builder = builder.jwks_default_max_age(max_age);
        }
        if let Some((min, max)) = self.max_age_bounds {
            builder = builder.jwks_max_age_bounds(min, max);
        }
        if let Some(window) = self.stale_if_error {
            builder = builder.jwks_stale_if_error(window);
        }
        if let Some(client) = self.http_client {
            builder = builder.jwks_http_client(client);
        }
        builder.jwks_allow_http(self.allow_http)
    }
}

fn config() -> Config {
    Config::default().fetch_timeout(Duration::from_secs(5))
}

fn verifier(url: &str, clock: &ManualClock, config: Config) -> Verifier {
    config
        .apply(Verifier::builder().jwks_url(url))
        .audience(AUDIENCE)
        .clock(clock.clone())
        // Every verification goes through the key lookup, not the verified-token cache.
        .token_cache_capacity(0)
        .build()
        .unwrap()
}

/// A token from `key`, issued at the clock's current time.
fn token(key: &TestKey, clock: &ManualClock) -> String {
    key.sign(&claims_at(clock.now_unix()))
}

/// A token whose header names `kid` (the signature is `key`'s, which does not matter: the
/// key lookup comes first).
fn token_with_kid(key: &TestKey, kid: &str, clock: &ManualClock) -> String {
    let header = json!({"alg": key.alg, "kid": kid, "typ": "JWT"});
    key.sign_with_header(&header, &claims_at(clock.now_unix()))
}

fn kind(result: Result<mka1_auth::VerifiedToken, Error>) -> ErrorKind {
    result.expect_err("expected an error").kind()
}

/// Poll a future exactly once.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Wait (for the local server's I/O, in 1 ms steps) until no fetch is in flight.
async fn until_idle(verifier: &Verifier) {
    for _ in 0..10_000 {
        if !verifier.key_set_status().fetching {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the fetch did not finish");
}

fn secs_since(clock: &ManualClock, at: std::time::SystemTime) -> i64 {
    let at = at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    at - clock.now_unix() as i64
}

/// A server publishing one Ed25519 key, and a verifier for it with a clock at `NOW`.
struct Fixture {
    key: TestKey,
    clock: ManualClock,
    server: JwksServer,
    verifier: Verifier,
}

impl Fixture {
    /// Nothing fetched yet; the server answers in `mode`.
    async fn cold(mode: Mode, config: Config) -> Fixture {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let server = JwksServer::start(jwks(&[&key])).await;
        server.set_mode(mode);
        let verifier = verifier(&server.url(), &clock, config);
        Fixture {
            key,
            clock,
            server,
            verifier,
        }
    }

    fn parts(self) -> (TestKey, ManualClock, JwksServer, Verifier) {
        (self.key, self.clock, self.server, self.verifier)
    }

    /// The key set fetched once, successfully.
    async fn warm(config: Config) -> Fixture {
        let f = Fixture::cold(Mode::Serve, config).await;
        f.verifier.verify(&token(&f.key, &f.clock)).await.unwrap();
        assert_eq!(f.server.requests(), 1);
        f
    }
}

// ---------------------------------------------------------------------------------------
// Cold start.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_cold_requests_cause_one_fetch() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Hold, config()).await.parts();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token(&key, &clock);
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    server.state.arrived.notified().await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "cold requests must wait for the one fetch"
    );
    assert!(verifier.key_set_status().fetching);
    server.state.release.add_permits(1);
    for task in tasks {
        let verified = task.await.unwrap().unwrap();
        assert_eq!(verified.subject(), "user-42");
    }
    assert_eq!(server.requests(), 1);
    let status = verifier.key_set_status();
    assert!(status.usable && !status.fetching);
    assert_eq!(status.key_count, 1);
    assert_eq!(status.last_success, Some(clock.now()));
}

#[tokio::test]
async fn builds_while_the_endpoint_is_down_and_fails_with_keys_unavailable() {
    // A port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier(&format!("http://127.0.0.1:{port}/jwks"), &clock, config());
    let key = TestKey::ed25519("k1");
    let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    let status = verifier.key_set_status();
    assert!(!status.usable);
    assert_eq!(status.consecutive_failures, 1);
    assert!(status.last_error.unwrap().starts_with("request failed"));
}

#[tokio::test]
async fn a_cold_start_recovers_once_the_endpoint_is_back() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Down, config()).await.parts();

    assert_eq!(
        kind(verifier.verify(&token(&key, &clock)).await),
        ErrorKind::KeysUnavailable
    );
    assert_eq!(server.connections(), 1);
    // Inside the cooldown: fail fast, no connection.
    clock.advance(Duration::from_secs(29));
    let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(server.connections(), 1);

    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(1));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.connections(), 2);
    let status = verifier.key_set_status();
    assert!(status.usable);
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_some() && status.last_error_at < status.last_success);
}

#[tokio::test]
async fn a_hanging_endpoint_bounds_a_cold_start_by_the_fetch_timeout() {
    let Fixture {
        key,
        clock,
        server: _server,
        verifier,
    } = Fixture::cold(
        Mode::Hang,
        config().fetch_timeout(Duration::from_millis(150)),
    )
    .await;
    let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    let reason = verifier.key_set_status().last_error.unwrap();
    assert!(reason.contains("no complete response within"), "{reason}");
}

// ---------------------------------------------------------------------------------------
// Unknown kids, cooldown.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_kids_in_one_cooldown_cause_at_most_one_fetch() {
    let (key, clock, server, verifier) = Fixture::warm(config()).await.parts();
    clock.advance(Duration::from_secs(31));

    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let verifier = verifier.clone();
            let token = token_with_kid(&key, &format!("random-{i}"), &clock);
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(kind(task.await.unwrap()), ErrorKind::UnknownKeyId);
    }
    assert_eq!(server.requests(), 2, "one refetch for the whole flood");

    // The known key is unaffected, and the next cooldown allows exactly one more.
    verifier.verify(&token(&key, &clock)).await.unwrap();
    clock.advance(Duration::from_secs(29));
    for i in 0..100 {
        let t = token_with_kid(&key, &format!("again-{i}"), &clock);
        assert_eq!(kind(verifier.verify(&t).await), ErrorKind::UnknownKeyId);
    }
    assert_eq!(server.requests(), 2);
    clock.advance(Duration::from_secs(2));
    for i in 0..100 {
        let t = token_with_kid(&key, &format!("later-{i}"), &clock);
        assert_eq!(kind(verifier.verify(&t).await), ErrorKind::UnknownKeyId);
    }
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn the_cooldown_is_configurable() {
    let (key, clock, server, verifier) = Fixture::warm(config().cooldown(Duration::from_secs(5)))
        .await
        .parts();
    clock.advance(Duration::from_secs(5));
    let t = token_with_kid(&key, "other", &clock);
    assert_eq!(kind(verifier.verify(&t).await), ErrorKind::UnknownKeyId);
    assert_eq!(server.requests(), 2);
    assert_eq!(kind(verifier.verify(&t).await), ErrorKind::UnknownKeyId);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_500_counts_as_failed_and_starts_the_cooldown() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Error500, config()).await.parts();
    for _ in 0..20 {
        let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
        assert!(err
            .retry_after()
            .is_some_and(|d| d >= Duration::from_secs(1)));
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(
        verifier.key_set_status().last_error.as_deref(),
        Some("unexpected http status 500")
    );
    clock.advance(Duration::from_secs(30));
    server.serve(jwks(&[&key]));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_clock_moved_back_does_not_stretch_the_cooldown() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Error500, config()).await.parts();
    assert_eq!(
        kind(verifier.verify(&token(&key, &clock)).await),
        ErrorKind::KeysUnavailable
    );
    clock.set_unix(NOW - 3600);
    server.serve(jwks(&[&key]));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Bad documents and limits: each is a failed fetch that keeps the last good set.

async fn assert_failed_refresh_keeps_last_good_set(mode: Mode, reason: &str, config: Config) {
    let (key, clock, server, verifier) = Fixture::warm(config).await.parts();
    server.set_mode(mode);
    clock.advance(Duration::from_secs(8 * 60));
    // Due for refresh: this verification starts it in the background and does not wait.
    verifier.verify(&token(&key, &clock)).await.unwrap();
    until_idle(&verifier).await;
    assert_eq!(server.requests(), 2, "{mode:?}");

    let status = verifier.key_set_status();
    let error = status.last_error.unwrap();
    assert!(error.contains(reason), "{mode:?}: {error}");
    assert_eq!(status.consecutive_failures, 1);
    assert_eq!(status.key_count, 1);
    assert!(status.usable && !status.stale);
    assert_eq!(secs_since(&clock, status.next_refresh.unwrap()), 30);
    verifier.verify(&token(&key, &clock)).await.unwrap();
}

#[tokio::test]
async fn a_500_keeps_the_last_good_set() {
    assert_failed_refresh_keeps_last_good_set(Mode::Error500, "status 500", config()).await;
}

#[tokio::test]
async fn malformed_json_keeps_the_last_good_set() {
    assert_failed_refresh_keeps_last_good_set(Mode::Malformed, "not a jwks document", config())
        .await;
}

#[tokio::test]
async fn an_html_page_keeps_the_last_good_set() {
    assert_failed_refresh_keeps_last_good_set(Mode::Html, "not a jwks document", config()).await;
}

#[tokio::test]
async fn an_empty_set_keeps_the_last_good_set() {
    assert_failed_refresh_keeps_last_good_set(Mode::Empty, "no usable key", config()).await;
}

#[tokio::test]
async fn an_oversized_body_keeps_the_last_good_set() {
    let capped = config().max_body_bytes(16 * 1024);
    assert_failed_refresh_keeps_last_good_set(Mode::Oversized, "16384-byte cap", capped.clone())
        .await;
    assert_failed_refresh_keeps_last_good_set(Mode::OversizedChunked, "16384-byte cap", capped)
        .await;
}

#[tokio::test]
async fn a_dropped_connection_keeps_the_last_good_set() {
    assert_failed_refresh_keeps_last_good_set(Mode::Down, "request failed", config()).await;
}

#[tokio::test]
async fn a_hanging_refresh_keeps_the_last_good_set() {
    let short = config().fetch_timeout(Duration::from_millis(150));
    assert_failed_refresh_keeps_last_good_set(Mode::Hang, "no complete response", short).await;
}

#[tokio::test]
async fn the_body_cap_default_is_256_kib() {
    // A 64 KiB document is within the default cap.
    let (key, clock, server, verifier) = Fixture::cold(Mode::Oversized, config()).await.parts();
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_set_with_no_usable_key_is_a_failed_fetch() {
    let clock = ManualClock::at_unix(NOW);
    let server = JwksServer::start(json!({"keys": [
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
    ]}))
    .await;
    let verifier = verifier(&server.url(), &clock, config());
    let key = TestKey::ed25519("h");
    assert_eq!(
        kind(verifier.verify(&token(&key, &clock)).await),
        ErrorKind::KeysUnavailable
    );
    let status = verifier.key_set_status();
    assert_eq!(
        status.last_error.as_deref(),
        Some("the key set holds no usable key (2 skipped)")
    );
}

#[tokio::test]
async fn skipped_keys_are_counted_in_the_status() {
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let mut document = jwks(&[&key]);
    document["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}));
    let server = JwksServer::start(document).await;
    let verifier = verifier(&server.url(), &clock, config());
    verifier.verify(&token(&key, &clock)).await.unwrap();
    let status = verifier.key_set_status();
    assert_eq!((status.key_count, status.skipped_keys), (1, 1));
}

// ---------------------------------------------------------------------------------------
// Redirects.

/// A way out of the JWKS URL's origin (`http://127.0.0.1:A`), each differing from it in one
/// part only.
#[derive(Debug, Clone, Copy)]
enum Elsewhere {
    /// `http://127.0.0.1:B`: another server, with an impostor's key set.
    Port,
    /// `http://localhost:A`: the same socket by another name, answering with an impostor's key
    /// set to requests for that name.
    Host,
    /// `https://127.0.0.1:A`: the same socket, which sees a TLS handshake if one is tried.
    Scheme,
}

/// A redirect from `server` to another origin, aimed at a listener that would hand out
/// `impostor`'s key under the genuine kid.
struct Detour {
    to: Elsewhere,
    impostor: TestKey,
    other: Option<JwksServer>,
}

impl Detour {
    async fn set_up(server: &JwksServer, to: Elsewhere) -> Detour {
        let impostor = TestKey::ed25519("k1");
        let port = server.port();
        let mut other = None;
        match to {
            Elsewhere::Port => {
                let elsewhere = JwksServer::start(jwks(&[&impostor])).await;
                server.redirect_to(format!("http://127.0.0.1:{}/jwks", elsewhere.port()));
                other = Some(elsewhere);
            }
            Elsewhere::Host => {
                server.serve_foreign(jwks(&[&impostor]));
                server.redirect_to(format!("http://localhost:{port}/jwks"));
            }
            Elsewhere::Scheme => server.redirect_to(format!("https://127.0.0.1:{port}/jwks")),
        }
        Detour {
            to,
            impostor,
            other,
        }
    }

    /// How many times the other origin was reached: connections to the other server,
    /// requests naming `localhost`, or TLS handshakes.
    fn reached(&self, server: &JwksServer) -> usize {
        match (self.to, &self.other) {
            (Elsewhere::Port, Some(other)) => other.connections(),
            (Elsewhere::Host, _) => server
                .hosts()
                .iter()
                .filter(|h| !h.starts_with("127.0.0.1"))
                .count(),
            (Elsewhere::Scheme, _) => server.tls_hellos(),
            (Elsewhere::Port, None) => unreachable!("set up with another server"),
        }
    }
}

/// A refresh redirected to another origin fails, keeps the held set, and the impostor's key
/// never verifies. `reached` is how often the other origin may have been reached: never for
/// the built-in client; once for a caller's client that follows any redirect.
async fn assert_keys_from_elsewhere_refused(
    to: Elsewhere,
    config: Config,
    reached: usize,
    reason: &str,
) {
    let (key, clock, server, verifier) = Fixture::warm(config).await.parts();
    let detour = Detour::set_up(&server, to).await;
    clock.advance(Duration::from_secs(8 * 60));
    // Due for refresh: this verification starts it in the background.
    verifier.verify(&token(&key, &clock)).await.unwrap();
    until_idle(&verifier).await;

    let status = verifier.key_set_status();
    let error = status.last_error.unwrap();
    assert!(error.contains(reason), "{to:?}: {error}");
    assert!(
        !error.contains("127.0.0.1") && !error.contains("localhost"),
        "{error}"
    );
    assert_eq!(status.consecutive_failures, 1, "{to:?}");
    assert_eq!(status.key_count, 1, "{to:?}");
    assert!(status.usable && !status.stale, "{to:?}");
    let at_origin = server
        .hosts()
        .iter()
        .filter(|h| h.starts_with("127.0.0.1"))
        .count();
    assert_eq!(
        at_origin, 2,
        "{to:?}: the first fetch and the redirected one"
    );
    assert_eq!(detour.reached(&server), reached, "{to:?}");
    // The genuine key still verifies; the impostor's, under the same kid, never does.
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(
        kind(verifier.verify(&token(&detour.impostor, &clock)).await),
        ErrorKind::InvalidSignature,
        "{to:?}"
    );
    // Nor after the next retry, which is redirected again.
    clock.advance(Duration::from_secs(30));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    until_idle(&verifier).await;
    assert_eq!(verifier.key_set_status().consecutive_failures, 2, "{to:?}");
    assert_eq!(
        kind(verifier.verify(&token(&detour.impostor, &clock)).await),
        ErrorKind::InvalidSignature,
        "{to:?}"
    );
    verifier.verify(&token(&key, &clock)).await.unwrap();
}

const REFUSED_REDIRECT: &str = "redirect not followed (status 302): it points to another origin";

#[tokio::test]
async fn a_redirect_to_another_port_is_not_followed_and_the_held_keys_stay() {
    assert_keys_from_elsewhere_refused(Elsewhere::Port, config(), 0, REFUSED_REDIRECT).await;
}

#[tokio::test]
async fn a_redirect_to_another_host_name_is_not_followed_and_the_held_keys_stay() {
    assert_keys_from_elsewhere_refused(Elsewhere::Host, config(), 0, REFUSED_REDIRECT).await;
}

#[tokio::test]
async fn a_redirect_from_http_to_https_is_another_origin_and_not_followed() {
    assert_keys_from_elsewhere_refused(Elsewhere::Scheme, config(), 0, REFUSED_REDIRECT).await;
}

#[tokio::test]
async fn a_cold_start_redirected_to_another_origin_gets_no_keys() {
    for to in [Elsewhere::Port, Elsewhere::Host, Elsewhere::Scheme] {
        let (key, clock, server, verifier) = Fixture::cold(Mode::Serve, config()).await.parts();
        let detour = Detour::set_up(&server, to).await;
        assert_eq!(
            kind(verifier.verify(&token(&detour.impostor, &clock)).await),
            ErrorKind::KeysUnavailable,
            "{to:?}"
        );
        assert_eq!(
            kind(verifier.verify(&token(&key, &clock)).await),
            ErrorKind::KeysUnavailable,
            "{to:?}"
        );
        assert_eq!(server.requests(), 1, "{to:?}");
        assert_eq!(detour.reached(&server), 0, "{to:?}");
        let reason = verifier.key_set_status().last_error.unwrap();
        assert!(reason.starts_with(REFUSED_REDIRECT), "{to:?}: {reason}");
    }
}

#[tokio::test]
async fn a_caller_client_that_follows_redirects_still_cannot_take_keys_from_another_origin() {
    // reqwest's default policy follows any redirect: the request does reach the other origin,
    // but its answer is refused.
    for to in [Elsewhere::Port, Elsewhere::Host] {
        let client = reqwest::Client::builder().build().unwrap();
        assert_keys_from_elsewhere_refused(
            to,
            config().http_client(client),
            1,
            "the response came from another origin",
        )
        .await;
    }
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Serve, config()).await.parts();
    server.redirect_to("/moved");
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.requests(), 2);

    // Spelled out in full, to a refreshed key set, while one is held.
    let (key, clock, server, verifier) = Fixture::warm(config()).await.parts();
    let rotated = TestKey::ed25519("k2");
    server.redirect_to(format!("http://127.0.0.1:{}/moved", server.port()));
    *server.state.document.lock().unwrap() = jwks(&[&key, &rotated]);
    clock.advance(Duration::from_secs(31));
    verifier.verify(&token(&rotated, &clock)).await.unwrap();
    assert_eq!(server.requests(), 3);
    let status = verifier.key_set_status();
    assert_eq!((status.key_count, status.consecutive_failures), (2, 0));
    assert!(server.hosts().iter().all(|h| h.starts_with("127.0.0.1")));
}

#[tokio::test]
async fn redirects_within_the_origin_stop_after_three() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Serve, config()).await.parts();
    // Every answer redirects back to itself.
    server.redirect_to("/jwks");
    assert_eq!(
        kind(verifier.verify(&token(&key, &clock)).await),
        ErrorKind::KeysUnavailable
    );
    assert_eq!(
        server.requests(),
        4,
        "the first request and three redirects"
    );
    let reason = verifier.key_set_status().last_error.unwrap();
    assert!(
        reason.contains("(status 302): the limit of 3 redirects was reached"),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------
// Freshness.

#[tokio::test]
async fn refreshes_in_the_background_at_80_percent_of_max_age() {
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let server = JwksServer::start(jwks(&[&key])).await;
    server.cache_control("public, max-age=100");
    let verifier = verifier(&server.url(), &clock, config());
    verifier.verify(&token(&key, &clock)).await.unwrap();
    let status = verifier.key_set_status();
    assert_eq!(secs_since(&clock, status.next_refresh.unwrap()), 80);

    clock.advance(Duration::from_secs(79));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert!(!verifier.key_set_status().fetching);
    assert_eq!(server.requests(), 1);

    clock.advance(Duration::from_secs(1));
    server.cache_control("max-age=600");
    let ready = poll_once(verifier.verify(&token(&key, &clock)));
    assert!(
        matches!(ready, Poll::Ready(Ok(_))),
        "the refresh must not delay the request"
    );
    until_idle(&verifier).await;
    assert_eq!(server.requests(), 2);
    let status = verifier.key_set_status();
    assert_eq!(status.last_success, Some(clock.now()));
    assert_eq!(secs_since(&clock, status.next_refresh.unwrap()), 480);
}

#[tokio::test]
async fn max_age_defaults_to_ten_minutes_and_is_clamped() {
    let key = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    for (cache_control, refresh_in) in [
        (None, 480),
        (Some("max-age=5"), 48),
        (Some("no-store"), 48),
        (Some("max-age=999999999"), 69_120),
    ] {
        let server = JwksServer::start(jwks(&[&key])).await;
        if let Some(cc) = cache_control {
            server.cache_control(cc);
        }
        let verifier = verifier(&server.url(), &clock, config());
        verifier.verify(&token(&key, &clock)).await.unwrap();
        let next = verifier.key_set_status().next_refresh.unwrap();
        assert_eq!(secs_since(&clock, next), refresh_in, "{cache_control:?}");
    }
}

#[tokio::test]
async fn custom_max_age_settings_apply() {
    let Fixture {
        clock,
        server,
        verifier,
        ..
    } = Fixture::warm(
        config()
            .default_max_age(Duration::from_secs(50))
            .max_age_bounds(Duration::from_secs(10), Duration::from_secs(100)),
    )
    .await;
    assert_eq!(
        secs_since(&clock, verifier.key_set_status().next_refresh.unwrap()),
        40
    );
    assert_eq!(server.requests(), 1);
}

// ---------------------------------------------------------------------------------------
// A hanging endpoint never delays a held key.

#[tokio::test]
async fn a_hanging_endpoint_never_delays_a_cached_kid() {
    let (key, clock, server, verifier) =
        Fixture::warm(config().fetch_timeout(Duration::from_millis(300)))
            .await
            .parts();
    server.set_mode(Mode::Hang);
    clock.advance(Duration::from_secs(8 * 60));

    // The refresh is due: this verification starts it, and is ready on its first poll.
    assert!(matches!(
        poll_once(verifier.verify(&token(&key, &clock))),
        Poll::Ready(Ok(_))
    ));
    assert!(verifier.key_set_status().fetching);
    server.state.arrived.notified().await;

    // A request for an unknown key waits on the hanging fetch ...
    let waiting = {
        let verifier = verifier.clone();
        let t = token_with_kid(&key, "rotated-in", &clock);
        tokio::spawn(async move { verifier.verify(&t).await })
    };
    tokio::task::yield_now().await;
    // ... while requests for the held key still finish on their first poll.
    for _ in 0..10 {
        assert!(matches!(
            poll_once(verifier.verify(&token(&key, &clock))),
            Poll::Ready(Ok(_))
        ));
    }
    assert_eq!(kind(waiting.await.unwrap()), ErrorKind::UnknownKeyId);
    assert_eq!(server.requests(), 2);
    assert!(!verifier.key_set_status().fetching);
}

// ---------------------------------------------------------------------------------------
// Outage: stale-if-error, backoff, then KeysUnavailable.

#[tokio::test]
async fn an_outage_serves_the_last_good_set_then_keys_unavailable() {
    let (key, clock, server, verifier) =
        Fixture::warm(config().stale_if_error(Duration::from_secs(3600)))
            .await
            .parts();
    server.set_mode(Mode::Down);

    // Past max-age: the set is stale but still serves; the refresh fails.
    clock.advance(Duration::from_secs(601));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    until_idle(&verifier).await;
    let status = verifier.key_set_status();
    assert!(status.usable && status.stale);
    assert_eq!(status.consecutive_failures, 1);
    assert_eq!(secs_since(&clock, status.next_refresh.unwrap()), 30);

    // Retries back off: nothing before the retry time, then 30 s, 60 s, 120 s ...
    let connections = server.connections();
    clock.advance(Duration::from_secs(29));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    assert_eq!(server.connections(), connections);
    for (failures, backoff) in [(2, 60), (3, 120), (4, 240), (5, 300), (6, 300)] {
        clock.set_unix(
            verifier
                .key_set_status()
                .next_refresh
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        verifier.verify(&token(&key, &clock)).await.unwrap();
        until_idle(&verifier).await;
        let status = verifier.key_set_status();
        assert_eq!(status.consecutive_failures, failures);
        assert_eq!(secs_since(&clock, status.next_refresh.unwrap()), backoff);
    }
    // Unknown kids do not fetch while a retry is pending.
    let connections = server.connections();
    let t = token_with_kid(&key, "other", &clock);
    assert_eq!(kind(verifier.verify(&t).await), ErrorKind::UnknownKeyId);
    assert_eq!(server.connections(), connections);

    // Past max-age plus the stale window: no usable keys, a distinct error with a retry time.
    clock.set_unix(NOW + 600 + 3600);
    let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
    assert!(err
        .retry_after()
        .is_some_and(|d| d >= Duration::from_secs(1)));
    assert!(!verifier.key_set_status().usable);

    // The endpoint comes back: the next allowed fetch restores service.
    server.serve(jwks(&[&key]));
    clock.advance(err.retry_after().unwrap());
    verifier.verify(&token(&key, &clock)).await.unwrap();
    let status = verifier.key_set_status();
    assert!(status.usable && !status.stale);
    assert_eq!(status.consecutive_failures, 0);
}

/// A token answered from the verified-token cache keeps to its key set's clock like a fresh
/// one: a hit past max-age starts the due refresh, and once the set is past its stale
/// window the same token is refused, though no new set was ever published (a hit skips the
/// key look-up only while no key set changed and neither time has come).
#[tokio::test]
async fn a_cached_token_keeps_to_its_key_sets_refresh_and_stale_window() {
    let (key, clock, server, _) = Fixture::cold(Mode::Serve, config()).await.parts();
    // This file's other verifiers have the cache off; this one keeps it on.
    let verifier = config()
        .stale_if_error(Duration::from_secs(1200))
        .apply(Verifier::builder().jwks_url(server.url()))
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let t = token(&key, &clock);
    for _ in 0..3 {
        verifier.verify(&t).await.unwrap();
    }
    assert_eq!(server.requests(), 1);
    server.set_mode(Mode::Down);

    // Past max-age: the hit starts the refresh, which fails; the stale set still serves.
    clock.advance(Duration::from_secs(601));
    verifier.verify(&t).await.unwrap();
    until_idle(&verifier).await;
    assert_eq!(server.requests(), 2);
    assert_eq!(verifier.key_set_status().consecutive_failures, 1);
    verifier.verify(&t).await.unwrap();

    // Past max-age plus the stale window: the cached token is refused like any other.
    clock.advance(Duration::from_secs(1200));
    assert_eq!(kind(verifier.verify(&t).await), ErrorKind::KeysUnavailable);
}

// ---------------------------------------------------------------------------------------
// Rotation.

#[tokio::test]
async fn a_rotated_in_kid_is_accepted_on_the_one_refetch_and_a_removed_one_is_dropped() {
    let (old, clock, server, verifier) = Fixture::warm(config()).await.parts();
    let new = TestKey::es256("new");

    clock.advance(Duration::from_secs(31));
    server.serve(jwks(&[&old, &new]));
    verifier.verify(&token(&new, &clock)).await.unwrap();
    assert_eq!(server.requests(), 2);

    // `old` is withdrawn: it keeps verifying until the next successful refresh ...
    server.serve(jwks(&[&new]));
    verifier.verify(&token(&old, &clock)).await.unwrap();
    clock.advance(Duration::from_secs(8 * 60));
    verifier.verify(&token(&old, &clock)).await.unwrap();
    until_idle(&verifier).await;
    assert_eq!(server.requests(), 3);
    // ... and not after it.
    assert_eq!(
        kind(verifier.verify(&token(&old, &clock)).await),
        ErrorKind::UnknownKeyId
    );
    verifier.verify(&token(&new, &clock)).await.unwrap();
    assert_eq!(verifier.key_set_status().key_count, 1);
}

#[tokio::test]
async fn a_key_rotated_in_right_after_start_up_is_accepted_without_waiting() {
    // The start-up fetch found every key it was asked for: it opens no cooldown, so the
    // first unknown kid (a rotation) refetches at once, with the clock standing still.
    let (old, clock, server, verifier) = Fixture::warm(config()).await.parts();
    let new = TestKey::es256("new");
    server.serve(jwks(&[&old, &new]));
    verifier.verify(&token(&new, &clock)).await.unwrap();
    assert_eq!(server.requests(), 2);
    // That refetch was for an unknown kid: the cooldown is open now.
    let made_up = token_with_kid(&old, "made-up", &clock);
    assert_eq!(
        kind(verifier.verify(&made_up).await),
        ErrorKind::UnknownKeyId
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn after_an_outage_outlives_the_stale_window_recovery_leaves_a_rotation_free() {
    let config = config().stale_if_error(Duration::from_secs(60));
    let (key, clock, server, verifier) = Fixture::warm(config).await.parts();
    server.set_mode(Mode::Error500);
    // Default max-age (10 min) plus the stale window: the held keys are no longer used.
    clock.advance(Duration::from_secs(10 * 60 + 61));
    assert_eq!(
        kind(verifier.verify(&token(&key, &clock)).await),
        ErrorKind::KeysUnavailable
    );
    // The endpoint is back; once the wait it asked for is over, the held kid recovers ...
    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(31));
    verifier.verify(&token(&key, &clock)).await.unwrap();
    let fetches = server.requests();
    // ... and that fetch, which found its kid, opened no cooldown: a rotation is picked up.
    let new = TestKey::es256("new");
    server.serve(jwks(&[&key, &new]));
    verifier.verify(&token(&new, &clock)).await.unwrap();
    assert_eq!(server.requests(), fetches + 1);
}

#[tokio::test]
async fn with_no_usable_keys_the_endpoint_is_retried_once_per_cooldown_not_on_the_backoff() {
    let config = config().stale_if_error(Duration::from_secs(60));
    let (key, clock, server, verifier) = Fixture::warm(config).await.parts();
    server.set_mode(Mode::Error500);
    clock.advance(Duration::from_secs(10 * 60 + 61));
    // A long outage: six failed fetches, one per cooldown, each answered 503 with a
    // Retry-After of the cooldown (the backoff would have grown to 5 minutes).
    for attempt in 1..=6 {
        let before = server.requests();
        let err = verifier.verify(&token(&key, &clock)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeysUnavailable, "attempt {attempt}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(server.requests(), before + 1, "attempt {attempt}");
        let again = verifier.verify(&token(&key, &clock)).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::KeysUnavailable);
        assert_eq!(
            server.requests(),
            before + 1,
            "no fetch inside the cooldown"
        );
        clock.advance(Duration::from_secs(30));
    }
    assert_eq!(verifier.key_set_status().consecutive_failures, 6);
    server.set_mode(Mode::Serve);
    verifier.verify(&token(&key, &clock)).await.unwrap();
}

#[tokio::test]
async fn a_cold_start_that_leaves_a_kid_unknown_opens_the_cooldown() {
    let (key, clock, server, verifier) = Fixture::cold(Mode::Serve, config()).await.parts();
    let made_up = token_with_kid(&key, "made-up", &clock);
    assert_eq!(
        kind(verifier.verify(&made_up).await),
        ErrorKind::UnknownKeyId
    );
    assert_eq!(server.requests(), 1);
    let other = token_with_kid(&key, "other", &clock);
    assert_eq!(kind(verifier.verify(&other).await), ErrorKind::UnknownKeyId);
    assert_eq!(server.requests(), 1, "inside the cooldown");
    clock.advance(Duration::from_secs(31));
    assert_eq!(kind(verifier.verify(&other).await), ErrorKind::UnknownKeyId);
    assert_eq!(server.requests(), 2);
    verifier.verify(&token(&key, &clock)).await.unwrap();
}

#[tokio::test]
async fn a_replaced_key_under_the_same_kid_stops_verifying_old_tokens() {
    let first = TestKey::ed25519("k1");
    let second = TestKey::ed25519("k1");
    let clock = ManualClock::at_unix(NOW);
    let server = JwksServer::start(jwks(&[&first])).await;
    // With the verified-token cache on: a token cached against the old key must not survive.
    let verifier = Verifier::builder()
        .jwks_url(server.url())
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let old_token = token(&first, &clock);
    verifier.verify(&old_token).await.unwrap();
    server.serve(jwks(&[&second]));
    clock.advance(Duration::from_secs(8 * 60));
    verifier.verify(&old_token).await.unwrap();
    until_idle(&verifier).await;
    assert_eq!(
        kind(verifier.verify(&old_token).await),
        ErrorKind::InvalidSignature
    );
    verifier.verify(&token(&second, &clock)).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Observability.

#[tokio::test]
async fn fetches_and_cooldown_hits_are_traced_without_tokens() {
    let captured = traced();
    let Fixture {
        key, clock, server, ..
    } = Fixture::cold(Mode::Error500, config()).await;
    // A path of its own, to pick this test's events out of the shared log.
    let url = server.url().replace("/jwks", "/traced-jwks");
    let verifier = verifier(&url, &clock, config());
    let t = token(&key, &clock);
    verifier.verify(&t).await.unwrap_err();
    verifier.verify(&t).await.unwrap_err();
    server.serve(jwks(&[&key]));
    clock.advance(Duration::from_secs(30));
    verifier.verify(&t).await.unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let log: String = log
        .lines()
        .filter(|l| l.contains("path=\"/traced-jwks\""))
        .flat_map(|l| [l, "\n"])
        .collect();
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("jwks fetch started"), 2, "{log}");
    assert_eq!(lines("reason=\"cold start\""), 2, "{log}");
    assert_eq!(lines("jwks fetch failed"), 1, "{log}");
    assert_eq!(lines("unexpected http status 500"), 1, "{log}");
    assert_eq!(lines("jwks refetch cooldown"), 1, "{log}");
    assert_eq!(lines("jwks fetched"), 1, "{log}");
    assert!(log.contains("key_count=1 skipped=0"), "{log}");
    assert!(!log.contains(&t) && !log.contains(t.split('.').nth(2).unwrap()));
}

// ---------------------------------------------------------------------------------------
// Configuration.

#[test]
fn plain_http_needs_a_loopback_host_or_an_explicit_opt_in() {
    let build = |url: &str, config: Config| {
        config
            .apply(Verifier::builder().jwks_url(url))
            .audience(AUDIENCE)
            .build()
    };
    assert_eq!(
        build("http://jwks.example.com/keys", config())
            .err()
            .map(|e| e.kind()),
        Some(ConfigErrorKind::InvalidJwksUrl)
    );
    assert!(build("http://jwks.example.com/keys", config().allow_http(true)).is_ok());
    assert!(build("http://127.0.0.1:1/keys", config()).is_ok());
    assert!(build("https://jwks.example.com/keys", config()).is_ok());
    let err = build(
        "https://jwks.example.com/keys",
        config().fetch_timeout(Duration::ZERO),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    assert_eq!(err.setting(), Some("jwks_fetch_timeout"));
}

#[test]
fn verifying_outside_a_runtime_fails_cleanly() {
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier("http://127.0.0.1:1/jwks", &clock, config());
    let key = TestKey::ed25519("k1");
    let t = token(&key, &clock);
    // A runtime without a Tokio context: the future polls to an error, never a panic.
    let result = match poll_once(verifier.verify(&t)) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("no fetch can start without a runtime"),
    };
    assert_eq!(kind(result), ErrorKind::KeysUnavailable);
}

// ---------------------------------------------------------------------------------------
// JwksProbe: one fetch under the same rules, reporting what a verifier would not show.

fn probe(url: &str) -> JwksProbe {
    JwksProbe::new(url, false, &VerifierBuilder::DEFAULT_ALGORITHMS).unwrap()
}

#[tokio::test]
async fn a_probe_reports_every_entry_its_skip_reason_and_the_freshness() {
    let key = TestKey::ed25519("k1");
    let server = JwksServer::start(json!({"keys": [
        key.jwk(),
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        // ES256 is not in the allow-list this probe loads for.
        TestKey::es256("p256").jwk(),
    ]}))
    .await;
    server.cache_control("public, max-age=10");
    let eddsa_only = JwksProbe::new(&server.url(), false, &[Algorithm::EdDSA]).unwrap();
    let probed = eddsa_only.fetch().await.unwrap();
    assert_eq!(probed.keys().kids().collect::<Vec<_>>(), ["k1"]);
    let skipped: Vec<_> = probed
        .keys()
        .skipped()
        .iter()
        .map(|s| (s.kid.as_deref(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (Some("h"), SkipReason::SymmetricKey),
            (Some("p256"), SkipReason::UnsupportedAlgorithm),
        ]
    );
    assert_eq!(probed.entries().len(), 3);
    assert_eq!(probed.entries()[1]["kty"], "oct");
    assert_eq!(probed.cache_max_age(), Some(Duration::from_secs(10)));
    // Clamped to the one-minute floor, as a verifier would.
    assert_eq!(probed.fresh_for(), Duration::from_secs(60));
    assert!(!format!("{probed:?}").contains("c2VjcmV0"));

    // No Cache-Control: the default ten minutes.
    *server.state.cache_control.lock().unwrap() = None;
    let probed = probe(&server.url()).fetch().await.unwrap();
    assert_eq!(probed.cache_max_age(), None);
    assert_eq!(probed.fresh_for(), Duration::from_secs(600));
}

#[tokio::test]
async fn a_probe_of_a_set_without_usable_keys_still_says_why() {
    let server = JwksServer::start(json!({"keys": [
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
    ]}))
    .await;
    let probed = probe(&server.url()).fetch().await.unwrap();
    assert!(probed.keys().is_empty());
    let reasons: Vec<_> = probed.keys().skipped().iter().map(|s| &s.reason).collect();
    assert_eq!(
        reasons,
        [&SkipReason::SymmetricKey, &SkipReason::WeakRsaKey]
    );
    // A verifier counts the same fetch as failed.
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&server.url(), &clock, config());
    let t = token(&TestKey::ed25519("k1"), &clock);
    assert_eq!(kind(v.verify(&t).await), ErrorKind::KeysUnavailable);
    let status = v.key_set_status();
    assert!(status.last_error.unwrap().contains("no usable key"));
}

#[tokio::test]
async fn a_probe_follows_the_fetch_rules_and_says_what_failed() {
    let server = JwksServer::start(jwks(&[&TestKey::ed25519("k1")])).await;
    let failure = |server: &JwksServer| {
        let url = server.url();
        async move {
            let err = probe(&url).fetch().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeysUnavailable);
            err.detail().unwrap().to_owned()
        }
    };
    server.set_mode(Mode::Error500);
    assert_eq!(failure(&server).await, "unexpected http status 500");
    server.set_mode(Mode::Html);
    assert!(failure(&server)
        .await
        .starts_with("the body is not a jwks document"));
    let other = JwksServer::start(jwks(&[&TestKey::ed25519("k1")])).await;
    server.redirect_to(other.url());
    assert!(failure(&server).await.contains("another origin"));
    assert_eq!(other.requests(), 0);
    server.redirect_to("/moved");
    assert!(probe(&server.url()).fetch().await.is_ok());
    assert_eq!(
        JwksProbe::new(
            "http://jwks.example.com/keys",
            false,
            &VerifierBuilder::DEFAULT_ALGORITHMS
        )
        .err()
        .map(|e| e.kind()),
        Some(ConfigErrorKind::InvalidJwksUrl)
    );
}
