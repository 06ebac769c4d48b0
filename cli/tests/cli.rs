//! The built `mka1-auth` binary, run as a user runs it: against itself (`dev-issuer`) and
//! against an in-process dev issuer, over 127.0.0.1 only. Tokens that must be judged at a
//! given moment are minted on a manual clock and verified with `--at`; nothing waits for time.

mod common;
// A real redis-server per test (never one the test did not start), for `revoke`.
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
#[path = "../../tests/sdk/venv.rs"]
#[allow(dead_code)]
mod venv;

use std::path::Path;
use std::time::Duration;

use common::{file, mka1_auth, run, run_args, run_with_stdin, DevIssuerProcess, Run};
use mka1_auth::ManualClock;
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use serde_json::Value;

const AUDIENCE: &str = "https://api.example.test";
const OTHER_AUDIENCE: &str = "https://other.example.test";
const NOW: u64 = 1_800_000_000;

/// `verify TOKEN --audience AUDIENCE --jwks-file JWKS` and `more`.
async fn verify_with_file(token: &str, jwks: &Path, more: &[&str]) -> Run {
    let jwks = jwks.to_str().unwrap();
    let mut args = vec!["verify", token, "--audience", AUDIENCE, "--jwks-file", jwks];
    args.extend(more);
    run_args(&args).await
}

