//! The main job, `cargo run --example protected_api`, run in-process: its start-up lines, its
//! routes, the printed curl, the proxy route and a JWKS endpoint that is down; and the
//! `call_downstream` line it prints, run against it.

#[cfg(feature = "remote")]
#[allow(dead_code)]
#[path = "../../examples/call_downstream.rs"]
mod call_downstream;
use crate::common;
#[allow(dead_code)]
#[path = "../../examples/protected_api.rs"]
mod protected_api;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::any;
use axum::Router;
use mka1_auth_dev_issuer::Mint;
use protected_api::{run, start, Config, Running};
use serde_json::Value;

fn loopback_config() -> Config {
    Config {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
}

async fn start_demo(config: Config) -> (Running, Vec<String>) {
    let mut out = Vec::new();
    let running = start(config, &mut out).await.unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (running, lines)
}

/// The token in the printed curl line.
fn printed_token(lines: &[String]) -> String {
    let curl = &lines[3];
    curl.split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn prints_the_start_up_lines_and_the_curl_works() {
    let (running, lines) = start_demo(loopback_config()).await;
    let addr = running.addr;
    let issuer = running.dev_issuer.as_ref().unwrap();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0], format!("MKA1_SERVER_URL={}", issuer.base_url()));
    assert_eq!(lines[1], format!("MKA1_API_KEY={}", issuer.api_key()));
    assert_eq!(lines[2], format!("MKA1_AUDIENCE=http://{addr}"));
    assert!(
        lines[3].starts_with("curl -s -H 'Authorization: Bearer "),
        "{}",
        lines[3]
    );
    assert!(lines[3].ends_with(&format!("' http://{addr}/whoami")));
    assert!(
        lines[4].ends_with(&format!("' http://{addr}/agents")),
        "{}",
        lines[4]
    );
    assert_eq!(
        lines[5],
        format!(
            "MKA1_SERVER_URL={} MKA1_API_KEY={} TARGET_URL=http://{addr} END_USER=user-42 \
             cargo run --example call_downstream",
            issuer.base_url(),
            issuer.api_key()
        )
    );
    assert_eq!(lines[6], format!("listening on http://{addr}"));

    // Do what the printed curl does.
    let token = &printed_token(&lines);
    let response = client()
        .get(format!("http://{addr}/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "user-42");
    assert_eq!(body["permissions"], serde_json::json!(["agent:read"]));
    assert!(body["exp"].as_u64().unwrap() > 0);

    // Routes: health without auth, agents needs agent:read, nothing without a token.
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/healthz", None).await, 200);
    assert_eq!(get("/whoami", None).await, 401);
    assert_eq!(get("/agents", Some(token)).await, 200);
    // The open twin of `/agents` (for measuring the guard) answers the same, with no token.
    assert_eq!(get("/open/agents", None).await, 200);
    let body = |path: &'static str, token: Option<&str>| {
        let mut request = client().get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(
        body("/open/agents", None).await,
        body("/agents", Some(token)).await
    );
    let no_read = issuer
        .mint(Mint::new(format!("http://{addr}"), "user-7").permissions(Vec::<String>::new()));
    assert_eq!(get("/whoami", Some(&no_read)).await, 200);
    assert_eq!(get("/agents", Some(&no_read)).await, 403);
    // The second printed curl shows that 403.
    let printed_no_read = lines[4]
        .split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert_eq!(get("/agents", Some(printed_no_read)).await, 403);
    assert_eq!(get("/whoami", Some(printed_no_read)).await, 200);
    let elsewhere = issuer.mint(Mint::new("https://other.example", "user-7"));
    assert_eq!(get("/whoami", Some(&elsewhere)).await, 401);
    // Without UPSTREAM_URL the proxy route says so.
    assert_eq!(get("/proxy/anything", Some(token)).await, 502);
    running.server.abort();
}

/// Issue 25: a client-chosen `content-type: application/grpc...` does not turn a refusal of
/// the demo's REST routes into a 200 (which a forward-auth gateway would take as a grant).
#[tokio::test]
async fn a_grpc_content_type_never_turns_a_refusal_into_a_2xx() {
    let (running, lines) = start_demo(loopback_config()).await;
    let addr = running.addr;
    let issuer = running.dev_issuer.as_ref().unwrap();
    let token = printed_token(&lines);
    // The printed token with one signature byte changed.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = signature.as_bytes().to_vec();
    signature[4] = if signature[4] == b'A' { b'B' } else { b'A' };
    let forged = format!("{signed}.{}", String::from_utf8(signature).unwrap());
    let no_read = issuer
        .mint(Mint::new(format!("http://{addr}"), "user-7").permissions(Vec::<String>::new()));

    let cases = [
        ("/whoami", None, 401),
        ("/whoami", Some(forged.as_str()), 401),
        ("/agents", None, 401),
        ("/agents", Some(forged.as_str()), 401),
        ("/agents", Some(no_read.as_str()), 403),
        ("/proxy/anything", None, 401),
    ];
    let content_types = [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;charset=utf-8",
        "APPLICATION/GRPC",
        "application/grpcx",
        "application/grpc-web",
        "application/grpc-web-text",
    ];
    for (path, token, status) in cases {
        for content_type in content_types {
            // `/agents` is GET only: a POST that passes authentication is a 405.
            let methods = match status {
                403 => &[reqwest::Method::GET][..],
                _ => &[reqwest::Method::GET, reqwest::Method::POST],
            };
            for method in methods {
                let mut request = client()
                    .request(method.clone(), format!("http://{addr}{path}"))
                    .header("content-type", content_type);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                let what = format!("{method} {path} {content_type} token: {}", token.is_some());
                assert_eq!(response.status().as_u16(), status, "{what}");
                assert!(response.headers().get("grpc-status").is_none(), "{what}");
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "{what}"
                );
            }
        }
    }
    running.server.abort();
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, HeaderMap)>>>);

