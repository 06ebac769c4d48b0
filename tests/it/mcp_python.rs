//! The official MCP Python SDK (`mcp`, pinned in tests/sdk/venv.rs) calls
//! `examples/mcp_server.rs` as MKA1's runtime does: a static `Authorization` header over
//! Streamable HTTP, holding a token the official MKA1 Python SDK exchanged at the dev issuer
//! for the MCP server's URL and the end user. A missing Python or a failed install fails the
//! test; it is never skipped.

use crate::mcp_rmcp::mcp_server;
use crate::venv;

use std::path::Path;
use std::time::Duration;

use mcp_server::{start, Config};
use serde_json::{json, Value};
use tokio::process::Command;

#[tokio::test]
async fn the_official_mcp_python_sdk_calls_every_tool_with_an_exchanged_token() {
    let python = venv::mcp_python().await;
    let config = Config {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let running = start(config, &mut Vec::new()).await.unwrap();
    let issuer = running.dev_issuer.as_ref().unwrap();
    let mcp_url = format!("http://{}/mcp", running.addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/mcp_client.py");
    let run_script = Command::new(&python)
        .arg(&script)
        .args([issuer.base_url(), issuer.api_key(), &mcp_url, "sdk-user-9"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    // The bound only keeps a broken script from hanging the suite.
    let output = tokio::time::timeout(Duration::from_secs(300), run_script)
        .await
        .expect("the mcp script finishes")
        .expect("the mcp script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the mcp script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();

    let reader = &out["reader"];
    assert_eq!(
        reader["tools"],
        json!(["list_agents", "my_notes", "whoami"])
    );
    let calls = &reader["calls"];
    for tool in ["list_agents", "my_notes", "whoami"] {
        assert_eq!(calls[tool]["is_error"], false, "{tool}: {}", calls[tool]);
    }
    let who: Value = serde_json::from_str(calls["whoami"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        who,
        json!({ "sub": "sdk-user-9", "permissions": ["agent:read"] })
    );
    let notes: Value = serde_json::from_str(calls["my_notes"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(notes["notes_of"], "sdk-user-9");

    // Without `agent:read`: a tool error naming it, and the other tools still answer.
    let no_read = &out["no_read"]["calls"];
    assert_eq!(no_read["list_agents"]["is_error"], true);
    assert!(no_read["list_agents"]["text"]
        .as_str()
        .unwrap()
        .contains("agent:read"));
    assert_eq!(no_read["whoami"]["is_error"], false);

    // Without a token the client never gets a session.
    assert!(
        out["anonymous_error"].is_string(),
        "{}",
        out["anonymous_error"]
    );
}
