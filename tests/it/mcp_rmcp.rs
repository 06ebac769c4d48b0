//! `examples/mcp_server.rs` run in-process, called by rmcp's own Streamable HTTP client with
//! the token in its headers: initialize, list and call each tool; tokens refused with 401
//! before any MCP handling; a missing permission as a tool error; a session refused to
//! another user and continued by its own; stateless mode.

#[allow(dead_code)]
#[path = "../../examples/mcp_server.rs"]
pub(crate) mod mcp_server; // mcp_python runs it too

use std::time::{SystemTime, UNIX_EPOCH};

use mcp_server::{start, Config, Running};
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

struct Demo {
    running: Running,
    url: String,
    audience: String,
}

async fn demo(stateless: bool) -> Demo {
    let config = Config {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        stateless,
        ..Config::default()
    };
    let mut out = Vec::new();
    let running = start(config, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    let audience = out
        .lines()
        .find_map(|l| l.strip_prefix("MKA1_AUDIENCE="))
        .unwrap()
        .to_owned();
    let url = format!("http://{}/mcp", running.addr);
    assert_eq!(audience, url);
    Demo {
        running,
        url,
        audience,
    }
}

impl Demo {
    fn issuer(&self) -> &DevIssuer {
        self.running.dev_issuer.as_ref().unwrap()
    }

    fn token(&self, sub: &str, permissions: &[&str]) -> String {
        self.issuer()
            .mint(Mint::new(&self.audience, sub).permissions(permissions.iter().copied()))
    }

    /// rmcp's client, speaking `version`, with `token` as its bearer token.
    async fn client(
        &self,
        token: &str,
        version: ProtocolVersion,
    ) -> Result<RunningService<RoleClient, ClientConfig>, rmcp::service::ClientInitializeError>
    {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str());
        if !token.is_empty() {
            config = config.auth_header(token); // sent as `Authorization: Bearer <token>`
        }
        let transport = StreamableHttpClientTransport::from_config(config);
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mka1-auth-tests", "0"),
        )
        .with_protocol_version(version)
        .serve(transport)
        .await
    }

    /// A raw POST of one JSON-RPC message (MCP 2025-11-25, which has sessions); no
    /// `Authorization` for an empty `token`.
    async fn post(&self, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = reqwest::Client::new().post(&self.url);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        request = request
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.send().await.unwrap()
    }
}

fn text_of(result: &CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

async fn call(client: &RunningService<RoleClient, ClientConfig>, tool: &str) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()))
        .await
        .unwrap()
}

/// Every tool, through a client speaking `version`, for a user with `agent:read`.
async fn every_tool(demo: &Demo, version: ProtocolVersion) {
    let client = demo
        .client(&demo.token("user-42", &["agent:read"]), version)
        .await
        .unwrap();
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["list_agents", "my_notes", "whoami"]);

    let whoami = call(&client, "whoami").await;
    assert_ne!(whoami.is_error, Some(true));
    let who: Value = serde_json::from_str(&text_of(&whoami)).unwrap();
    assert_eq!(
        who,
        json!({ "sub": "user-42", "permissions": ["agent:read"] })
    );

    let agents = call(&client, "list_agents").await;
    assert_ne!(agents.is_error, Some(true));
    assert!(text_of(&agents).contains(r#""visible_to":"user-42""#));

    // The notes service accepts only a token exchanged for its own audience: the call
    // succeeding shows the inbound token (audience: the MCP server) was not passed on.
    let notes = call(&client, "my_notes").await;
    assert_ne!(notes.is_error, Some(true), "{}", text_of(&notes));
    let notes: Value = serde_json::from_str(&text_of(&notes)).unwrap();
    assert_eq!(notes["notes_of"], "user-42");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_calls_every_tool_in_a_session() {
    let demo = demo(false).await;
    every_tool(&demo, ProtocolVersion::V_2025_11_25).await;
}

#[tokio::test]
async fn rmcp_client_calls_every_tool_in_the_sessionless_protocol() {
    let demo = demo(false).await;
    every_tool(&demo, ProtocolVersion::LATEST).await;
}

#[tokio::test]
async fn rmcp_client_calls_every_tool_on_a_stateless_server() {
    let demo = demo(true).await;
    every_tool(&demo, ProtocolVersion::V_2025_11_25).await;
}

#[tokio::test]
async fn a_missing_permission_is_a_tool_error_naming_it() {
    let demo = demo(false).await;
    let client = demo
        .client(&demo.token("user-7", &[]), ProtocolVersion::V_2025_11_25)
        .await
        .unwrap();
    let result = call(&client, "list_agents").await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("agent:read"), "{text}");
    assert!(!text.contains("support-bot"), "the tool body ran: {text}");
    // The session goes on: other tools still answer.
    assert_ne!(call(&client, "whoami").await.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn refused_tokens_get_401_before_any_mcp_handling() {
    let demo = demo(false).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = demo.issuer().mint(
        Mint::new(&demo.audience, "user-42")
            .claim("iat", now - 7200)
            .claim("exp", now - 3600),
    );
    let forger = DevIssuer::start().await.unwrap();
    let forged = forger.mint(Mint::new(&demo.audience, "user-42"));
    let other_audience = demo
        .issuer()
        .mint(Mint::new("http://127.0.0.1:1/other", "user-42"));
    for (what, token) in [
        ("none", ""),
        ("expired", expired.as_str()),
        ("forged", forged.as_str()),
        ("other audience", other_audience.as_str()),
    ] {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "t", "version": "0" } },
        });
        let response = demo.post(token, None, initialize).await;
        assert_eq!(response.status(), 401, "{what}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(response.headers().get("mcp-session-id").is_none());
        let body = response.text().await.unwrap();
        assert!(!body.contains("jsonrpc"), "{what}: MCP answered: {body}");
        assert!(
            demo.client(token, ProtocolVersion::V_2025_11_25)
                .await
                .is_err(),
            "{what}: the rmcp client connected"
        );
    }
}