#[tokio::test]
async fn proxy_forwards_the_token_and_the_verified_user() {
    let seen = Seen::default();
    let recorder = seen.clone();
    let upstream = Router::new().fallback(any(move |uri: axum::http::Uri, headers: HeaderMap| {
        let recorder = recorder.clone();
        async move {
            recorder.0.lock().unwrap().push((uri.to_string(), headers));
            "from upstream"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let upstream_task = tokio::spawn(async move { axum::serve(listener, upstream).await });

    let (running, lines) = start_demo(Config {
        upstream_url: Some(format!("http://{upstream_addr}/base")),
        ..loopback_config()
    })
    .await;
    let addr = running.addr;
    let token = printed_token(&lines);

    let response = client()
        .post(format!("http://{addr}/proxy/agents/run?x=1"))
        .bearer_auth(&token)
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "from upstream");
    {
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (uri, headers) = &seen[0];
        assert_eq!(uri, "/base/agents/run?x=1");
        let auth: Vec<_> = headers.get_all("authorization").iter().collect();
        assert_eq!(auth, vec![format!("Bearer {token}").as_str()]);
        let user: Vec<_> = headers.get_all("x-on-behalf-of").iter().collect();
        assert_eq!(user, vec!["user-42"]);
    }

    // A path that could climb out of `/base` is refused before it goes anywhere.
    let escape = client()
        .get(format!(
            "http://{addr}/proxy/x/..%2f..%2finternal/secrets?id=1"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 400);
    assert_eq!(seen.0.lock().unwrap().len(), 1);

    // A caller claiming to act for someone else is refused and the upstream never hears of it.
    let spoofed = client()
        .get(format!("http://{addr}/proxy/agents"))
        .bearer_auth(&token)
        .header("x-on-behalf-of", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 403);
    assert_eq!(seen.0.lock().unwrap().len(), 1);
    running.server.abort();
    upstream_task.abort();
}

/// The demo against a JWKS URL on a loopback port nothing listens on.
async fn start_with_jwks_down() -> (Running, Vec<String>) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    start_demo(Config {
        jwks_url: Some(jwks_url),
        audience: Some("https://api.example.test".into()),
        ..loopback_config()
    })
    .await
}

#[tokio::test]
async fn starts_when_the_jwks_endpoint_is_down() {
    let (running, lines) = start_with_jwks_down().await;
    let addr = running.addr;
    assert!(running.dev_issuer.is_none());
    assert_eq!(lines, vec![format!("listening on http://{addr}")]);
    let health = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let who = client()
        .get(format!("http://{addr}/whoami"))
        .bearer_auth("eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1In0.c2ln")
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 503);
    assert!(who.headers().contains_key("retry-after"));
    running.server.abort();
}

#[tokio::test]
async fn a_busy_port_says_what_to_do() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        bind: Some(busy.local_addr().unwrap()),
        ..Config::default()
    };
    let err = match start(config, &mut Vec::new()).await {
        Err(err) => err.to_string(),
        Ok(_) => panic!("the demo listened on a busy port"),
    };
    assert!(err.contains("another process is using it"), "{err}");
    assert!(err.contains("set BIND"), "{err}");
}

