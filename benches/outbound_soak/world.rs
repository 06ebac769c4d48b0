//! What the soak runs: the service under test (axum, `/proxy/{*path}` and `/exchanged`
//! behind `Mka1AuthLayer`), the upstream it calls, a foreign origin nobody may send
//! credentials to, the dev issuer, and a front for MKA1's exchange endpoint that the
//! scenarios switch between passing exchanges to the dev issuer and failing them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth::exchange::{ExchangeClient, ExchangeError, ExchangeSource};
use mka1_auth::outbound::forward::{Forward, ForwardLayer};
use mka1_auth::outbound::{
    ForwardToken, Outbound, OutboundErrorKind, OutboundLayer, RefusalKind, ReqwestErrorKind,
    ReqwestService,
};
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, Verifier};
use mka1_auth_dev_issuer::DevIssuer;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};

use crate::raw::{Action, Handler, RawServer, Received};

/// The service's own audience: the users' tokens are minted for it.
pub const AUDIENCE: &str = "https://outbound-soak.example.test";

/// The header the exchange route names its refusal in, for the load generator to check.
pub const REFUSAL_HEADER: &str = "x-soak-refusal";

/// The timeouts the soak gives the crate's clients, through their public settings.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `ReqwestService`'s client: connect.
    pub connect: Duration,
    /// `ReqwestService`'s client: any one read (`read_timeout`), the body-idle timeout.
    pub idle: Duration,
    /// `ReqwestService::response_timeout`: the whole response head.
    pub head: Duration,
    /// `ExchangeClientBuilder::timeout`: one request to MKA1.
    pub exchange: Duration,
    /// `ExchangeClientBuilder::max_attempts`.
    pub exchange_attempts: u32,
    /// `ExchangeClientBuilder::backoff` (base, max).
    pub backoff: (Duration, Duration),
    /// What the MKA1 front's 429 says in `Retry-After` (whole seconds).
    pub retry_after_secs: u64,
    /// `ExchangeClientBuilder::max_concurrent_exchanges`: the exchanges in flight at once.
    pub exchange_slots: usize,
}

impl Timeouts {
    /// The soak's: short, so the hanging scenarios finish quickly; the head's shorter than
    /// the idle timeout, so each has a scenario of its own (reqwest's `read_timeout` bounds
    /// the whole head too).
    pub fn soak() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(1),
            idle: Duration::from_millis(1500),
            head: Duration::from_secs(1),
            exchange: Duration::from_secs(1),
            exchange_attempts: 3,
            backoff: (Duration::from_millis(100), Duration::from_millis(400)),
            retry_after_secs: 1,
            exchange_slots: 32,
        }
    }

    /// The longest a forwarded call may take by the documented timeouts: connect, then the
    /// head (its own deadline), then one idle period per body chunk (the soak's bodies
    /// arrive in one chunk, or trickle and are cut after one idle period).
    pub fn forward_bound(&self) -> Duration {
        self.connect + self.head + self.idle
    }

    /// The longest an exchange may take: every attempt's timeout (the wait for a slot
    /// included), and before each attempt the longer of the backoff cap and the
    /// `Retry-After` the front sends (a pause another exchange's 429 began).
    pub fn exchange_bound(&self) -> Duration {
        let waits = self
            .backoff
            .1
            .max(Duration::from_secs(self.retry_after_secs));
        (self.exchange + waits) * self.exchange_attempts
    }
}

/// What the upstream does with each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UpstreamMode {
    Healthy = 0,
    /// Accepts, reads the request, never answers.
    Hanging = 1,
    /// The listening socket is closed (refused) and kept-alive connections are reset.
    Refusing = 2,
    /// Sends the head and a first part, then a byte every two idle periods.
    Trickling = 3,
    /// Answers 503 (with the echo body).
    Error5xx = 4,
    /// Sends its head a byte every half idle period, never ending it: the response
    /// timeout's case (reqwest's `read_timeout` also bounds the whole head, not each read of
    /// it, so the soak sets the response timeout shorter).
    TricklingHead = 5,
}

/// What the MKA1 front does with each exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mka1Mode {
    /// Passes it to the dev issuer, and its answer back.
    Healthy = 0,
    /// 429 with `Retry-After`.
    RateLimited = 1,
    /// 500.
    Error500 = 2,
    /// Reads the request, never answers.
    Hanging = 3,
}

/// The upstream's status in its 5xx mode.
pub const UPSTREAM_5XX: u16 = 503;

