//! The main job: an API that accepts only MKA1 tokens.
//!
//! ```text
//! cargo run --example protected_api
//! ```
//!
//! With nothing configured it starts an embedded [`DevIssuer`] (a local MKA1 stand-in),
//! protects itself with [`Mka1AuthLayer`] against the issuer's JWKS, and prints, one per line:
//! `MKA1_SERVER_URL=...`, `MKA1_API_KEY=...`, `MKA1_AUDIENCE=...`, a ready-to-paste `curl`
//! that calls `/whoami` with a freshly minted token, a second one that calls `/agents` with a
//! token lacking `agent:read` (403), a ready-to-paste `call_downstream` command line, and
//! last `listening on http://<addr>`. Logs go to stderr: `RUST_LOG` filters them (default
//! `info,mka1_auth=debug`, so each refusal says why).
//!
//! Configured by environment instead (a real MKA1 deployment):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MKA1_JWKS_URL` | where MKA1's public keys are served; setting it turns the dev issuer off | (dev issuer) |
//! | `MKA1_AUDIENCE` | this service's URL, as tokens name it in `aud` | `http://<BIND>` |
//! | `MKA1_ISSUER` | required `iss`, if any | none |
//! | `BIND` | address to listen on | `127.0.0.1:3000` |
//! | `UPSTREAM_URL` | where `/proxy/<path>` forwards to | none (`/proxy` answers 502) |
//! | `PROXY_MAX_IN_FLIGHT` | how many `/proxy` calls may wait on the upstream at once; one more gets 503 with `Retry-After: 1` | 256 |
//! | `MKA1_REVOCATION_REDIS_URL` | Redis holding revocation rules shared by every replica (feature `redis`) | none (no revocation) |
//!
//! `MKA1_AUDIENCE` or `MKA1_ISSUER` set without `MKA1_JWKS_URL` is a partial production
//! configuration: the demo refuses to start (exit status 2) and names `MKA1_JWKS_URL`,
//! rather than fall back to the dev issuer, which would print an administrator API key and
//! trust the tokens it mints. `BIND` and `UPSTREAM_URL` work in both modes.
//!
//! Routes: `GET /healthz` (no auth, liveness), `GET /readyz` (no auth: 200 while the key
//! set is usable and the revocation rules, when configured, are loaded, else 503 with a
//! short JSON reason; it reports the rules' state, stale since when included), `GET /metrics` (no auth, Prometheus
//! text; serve it on an internal port in production), `GET /whoami`, `GET /agents` (needs
//! `agent:read`), `GET /open/agents` (no auth: the same answer as `/agents` for a fixed user,
//! the open twin for measuring what the guard costs),
//! and any method on `/proxy/<path>`, forwarded to `UPSTREAM_URL/<path>` with the caller's
//! token and `X-On-Behalf-Of` set to the verified user. The forward
//! ([`mka1_auth::outbound::forward`]) keeps the path under `UPSTREAM_URL`'s (dot segments in
//! any spelling get 400), drops the caller's identity and hop-by-hop headers, and streams
//! bodies (over 10 MiB gets 413). tower's `LoadShed`, `ConcurrencyLimit` and `Timeout` bound
//! it: at most `PROXY_MAX_IN_FLIGHT` calls wait on the upstream, one more is shed at once
//! with 503 and `Retry-After`, and a call still without an answer's head after 35 s gets 504
//! (the upstream client's own 30 s response timeout answers 504 first).

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::error_handling::HandleErrorLayer;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::BoxError;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use mka1_auth::outbound::forward::{Forward, ForwardLayer};
use mka1_auth::outbound::{Outbound, OutboundLayer, ReqwestService};
#[cfg(feature = "redis")]
use mka1_auth::revocation::RedisRevocations;
use mka1_auth::revocation::Revocations;
use mka1_auth::{
    outbound::ForwardToken, Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, VerifiedToken,
    Verifier,
};
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use serde_json::json;
use tower::layer::util::Identity;
use tower::{Layer, ServiceBuilder};

