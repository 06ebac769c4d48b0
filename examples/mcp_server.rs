//! An MCP tool server (rmcp, Streamable HTTP at `/mcp`) behind `Mka1AuthLayer`, with every
//! session bound to the user who opened it.
//!
//! ```text
//! cargo run --example mcp_server
//! ```
//!
//! Same environment as `protected_api`: `MKA1_JWKS_URL`, `MKA1_AUDIENCE`, `MKA1_ISSUER`,
//! `BIND` (default `127.0.0.1:3001`). With none of them set it starts the embedded dev
//! issuer and prints `MKA1_SERVER_URL=`, `MKA1_API_KEY=`, `MKA1_AUDIENCE=` and a command
//! that calls the `whoami` tool. For the onward tool in production set `MKA1_SERVER_URL`,
//! `MKA1_API_KEY` and `NOTES_URL` (a service accepting exchanged tokens for its own URL);
//! with the dev issuer a notes service runs in-process. `MCP_STATELESS=1` serves statelessly.
//!
//! Tools:
//! - `whoami`: the verified `sub` and `permissions`, as JSON text;
//! - `list_agents`: needs `agent:read`, or answers a tool error naming it;
//! - `my_notes`: calls the notes service for the caller with a token MKA1 exchanged for
//!   that service (`ExchangeSource`); the inbound token is never passed through.

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use mka1_auth::exchange::{ExchangeClient, ExchangeSource};
use mka1_auth::mcp::{caller, require, McpSessionLayer};
use mka1_auth::outbound::{Outbound, OutboundLayer, ReqwestService};
use mka1_auth::{Mka1AuthLayer, OnBehalfOf, Verifier};
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde_json::json;
use tower::{Layer, ServiceExt};

/// The client for onward calls: exchanged tokens for the notes service, per user.
type Notes = Outbound<ReqwestService, ExchangeSource>;

/// The onward target: where it is, and the client that reaches it.
#[derive(Clone)]
pub struct Onward {
    pub url: String,
    pub client: Notes,
}

/// The tools. rmcp builds one per session (or per request when stateless).
#[derive(Clone)]
pub struct Tools {
    onward: Option<Onward>,
    tool_router: ToolRouter<Self>,
}

fn text(value: impl Into<String>) -> Vec<ContentBlock> {
    vec![ContentBlock::text(value)]
}

/// A tool error (`isError: true`) saying `why`.
fn tool_error(why: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(text(why.to_string()))
}

#[tool_router]
impl Tools {
    pub fn new(onward: Option<Onward>) -> Self {
        Tools {
            onward,
            tool_router: Self::tool_router(),
        }
    }