/// When the MKA1 front last heard from each user, and the shortest gap between two requests
/// for one user since the last reset: how long the client waited before asking again.
#[derive(Default)]
pub struct Mka1Log {
    last: Mutex<HashMap<String, Instant>>,
    shortest_gap_us: AtomicU64,
}

impl Mka1Log {
    fn heard(&self, body: &[u8]) {
        let user = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["externalUserId"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let now = Instant::now();
        if let Some(before) = self.last.lock().unwrap().insert(user, now) {
            let gap = now.duration_since(before).as_micros() as u64;
            self.shortest_gap_us.fetch_min(gap, Ordering::SeqCst);
        }
    }

    pub fn reset(&self) {
        self.last.lock().unwrap().clear();
        self.shortest_gap_us.store(u64::MAX, Ordering::SeqCst);
    }

    /// The shortest gap since the last reset, if any user was heard twice.
    pub fn shortest_gap(&self) -> Option<Duration> {
        match self.shortest_gap_us.load(Ordering::SeqCst) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// Requests the foreign origin received, and how many of them carried a credential or a
/// user (`Authorization` or `X-On-Behalf-Of`, any spelling).
#[derive(Default)]
pub struct ForeignLog {
    pub requests: AtomicU64,
    pub credentialed: AtomicU64,
}

pub struct World {
    /// Runs the service, the upstream, the foreign origin, the front and the issuer; kept
    /// alive for them.
    _server_rt: Runtime,
    pub client_rt: Runtime,
    pub issuer: DevIssuer,
    pub addr: SocketAddr,
    pub upstream: RawServer,
    upstream_mode: Arc<AtomicU8>,
    pub foreign: RawServer,
    pub foreign_log: Arc<ForeignLog>,
    pub mka1: RawServer,
    mka1_mode: Arc<AtomicU8>,
    pub mka1_log: Arc<Mka1Log>,
}

impl World {
    pub fn new(timeouts: Timeouts) -> World {
        let server_rt = multi_thread(2, "osoak-server");
        let client_rt = multi_thread(2, "osoak-load");
        let issuer = server_rt.block_on(async { DevIssuer::start().await.expect("dev issuer") });
        let handle = server_rt.handle();

        let foreign_log = Arc::new(ForeignLog::default());
        let foreign = RawServer::start(handle, foreign_handler(foreign_log.clone()));

        let upstream_mode = Arc::new(AtomicU8::new(UpstreamMode::Healthy as u8));
        let own = Arc::new(std::sync::OnceLock::new());
        let upstream = RawServer::start(
            handle,
            upstream_handler(
                upstream_mode.clone(),
                own.clone(),
                foreign.url(),
                timeouts.idle,
            ),
        );
        own.set(upstream.url()).expect("set once");

        let mka1_mode = Arc::new(AtomicU8::new(Mka1Mode::Healthy as u8));
        let mka1_log = Arc::new(Mka1Log::default());
        mka1_log.reset();
        let mka1 = RawServer::start(
            handle,
            mka1_handler(
                mka1_mode.clone(),
                mka1_log.clone(),
                issuer.exchange_token_url(),
                timeouts.retry_after_secs,
            ),
        );

        let router = server_rt.block_on(async {
            let verifier = Verifier::builder()
                .jwks_url(issuer.jwks_url())
                .issuer(issuer.issuer())
                .audience(AUDIENCE)
                .build()
                .expect("soak verifier");
            let exchange = ExchangeClient::builder()
                .base_url(mka1.url())
                .api_key(issuer.api_key())
                .timeout(timeouts.exchange)
                .max_attempts(timeouts.exchange_attempts)
                .backoff(timeouts.backoff.0, timeouts.backoff.1)
                .max_concurrent_exchanges(timeouts.exchange_slots)
                .build()
                .expect("exchange client");
            app(
                verifier,
                proxy(&upstream.url(), &timeouts),
                ExchangeRoute::new(&exchange, &upstream.url(), &foreign.url(), &timeouts),
            )
        });
        let addr = server_rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the service");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(async move { axum::serve(listener, router).await });
            addr
        });
        World {
            _server_rt: server_rt,
            client_rt,
            issuer,
            addr,
            upstream,
            upstream_mode,
            foreign,
            foreign_log,
            mka1,
            mka1_mode,
            mka1_log,
        }
    }

    pub fn set_upstream(&self, mode: UpstreamMode) {
        let before = self.upstream_mode.swap(mode as u8, Ordering::SeqCst);
        let refusing = UpstreamMode::Refusing as u8;
        if mode == UpstreamMode::Refusing && before != refusing {
            self.upstream.stop_listening();
        } else if mode != UpstreamMode::Refusing && before == refusing {
            self.upstream.listen_again();
        }
    }

    pub fn set_mka1(&self, mode: Mka1Mode) {
        self.mka1_mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The upstream's origin: the exchanged tokens' audience.
    pub fn upstream_origin(&self) -> String {
        self.upstream.url()
    }
}

fn multi_thread(workers: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---- the service under test -------------------------------------------------------------

type Proxy = Forward<Outbound<ReqwestService, ForwardToken>>;

/// The crate's HTTP client with the soak's timeouts, through its public settings.
fn client(timeouts: &Timeouts) -> ReqwestService {
    ReqwestService::from_builder(
        reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.idle),
    )
    .expect("reqwest client")
    .response_timeout(Some(timeouts.head))
}

/// `/proxy/<path>` to the upstream with the caller's own token, as the demo wires it.
fn proxy(upstream: &str, timeouts: &Timeouts) -> Proxy {
    let forward = ForwardLayer::builder(upstream).build().expect("forward");
    let client = OutboundLayer::builder(ForwardToken)
        .allow_origin(forward.origin())
        .build()
        .expect("outbound layer")
        .layer(client(timeouts));
    forward.layer(client)
}

/// The exchange-backed route's state: reqwest behind the outbound layer with tokens that
/// MKA1 mints for the upstream's audience and the caller (README's "Calling onward").
#[derive(Clone)]
struct ExchangeRoute {
    client: Outbound<ReqwestService, ExchangeSource>,
    upstream: Arc<str>,
    /// Where a careless handler can be talked into sending the request: not allowed.
    foreign: Arc<str>,
}

impl ExchangeRoute {
    fn new(
        exchange: &ExchangeClient,
        upstream: &str,
        foreign: &str,
        timeouts: &Timeouts,
    ) -> ExchangeRoute {
        let client = OutboundLayer::builder(exchange.source(upstream))
            .allow_origin(upstream)
            .build()
            .expect("outbound layer")
            .layer(client(timeouts));
        ExchangeRoute {
            client,
            upstream: upstream.into(),
            foreign: foreign.into(),
        }
    }
}

/// `GET /exchanged[?to=foreign][&path=redirect]`: the upstream's `/echo` (or `/redirect`),
/// called for the verified user with an exchanged token. The query lets a caller pick the
/// target: a careless handler, which the outbound layer must keep from sending credentials
/// anywhere but the allowed origin.
///
/// Failures, as README's handler answers them: 504 when the upstream timed out, else 502;
/// the refusal's kind (and the exchange error's) named in `x-soak-refusal`.
async fn exchanged(State(route): State<ExchangeRoute>, user: OnBehalfOf, uri: Uri) -> Response {
    let query = uri.query().unwrap_or("");
    let base = if query.contains("to=foreign") {
        &route.foreign
    } else {
        &route.upstream
    };
    let path = if query.contains("path=redirect") {
        "redirect"
    } else {
        "echo"
    };
    let mut request = http::Request::get(format!("{base}/{path}"))
        .body(String::new())
        .expect("request");
    request.extensions_mut().insert(user);
    match route.client.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) if error.kind() == OutboundErrorKind::Refused => {
            let refusal = error.refusal().expect("a refusal");
            let name = match (refusal.kind(), ExchangeError::of(refusal)) {
                (RefusalKind::Exchange, Some(e)) => format!("exchange:{:?}", e.kind()),
                (kind, _) => format!("{kind:?}"),
            };
            (
                StatusCode::BAD_GATEWAY,
                [(REFUSAL_HEADER, name)],
                "the onward call was refused\n",
            )
                .into_response()
        }
        Err(error)
            if error
                .service_error()
                .is_some_and(|e| e.kind() == ReqwestErrorKind::Timeout) =>
        {
            (StatusCode::GATEWAY_TIMEOUT, "the upstream timed out\n").into_response()
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "the upstream call failed\n").into_response(),
    }
}

