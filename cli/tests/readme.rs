//! The command-line guide (`docs/cli.md`, the rustdoc page `mka1_auth::guide::cli`), checked
//! against the built binary: the Python SDK example runs against `mka1-auth dev-issuer` and its
//! token verifies, and the sample refusal is what `verify` prints.

mod common;

#[path = "../../tests/sdk/venv.rs"]
mod venv;

use std::path::Path;
use std::time::Duration;

use common::{file, run_args, without_proxies, DevIssuerProcess};
use mka1_auth::ManualClock;
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use tokio::process::Command;

fn guide() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    std::fs::read_to_string(path).unwrap()
}

/// The fenced block of `lang` in `text` whose first line starts with `first`, without its
/// fences and with the list indentation (`indent` spaces) removed.
fn block(text: &str, lang: &str, first: &str, indent: usize) -> String {
    let fence = format!("{}```{lang}\n", " ".repeat(indent));
    let start = text
        .match_indices(&fence)
        .map(|(i, _)| i + fence.len())
        .find(|i| text[*i..].trim_start().starts_with(first))
        .unwrap_or_else(|| panic!("a ```{lang} block starting with {first:?}"));
    let end = start + text[start..].find("```").unwrap();
    let lines: String = text[start..end]
        .lines()
        .map(|line| format!("{}\n", line.get(indent..).unwrap_or("").trim_end()))
        .collect();
    format!("{}\n", lines.trim_end())
}

#[tokio::test]
async fn the_python_sdk_example_gets_a_token_from_the_dev_issuer_that_verifies() {
    let section = guide();
    let install = format!("pip install {}=={}", venv::SDK_PACKAGE, venv::SDK_VERSION);
    assert!(
        section.contains(&install),
        "the guide pins the tested SDK: {install}"
    );
    let script = file("readme-mint.py", &block(&section, "python", "# mint.py", 0));

    let python = venv::sdk_python().await;
    let issuer = DevIssuerProcess::start(&[]).await;
    let mut mint = Command::new(&python);
    mint.arg(&script)
        .env("MKA1_SERVER_URL", &issuer.server_url)
        .env("MKA1_API_KEY", &issuer.api_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    // The SDK's own client honours proxy variables.
    without_proxies(&mut mint);
    // The bound only keeps a broken script from hanging the suite.
    let minted = tokio::time::timeout(Duration::from_secs(300), mint.output())
        .await
        .expect("the example finishes")
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&minted.stderr);
    assert!(minted.status.success(), "mint.py failed: {stderr}");
    let token = String::from_utf8(minted.stdout).unwrap();

    // The guide's verify line, with its values.
    let verified = run_args(&[
        "verify",
        token.trim(),
        "--audience",
        "http://127.0.0.1:8000",
        "--jwks-url",
        &issuer.jwks_url,
        "--issuer",
        &issuer.server_url,
        "--json",
    ])
    .await;
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
    let verified = verified.json();
    assert_eq!(verified["sub"], "user-42");
    assert_eq!(verified["permissions"], serde_json::json!(["agent:read"]));
    assert_eq!(verified["iss"], issuer.server_url.as_str());
    let left = verified["exp"]["from_now_secs"].as_i64().unwrap();
    assert!((590..=600).contains(&left), "expires_in=600: {left}");
    assert_eq!(issuer.interrupt().await, Some(0));
}

#[tokio::test]
async fn the_sample_refusal_is_what_verify_prints() {
    const NOW: u64 = 1_800_000_000;
    let guide = guide();
    let sample = block(&guide, "text", "refused: expired", 2);

    // The sample's token: minted at NOW for an hour, judged 1h 30m after it expired.
    let issuer = DevIssuer::builder()
        .clock(ManualClock::at_unix(NOW))
        .start()
        .await
        .unwrap();
    let token = issuer.mint(Mint::new("https://api.example.test", "user-42"));
    let jwks = file("readme-jwks.json", &issuer.jwks_json());
    let jwks = jwks.to_str().unwrap();
    let at = (NOW + 3600 + 5400).to_string();
    let refused = run_args(&[
        "verify",
        &token,
        "--audience",
        "https://api.example.test",
        "--jwks-file",
        jwks,
        "--at",
        &at,
    ])
    .await;
    assert_eq!(refused.code, Some(1));
    let expected = sample
        .replace("uMBy9PqA8WqB8mSu", &issuer.current_kid())
        .replace("http://127.0.0.1:41517", issuer.issuer())
        .replace("keys     jwks.json", &format!("keys     {jwks}"));
    assert_eq!(refused.stdout, expected);
}