    /// The HTTP request's `Parts` carry what `Mka1AuthLayer` verified.
    #[tool(description = "Who the caller is: the verified subject and permissions")]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> CallToolResult {
        match caller(&parts.extensions) {
            Ok(token) => CallToolResult::success(text(
                json!({
                    "sub": token.subject(),
                    "permissions": token.permissions().iter().collect::<Vec<_>>(),
                })
                .to_string(),
            )),
            Err(refusal) => tool_error(refusal),
        }
    }

    #[tool(description = "The agents the caller may see (needs agent:read)")]
    fn list_agents(&self, Extension(parts): Extension<http::request::Parts>) -> CallToolResult {
        let token = match require(&parts.extensions, ["agent:read"]) {
            Ok(token) => token,
            Err(refusal) => return tool_error(refusal),
        };
        CallToolResult::success(text(
            json!({ "agents": ["support-bot"], "visible_to": token.subject() }).to_string(),
        ))
    }

    #[tool(description = "The caller's notes, fetched from the notes service on their behalf")]
    async fn my_notes(&self, Extension(parts): Extension<http::request::Parts>) -> CallToolResult {
        let Some(onward) = &self.onward else {
            return tool_error("onward calls are not configured (set NOTES_URL)");
        };
        let Some(user) = OnBehalfOf::from_extensions(&parts.extensions).cloned() else {
            return tool_error("unauthenticated: this tool needs a verified mka1 token");
        };
        // The user goes in the onward request's extensions; the outbound layer asks MKA1
        // for a token for the notes service and this user, and sends that.
        let mut request = http::Request::get(format!("{}/notes", onward.url))
            .body(String::new())
            .expect("a valid request");
        request.extensions_mut().insert(user);
        let response = match onward.client.clone().oneshot(request).await {
            Ok(response) => response,
            Err(error) => return tool_error(format!("the notes service was not reached: {error}")),
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(error) => {
                return tool_error(format!("the notes service's answer broke off: {error}"))
            }
        };
        if status.is_success() {
            CallToolResult::success(text(body))
        } else {
            tool_error(format!("the notes service answered {status}"))
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The MCP route behind the layers: authentication first, then the session binding.
/// `hosts`: the `Host` values rmcp accepts (it refuses others, against DNS rebinding): the
/// bound address and the audience's host.
pub fn app(
    verifier: Verifier,
    onward: Option<Onward>,
    stateless: bool,
    hosts: &[String],
) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!stateless)
        .with_allowed_hosts(hosts.to_vec());
    let mcp = StreamableHttpService::new(
        move || Ok(Tools::new(onward.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    let guarded = McpSessionLayer::new().layer(mcp);
    Router::new()
        .route_service("/mcp", guarded)
        .layer(Mka1AuthLayer::new(verifier))
        .route("/healthz", get(|| async { "ok\n" }))
}

/// The notes service the dev setup runs: it accepts exchanged tokens for its own URL.
async fn start_notes(verifier_for: impl FnOnce(&str) -> Verifier) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let notes = Router::new()
        .route(
            "/notes",
            get(|user: OnBehalfOf| async move {
                Json(json!({ "notes_of": user.as_str(), "notes": ["buy milk"] }))
            }),
        )
        .layer(Mka1AuthLayer::new(verifier_for(&url)));
    tokio::spawn(async move { axum::serve(listener, notes).await });
    Ok(url)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The environment, read once.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub bind: Option<SocketAddr>,
    pub jwks_url: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub server_url: Option<String>,
    pub api_key: Option<String>,
    pub notes_url: Option<String>,
    pub stateless: bool,
}

impl Config {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, Box<dyn Error>> {
        // As `protected_api`: production settings without a key source are a mistake, not
        // a request for the dev issuer.
        let set: Vec<&str> = ["MKA1_AUDIENCE", "MKA1_ISSUER"]
            .into_iter()
            .filter(|name| var(name).is_some())
            .collect();
        if var("MKA1_JWKS_URL").is_none() && !set.is_empty() {
            let names = set.join(" and ");
            return Err(format!(
                "MKA1_JWKS_URL is not set, but {names} is: set MKA1_JWKS_URL to your MKA1 \
                 deployment's JWKS URL, or unset {names} to run the embedded dev issuer"
            )
            .into());
        }
        Ok(Config {
            bind: var("BIND")
                .map(|b| {
                    b.parse()
                        .map_err(|_| format!("BIND={b} is not an ip address and port"))
                })
                .transpose()?,
            jwks_url: var("MKA1_JWKS_URL"),
            audience: var("MKA1_AUDIENCE"),
            issuer: var("MKA1_ISSUER"),
            server_url: var("MKA1_SERVER_URL"),
            api_key: var("MKA1_API_KEY"),
            notes_url: var("NOTES_URL"),
            stateless: var("MCP_STATELESS").is_some_and(|v| v == "1" || v == "true"),
        })
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub dev_issuer: Option<DevIssuer>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn onward(server_url: &str, api_key: &str, notes_url: String) -> Result<Onward, Box<dyn Error>> {
    let exchange = ExchangeClient::builder()
        .base_url(server_url)
        .api_key(api_key)
        .build()?;
    let client = OutboundLayer::builder(exchange.source(&notes_url))
        .allow_origin(notes_url.as_str())
        .build()?
        .layer(ReqwestService::new()?);
    Ok(Onward {
        url: notes_url,
        client,
    })
}

pub async fn start(config: Config, out: &mut impl Write) -> Result<Running, Box<dyn Error>> {
    let bind = config
        .bind
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3001)));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let audience = config
        .audience
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    let mut dev_issuer = None;
    let (verifier, onward) = match config.jwks_url {
        Some(jwks_url) => {
            let mut builder = Verifier::builder().audience(&audience).jwks_url(jwks_url);
            if let Some(issuer) = config.issuer {
                builder = builder.issuer(issuer);
            }
            let onward = match (config.server_url, config.api_key, config.notes_url) {
                (Some(server), Some(key), Some(notes)) => Some(onward(&server, &key, notes)?),
                _ => None,
            };
            (builder.build()?, onward)
        }
        None => {
            let issuer = DevIssuer::start().await?;
            let verifier_for = |aud: &str| {
                Verifier::builder()
                    .audience(aud)
                    .jwks_url(issuer.jwks_url())
                    .issuer(issuer.issuer())
                    .build()
                    .expect("a valid dev verifier")
            };
            let notes_url = start_notes(verifier_for).await?;
            let onward = onward(issuer.base_url(), issuer.api_key(), notes_url)?;
            let token = issuer.mint(Mint::new(&audience, "user-42").permissions(["agent:read"]));
            writeln!(out, "MKA1_SERVER_URL={}", issuer.base_url())?;
            writeln!(out, "MKA1_API_KEY={}", issuer.api_key())?;
            writeln!(out, "MKA1_AUDIENCE={audience}")?;
            writeln!(out, "{}", curl_whoami(&addr, &token))?;
            let verifier = verifier_for(&audience);
            dev_issuer = Some(issuer);
            (verifier, Some(onward))
        }
    };
    let refresher = verifier.spawn_refresher()?;
    let mut hosts = vec![
        addr.ip().to_string(),
        addr.to_string(),
        "localhost".to_owned(),
    ];
    if let Some(host) = audience
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
    {
        hosts.push(host);
    }
    let router = app(verifier, onward, config.stateless, &hosts);
    let server = tokio::spawn(async move {
        let _refresher = refresher;
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

/// One command that calls `whoami`: a JSON-RPC `tools/call` over Streamable HTTP, in MCP
/// 2026-07-28, where a request carries its protocol version and client capabilities in
/// `_meta` and needs no session (rmcp serves it statelessly even in session mode).
pub fn curl_whoami(addr: &SocketAddr, token: &str) -> String {
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    format!(
        "curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \
         -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: whoami' \
         http://{addr}/mcp -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\
         \"params\":{{\"name\":\"whoami\",\"arguments\":{{}},{meta}}}}}'"
    )
}

/// Run with the environment `var`: exit status 2 for a configuration mistake, 1 when the
/// server cannot start or stops with an error.
pub async fn run(var: impl Fn(&str) -> Option<String>, out: &mut impl Write) -> ExitCode {
    let config = match Config::from_vars(var) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mcp_server: {e}");
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
            eprintln!("mcp_server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,mka1_auth=debug")),
        )
        .with_writer(std::io::stderr)
        .init();
    run(var, &mut std::io::stdout()).await
}