fn app(verifier: Verifier, proxy: Proxy, exchange: ExchangeRoute) -> Router {
    let protected = Router::new()
        .nest_service("/proxy", proxy)
        .route("/exchanged", get(exchanged).with_state(exchange))
        .layer(Mka1AuthLayer::new(verifier));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
}

// ---- the upstream, the foreign origin, the MKA1 front ------------------------------------

/// What the upstream answers in its healthy and 5xx modes: who the call was for and whose
/// token it carried, one `name: value` line each.
pub fn echo(request: &Received) -> Vec<u8> {
    let mut out = String::new();
    for value in request.all("x-on-behalf-of") {
        out.push_str(&format!("obo: {value}\n"));
    }
    let claims = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if let Some(claims) = claims {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("sub: {}\n", text(&claims["sub"])));
        out.push_str(&format!("aud: {}\n", text(&claims["aud"])));
    }
    out.into_bytes()
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Action> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

fn upstream_handler(
    mode: Arc<AtomicU8>,
    own: Arc<std::sync::OnceLock<String>>,
    foreign: String,
    idle: Duration,
) -> Handler {
    handler(move |request: Received| {
        let mode = mode.load(Ordering::SeqCst);
        let foreign = foreign.clone();
        let own = own.get().cloned().unwrap_or_default();
        async move {
            let body = echo(&request);
            match mode {
                // Slow but alive: a byte every half idle period, four of them after the
                // echo. Every chunk is within the idle timeout, so it must arrive whole.
                _ if request.target.starts_with("/stream") => Action::Trickle {
                    status: 200,
                    first: body,
                    rest: 4,
                    every: idle / 2,
                },
                m if m == UpstreamMode::Hanging as u8 => Action::Hang,
                m if m == UpstreamMode::Refusing as u8 => Action::Reset,
                m if m == UpstreamMode::Trickling as u8 => Action::Trickle {
                    status: 200,
                    first: body,
                    rest: 64,
                    every: idle * 2,
                },
                m if m == UpstreamMode::TricklingHead as u8 => {
                    Action::TrickleHead { every: idle / 2 }
                }
                m if m == UpstreamMode::Error5xx as u8 => Action::Respond {
                    status: UPSTREAM_5XX,
                    headers: Vec::new(),
                    body,
                },
                // A redirect within the upstream's origin (followed), to one out of it.
                _ if request.target.starts_with("/hop") => Action::Respond {
                    status: 307,
                    headers: vec![("location", format!("{own}/redirect"))],
                    body: Vec::new(),
                },
                _ if request.target.starts_with("/redirect") => Action::Respond {
                    status: 307,
                    headers: vec![("location", format!("{foreign}/stolen"))],
                    body: Vec::new(),
                },
                _ => Action::Respond {
                    status: 200,
                    headers: Vec::new(),
                    body,
                },
            }
        }
    })
}

