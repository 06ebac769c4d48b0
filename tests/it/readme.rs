//! README's exchange call: its curl line is sent as written (path, headers, body) to a
//! `DevIssuer`, and the token that comes back is one the demo accepts. README's rust blocks
//! are doctests (`src/lib.rs`, and `tests/newcomer` as a new crate would compile them).

use mka1_auth::Verifier;
use mka1_auth_dev_issuer::DevIssuer;

/// The demo's audience, as the curl line names it.
const DEMO_AUDIENCE: &str = "http://127.0.0.1:3000";

#[tokio::test]
async fn the_readme_exchange_call_gets_a_token_the_demo_accepts() {
    let readme = readme();
    let start = readme.find("curl -s -X POST \"$MKA1_SERVER_URL").unwrap();
    let call = &readme[start..start + readme[start..].find("\n```").unwrap()];
    let path = between(call, "$MKA1_SERVER_URL", "\"");
    let body = between(call, "-d '", "'");
    assert!(
        call.contains("-H \"Authorization: Bearer $MKA1_API_KEY\""),
        "{call}"
    );
    assert!(
        call.contains("-H 'Content-Type: application/json'"),
        "{call}"
    );

    let issuer = DevIssuer::start().await.unwrap();
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .issuer(issuer.issuer())
        .audience(DEMO_AUDIENCE)
        .build()
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}{path}", issuer.base_url()))
        .bearer_auth(issuer.api_key())
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let token = answer["token"].as_str().unwrap();
    let verified = verifier.verify(token).await.unwrap();
    assert_eq!(verified.subject(), "user-42");
    // Only what the demo's routes need, though the key holds more.
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read"]
    );
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

fn between<'a>(text: &'a str, after: &str, until: &str) -> &'a str {
    let start = text.find(after).unwrap() + after.len();
    &text[start..start + text[start..].find(until).unwrap()]
}
