//! The dev issuer from outside, over loopback HTTP: both exchange paths, every validation
//! rule, the JWKS, key rotation with its grace period, direct minting, and shutdown. Tokens
//! are checked with a `Verifier` built from the JWKS the issuer serves.
#![cfg(feature = "remote")]

use std::time::Duration;

use mka1_auth::{ErrorKind, ManualClock, Verifier};
use mka1_auth_dev_issuer::{
    DevIssuer, JwksFault, Mint, SigningAlgorithm, EXCHANGE_TOKEN_PATH, JWKS_PATH,
    LEGACY_EXCHANGE_TOKEN_PATH, MAX_BODY_BYTES,
};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000;
const AUDIENCE: &str = "https://api.example.test";
const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::EdDSA,
    SigningAlgorithm::ES256,
    SigningAlgorithm::RS256,
];

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn start(algorithm: SigningAlgorithm, clock: &ManualClock) -> DevIssuer {
    DevIssuer::builder()
        .algorithm(algorithm)
        .clock(clock.clone())
        .start()
        .await
        .unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// POST a raw body to `path` with an optional `Authorization` value.
async fn post_raw(issuer: &DevIssuer, path: &str, auth: Option<&str>, body: String) -> Reply {
    let mut request = http()
        .post(format!("{}{path}", issuer.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not json: {text}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// POST `body` to the current exchange path with the issuer's API key.
async fn exchange(issuer: &DevIssuer, body: Value) -> Reply {
    let auth = format!("Bearer {}", issuer.api_key());
    post_raw(issuer, EXCHANGE_TOKEN_PATH, Some(&auth), body.to_string()).await
}

fn token_of(reply: &Reply) -> &str {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["token"].as_str().expect("a token string")
}

/// The `path`s of an error body's `detail` list (checking `details` repeats it).
fn detail_paths(reply: &Reply) -> Vec<String> {
    assert!(reply.body["message"].is_string(), "{}", reply.body);
    assert_eq!(reply.body["detail"], reply.body["details"]);
    reply.body["detail"]
        .as_array()
        .expect("a detail list")
        .iter()
        .map(|d| {
            assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
            d["path"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn fetch_jwks(issuer: &DevIssuer) -> (HeaderMap, String) {
    let response = http().get(issuer.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// A verifier over the JWKS the issuer serves right now, fetched over HTTP.
async fn verifier_for(issuer: &DevIssuer, clock: &ManualClock) -> Verifier {
    let (_, jwks) = fetch_jwks(issuer).await;
    Verifier::builder()
        .jwks(jwks)
        .audience(AUDIENCE)
        .issuer(issuer.issuer())
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn claims_of(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |part: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut parts = token.split('.');
    let header = decode(parts.next().unwrap());
    let claims = decode(parts.next().unwrap());
    (header, claims)
}

#[tokio::test]
async fn exchanged_tokens_verify_for_every_algorithm_on_both_paths() {
    let clock = ManualClock::at_unix(NOW);
    for algorithm in ALGORITHMS {
        let issuer = start(algorithm, &clock).await;
        let verifier = verifier_for(&issuer, &clock).await;
        let auth = format!("Bearer {}", issuer.api_key());
        for path in [EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH] {
            let body = json!({"audience": AUDIENCE, "externalUserId": "user-42"}).to_string();
            let reply = post_raw(&issuer, path, Some(&auth), body).await;
            assert_eq!(
                reply.headers["content-type"], "application/json",
                "{algorithm:?}"
            );
            assert_eq!(reply.headers["cache-control"], "no-store");
            let token = token_of(&reply);

            let (header, claims) = claims_of(token);
            assert_eq!(header["alg"], algorithm.name());
            assert_eq!(header["kid"], issuer.current_kid().as_str());
            assert_eq!(claims["iat"], NOW);
            assert_eq!(claims["exp"], NOW + 3600, "default lifetime");
            // All of the bootstrap key's scopes: the permissions and `write:apikeys`.
            assert_eq!(
                claims["permissions"],
                json!(["agent:read", "agent:write", "write:apikeys"])
            );

            let verified = verifier
                .verify(token)
                .await
                .unwrap_or_else(|e| panic!("{algorithm:?} {path}: {e}"));
            assert_eq!(verified.subject(), "user-42");
            assert_eq!(verified.audiences().collect::<Vec<_>>(), [AUDIENCE]);
            assert_eq!(verified.issuer(), Some(issuer.issuer()));
            assert_eq!(verified.algorithm(), algorithm.algorithm());
            assert_eq!(verified.key_id(), issuer.current_kid());
            assert!(
                verified.has_permission("agent:read") && verified.has_permission("agent:write")
            );
        }
    }
}

#[tokio::test]
async fn jwks_is_better_auth_shaped_and_cacheable() {
    let clock = ManualClock::at_unix(NOW);
    let expected = [
        (
            SigningAlgorithm::EdDSA,
            json!(["alg", "crv", "kid", "kty", "x"]),
        ),
        (
            SigningAlgorithm::ES256,
            json!(["alg", "crv", "kid", "kty", "x", "y"]),
        ),
        (
            SigningAlgorithm::RS256,
            json!(["alg", "e", "kid", "kty", "n"]),
        ),
    ];
    for (algorithm, members) in expected {
        let issuer = DevIssuer::builder()
            .algorithm(algorithm)
            .clock(clock.clone())
            .jwks_max_age(Duration::from_secs(120))
            .start()
            .await
            .unwrap();
        let (headers, text) = fetch_jwks(&issuer).await;
        assert_eq!(headers["cache-control"], "public, max-age=120");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(text, issuer.jwks_json());
        let doc: Value = serde_json::from_str(&text).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let mut names: Vec<&String> = keys[0].as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(
            json!(names),
            members,
            "{algorithm:?}: no `use`, nothing private"
        );
        assert_eq!(keys[0]["alg"], algorithm.name());
        assert_eq!(keys[0]["kid"], issuer.current_kid().as_str());

        let head = http().head(issuer.jwks_url()).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn float_expires_in_is_accepted_as_the_sdk_sends_it() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(SigningAlgorithm::EdDSA, &clock).await;
    let verifier = verifier_for(&issuer, &clock).await;
    for (sent, lifetime) in [
        (json!(300.0), 300),
        (json!(300), 300),
        (json!(7200.0), 7200),
        (json!(2_592_000.0), 2_592_000),
    ] {
        let reply = exchange(
            &issuer,
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": sent}),
        )
        .await;
        let verified = verifier.verify(token_of(&reply)).await.unwrap();
        assert_eq!(verified.expires_at(), NOW + lifetime, "{sent}");
        assert_eq!(verified.issued_at(), Some(NOW));
    }
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_401() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(SigningAlgorithm::EdDSA, &clock).await;
    let body = json!({"audience": AUDIENCE, "externalUserId": "u"}).to_string();
    let right = issuer.api_key().to_string();
    let cases = [
        None,
        Some("Bearer wrong-key".to_string()),
        Some(format!("Bearer {right}x")),
        Some(format!("Basic {right}")),
        Some(right.clone()),
        Some("Bearer ".to_string()),
    ];
    for auth in cases {
        for path in [EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH] {
            let reply = post_raw(&issuer, path, auth.as_deref(), body.clone()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
            assert_eq!(detail_paths(&reply), ["authorization"]);
            assert!(
                !reply.body.to_string().contains(&right),
                "never echo the key"
            );
        }
    }

    // Two Authorization headers, even if one is right.
    let reply = http()
        .post(issuer.exchange_token_url())
        .header("authorization", format!("Bearer {right}"))
        .header("authorization", "Bearer other")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);

    // The scheme is case-insensitive.
    let reply = post_raw(
        &issuer,
        EXCHANGE_TOKEN_PATH,
        Some(&format!("bearer {right}")),
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn invalid_bodies_are_400_with_detail_paths() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(SigningAlgorithm::EdDSA, &clock).await;
    let long_id = "a".repeat(151);
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["audience", "externalUserId"]),
        (json!({"externalUserId": "u"}), &["audience"]),
        (json!({"audience": AUDIENCE}), &["externalUserId"]),
        (
            json!({"audience": "not a uri", "externalUserId": "u"}),
            &["audience"],
        ),
        (
            json!({"audience": "/relative", "externalUserId": "u"}),
            &["audience"],
        ),
        (json!({"audience": 7, "externalUserId": "u"}), &["audience"]),
        (
            json!({"audience": AUDIENCE, "externalUserId": "*"}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": ""}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": long_id}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "caf\u{e9}"}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "tab\there"}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": 42}),
            &["externalUserId"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": 299}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": 299.5}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": 2_592_001}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": -300}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": "3600"}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "expiresIn": null}),
            &["expiresIn"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "permissions": "agent:read"}),
            &["permissions"],
        ),
        (
            json!({"audience": AUDIENCE, "externalUserId": "u", "permissions": ["agent:read", 1, ""]}),
            &["permissions.1", "permissions.2"],
        ),
        (json!([]), &[""]),
        (json!("text"), &[""]),
    ];
    for (body, paths) in cases {
        let reply = exchange(&issuer, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(detail_paths(&reply), paths, "{body}");
    }

    let auth = format!("Bearer {}", issuer.api_key());
    for raw in ["", "{", "{\"audience\":", "\u{0}", "null"] {
        let reply = post_raw(&issuer, EXCHANGE_TOKEN_PATH, Some(&auth), raw.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{raw:?}");
        assert_eq!(detail_paths(&reply), [""], "{raw:?}");
    }
}

#[tokio::test]
async fn permissions_must_be_a_subset_of_the_keys() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = DevIssuer::builder()
        .permissions(["agent:read", "agent:write", "files:read"])
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let verifier = verifier_for(&issuer, &clock).await;

    let subset = exchange(
        &issuer,
        json!({"audience": AUDIENCE, "externalUserId": "u", "permissions": ["files:read", "agent:read"]}),
    )
    .await;
    let verified = verifier.verify(token_of(&subset)).await.unwrap();
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read", "files:read"]
    );

    let none = exchange(
        &issuer,
        json!({"audience": AUDIENCE, "externalUserId": "u", "permissions": []}),
    )
    .await;
    assert!(verifier
        .verify(token_of(&none))
        .await
        .unwrap()
        .permissions()
        .is_empty());

    let superset = exchange(
        &issuer,
        json!({"audience": AUDIENCE, "externalUserId": "u",
               "permissions": ["agent:read", "admin:all", "agent:delete"]}),
    )
    .await;
    assert_eq!(superset.status, StatusCode::FORBIDDEN);
    assert_eq!(detail_paths(&superset), ["permissions.1", "permissions.2"]);
    assert!(superset.body.to_string().contains("admin:all"));
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(SigningAlgorithm::EdDSA, &clock).await;
    let padding = "x".repeat(MAX_BODY_BYTES);
    let reply = exchange(
        &issuer,
        json!({"audience": AUDIENCE, "externalUserId": "u", "pad": padding}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(detail_paths(&reply), [""]);

    // Chunked, so no Content-Length announces the size: the cap holds while reading.
    let mut raw = format!(
        "POST {EXCHANGE_TOKEN_PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        issuer.api_key()
    );
    for _ in 0..(MAX_BODY_BYTES / 1024 + 2) {
        raw.push_str(&format!("400\r\n{}\r\n", "y".repeat(1024)));
    }
    raw.push_str("0\r\n\r\n");
    let answer = raw_http(&issuer, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
}

/// Send raw bytes to the issuer and read the whole answer (the request says `close`).
async fn raw_http(issuer: &DevIssuer, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(issuer.local_addr())
        .await
        .unwrap();
    // The server may answer and close before taking every byte; that is fine here.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_get_clean_errors() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = start(SigningAlgorithm::EdDSA, &clock).await;
    let base = issuer.base_url();
    for path in [EXCHANGE_TOKEN_PATH, LEGACY_EXCHANGE_TOKEN_PATH] {
        let response = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
    }
    let response = http().post(issuer.jwks_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    for path in [
        "/",
        "/api/v1/authentication/jwks/",
        "/api/v1/authentication/api-keys",
    ] {
        let reply = post_raw(&issuer, path, None, String::new()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.body["message"].is_string());
    }
    assert!(issuer.jwks_url().ends_with(JWKS_PATH));

    // Garbage on the wire gets an HTTP error, and the server keeps serving.
    let answer = raw_http(&issuer, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    fetch_jwks(&issuer).await;
}

#[tokio::test]
async fn rotation_keeps_the_old_key_listed_for_the_grace_period() {
    let clock = ManualClock::at_unix(NOW);
    for algorithm in ALGORITHMS {
        let issuer = DevIssuer::builder()
            .algorithm(algorithm)
            .clock(clock.clone())
            .rotation_grace(Duration::from_secs(600))
            .start()
            .await
            .unwrap();
        clock.set_unix(NOW);
        let old_kid = issuer.current_kid();
        let old_token = issuer.mint(Mint::new(AUDIENCE, "u"));

        let new_kid = issuer.rotate_key();
        assert_ne!(new_kid, old_kid);
        assert_eq!(issuer.current_kid(), new_kid);
        let new_token = issuer.mint(Mint::new(AUDIENCE, "u"));
        assert_eq!(claims_of(&new_token).0["kid"], new_kid.as_str());

        // Within the grace period both keys are listed, new one first.
        clock.advance(Duration::from_secs(599));
        let (_, jwks) = fetch_jwks(&issuer).await;
        let doc: Value = serde_json::from_str(&jwks).unwrap();
        let kids: Vec<&str> = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()], "{algorithm:?}");
        let verifier = verifier_for(&issuer, &clock).await;
        verifier.verify(&old_token).await.unwrap();
        verifier.verify(&new_token).await.unwrap();

        // After it, only the new key is; the old token (not yet expired) has no key.
        clock.advance(Duration::from_secs(1));
        let verifier = verifier_for(&issuer, &clock).await;
        assert_eq!(
            verifier.verify(&old_token).await.unwrap_err().kind(),
            ErrorKind::UnknownKeyId
        );
        verifier.verify(&new_token).await.unwrap();
        assert!(!issuer.jwks_json().contains(&old_kid));
    }
}

#[tokio::test]
async fn minted_tokens_carry_what_was_asked() {
    let clock = ManualClock::at_unix(NOW);
    let issuer = DevIssuer::builder()
        .issuer("https://mka1.example.test")
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(issuer.issuer(), "https://mka1.example.test");
    let verifier = verifier_for(&issuer, &clock).await;

    let token = issuer.mint(
        Mint::new(AUDIENCE, "user-7")
            .permissions(["files:read", "files:read", ""])
            .expires_in(Duration::from_secs(90))
            .claim("org", "acme"),
    );
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.subject(), "user-7");
    assert_eq!(verified.issuer(), Some("https://mka1.example.test"));
    assert_eq!(verified.expires_at(), NOW + 90);
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["files:read"]
    );
    let extra: Value = verified.claims().unwrap();
    assert_eq!(extra["org"], "acme");

    // Defaults: the key's permissions, an hour.
    let verified = verifier
        .verify(&issuer.mint(Mint::new(AUDIENCE, "u")))
        .await
        .unwrap();
    assert_eq!(verified.permissions().len(), 2);
    assert_eq!(verified.expires_at(), NOW + 3600);

    // Tokens a verifier must refuse can be minted on purpose.
    let refused = [
        (
            Mint::new("https://other.example.test", "u"),
            ErrorKind::InvalidAudience,
        ),
        (Mint::new(AUDIENCE, "*"), ErrorKind::InvalidSubject),
        (
            Mint::new(AUDIENCE, "u").claim("iss", "https://evil.test"),
            ErrorKind::InvalidIssuer,
        ),
        (
            // Past the verifier's 60 s leeway.
            Mint::new(AUDIENCE, "u").claim("exp", NOW - 61),
            ErrorKind::Expired,
        ),
    ];
    for (mint, kind) in refused {
        let err = verifier.verify(&issuer.mint(mint)).await.unwrap_err();
        assert_eq!(err.kind(), kind);
    }

    // The token expires on the issuer's clock, as the verifier sees it.
    clock.advance(Duration::from_secs(3600 + 61));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[tokio::test]
async fn settings_are_checked_and_the_api_key_is_redacted() {
    for bad in ["", "has space", "caf\u{e9}"] {
        let err = DevIssuer::builder().api_key(bad).start().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    let issuer = DevIssuer::builder()
        .api_key("sekrit-dev-key")
        .start()
        .await
        .unwrap();
    assert_eq!(issuer.api_key(), "sekrit-dev-key");
    assert_eq!(issuer.permissions(), ["agent:read", "agent:write"]);
    assert_eq!(issuer.algorithm(), SigningAlgorithm::EdDSA);
    let debug = format!("{issuer:?}");
    assert!(!debug.contains("sekrit"), "{debug}");
    assert!(debug.contains(issuer.base_url()));

    let a = DevIssuer::start().await.unwrap();
    let b = DevIssuer::start().await.unwrap();
    assert_ne!(a.api_key(), b.api_key(), "random keys");
    assert_ne!(a.base_url(), b.base_url());
    assert_ne!(a.current_kid(), b.current_kid());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let issuer = DevIssuer::start().await.unwrap();
    let addr = issuer.local_addr();
    fetch_jwks(&issuer).await;
    // The bound only keeps a broken shutdown from hanging the suite.
    tokio::time::timeout(Duration::from_secs(60), issuer.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_handle_stops_the_server() {
    let issuer = DevIssuer::start().await.unwrap();
    let addr = issuer.local_addr();
    fetch_jwks(&issuer).await;
    drop(issuer);
    // On a current-thread runtime the server task runs only when this one yields; give it
    // a bounded number of turns to see the signal and close the listener.
    let closed = listener_closes(addr).await;
    assert!(closed, "the listener is still open after drop");
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_lets_an_in_flight_exchange_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let issuer = DevIssuer::start().await.unwrap();
    let addr = issuer.local_addr();
    let body = json!({"audience": AUDIENCE, "externalUserId": "u"}).to_string();
    let (head, tail) = body.split_at(10);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {EXCHANGE_TOKEN_PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\n\r\n{head}",
        issuer.api_key(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Let the server (on this same thread) accept the connection and read the headers: each
    // yield lets tokio poll its I/O driver once.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }

    // Half the body is in; now ask the server to stop, and wait (a bounded number of turns
    // on this single thread) until it no longer accepts connections.
    let stopping = tokio::spawn(issuer.shutdown());
    let closed = listener_closes(addr).await;
    assert!(closed, "the listener is still open during shutdown");
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );

    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"token\":"), "{answer}");
    tokio::time::timeout(Duration::from_secs(60), stopping)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

#[test]
fn the_handle_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<DevIssuer>();
    send_sync::<Mint>();
}

/// Whether the listener at `addr` stops accepting within a bounded number of turns of this
/// (current-thread) runtime: the server task only runs when the test yields.
async fn listener_closes(addr: std::net::SocketAddr) -> bool {
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
    }
    false
}

// Test-only fault switches (issue 16).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_fault_switches_fail_and_hold_requests_and_count_them() {
    let issuer = DevIssuer::start().await.unwrap();
    assert_eq!(issuer.jwks_fault(), JwksFault::None);
    issuer.set_jwks_fault(JwksFault::Error500);
    let failed = http().get(issuer.jwks_url()).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(failed.text().await.unwrap().contains("fault switch"));

    issuer.set_jwks_fault(JwksFault::Hang);
    let held = tokio::spawn(http().get(issuer.jwks_url()).send());
    // Wait for the request to arrive (an event, not a time).
    while issuer.jwks_requests() < 2 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!held.is_finished(), "a hanging endpoint answers nothing");
    issuer.set_jwks_fault(JwksFault::None);
    let released = held.await.unwrap().unwrap();
    assert_eq!(released.status(), StatusCode::OK);
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_requests_held_by_a_hang() {
    let issuer = DevIssuer::start().await.unwrap();
    issuer.set_jwks_fault(JwksFault::Hang);
    let held = tokio::spawn(http().get(issuer.jwks_url()).send());
    while issuer.jwks_requests() < 1 {
        tokio::task::yield_now().await;
    }
    issuer.shutdown().await;
    // Released and answered (as the endpoint's setting now says) before the server stopped.
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
}