#[tokio::test]
async fn readyz_metrics_and_one_log_line_per_refusal() {
    let logs = common::traced();
    let (running, lines) = start_demo(loopback_config()).await;
    let addr = running.addr;
    let token = printed_token(&lines);
    let get = |path: &str, token: Option<&str>| {
        let mut request = client().get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    // A verified token means a usable key set, whether or not the warm-up got there first.
    assert_eq!(get("/whoami", Some(&token)).await.status(), 200);
    let ready = get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["key_set"]["usable"], true);
    assert!(ready["key_set"]["key_count"].as_u64().unwrap() >= 1);
    assert!(ready["key_set"]["last_success"].as_u64().unwrap() > 1_600_000_000);

    let forged = format!("{token}x");
    assert_eq!(get("/whoami", Some(&forged)).await.status(), 401);
    assert_eq!(get("/whoami", None).await.status(), 401);
    let metrics = get("/metrics", None).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for expected in [
        "# TYPE mka1_auth_requests_total counter",
        "result=\"allowed\"",
        "reason=\"invalid_signature\"",
        "reason=\"missing_credentials\"",
        "# TYPE mka1_auth_token_cache_total counter",
        "# TYPE mka1_auth_jwks_fetches_total counter",
        "# TYPE mka1_auth_jwks_keys gauge",
        "mka1_auth_jwks_age_seconds ",
        "# TYPE mka1_auth_exchange_total counter",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }

    // Each refusal left one info line with its kind and status, and no token.
    let logged = logs.text();
    let refused: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("request refused") && l.contains(" INFO "))
        .collect();
    assert!(refused
        .iter()
        .any(|l| l.contains("InvalidSignature") && l.contains("status=401")));
    assert!(refused.iter().any(|l| l.contains("MissingCredentials")));
    assert!(
        !logged.contains(&token[token.len() - 20..]),
        "a token was logged"
    );
    running.server.abort();
}

#[tokio::test]
async fn readyz_says_why_while_no_key_set_is_usable() {
    let (running, _) = start_with_jwks_down().await;
    let addr = running.addr;
    let ready = client()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.starts_with("no "), "{reason}");
    assert_eq!(body["key_set"]["usable"], false);
    // Liveness is another matter.
    let health = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    running.server.abort();
}