#[tokio::test]
async fn a_session_is_refused_to_another_user_and_continued_by_its_own() {
    let demo = demo(false).await;
    let alice = demo.token("alice", &["agent:read"]);
    let bob = demo.token("bob", &["agent:read"]);
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": { "name": "t", "version": "0" } },
    });
    let opened = demo.post(&alice, None, initialize).await;
    assert_eq!(opened.status(), 200);
    let id = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(opened.text().await);
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let response = demo.post(&alice, Some(&id), initialized).await;
    assert!(response.status().is_success(), "{}", response.status());

    let whoami = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "whoami", "arguments": {} },
    });
    // Bob, with a valid token of his own, cannot use Alice's session.
    let refused = demo.post(&bob, Some(&id), whoami.clone()).await;
    assert_eq!(refused.status(), 404);
    assert!(!refused.text().await.unwrap().contains("alice"));
    // Nor end it.
    let deleted = reqwest::Client::new()
        .delete(&demo.url)
        .bearer_auth(&bob)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);
    // Alice continues, with a newer token of hers too.
    let newer = demo.token("alice", &[]);
    for token in [&alice, &newer] {
        let response = demo.post(token, Some(&id), whoami.clone()).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.contains(r#"\"sub\":\"alice\""#), "{body}");
    }
    // Alice ends it; then it is gone for her too.
    let deleted = reqwest::Client::new()
        .delete(&demo.url)
        .bearer_auth(&alice)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let response = demo.post(&alice, Some(&id), whoami).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_printed_command_calls_whoami() {
    let demo = demo(false).await;
    let token = demo.token("user-42", &["agent:read"]);
    let command = mcp_server::curl_whoami(&demo.running.addr, &token);
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains(r#"\"sub\":\"user-42\""#),
        "{command}\n{stdout}"
    );
}

#[tokio::test]
async fn production_settings_without_a_key_source_exit_2() {
    for name in ["MKA1_AUDIENCE", "MKA1_ISSUER"] {
        let var = |n: &str| (n == name).then(|| "https://tools.example.test/mcp".to_owned());
        let code = mcp_server::run(var, &mut Vec::new()).await;
        assert_eq!(code, std::process::ExitCode::from(2), "{name}");
    }
}

#[tokio::test]
async fn configured_for_a_real_deployment_it_serves_its_audience_host() {
    let mka1 = DevIssuer::start().await.unwrap();
    let audience = "https://tools.example.test/mcp";
    let config = Config {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        jwks_url: Some(mka1.jwks_url().to_owned()),
        audience: Some(audience.to_owned()),
        issuer: Some(mka1.issuer().to_owned()),
        ..Config::default()
    };
    let mut out = Vec::new();
    let running = start(config, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("MKA1_API_KEY="), "{out}");
    let token = mka1.mint(Mint::new(audience, "user-42"));
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": { "name": "t", "version": "0" } },
    });
    // Behind a proxy the `Host` is the audience's: rmcp's DNS-rebinding check accepts it.
    let response = reqwest::Client::new()
        .post(format!("http://{}/mcp", running.addr))
        .header("host", "tools.example.test")
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_some());
}