/// How many `/proxy` calls may wait on the upstream at once, unless `PROXY_MAX_IN_FLIGHT` says.
const DEFAULT_PROXY_MAX_IN_FLIGHT: usize = 256;
/// The longest a `/proxy` call waits for the answer's head: a backstop behind the upstream
/// client's own response timeout (30 s).
const PROXY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(35);

/// The proxy: a forward to `UPSTREAM_URL` over reqwest behind the outbound layer, which sends
/// the caller's own token and `X-On-Behalf-Of` set to the verified user.
type Upstream = Forward<Outbound<ReqwestService, ForwardToken>>;

async fn whoami(token: VerifiedToken) -> Json<serde_json::Value> {
    Json(json!({
        "sub": token.subject(),
        "permissions": token.permissions().iter().collect::<Vec<_>>(),
        "exp": token.expires_at(),
        "iat": token.issued_at(),
        "iss": token.issuer(),
        "aud": token.audiences().collect::<Vec<_>>(),
    }))
}

async fn agents(user: OnBehalfOf) -> Json<serde_json::Value> {
    agents_of(user.as_str())
}

/// What `/agents` answers, for `user`.
fn agents_of(user: &str) -> Json<serde_json::Value> {
    Json(json!({ "agents": [], "visible_to": user }))
}

/// `/open/agents`: the open twin of `/agents`, for measuring what the guard costs (the same
/// answer for a fixed user, with no token read; see `benches/README.md`).
async fn open_agents() -> Json<serde_json::Value> {
    agents_of("user-42")
}

/// What `/proxy` answers when tower's layers in front of the forward give up: 503 with
/// `Retry-After` when the in-flight cap is reached, 504 when the upstream's answer is late.
/// Never a 2xx.
async fn proxy_overloaded(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!(
            kind = "overloaded",
            status = 503,
            "proxy: in-flight cap reached"
        );
        let retry = [(header::RETRY_AFTER, "1")];
        (
            StatusCode::SERVICE_UNAVAILABLE,
            retry,
            "the upstream is busy\n",
        )
            .into_response()
    } else if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!(
            kind = "timeout",
            status = 504,
            "proxy: the upstream did not answer in time"
        );
        (
            StatusCode::GATEWAY_TIMEOUT,
            "the upstream did not answer in time\n",
        )
            .into_response()
    } else {
        tracing::warn!(kind = "internal", status = 500, %error, "proxy: failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "the proxy failed\n").into_response()
    }
}

fn app(
    verifier: Verifier,
    upstream: Option<Upstream>,
    revocations: Option<Revocations>,
    max_in_flight: usize,
) -> Router {
    // `/proxy/<path>` goes to `UPSTREAM_URL/<path>`, contained under its path, with the
    // caller's token and verified user set by the outbound layer (see `upstream_client`).
    // At most `max_in_flight` calls wait on the upstream; the next is shed with 503.
    let proxy = match upstream {
        Some(upstream) => {
            let bounded = ServiceBuilder::new()
                .layer(HandleErrorLayer::new(proxy_overloaded))
                .load_shed()
                .concurrency_limit(max_in_flight)
                .timeout(PROXY_TIMEOUT)
                .service(upstream);
            Router::new().nest_service("/proxy", bounded)
        }
        None => Router::new().route(
            "/proxy/{*path}",
            any(|| async { (StatusCode::BAD_GATEWAY, "no UPSTREAM_URL configured\n") }),
        ),
    };
    let protected = proxy
        .route("/whoami", get(whoami))
        .route(
            "/agents",
            get(agents).route_layer(RequirePermissionsLayer::new(["agent:read"])),
        )
        .layer(Mka1AuthLayer::new(verifier.clone()));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || readyz(verifier.clone(), revocations.clone())),
        )
        .route("/metrics", get(metrics))
        // The open twin of `/agents` sits behind two layers that do nothing, where `/agents`
        // has `RequirePermissionsLayer` and `Mka1AuthLayer`: axum boxes a route's service once
        // per layer added with `route_layer` or `Router::layer`, so with these the two routes
        // differ by the guard alone.
        .merge(
            Router::new()
                .route(
                    "/open/agents",
                    get(open_agents).route_layer(Identity::new()),
                )
                .layer(Identity::new()),
        )
        .merge(protected)
        // The same stack for the open routes as for the guarded ones, but the guard.
        .layer(axum::middleware::map_response(log_refusal))
}