/// What the printed `call_downstream` line does: its token reaches `/whoami` carrying only
/// what the example uses, though the demo's key holds more (`agent:write`, `write:apikeys`).
#[cfg(feature = "remote")]
#[tokio::test]
async fn call_downstream_asks_only_for_the_permission_it_uses() {
    use mka1_auth::exchange::ExchangeClient;
    use mka1_auth_dev_issuer::WRITE_APIKEYS_SCOPE;

    let (running, _) = start_demo(loopback_config()).await;
    let issuer = running.dev_issuer.as_ref().unwrap();
    assert!(issuer.permissions().len() > 1, "{:?}", issuer.permissions());
    let exchange = ExchangeClient::builder()
        .base_url(issuer.base_url())
        .api_key(issuer.api_key())
        .build()
        .unwrap();
    let target = format!("http://{}", running.addr);
    let (_, status, body) = call_downstream::whoami(&exchange, &target, &target, "user-42")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["sub"], "user-42");
    assert_eq!(
        body["permissions"],
        serde_json::json!(call_downstream::PERMISSIONS)
    );
    assert_eq!(call_downstream::PERMISSIONS, ["agent:read"]);
    assert!(!body["permissions"]
        .as_array()
        .unwrap()
        .contains(&WRITE_APIKEYS_SCOPE.into()));
}

/// A variable lookup over these pairs, as `std::env::var` filtered to non-empty values.
fn vars(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let pairs = pairs.to_vec();
    move |name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[tokio::test]
async fn a_partial_production_configuration_refuses_to_start() {
    let audience = ("MKA1_AUDIENCE", "https://api.example.test");
    let issuer = ("MKA1_ISSUER", "https://mka1.example.test");
    let bind = ("BIND", "127.0.0.1:0");
    for (pairs, named) in [
        (vec![audience], "MKA1_AUDIENCE is"),
        (vec![issuer, bind], "MKA1_ISSUER is"),
        (
            vec![audience, issuer, bind],
            "MKA1_AUDIENCE and MKA1_ISSUER are",
        ),
    ] {
        // Refused when read (so this test never starts a demo that would serve forever).
        assert!(Config::from_vars(vars(&pairs)).is_err(), "{pairs:?}");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(vars(&pairs), &mut out, &mut err).await;
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, ExitCode::from(2), "{pairs:?}: {err}");
        // Nothing started: no dev issuer, so no api key printed and no token trusted.
        assert!(
            out.is_empty(),
            "{pairs:?}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(
            err.starts_with("protected_api: MKA1_JWKS_URL is not set, but "),
            "{err}"
        );
        assert!(err.contains(named), "{err}");
    }

    // The bare demo keeps its embedded issuer, with `BIND` and `UPSTREAM_URL` or without.
    let dev = Config::from_vars(vars(&[bind, ("UPSTREAM_URL", "http://127.0.0.1:9")])).unwrap();
    assert_eq!(dev.jwks_url, None);
    let (running, lines) = start_demo(dev).await;
    assert!(running.dev_issuer.is_some());
    assert!(lines[1].starts_with("MKA1_API_KEY="), "{lines:?}");
    running.server.abort();
    assert!(Config::from_vars(vars(&[])).unwrap().jwks_url.is_none());

    // A complete production configuration is read as given.
    let jwks = ("MKA1_JWKS_URL", "https://mka1.example.test/jwks");
    let config = Config::from_vars(vars(&[jwks, audience, issuer])).unwrap();
    assert_eq!(config.jwks_url.as_deref(), Some(jwks.1));
    assert_eq!(config.audience.as_deref(), Some(audience.1));
    assert_eq!(config.issuer.as_deref(), Some(issuer.1));
}

/// The demo's `/proxy` to an upstream that accepts and never answers: 504, not a hang. The
/// demo's client has the default timeouts; tokio's paused clock jumps to them (nothing
/// waits in real time).
#[tokio::test(start_paused = true)]
async fn proxy_to_a_hanging_upstream_answers_504() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let upstream_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let (running, lines) = start_demo(Config {
        upstream_url: Some(format!("http://{upstream_addr}/base")),
        ..loopback_config()
    })
    .await;
    let token = printed_token(&lines);
    let call = client()
        .get(format!("http://{}/proxy/agents", running.addr))
        .bearer_auth(&token)
        .send();
    // A bound on the paused clock, so a client without timeouts fails here instead of
    // hanging the test.
    let response = tokio::time::timeout(std::time::Duration::from_secs(600), call)
        .await
        .expect("the proxy must answer, not hang")
        .unwrap();
    assert_eq!(response.status(), 504);
    upstream_task.abort();
}

