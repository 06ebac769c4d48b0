//! Interop with MKA1's official Python SDK, `meetkai-mka1` 0.12.128 from PyPI.
//!
//! The test keeps a virtualenv under `target/` (`tests/sdk/venv.rs`, reused while it holds the
//! right SDK version), runs `tests/sdk/interop.py` against a `DevIssuer`, and verifies the
//! tokens the SDK got with a `Verifier`. A missing Python, a failed `venv` or a failed `pip install` fails the test:
//! it is never skipped. Set `MKA1_SDK_PYTHON` to choose the interpreter (default `python3`).
#![cfg(feature = "dev-issuer")]

use std::path::Path;
use std::time::Duration;

use mka1_auth::dev_issuer::DevIssuer;
use mka1_auth::{Clock, ErrorKind, ManualClock, Verifier};
use serde_json::Value;
use tokio::process::Command;

#[path = "sdk/venv.rs"]
mod venv;
use venv::sdk_python;

const AUDIENCE: &str = "https://api.example.test";
const OTHER_AUDIENCE: &str = "https://other.example.test";

fn token<'a>(out: &'a Value, name: &str) -> &'a str {
    out[name]
        .as_str()
        .unwrap_or_else(|| panic!("no `{name}` token in the script's output: {out}"))
}

#[tokio::test]
async fn the_official_python_sdk_gets_tokens_we_verify() {
    let python = sdk_python().await;

    let clock = ManualClock::starting_now();
    let issuer = DevIssuer::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/interop.py");
    let run_script = Command::new(&python)
        .arg(&script)
        .args([
            issuer.base_url(),
            issuer.api_key(),
            AUDIENCE,
            OTHER_AUDIENCE,
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    // The bound only keeps a broken script from hanging the suite.
    let output = tokio::time::timeout(Duration::from_secs(300), run_script)
        .await
        .expect("the sdk script finishes")
        .expect("the sdk script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the sdk script failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the sdk script printed no json ({e}): {stdout}"));

    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .audience(AUDIENCE)
        .issuer(issuer.issuer())
        .clock(clock.clone())
        .build()
        .unwrap();
    let now = clock.now_unix();

    // apiKeys.exchangeToken with a lifetime and a permission subset.
    let verified = verifier
        .verify(token(&out, "exchange_token"))
        .await
        .unwrap();
    assert_eq!(verified.subject(), "sdk-user-1");
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read"]
    );
    assert_eq!(verified.issued_at(), Some(now));
    assert_eq!(verified.expires_at(), now + 600);
    assert_eq!(verified.key_id(), issuer.current_kid());

    // With the SDK's defaults: all of the key's permissions, an hour.
    let verified = verifier
        .verify(token(&out, "exchange_token_defaults"))
        .await
        .unwrap();
    assert_eq!(verified.subject(), "sdk-user-2");
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read", "agent:write"]
    );
    assert_eq!(verified.expires_at(), now + 3600);

    // The deprecated apiKey.getJwtFromKey, on the older path.
    let verified = verifier
        .verify(token(&out, "get_jwt_from_key"))
        .await
        .unwrap();
    assert_eq!(verified.subject(), "sdk-user-3");
    assert_eq!(verified.expires_at(), now + 900);

    // A token the SDK obtained for another service is refused here.
    let err = verifier
        .verify(token(&out, "foreign_audience"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidAudience);

    // What the SDK put on the wire: `expiresIn` as a JSON float, both paths.
    let sent: Vec<(&str, &str)> = out["sent"]
        .as_array()
        .expect("recorded requests")
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sent[0],
        (
            "/api/v1/authentication/api-keys/exchange-token",
            r#"{"audience":"https://api.example.test","externalUserId":"sdk-user-1","expiresIn":600.0,"permissions":["agent:read"]}"#
        )
    );
    assert!(
        sent[1].1.contains(r#""expiresIn":3600.0"#),
        "default as a float: {}",
        sent[1].1
    );
    assert!(!sent[1].1.contains("permissions"), "{}", sent[1].1);
    assert_eq!(sent[2].0, "/api/v1/authentication/api-key/exchange-token");
    assert!(sent[2].1.contains(r#""expiresIn":900.0"#), "{}", sent[2].1);

    // Refusals reach the SDK as its typed errors, their bodies parsed by its models.
    let errors = &out["errors"];
    let expect = [
        ("bad_user", "ExchangeAPIKeyTokenBadRequestError", 400),
        ("short_lifetime", "ExchangeAPIKeyTokenBadRequestError", 400),
        ("superset", "ExchangeAPIKeyTokenForbiddenError", 403),
        ("wrong_key", "ExchangeAPIKeyTokenUnauthorizedError", 401),
        ("legacy_bad_user", "GetJwtFromKeyBadRequestError", 400),
    ];
    for (case, class, status) in expect {
        assert_eq!(errors[case]["class"], class, "{case}: {}", errors[case]);
        assert_eq!(errors[case]["status"], status, "{case}");
        assert!(errors[case]["data"]["message"].is_string(), "{case}");
    }
    let details = &errors["legacy_bad_user"]["data"]["details"];
    assert_eq!(details[0]["path"], "audience", "{details}");
}