#[tokio::test]
async fn dev_issuer_then_token_then_verify_gives_valid() {
    let issuer = DevIssuerProcess::start(&["--permissions", "agent:read,agent:write"]).await;
    assert!(issuer.server_url.starts_with("http://127.0.0.1:"));
    assert!(issuer.api_key.starts_with("mka1_dev_"));
    assert_eq!(
        issuer.jwks_url,
        format!("{}/api/v1/authentication/jwks", issuer.server_url)
    );

    let minted = issuer
        .token(
            "MKA1_API_KEY",
            &issuer.api_key,
            &[
                "--audience",
                AUDIENCE,
                "--external-user-id",
                "user-42",
                "--permissions",
                "agent:read",
                "--expires-in",
                "600",
            ],
        )
        .await;
    assert_eq!(minted.code, Some(0), "{}", minted.stderr);
    // Only the token, so `$(mka1-auth token ...)` is the token.
    let token = minted.stdout.trim_end_matches('\n');
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert!(!token.contains(char::is_whitespace));

    let verify = [
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &issuer.jwks_url,
        "--issuer",
        &issuer.server_url,
        "--permission",
        "agent:read",
    ];
    let valid = run(mka1_auth().arg("verify").arg(token).args(verify)).await;
    assert_eq!(valid.code, Some(0), "{}{}", valid.stdout, valid.stderr);
    assert!(valid.stdout.starts_with("valid\n"), "{}", valid.stdout);
    assert!(valid.stdout.contains(r#"sub          "user-42""#));
    assert!(valid.stdout.contains(r#"permissions  "agent:read""#));
    assert!(valid.stdout.contains("(in 10m)") || valid.stdout.contains("(in 9m"));
    valid.hides_signature_of(token);

    // The same from standard input, as JSON.
    let mut args = vec!["verify", "-", "--json"];
    args.extend(verify);
    let json = run_with_stdin(&args, &format!("Bearer {token}\n")).await;
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let json = json.json();
    assert_eq!(json["result"], "valid");
    assert_eq!(json["sub"], "user-42");
    assert_eq!(json["permissions"], serde_json::json!(["agent:read"]));
    let left = json["exp"]["from_now_secs"].as_i64().unwrap();
    assert!((590..=600).contains(&left), "{left}");

    assert_eq!(issuer.interrupt().await, Some(0), "Ctrl-C exits 0");
}

#[tokio::test]
async fn token_takes_the_key_from_mka1_bearer_auth_too() {
    let iss = "https://issuer.example.test";
    let issuer = DevIssuerProcess::start(&["--alg", "ES256", "--issuer", iss]).await;
    // MKA1's own CLI's variable, with its `Bearer ` prefix; default lifetime and permissions.
    let minted = issuer
        .token(
            "MKA1_BEARER_AUTH",
            &format!("Bearer {}", issuer.api_key),
            &["--audience", AUDIENCE, "--external-user-id", "user-7"],
        )
        .await;
    assert_eq!(minted.code, Some(0), "{}", minted.stderr);
    let json = run_args(&[
        "verify",
        minted.stdout.trim(),
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &issuer.jwks_url,
        "--issuer",
        iss,
        "--json",
    ])
    .await
    .json();
    assert_eq!(json["sub"], "user-7");
    // Every scope of the bootstrap key, `write:apikeys` included (issue 17).
    assert_eq!(
        json["permissions"],
        serde_json::json!(["agent:read", "agent:write", "write:apikeys"])
    );
    assert_eq!(
        (json["alg"].as_str(), json["iss"].as_str()),
        (Some("ES256"), Some(iss))
    );
    assert_eq!(issuer.interrupt().await, Some(0));
}

#[tokio::test]
async fn token_with_an_empty_permissions_flag_gets_a_token_with_none() {
    let issuer = DevIssuerProcess::start(&[]).await;
    // `--permissions "$PERMS"` with PERMS empty: none, not all of the key's scopes.
    let minted = issuer
        .token(
            "MKA1_API_KEY",
            &issuer.api_key,
            &[
                "--audience",
                AUDIENCE,
                "--external-user-id",
                "user-7",
                "--permissions",
                "",
            ],
        )
        .await;
    assert_eq!(minted.code, Some(0), "{}", minted.stderr);
    let json = run_args(&[
        "verify",
        minted.stdout.trim(),
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &issuer.jwks_url,
        "--json",
    ])
    .await
    .json();
    assert_eq!(json["result"], "valid", "{json}");
    assert_eq!(json["sub"], "user-7");
    assert_eq!(json["permissions"], serde_json::json!([]));
    assert_eq!(issuer.interrupt().await, Some(0));
}

#[tokio::test]
async fn a_permission_the_dev_issuer_does_not_grant_gets_a_hint_at_permissions() {
    // Started with the default permissions (agent:read, agent:write).
    let issuer = DevIssuerProcess::start(&[]).await;
    let args = [
        "--audience",
        AUDIENCE,
        "--external-user-id",
        "u",
        "--permissions",
        "orders:read",
    ];
    let refused = issuer.token("MKA1_API_KEY", &issuer.api_key, &args).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stdout.is_empty());
    assert!(refused.stderr.contains("status 403"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("`mka1-auth dev-issuer` gives its key only agent:read and agent:write"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("`--permissions <name>,...`"),
        "{}",
        refused.stderr
    );
    assert_eq!(issuer.interrupt().await, Some(0));
}

#[tokio::test]
async fn a_failed_exchange_exits_1_and_a_bad_request_2() {
    let issuer = DevIssuerProcess::start(&["--api-key", "the-right-key"]).await;
    let args = ["--audience", AUDIENCE, "--external-user-id", "u"];
    let wrong = issuer.token("MKA1_API_KEY", "not-the-key", &args).await;
    assert_eq!(wrong.code, Some(1));
    assert!(wrong.stdout.is_empty());
    assert!(
        wrong.stderr.contains("did not accept the api key"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-key"));

    // A permission the key does not hold: MKA1 answers 403.
    let mut more = args.to_vec();
    more.extend(["--permissions", "admin:all"]);
    let forbidden = issuer.token("MKA1_API_KEY", "the-right-key", &more).await;
    assert_eq!(forbidden.code, Some(1), "{}", forbidden.stderr);
    assert!(
        forbidden.stderr.contains("status 403"),
        "{}",
        forbidden.stderr
    );

    // Outside MKA1's rules: refused before sending, as bad usage.
    let mut short = args.to_vec();
    short.extend(["--expires-in", "10"]);
    let short = issuer.token("MKA1_API_KEY", "the-right-key", &short).await;
    assert_eq!(short.code, Some(2), "{}", short.stderr);
    assert!(short.stderr.contains("expiresIn"), "{}", short.stderr);
    assert_eq!(issuer.interrupt().await, Some(0));
}

#[tokio::test]
async fn a_wrong_audience_names_both_values_and_exits_1() {
    // One clock for minting and judging, so "in 1h" does not depend on a second ticking.
    let clock = ManualClock::starting_now();
    let at = mka1_auth::Clock::now_unix(&clock).to_string();
    let issuer = DevIssuer::builder().clock(clock).start().await.unwrap();
    let token = issuer.mint(Mint::new(OTHER_AUDIENCE, "user-42"));
    let jwks_url = issuer.jwks_url();
    let args = [
        "verify",
        &token,
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &jwks_url,
        "--at",
        &at,
    ];
    let refused = run_args(&args).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let out = &refused.stdout;
    assert!(out.starts_with("refused: invalid_audience ("), "{out}");
    let why = format!(r#"why      the token's aud is "{OTHER_AUDIENCE}"; accepted: "{AUDIENCE}""#);
    assert!(out.contains(&why), "{out}");
    // The rest of the picture: the key was found, the times are fine.
    assert!(
        out.contains("the key set holds it (Ed25519, verifies EdDSA)"),
        "{out}"
    );
    assert!(out.contains("(in 1h)"), "{out}");
    refused.hides_signature_of(&token);

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let json = run_args(&json_args).await;
    assert_eq!(json.code, Some(1));
    json.hides_signature_of(&token);
    let json = json.json();
    assert_eq!(json["result"], "refused");
    assert_eq!(json["kind"], "invalid_audience");
    assert_eq!(json["token"]["claims"]["aud"], OTHER_AUDIENCE);
    assert_eq!(json["configured"]["audiences"][0], AUDIENCE);
    assert_eq!(json["kid"]["status"], "held");

    // Keys that cannot be fetched: refused for want of keys, and why.
    let missing = format!("{}/nothing-here", issuer.base_url());
    let args = [
        "verify",
        &token,
        "--audience",
        AUDIENCE,
        "--jwks-url",
        &missing,
    ];
    let unavailable = run_args(&args).await;
    assert_eq!(unavailable.code, Some(1));
    let out = &unavailable.stdout;
    assert!(out.starts_with("refused: keys_unavailable ("), "{out}");
    assert!(
        out.contains("no usable key set: unexpected http status 404"),
        "{out}"
    );

    // A permission the token lacks is named too.
    let mut needs = vec!["verify", &token, "--audience", OTHER_AUDIENCE];
    let jwks_url = issuer.jwks_url();
    needs.extend([
        "--jwks-url",
        &jwks_url,
        "--permission",
        "agent:read,admin:all",
    ]);
    let lacking = run_args(&needs).await;
    assert_eq!(lacking.code, Some(1));
    assert!(
        lacking
            .stdout
            .contains(r#"the token lacks "admin:all"; it carries "agent:read", "agent:write""#),
        "{}",
        lacking.stdout
    );
}

#[tokio::test]
async fn an_expired_token_shows_how_long_ago_it_expired() {
    let issuer = DevIssuer::builder()
        .clock(ManualClock::at_unix(NOW))
        .start()
        .await
        .unwrap();
    let token = issuer.mint(Mint::new(AUDIENCE, "user-42"));
    let jwks = file("expired-jwks.json", &issuer.jwks_json());
    let at = (NOW + 3600 + 5400).to_string();
    let refused = verify_with_file(&token, &jwks, &["--at", &at]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let out = &refused.stdout;
    assert!(
        out.starts_with("refused: expired (token has expired)\n"),
        "{out}"
    );
    assert!(
        out.contains("why      exp is 2027-01-15T09:00:00Z: it expired 1h 30m ago (leeway 1m)"),
        "{out}"
    );
    assert!(
        out.contains("iat      2027-01-15T08:00:00Z (2h 30m ago)"),
        "{out}"
    );
    refused.hides_signature_of(&token);

    let json = verify_with_file(&token, &jwks, &["--at", &at, "--json"]).await;
    let json = json.json();
    assert_eq!(json["kind"], "expired");
    assert_eq!(json["token"]["claims"]["exp"]["from_now_secs"], -5400);
    assert_eq!(
        json["token"]["claims"]["exp"]["date"],
        "2027-01-15T09:00:00Z"
    );

    // Within the leeway it is still valid: the library's rule, not the command's.
    let at = (NOW + 3600 + 59).to_string();
    let valid = verify_with_file(&token, &jwks, &["--at", &at]).await;
    assert_eq!(valid.code, Some(0), "{}", valid.stdout);
    assert!(valid.stdout.contains("(59s ago)"), "{}", valid.stdout);
}

#[tokio::test]
async fn an_unknown_kid_is_reported_as_such() {
    let signer = DevIssuer::start().await.unwrap();
    let other = DevIssuer::start().await.unwrap();
    let token = signer.mint(Mint::new(AUDIENCE, "user-42"));
    let kid = signer.current_kid();
    let jwks = file("unknown-kid-jwks.json", &other.jwks_json());
    let refused = verify_with_file(&token, &jwks, &[]).await;
    assert_eq!(refused.code, Some(1));
    let out = &refused.stdout;
    assert!(out.starts_with("refused: unknown_key_id ("), "{out}");
    let why = format!(
        r#"the key set holds no key with kid "{kid}" (it holds: "{}")"#,
        other.current_kid()
    );
    assert!(out.contains(&why), "{out}");
    assert!(
        out.contains(&format!(
            r#"kid      "{kid}"; the key set does not hold it"#
        )),
        "{out}"
    );

    // A key under that kid that the set skipped is named, with the reason.
    let mut document: Value = serde_json::from_str(&other.jwks_json()).unwrap();
    let oct = serde_json::json!({"kty": "oct", "kid": kid, "k": "c2VjcmV0"});
    document["keys"].as_array_mut().unwrap().push(oct);
    let jwks = file("skipped-kid-jwks.json", &document.to_string());
    let refused = verify_with_file(&token, &jwks, &[]).await;
    assert!(
        refused
            .stdout
            .contains("; a key with this kid was skipped: symmetric (oct) keys are never trusted"),
        "{}",
        refused.stdout
    );
    assert!(refused.stdout.contains("1 skipped"), "{}", refused.stdout);
}

#[tokio::test]
async fn inspect_reads_malformed_tokens_without_panicking() {
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    };
    let not_json = format!("{}.{}.c2ln", b64("{\"alg\":"), b64("[]"));
    let huge = "a".repeat(100_000);
    let cases: [(&str, &str); 7] = [
        ("not-a-jwt", "3 segments"),
        ("a.b", "payload is not strict base64url"),
        ("...", "header is not JSON"),
        ("%%%.x.y", "header is not strict base64url"),
        (&not_json, "payload is JSON but not an object (an array)"),
        ("é.\u{1b}[2J.\u{202e}", "header is not strict base64url"),
        (&huge, "3 segments"),
    ];
    for (token, expected) in cases {
        let inspected = run_args(&["inspect", token]).await;
        assert_eq!(inspected.code, Some(1), "{token:.40}: {}", inspected.stderr);
        assert!(
            inspected.stdout.starts_with("UNVERIFIED: "),
            "{}",
            inspected.stdout
        );
        assert!(
            inspected.stdout.contains(expected),
            "{token:.40}: {}",
            inspected.stdout
        );
        // No control character reaches the terminal.
        assert!(!inspected.stdout.contains('\u{1b}'));
        let json = run_args(&["inspect", token, "--json"]).await;
        assert_eq!(json.code, Some(1));
        assert_eq!(json.json()["verified"], false);
    }

    // A readable token, from standard input: everything but the signature.
    let issuer = DevIssuer::start().await.unwrap();
    let token = issuer.mint(Mint::new(AUDIENCE, "user-42").claim("note", "line\nbreak\u{1b}[31m"));
    let inspected = run_with_stdin(&["inspect", "-"], &token).await;
    assert_eq!(inspected.code, Some(0), "{}", inspected.stderr);
    let out = &inspected.stdout;
    assert!(out.starts_with("UNVERIFIED: "), "{out}");
    assert!(
        out.contains(&format!(r#""kid"  "{}""#, issuer.current_kid())),
        "{out}"
    );
    assert!(out.contains(r#""sub"          "user-42""#), "{out}");
    assert!(
        out.contains(r#""note"         "line\nbreak\u001b[31m""#),
        "{out}"
    );
    assert!(
        out.contains("signature: 86 characters (not shown)"),
        "{out}"
    );
    // `inspect` reads the wall clock: a second may tick between minting and reading.
    assert!(
        out.contains("(in 1h)") || out.contains("(in 59m 5"),
        "{out}"
    );
    inspected.hides_signature_of(&token);
    let json = run_args(&["inspect", &token, "--json"]).await;
    json.hides_signature_of(&token);
    assert_eq!(json.json()["claims"]["sub"], "user-42");
}

#[tokio::test]
async fn jwks_lists_a_skipped_key_with_its_reason() {
    let issuer = DevIssuer::start().await.unwrap();
    let kid = issuer.current_kid();
    let mut document: Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
    let keys = document["keys"].as_array_mut().unwrap();
    keys.push(serde_json::json!({"kty": "oct", "kid": "shared", "alg": "HS256", "k": "c2VjcmV0"}));
    let mut encryption = keys[0].clone();
    encryption["kid"] = "for-encryption".into();
    encryption["use"] = "enc".into();
    keys.push(encryption);
    let path = file("listing-jwks.json", &document.to_string());
    let listed = run_args(&["jwks", path.to_str().unwrap()]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let out = &listed.stdout;
    assert!(
        out.contains("3 entries: 1 usable, 2 skipped (loaded for EdDSA, ES256, RS256)"),
        "{out}"
    );
    assert!(out.contains(&format!(r#"usable   "{kid}""#)), "{out}");
    assert!(out.contains("Ed25519, verifies EdDSA"), "{out}");
    assert!(
        out.contains(r#"kty "oct", alg "HS256": symmetric (oct) keys are never trusted"#),
        "{out}"
    );
    assert!(
        out.contains(
            r#"kty "OKP", crv "Ed25519", alg "EdDSA", use "enc": not a signature key (use/key_ops)"#
        ),
        "{out}"
    );
    assert!(!out.contains("c2VjcmV0"), "never a secret");

    let json = run_args(&["jwks", path.to_str().unwrap(), "--json"])
        .await
        .json();
    assert_eq!(json["keys"][1]["status"], "skipped");
    assert_eq!(
        json["keys"][1]["reason"],
        "symmetric (oct) keys are never trusted"
    );
    assert_eq!(json["freshness"], Value::Null);

    // Over loopback with the library's fetch rules: freshness from Cache-Control.
    let listed = run_args(&["jwks", &issuer.jwks_url()]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(
        listed
            .stdout
            .contains("fresh for 5m (Cache-Control max-age=300)"),
        "{}",
        listed.stdout
    );
    let json = run_args(&["jwks", &issuer.jwks_url(), "--json"])
        .await
        .json();
    assert_eq!(json["freshness"]["cache_max_age_secs"], 300);

    // Only ES256 allowed: the Ed25519 key is skipped and the set is unusable (exit 1).
    let listed = run_args(&["jwks", &issuer.jwks_url(), "--alg", "ES256"]).await;
    assert_eq!(listed.code, Some(1));
    assert!(
        listed
            .stdout
            .contains("alg unknown, symmetric or not allowed"),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("no usable key"), "{}", listed.stdout);

    // A fetch that fails says why and exits 1.
    let missing = format!("{}/nothing-here", issuer.base_url());
    let failed = run_args(&["jwks", &missing]).await;
    assert_eq!(failed.code, Some(1));
    assert!(
        failed.stderr.contains("unexpected http status 404"),
        "{}",
        failed.stderr
    );
}

/// Each command line exits 2 and says why on standard error.
async fn all_exit_2(cases: &[Vec<&str>]) {
    for args in cases {
        let run = run_args(args).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?} says why");
    }
}

#[tokio::test]
async fn bad_usage_of_verify_exits_2() {
    let jwks = file("usage-jwks.json", r#"{"keys": []}"#);
    let jwks = jwks.to_str().unwrap();
    let not_jwks = file("usage-not-jwks.json", "[1, 2]");
    // `verify a.b.c --audience AUDIENCE` and more.
    let verify = |more: &[&'static str]| {
        let mut args = vec!["verify", "a.b.c", "--audience", AUDIENCE];
        args.extend(more);
        args
    };
    all_exit_2(&[
        vec!["verify"],
        vec!["verify", "a.b.c", "--jwks-file", jwks],
        verify(&[]),
        [
            verify(&["--jwks-url", "https://x.example/jwks"]),
            vec!["--jwks-file", jwks],
        ]
        .concat(),
        verify(&["--jwks-file", "/nonexistent/jwks.json"]),
        [verify(&["--jwks-file"]), vec![not_jwks.to_str().unwrap()]].concat(),
        verify(&["--jwks-url", "http://jwks.example.com/keys"]),
        [verify(&["--alg", "HS256", "--jwks-file"]), vec![jwks]].concat(),
        [verify(&["--at", "yesterday", "--jwks-file"]), vec![jwks]].concat(),
        [verify(&["--at", "18446744074", "--jwks-file"]), vec![jwks]].concat(),
        vec!["verify", "a.b.c", "--audience", "", "--jwks-file", jwks],
        vec!["verify", " ", "--audience", AUDIENCE, "--jwks-file", jwks],
    ])
    .await;
    // An empty key set is no usage error: every token is refused for want of keys.
    let empty = run_args(&[verify(&["--jwks-file"]), vec![jwks]].concat()).await;
    assert_eq!(empty.code, Some(1));
    let out = &empty.stdout;
    assert!(out.starts_with("refused: keys_unavailable"), "{out}");
    assert!(out.contains("the key set holds no usable key"), "{out}");
}

#[tokio::test]
async fn other_bad_usage_exits_2() {
    all_exit_2(&[
        vec![],
        vec!["frobnicate"],
        vec!["inspect"],
        vec!["jwks"],
        vec!["jwks", "/nonexistent/jwks.json"],
        vec!["token", "--audience", AUDIENCE],
        // No api key in the environment.
        vec!["token", "--audience", AUDIENCE, "--external-user-id", "u"],
        vec!["dev-issuer", "--alg", "HS256"],
        vec!["dev-issuer", "--bind", "nowhere"],
        vec!["dev-issuer", "--api-key", "has space"],
    ])
    .await;
}

#[tokio::test]
async fn help_is_on_every_subcommand() {
    for (sub, flag) in [
        ("verify", "--jwks-url"),
        ("inspect", "UNVERIFIED"),
        ("token", "--external-user-id"),
        ("jwks", "--alg"),
        ("dev-issuer", "--bind"),
    ] {
        let help = run_args(&[sub, "--help"]).await;
        assert_eq!(help.code, Some(0), "{sub}");
        assert!(
            help.stdout.contains(&format!("Usage: mka1-auth {sub}")),
            "{}",
            help.stdout
        );
        assert!(help.stdout.contains(flag), "{sub}: {}", help.stdout);
        assert!(
            help.stdout.contains("Exit status"),
            "{sub}: {}",
            help.stdout
        );
    }
    let help = run_args(&["--help"]).await;
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("dev-issuer"));
}

/// `token` with its header replaced by `header` (the signature no longer matches, but the
/// header is checked first).
fn with_header(token: &str, header: &str) -> String {
    use base64::Engine;
    let (_, rest) = token.split_once('.').unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
    format!("{header}.{rest}")
}

/// Tokens each refused for another reason, the kind and a part of the explanation.
fn refusal_cases(issuer: &DevIssuer) -> Vec<(String, &'static str, String)> {
    let kid = issuer.current_kid();
    let mint = |mint: Mint| issuer.mint(mint);
    let valid = mint(Mint::new(AUDIENCE, "user-42"));
    let (signed, _) = valid.rsplit_once('.').unwrap();
    let other_signature = mint(Mint::new(AUDIENCE, "user-43"));
    [
        (
            with_header(&valid, &format!(r#"{{"alg":"none","kid":"{kid}"}}"#)),
            "algorithm_not_allowed",
            r#"the header's alg is "none"; allowed: EdDSA, ES256, RS256"#.to_owned(),
        ),
        (
            with_header(&valid, &format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#)),
            "algorithm_mismatch",
            format!(
                r#"the header's alg "ES256" does not fit the key its kid "{kid}" names: the key set holds it (Ed25519, verifies EdDSA)"#
            ),
        ),
        (
            with_header(&valid, r#"{"alg":"EdDSA"}"#),
            "missing_key_id",
            "the header has no kid".to_owned(),
        ),
        (
            format!("{signed}.{}", other_signature.rsplit('.').next().unwrap()),
            "invalid_signature",
            format!(r#"the signature does not verify with the key "{kid}" (the key set holds it"#),
        ),
        (
            mint(Mint::new(AUDIENCE, "user-42").claim("iss", "https://elsewhere.example")),
            "invalid_issuer",
            format!(
                r#"the token's iss is "https://elsewhere.example"; accepted: "{}""#,
                issuer.issuer()
            ),
        ),
        (
            mint(Mint::new(AUDIENCE, "*")),
            "invalid_subject",
            r#"sub "*" is not a valid end-user id: `*` is not a user id"#.to_owned(),
        ),
        (
            mint(Mint::new(AUDIENCE, "user-42").claim("nbf", NOW + 600)),
            "not_yet_valid",
            "nbf is 2027-01-15T08:10:00Z: it is valid only in 10m (leeway 1m)".to_owned(),
        ),
        (
            mint(Mint::new(AUDIENCE, "user-42").expires_in(Duration::from_secs(60 * 86_400))),
            "lifetime_too_long",
            "ahead; the longest lifetime accepted is 30d".to_owned(),
        ),
        (
            mint(Mint::new(AUDIENCE, "user-42").claim("permissions", 7)),
            "invalid_permissions",
            "the permissions claim is a number".to_owned(),
        ),
        (
            mint(Mint::new(AUDIENCE, "user-42").claim("exp", "soon")),
            "invalid_claim",
            "token has an invalid claim".to_owned(),
        ),
    ]
    .into()
}

#[tokio::test]
async fn every_kind_of_refusal_is_explained() {
    let issuer = DevIssuer::builder()
        .clock(ManualClock::at_unix(NOW))
        .start()
        .await
        .unwrap();
    let cases = refusal_cases(&issuer);
    let jwks = file("kinds-jwks.json", &issuer.jwks_json());
    let at = NOW.to_string();
    for (token, kind, why) in cases {
        let issuer_args = ["--issuer", issuer.issuer(), "--at", &at];
        let refused = verify_with_file(&token, &jwks, &issuer_args).await;
        assert_eq!(refused.code, Some(1), "{kind}: {}", refused.stderr);
        let out = &refused.stdout;
        assert!(
            out.starts_with(&format!("refused: {kind} (")),
            "{kind}: {out}"
        );
        assert!(out.contains(&why), "{kind}: {out}");
        refused.hides_signature_of(&token);
    }
}

/// Characters that must never reach the terminal as they are from a token, key set or server:
/// they end a line, move the cursor, ring, or reorder the text after them.
const INERT: [char; 18] = [
    '\r', '\t', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{61c}', '\u{200e}', '\u{200f}',
    '\u{202a}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
];

/// `output` holds none of [`INERT`], and no line of it starts with `forged`.
fn assert_inert(what: &str, output: &str, forged: &[&str]) {
    for c in INERT {
        assert!(
            !output.contains(c),
            "{what}: {:?} printed raw: {output:?}",
            c
        );
    }
    for line in output.lines() {
        for f in forged {
            assert!(!line.trim_start().starts_with(f), "{what}: forged {line:?}");
        }
    }
}

/// Every control and bidi character of the issue, and a line that would pass for output.
const HOSTILE: &str = "\r\t\u{7}\u{1b}[2J\u{7f}\u{85}\u{9b}\u{61c}\u{200e}\u{200f}\u{202a}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\u{2028}\u{2029}";

#[tokio::test]
async fn a_hostile_key_set_cannot_forge_a_line() {
    let issuer = DevIssuer::builder()
        .clock(ManualClock::at_unix(NOW))
        .start()
        .await
        .unwrap();
    let mut document: Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
    let keys = document["keys"].as_array_mut().unwrap();
    keys.push(serde_json::json!({
        "kty": format!("oct\nusable   \"prod\"  Ed25519, verifies EdDSA{HOSTILE}"),
        "crv": format!("P-256\nskipped  \"x\"{HOSTILE}"),
        "alg": "HS256\nusable   \"prod\"  Ed25519, verifies EdDSA",
        "use": format!("sig{HOSTILE}\nvalid"),
        "kid": format!("evil\nusable   \"prod\"{HOSTILE}"),
        "k": "c2VjcmV0",
    }));
    let path = file("hostile-jwks.json", &document.to_string());
    let forged = ["usable   \"prod\"", "skipped  \"x\"", "valid"];

    let listed = run_args(&["jwks", path.to_str().unwrap()]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert_inert("jwks", &listed.stdout, &forged);
    assert_eq!(
        listed
            .stdout
            .lines()
            .filter(|l| l.starts_with("usable"))
            .count(),
        1,
        "{}",
        listed.stdout
    );
    assert!(
        listed
            .stdout
            .contains(r#"alg "HS256\nusable   \"prod\"  Ed25519, verifies EdDSA""#),
        "{}",
        listed.stdout
    );

    let json = run_args(&["jwks", path.to_str().unwrap(), "--json"]).await;
    assert_inert("jwks --json", &json.stdout, &forged);
    // The escapes are JSON's: the values come back whole.
    let alg = &json.json()["keys"][1]["alg"];
    assert_eq!(alg, "HS256\nusable   \"prod\"  Ed25519, verifies EdDSA");
    assert_eq!(json.json()["keys"][1]["kty"], keys_member(&document, "kty"));

    // A token naming the hostile key: the refusal shows its kid and why it was skipped.
    let kid = keys_member(&document, "kid");
    let token = with_header(
        &issuer.mint(Mint::new(AUDIENCE, "user-42")),
        &serde_json::json!({"alg": "EdDSA", "kid": kid}).to_string(),
    );
    let at = NOW.to_string();
    for mode in [&[][..], &["--json"][..]] {
        let mut more = vec!["--at", at.as_str()];
        more.extend(mode);
        let refused = verify_with_file(&token, &path, &more).await;
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        assert_inert("verify", &refused.stdout, &forged);
        assert_inert("verify", &refused.stderr, &forged);
    }
}

/// The hostile (second) key's member `name`.
fn keys_member(document: &Value, name: &str) -> Value {
    document["keys"][1][name].clone()
}

#[tokio::test]
async fn a_hostile_token_cannot_forge_a_line() {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let issuer = DevIssuer::builder()
        .clock(ManualClock::at_unix(NOW))
        .start()
        .await
        .unwrap();
    let header = serde_json::json!({
        "alg": format!("EdDSA\nvalid\n  sub          \"admin\"{HOSTILE}"),
        "kid": format!("k{HOSTILE}\nvalid"),
        "typ": format!("JWT\r\nvalid{HOSTILE}"),
    });
    let claims = serde_json::json!({
        "sub": format!("user\nvalid{HOSTILE}"),
        "aud": [format!("{AUDIENCE}\nvalid{HOSTILE}")],
        "iss": format!("iss{HOSTILE}\n  why      fine"),
        "permissions": [format!("admin\nvalid{HOSTILE}")],
        "exp": format!("soon{HOSTILE}\nvalid"),
        "note": {"nested": format!("x{HOSTILE}\nvalid")},
    });
    let token = format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims));
    let forged = ["valid", "sub          \"admin\"", "why      fine"];
    let jwks = file("hostile-token-jwks.json", &issuer.jwks_json());
    let at = NOW.to_string();
    for mode in [&[][..], &["--json"][..]] {
        let mut args = vec!["inspect", token.as_str()];
        args.extend(mode);
        let inspected = run_args(&args).await;
        assert_eq!(inspected.code, Some(0), "{}", inspected.stderr);
        assert_inert("inspect", &inspected.stdout, &forged);

        let mut more = vec!["--at", at.as_str(), "--issuer", issuer.issuer()];
        more.extend(mode);
        let refused = verify_with_file(&token, &jwks, &more).await;
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        assert!(refused.stdout.contains("refused"), "{}", refused.stdout);
        assert_inert("verify", &refused.stdout, &forged);
    }
    let json = run_args(&["inspect", &token, "--json"]).await.json();
    assert_eq!(json["claims"]["sub"], format!("user\nvalid{HOSTILE}"));
}

#[tokio::test]
async fn a_hostile_exchange_answer_cannot_forge_a_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that answers every exchange 400 with hostile text: MKA1 gone wrong.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let detail = format!("bad{HOSTILE}\nvalid token");
    let body = serde_json::json!({
        "detail": [{"path": format!("audience{HOSTILE}\nvalid"), "message": detail}],
    })
    .to_string();
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let failed = run(mka1_auth()
        .env("MKA1_API_KEY", "mk_test_key")
        .env("MKA1_SERVER_URL", &url)
        .args(["token", "--audience", AUDIENCE, "--external-user-id", "u"]))
    .await;
    server.abort();
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(failed.stderr.contains("status 400"), "{}", failed.stderr);
    assert!(failed.stdout.is_empty());
    assert_inert("token", &failed.stderr, &["valid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_stores_rules_every_replica_reads_and_revocations_lists_them() {
    use mka1_auth::revocation::{Revocations, Rule};

    let redis = redis_server::RedisServer::start().await;
    let url = redis.url();
    // A replica following this Redis, loaded before the rules are stored.
    let follower = Revocations::redis(&url).start().unwrap();
    let revocations = follower.revocations();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !revocations.status().loaded {
        assert!(
            std::time::Instant::now() < deadline,
            "follower never loaded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let before = (now - 10).to_string();
    let user = run_args(&[
        "revoke",
        "--redis-url",
        &url,
        "--user",
        "alice",
        "--issuer",
        "https://i.test",
        "--before",
        &before,
    ])
    .await;
    assert_eq!(user.code, Some(0), "{}", user.stderr);
    assert!(
        user.stdout.starts_with(&format!(
            r#"stored {{"kind":"user","sub":"alice","iss":"https://i.test","before":{before}}} under "mka1-auth:revoked:user:{before}:alice:https%3A//i.test""#
        )),
        "{}",
        user.stdout
    );
    let all = run_args(&["revoke", "--redis-url", &url, "--all"]).await;
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    let jti = run_args(&[
        "revoke",
        "--redis-url",
        &url,
        "--jti",
        "t-1",
        "--before",
        &before,
    ])
    .await;
    assert_eq!(jti.code, Some(0), "{}", jti.stderr);

    let listed = run_args(&["revocations", "--redis-url", &url]).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    assert!(lines.contains(
        &r#"{"kind":"jti","jti":"t-1","before":BEFORE}"#.replace("BEFORE", &before).as_str()
    ));

    // The replica got all three.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while revocations.status().rule_count < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            revocations.rules()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(revocations.rules().contains(&Rule::user_of_issuer(
        "alice",
        "https://i.test",
        now - 10
    )));

    // Usage errors: no rule, two rules, --issuer alone.
    for args in [
        vec!["revoke", "--redis-url", url.as_str()],
        vec!["revoke", "--redis-url", url.as_str(), "--all", "--jti", "x"],
        vec!["revoke", "--redis-url", url.as_str(), "--issuer", "i"],
    ] {
        assert_eq!(run_args(&args).await.code, Some(2), "{args:?}");
    }
    // Redis gone: exit 1.
    drop(redis);
    let failed = run_args(&["revoke", "--redis-url", &url, "--all"]).await;
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
}