/// `MKA1_REVOCATION_REDIS_URL`: `/readyz` answers 503 until the rules are loaded and then
/// reports them; a rule stored in Redis refuses the printed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_rules_from_redis_in_readyz_and_on_requests() {
    use mka1_auth::revocation::{Revocations, Rule};
    use std::time::{Duration, Instant};

    let port = crate::redis_server::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (running, lines) = start_demo(Config {
        revocation_redis_url: Some(url.clone()),
        ..loopback_config()
    })
    .await;
    let addr = running.addr;
    let token = printed_token(&lines);
    let get = |path: &'static str| {
        let request = client()
            .get(format!("http://{addr}{path}"))
            .bearer_auth(&token);
        async move { request.send().await.unwrap() }
    };
    // Redis is not up yet: not ready, and requests get 503 (fail closed).
    let ready = get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["revocations"]["loaded"], false);
    assert_eq!(get("/whoami").await.status(), 503);

    let _redis = crate::redis_server::RedisServer::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body: Value = get("/readyz").await.json().await.unwrap();
    assert_eq!(body["revocations"]["loaded"], true);
    assert_eq!(body["revocations"]["stale_since"], Value::Null);
    assert_eq!(get("/whoami").await.status(), 200);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Revocations::redis(&url)
        .store()
        .unwrap()
        .store(
            &Rule::user("user-42", now + 1),
            Duration::from_secs(3_600),
            now,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let response = get("/whoami").await;
        if response.status() == 401 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error_description"], "token has been revoked");
            break;
        }
        assert!(Instant::now() < deadline, "not revoked within 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let body: Value = get("/readyz").await.json().await.unwrap();
    assert_eq!(body["revocations"]["rule_count"], 1);
    running.server.abort();
}

/// `PROXY_MAX_IN_FLIGHT`: at the cap, one more `/proxy` call is shed at once with 503 and
/// `Retry-After` (tower's `LoadShed` over `ConcurrencyLimit`), not queued behind a hanging
/// upstream; `/healthz` is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_at_its_in_flight_cap_sheds_the_next_call_with_503() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let accepted = Arc::new(tokio::sync::Notify::new());
    let upstream_task = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                accepted.notify_one();
            }
        })
    };
    let (running, lines) = start_demo(Config {
        upstream_url: Some(format!("http://{upstream_addr}/base")),
        proxy_max_in_flight: Some(1),
        ..loopback_config()
    })
    .await;
    let token = printed_token(&lines);
    let proxy = |path: &str| {
        client()
            .get(format!("http://{}/proxy/{path}", running.addr))
            .bearer_auth(&token)
            .send()
    };
    // The first call holds the one slot: the upstream has its connection, and never answers.
    let first = tokio::spawn(proxy("first"));
    accepted.notified().await;
    let shed = proxy("second").await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let health = client()
        .get(format!("http://{}/healthz", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    first.abort();
    upstream_task.abort();
    running.server.abort();
}

#[test]
fn proxy_max_in_flight_is_read_and_checked() {
    let read = |value: &'static str| {
        Config::from_vars(|name| (name == "PROXY_MAX_IN_FLIGHT").then(|| value.to_owned()))
    };
    assert_eq!(read("8").unwrap().proxy_max_in_flight, Some(8));
    for bad in ["0", "-1", "many"] {
        let err = read(bad).unwrap_err().to_string();
        assert!(err.contains("PROXY_MAX_IN_FLIGHT"), "{err}");
    }
}