fn foreign_handler(log: Arc<ForeignLog>) -> Handler {
    handler(move |request: Received| {
        log.requests.fetch_add(1, Ordering::SeqCst);
        let carried = request.all("authorization").next().is_some()
            || request.all("x-on-behalf-of").next().is_some();
        if carried {
            log.credentialed.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            Action::Respond {
                status: 200,
                headers: Vec::new(),
                body: b"foreign\n".to_vec(),
            }
        }
    })
}

fn mka1_handler(
    mode: Arc<AtomicU8>,
    log: Arc<Mka1Log>,
    exchange_url: String,
    retry_after: u64,
) -> Handler {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("front client");
    handler(move |request: Received| {
        let mode = mode.load(Ordering::SeqCst);
        log.heard(&request.body);
        let (http, url) = (http.clone(), exchange_url.clone());
        async move {
            let json = |status, message: &str| Action::Respond {
                status,
                headers: Vec::new(),
                body: serde_json::json!({ "message": message })
                    .to_string()
                    .into_bytes(),
            };
            match mode {
                m if m == Mka1Mode::RateLimited as u8 => Action::Respond {
                    status: 429,
                    headers: vec![("retry-after", retry_after.to_string())],
                    body: br#"{"message":"slow down"}"#.to_vec(),
                },
                m if m == Mka1Mode::Error500 as u8 => json(500, "internal error"),
                m if m == Mka1Mode::Hanging as u8 => Action::Hang,
                _ if request.method != "POST" => json(405, "the exchange is a POST"),
                _ => pass_to_issuer(&http, &url, request).await,
            }
        }
    })
}

/// The healthy front: the exchange as it came, to the dev issuer, and its answer back.
async fn pass_to_issuer(http: &reqwest::Client, url: &str, request: Received) -> Action {
    let mut onward = http.post(url);
    for name in ["authorization", "content-type", "accept"] {
        if let Some(value) = request.header(name) {
            onward = onward.header(name, value);
        }
    }
    let onward = onward.body(request.body);
    match onward.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Action::Respond {
                status,
                headers: Vec::new(),
                body,
            }
        }
        Err(_) => Action::Respond {
            status: 502,
            headers: Vec::new(),
            body: Vec::new(),
        },
    }
}