/// Readiness: 200 while the key set is usable (fresh, or stale within its limit), else 503
/// with a short reason; both with the key set's status.
async fn readyz(
    verifier: Verifier,
    revocations: Option<Revocations>,
) -> (StatusCode, Json<serde_json::Value>) {
    let status = verifier.key_set_status();
    let rules = revocations.map(|r| r.status());
    let rules_json = rules.as_ref().map(|r| {
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        json!({
            "loaded": r.loaded,
            "rule_count": r.rule_count,
            "last_loaded": r.last_loaded.map(unix),
            "stale_since": r.stale_since.map(unix),
            "skipped_values": r.skipped_values,
            "last_error": r.last_error,
        })
    });
    let rules_loaded = rules.as_ref().is_none_or(|r| r.loaded);
    if status.usable && rules_loaded {
        return (
            StatusCode::OK,
            Json(json!({ "ready": true, "key_set": status, "revocations": rules_json })),
        );
    }
    if status.usable {
        let body = json!({
            "ready": false,
            "reason": "revocation rules not loaded yet",
            "key_set": status,
            "revocations": rules_json,
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let reason = match (&status.last_error, status.last_success) {
        (Some(error), _) => format!("no usable key set: the last fetch failed: {error}"),
        (None, None) => "no key set fetched yet".to_owned(),
        (None, Some(_)) => "the key set outlived its stale-if-error window".to_owned(),
    };
    let body =
        json!({ "ready": false, "reason": reason, "key_set": status, "revocations": rules_json });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// The Prometheus recorder, installed once for the process; its handle renders the text.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (then this one sees nothing).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The metrics in the Prometheus text format: the counts published first (they are kept
/// per thread until then; see `mka1_auth::metrics`).
async fn metrics() -> Response {
    let prometheus = prometheus();
    mka1_auth::metrics::publish();
    let content_type = [("content-type", "text/plain; version=0.0.4")];
    (content_type, prometheus.render()).into_response()
}

/// One `info` line per refused request: kind and status, never the token. (Answers of 500
/// and up are logged by the crate itself, at `warn`.)
async fn log_refusal(response: Response) -> Response {
    if let Some(error) = response.extensions().get::<mka1_auth::Error>() {
        let status = response.status();
        if !status.is_server_error() {
            tracing::info!(kind = ?error.kind(), status = status.as_u16(), "request refused");
        }
    }
    response
}

fn upstream_client(url: &str) -> Result<Upstream, Box<dyn Error>> {
    let forward = ForwardLayer::builder(url).build()?;
    let client = OutboundLayer::builder(ForwardToken)
        .allow_origin(forward.origin())
        .build()?
        .layer(ReqwestService::new()?);
    Ok(forward.layer(client))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// What the demo runs with; [`Config::from_env`] reads it from the environment.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `BIND`, default `127.0.0.1:3000`.
    pub bind: Option<SocketAddr>,
    /// `MKA1_JWKS_URL`; none starts the embedded dev issuer.
    pub jwks_url: Option<String>,
    /// `MKA1_AUDIENCE`, default the server's own URL.
    pub audience: Option<String>,
    /// `MKA1_ISSUER`, optional.
    pub issuer: Option<String>,
    /// `UPSTREAM_URL`, optional.
    pub upstream_url: Option<String>,
    /// `PROXY_MAX_IN_FLIGHT`, default 256: `/proxy` calls waiting on the upstream at once.
    pub proxy_max_in_flight: Option<usize>,
    /// `MKA1_REVOCATION_REDIS_URL`, optional: revocation rules from Redis.
    pub revocation_redis_url: Option<String>,
}

/// The variables of a production configuration, each of which needs `MKA1_JWKS_URL`.
const PRODUCTION_ONLY: [&str; 2] = ["MKA1_AUDIENCE", "MKA1_ISSUER"];

impl Config {
    /// Read the configuration from the environment.
    pub fn from_env() -> Result<Config, Box<dyn Error>> {
        Self::from_vars(var)
    }

    /// Read the configuration through `var` (a variable's non-empty value). A production
    /// variable without `MKA1_JWKS_URL` is an error naming it: no silent dev issuer.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, Box<dyn Error>> {
        let set: Vec<&str> = PRODUCTION_ONLY
            .into_iter()
            .filter(|name| var(name).is_some())
            .collect();
        if var("MKA1_JWKS_URL").is_none() && !set.is_empty() {
            let (names, verb) = (set.join(" and "), if set.len() > 1 { "are" } else { "is" });
            return Err(format!(
                "MKA1_JWKS_URL is not set, but {names} {verb}: set MKA1_JWKS_URL to your MKA1 \
                 deployment's JWKS URL, or unset {names} to run the embedded dev issuer"
            )
            .into());
        }
        Ok(Config {
            bind: var("BIND")
                .map(|b| {
                    b.parse().map_err(|_| {
                        format!(
                            "BIND={b} is not an ip address and port such as 127.0.0.1:3000 \
                             (a host name like localhost is not accepted)"
                        )
                    })
                })
                .transpose()?,
            jwks_url: var("MKA1_JWKS_URL"),
            audience: var("MKA1_AUDIENCE"),
            issuer: var("MKA1_ISSUER"),
            upstream_url: var("UPSTREAM_URL"),
            proxy_max_in_flight: var("PROXY_MAX_IN_FLIGHT")
                .map(|v| match v.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(format!(
                        "PROXY_MAX_IN_FLIGHT={v} is not a whole number of at least 1"
                    )),
                })
                .transpose()?,
            revocation_redis_url: var("MKA1_REVOCATION_REDIS_URL"),
        })
    }
}

/// A started demo.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The embedded issuer, when no JWKS URL was configured.
    pub dev_issuer: Option<DevIssuer>,
    /// The server task.
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Bind, print the start-up lines to `out`, and serve in a background task.
pub async fn start(config: Config, out: &mut impl Write) -> Result<Running, Box<dyn Error>> {
    let bind = config
        .bind
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "cannot listen on {bind}: another process is using it; \
                 set BIND to a free address, e.g. BIND=127.0.0.1:3005"
            ),
            _ => format!("cannot listen on {bind}: {e}"),
        })?;
    let addr = listener.local_addr()?;
    let audience = config.audience.unwrap_or_else(|| format!("http://{addr}"));

    let mut dev_issuer = None;
    let mut builder = Verifier::builder().audience(&audience);
    match config.jwks_url {
        Some(jwks_url) => {
            builder = builder.jwks_url(jwks_url);
            if let Some(issuer) = config.issuer {
                builder = builder.issuer(issuer);
            }
        }
        None => {
            let issuer = DevIssuer::start().await?;
            builder = builder.jwks_url(issuer.jwks_url()).issuer(issuer.issuer());
            let token = issuer.mint(Mint::new(&audience, "user-42").permissions(["agent:read"]));
            let no_read = Mint::new(&audience, "user-7").permissions(Vec::<String>::new());
            let no_read = issuer.mint(no_read);
            writeln!(out, "MKA1_SERVER_URL={}", issuer.base_url())?;
            writeln!(out, "MKA1_API_KEY={}", issuer.api_key())?;
            writeln!(out, "MKA1_AUDIENCE={audience}")?;
            writeln!(
                out,
                "curl -s -H 'Authorization: Bearer {token}' http://{addr}/whoami"
            )?;
            // The same route and one that needs `agent:read`, with a token that lacks it: 403.
            writeln!(
                out,
                "curl -s -i -H 'Authorization: Bearer {no_read}' http://{addr}/agents"
            )?;
            writeln!(
                out,
                "MKA1_SERVER_URL={} MKA1_API_KEY={} TARGET_URL=http://{addr} END_USER=user-42 \
                 cargo run --example call_downstream",
                issuer.base_url(),
                issuer.api_key()
            )?;
            dev_issuer = Some(issuer);
        }
    }
    // Revocation rules from Redis, followed by a task that lives as long as the server.
    let (revocations, revocation_source) = revocation_source(config.revocation_redis_url)?;
    if let Some(revocations) = &revocations {
        builder = builder.revocations(revocations.clone());
    }
    // Builds without I/O: the service starts even when the JWKS endpoint is down.
    let verifier = builder.build()?;
    warm_up(&verifier);
    // Keeps the keys fresh without traffic; runs as long as the returned handle lives.
    let refresher = verifier.spawn_refresher()?;
    let upstream = config
        .upstream_url
        .map(|u| upstream_client(&u))
        .transpose()?;

    let max_in_flight = config
        .proxy_max_in_flight
        .unwrap_or(DEFAULT_PROXY_MAX_IN_FLIGHT);
    let router = app(verifier, upstream, revocations, max_in_flight);
    let server = tokio::spawn(async move {
        let _refresher = refresher;
        let _revocation_source = revocation_source;
        axum::serve(listener, router).await
    });
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    Ok(Running {
        addr,
        dev_issuer,
        server,
    })
}

