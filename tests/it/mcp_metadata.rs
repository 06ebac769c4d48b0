//! RFC 9728 protected resource metadata over loopback: the document at its well-known
//! path, and `resource_metadata` in the challenge of 401 answers when (and only when) the
//! service opts in.

use crate::common;

use common::*;
use mka1_auth::mcp::ProtectedResource;
use mka1_auth::{ManualClock, Mka1AuthLayer, RequirePermissionsLayer};
use serde_json::{json, Value};

/// Serve `app` on 127.0.0.1; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A raw HTTP/1.1 GET over loopback: status, headers (lowercase names) and body.
async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn app(resource: Option<&ProtectedResource>, clock: &ManualClock, key: &TestKey) -> axum::Router {
    let verifier = verifier_with_clock(&[key], clock);
    let guarded = axum::Router::new()
        .route("/mcp", axum::routing::get(|| async { "tools" }))
        .route(
            "/admin",
            axum::routing::get(|| async { "admin" })
                .route_layer(RequirePermissionsLayer::new(["agent:admin"])),
        )
        .layer(Mka1AuthLayer::new(verifier));
    match resource {
        Some(resource) => axum::Router::new()
            .route_service(resource.well_known_path(), resource.service())
            .merge(guarded.layer(resource.challenge_layer())),
        None => guarded,
    }
}

fn resource() -> ProtectedResource {
    ProtectedResource::new(format!("{}/mcp", "https://tools.example.test"))
        .unwrap()
        .authorization_server(ISSUER)
        .scopes(["agent:read", "agent:admin"])
}

#[tokio::test]
async fn the_document_is_served_at_its_well_known_path_without_a_token() {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let resource = resource();
    let base = serve(app(Some(&resource), &clock, &key)).await;
    let (status, headers, body) =
        get(&base, "/.well-known/oauth-protected-resource/mcp", None).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), ["application/json"]);
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        document,
        json!({
            "resource": "https://tools.example.test/mcp",
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["agent:read", "agent:admin"],
        })
    );
}

#[tokio::test]
async fn opted_in_401s_name_the_metadata_and_other_answers_do_not() {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let resource = resource();
    let base = serve(app(Some(&resource), &clock, &key)).await;
    let url = "https://tools.example.test/.well-known/oauth-protected-resource/mcp";

    let (status, headers, _) = get(&base, "/mcp", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        [format!(r#"Bearer realm="mka1", resource_metadata="{url}""#)]
    );

    let expired = key.sign(&claims_with(
        json!({ "exp": NOW - 3600, "iat": NOW - 7200 }),
    ));
    let (status, headers, _) = get(&base, "/mcp", Some(&expired)).await;
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate")[0];
    assert!(challenge.starts_with(r#"Bearer realm="mka1", error="invalid_token""#));
    assert!(challenge.ends_with(&format!(r#", resource_metadata="{url}""#)));

    // A 403 is not a request for credentials: unchanged.
    let token = key.sign(&claims_at(NOW));
    let (status, headers, _) = get(&base, "/admin", Some(&token)).await;
    assert_eq!(status, 403);
    assert!(!header(&headers, "www-authenticate")[0].contains("resource_metadata"));
    let (status, _, body) = get(&base, "/mcp", Some(&token)).await;
    assert_eq!((status, body.as_str()), (200, "tools"));
}

#[tokio::test]
async fn off_by_default() {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let base = serve(app(None, &clock, &key)).await;
    let (status, headers, _) = get(&base, "/mcp", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        [r#"Bearer realm="mka1""#]
    );
    let (status, _, _) = get(&base, "/.well-known/oauth-protected-resource/mcp", None).await;
    assert_eq!(status, 401);
}

#[test]
fn a_resource_must_be_an_https_url() {
    for bad in [
        "",
        "tools",
        "/mcp",
        "http://tools.example.test/mcp",
        "https://tools.example.test/mcp?x=1",
        "https://tools.example.test/mcp#frag",
        "https://tools.example.test/\"mcp",
    ] {
        assert!(ProtectedResource::new(bad).is_err(), "{bad} was accepted");
    }
    let root = ProtectedResource::new("https://tools.example.test").unwrap();
    assert_eq!(
        root.well_known_path(),
        "/.well-known/oauth-protected-resource"
    );
    assert_eq!(
        root.metadata_url(),
        "https://tools.example.test/.well-known/oauth-protected-resource"
    );
}
