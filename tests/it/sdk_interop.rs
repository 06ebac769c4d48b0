//! Interop with MKA1's official Python SDK, `meetkai-mka1` 0.12.128 from PyPI.
//!
//! The test keeps a virtualenv under `target/` (`tests/sdk/venv.rs`, reused while it holds the
//! right SDK version), runs `tests/sdk/interop.py` against a `DevIssuer`, and verifies the
//! tokens the SDK got with a `Verifier`: exchanges on both paths, their refusals, and a scoped
//! API key's whole life through `auth.api_keys` (create, list, exchange, regenerate, update,
//! delete, bad input). A missing Python, a failed `venv` or a failed `pip install` fails the test:
//! it is never skipped. Set `MKA1_SDK_PYTHON` to choose the interpreter (default `python3`).

use std::path::Path;
use std::time::Duration;

use mka1_auth::{Clock, ErrorKind, ManualClock, Verifier};
use mka1_auth_dev_issuer::{DevIssuer, BOOTSTRAP_KEY_ID};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::venv;
use venv::sdk_python;

const AUDIENCE: &str = "https://api.example.test";
const OTHER_AUDIENCE: &str = "https://other.example.test";
const NOW: u64 = 1_800_000_000;

fn token<'a>(out: &'a Value, name: &str) -> &'a str {
    out[name]
        .as_str()
        .unwrap_or_else(|| panic!("no `{name}` token in the script's output: {out}"))
}

#[tokio::test]
async fn the_official_python_sdk_gets_tokens_we_verify() {
    let python = sdk_python().await;

    let clock = ManualClock::at_unix(NOW);
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

    // With the SDK's defaults: all of the (bootstrap) key's scopes, an hour.
    let verified = verifier
        .verify(token(&out, "exchange_token_defaults"))
        .await
        .unwrap();
    assert_eq!(verified.subject(), "sdk-user-2");
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read", "agent:write", "write:apikeys"]
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

    the_scoped_key_lived_as_the_sdk_saw_it(&out["lifecycle"], &verifier, &issuer).await;
}

/// The permissions of a token the script obtained, once verified.
async fn permissions_of(life: &Value, name: &str, verifier: &Verifier) -> Vec<String> {
    let verified = verifier.verify(token(life, name)).await.unwrap();
    verified.permissions().iter().map(str::to_owned).collect()
}

/// What `key_lifecycle` in the script saw: every answer parsed by the SDK's models, every
/// refusal raised as the SDK's typed error.
async fn the_scoped_key_lived_as_the_sdk_saw_it(
    life: &Value,
    verifier: &Verifier,
    issuer: &DevIssuer,
) {
    let created = &life["created"];
    let id = created["id"].as_str().expect("an id");
    assert!(created["key"].as_str().unwrap().starts_with("mka1_dev_"));
    assert_eq!(created["scopes"], json!(["agent:read", "files:read"]));
    assert_eq!(created["teamId"], "team-1");
    assert_eq!(
        created["expiresAt"], "2027-01-16T08:00:00.000Z",
        "now + 1 day"
    );
    assert_eq!(life["listed"][0]["id"], id, "{}", life["listed"]);
    assert_eq!(life["listed_without_secrets"], true);

    let all = permissions_of(life, "exchange_all", verifier).await;
    assert_eq!(all, ["agent:read", "files:read"]);
    assert_eq!(
        permissions_of(life, "exchange_subset", verifier).await,
        ["files:read"]
    );
    let renewed = permissions_of(life, "exchange_regenerated", verifier).await;
    assert_eq!(renewed, all);
    assert_eq!(
        permissions_of(life, "exchange_updated", verifier).await,
        ["agent:read"]
    );

    assert_eq!(life["regenerated"]["id"], id);
    assert_ne!(life["regenerated"]["key"], created["key"]);
    assert_eq!(
        life["updated"],
        json!({"id": id, "scopes": ["agent:read"], "userType": "user", "orgId": "dev-org",
               "expiresAt": "2030-01-01T00:00:00.000Z"})
    );
    assert_eq!(life["deleted"], json!({"id": id, "deleted": true}));
    assert_eq!(life["listed_after_delete"], json!([BOOTSTRAP_KEY_ID]));

    let refused = [
        ("exchange_outside", "ExchangeAPIKeyTokenForbiddenError", 403),
        ("not_a_manager", "ListScopedAPIKeysForbiddenError", 403),
        ("old_secret", "ExchangeAPIKeyTokenUnauthorizedError", 401),
        ("old_secret_legacy", "GetJwtFromKeyUnauthorizedError", 401),
        ("after_delete", "ExchangeAPIKeyTokenUnauthorizedError", 401),
    ];
    for (case, class, status) in refused {
        assert_eq!(life[case]["class"], class, "{case}: {}", life[case]);
        assert_eq!(life[case]["status"], status, "{case}");
        assert!(life[case]["data"]["message"].is_string(), "{case}");
    }
    let bad_input = [
        ("missing_name", "name"),
        ("unknown_scope_format", "scopes.0"),
        ("empty_scopes", "scopes"),
        ("non_numeric_expires_in", "expiresIn"),
    ];
    for (case, path) in bad_input {
        let refusal = &life["bad_input"][case];
        assert_eq!(
            refusal["class"], "CreateScopedAPIKeyBadRequestError",
            "{case}: {refusal}"
        );
        assert_eq!(refusal["status"], 400, "{case}");
        assert!(refusal["data"]["message"].is_string(), "{case}");
        assert_eq!(refusal["paths"], json!([path]), "{case}");
    }
    assert_eq!(issuer.keys().len(), 1, "only the bootstrap key is left");
}