/// The Redis revocation source `MKA1_REVOCATION_REDIS_URL` names, if any: its rules, and the
/// handle that keeps following Redis.
#[cfg(feature = "redis")]
fn revocation_source(
    url: Option<String>,
) -> Result<(Option<Revocations>, Option<RedisRevocations>), Box<dyn Error>> {
    let Some(url) = url else {
        return Ok((None, None));
    };
    let source = Revocations::redis(url).start()?;
    Ok((Some(source.revocations()), Some(source)))
}

#[cfg(not(feature = "redis"))]
fn revocation_source(
    url: Option<String>,
) -> Result<(Option<Revocations>, Option<()>), Box<dyn Error>> {
    match url {
        None => Ok((None, None)),
        Some(_) => Err("MKA1_REVOCATION_REDIS_URL needs the `redis` feature".into()),
    }
}

/// Fetch the key set in the background now, so `/readyz` does not wait for the first
/// token; start-up does not wait for it either (the JWKS endpoint may be down).
fn warm_up(verifier: &Verifier) {
    let verifier = verifier.clone();
    tokio::spawn(async move {
        match verifier.refresh().await {
            Ok(status) => tracing::info!(key_count = status.key_count, "key set ready"),
            Err(error) => {
                tracing::warn!(%error, "no usable key set yet: /readyz answers 503 until one is fetched")
            }
        }
    });
}

/// Log to stderr, filtered by `RUST_LOG` (default `info,mka1_auth=debug`: every refusal
/// shows why).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,mka1_auth=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// What `main` does, reading variables through `var`: exit status 2 (and the reason on
/// `err`) when the configuration is unusable, before anything starts; else serve until the
/// server fails (exit status 1).
pub async fn run(
    var: impl Fn(&str) -> Option<String>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> ExitCode {
    let config = match Config::from_vars(var) {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(err, "protected_api: {e}");
            return ExitCode::from(2);
        }
    };
    let served: Result<(), Box<dyn Error>> = async {
        let running = start(config, out).await?;
        running.server.await??;
        Ok(())
    }
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "protected_api: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    run(var, &mut std::io::stdout(), &mut std::io::stderr()).await
}
