//! Forwarding (`outbound::forward`) end to end on 127.0.0.1: raw requests into the inbound
//! layer and a forward, a recording upstream behind them. What the upstream sees must stay
//! under its prefix, carry only the identity the outbound layer set, and no hop-by-hop or
//! client-written forwarding headers.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use common::{claims_with, verifier_with_clock, TestKey, NOW};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mka1_auth::layer::CookieName;
use mka1_auth::outbound::forward::{
    CappedBody, Forward, ForwardCookies, ForwardError, ForwardErrorKind, ForwardLayer,
    ForwardLayerBuilder, ForwardedHeaders, OverrideHeaders,
};
use mka1_auth::outbound::{ForwardToken, OutboundLayer, ReqwestService};
use mka1_auth::{ManualClock, Mka1AuthLayer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{service_fn, Layer, Service, ServiceExt};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    fn names(&self) -> Vec<&str> {
        self.headers.keys().map(|k| k.as_str()).collect()
    }
}

/// An upstream on 127.0.0.1 that records every request (target as sent, headers, body) and
/// answers 200 `ok` with a kept header and hop-by-hop ones that must not come back.
#[derive(Clone)]
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = Router::new().fallback(move |req: Request<Body>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes());
                log.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    target: parts.uri.to_string(),
                    headers: parts.headers,
                    body: body.unwrap_or_default(),
                });
                Response::builder()
                    .header("x-kept", "yes")
                    .header("keep-alive", "timeout=5")
                    .header("x-upstream-hop", "secret")
                    .header("connection", "x-upstream-hop")
                    .header("proxy-authenticate", "Basic realm=\"up\"")
                    .status(StatusCode::CREATED)
                    .body(Body::from("ok"))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The service under test on 127.0.0.1: `/proxy` forwards to the recorder's `/base`,
/// behind the inbound layer, through the outbound layer forwarding the caller's token.
struct Stack {
    addr: SocketAddr,
    upstream: Recorder,
    token: String,
}

async fn stack(
    forward: impl FnOnce(ForwardLayerBuilder) -> ForwardLayerBuilder,
    auth: impl FnOnce(Mka1AuthLayer) -> Mka1AuthLayer,
) -> Stack {
    let upstream = Recorder::start().await;
    let key = TestKey::ed25519("k1");
    let verifier = verifier_with_clock(&[&key], &ManualClock::at_unix(NOW));
    let token = key.sign(&claims_with(json!({ "sub": "user_123" })));
    let layer = forward(ForwardLayer::builder(&format!(
        "http://{}/base",
        upstream.addr
    )))
    .build()
    .unwrap();
    let client = OutboundLayer::builder(ForwardToken)
        .allow_origin(layer.origin())
        .build()
        .unwrap()
        .layer(ReqwestService::new().unwrap());
    let app = Router::new()
        .nest_service("/proxy", layer.layer(client))
        .layer(auth(Mka1AuthLayer::new(verifier)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Stack {
        addr,
        upstream,
        token,
    }
}

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Stack {
    /// Send `request_line` (e.g. `GET /x HTTP/1.1`) exactly as written, with the caller's
    /// token and `extra` header lines, and read the whole answer.
    async fn raw(&self, request_line: &str, extra: &[&str], body: &[u8]) -> Answer {
        let auth = format!("Authorization: Bearer {}", self.token);
        let lines: Vec<&str> = std::iter::once(auth.as_str())
            .chain(extra.iter().copied())
            .collect();
        send_raw(self.addr, request_line, &lines, body).await
    }

    async fn get(&self, target: &str, extra: &[&str]) -> Answer {
        self.raw(&format!("GET {target} HTTP/1.1"), extra, b"")
            .await
    }
}

/// Send `request_line` to `addr` exactly as written, with `Host`, `Connection: close` and
/// the header `lines`, then `body`, and read the whole answer.
async fn send_raw(addr: SocketAddr, request_line: &str, lines: &[&str], body: &[u8]) -> Answer {
    let mut head = format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n");
    for line in lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// What the upstream should see for a target, or `None` for a refusal.
enum Expect {
    Upstream(&'static str),
    Refused,
}

#[tokio::test]
async fn no_spelling_of_a_path_leaves_the_prefix() {
    use Expect::*;
    let s = stack(|f| f, |a| a).await;
    let cases = [
        // Dot segments in every spelling the issue listed, and more.
        ("/proxy/../admin", Refused),
        ("/proxy/%2e%2e/admin", Refused),
        ("/proxy/%2E%2E/admin", Refused),
        ("/proxy/%2e%2E/admin", Refused),
        ("/proxy/.%2e/admin", Refused),
        ("/proxy/%2e./admin", Refused),
        ("/proxy/..%2fadmin", Refused),
        ("/proxy/..%2Fadmin", Refused),
        ("/proxy/..%5cadmin", Refused),
        ("/proxy/..%5Cadmin", Refused),
        ("/proxy/..\\admin", Refused),
        ("/proxy/%252e%252e/admin", Refused),
        ("/proxy/%25252e%25252e/admin", Refused),
        ("/proxy/x/..%2f..%2finternal/secrets?id=1", Refused),
        ("/proxy/./admin", Refused),
        ("/proxy/a/%2e/b", Refused),
        ("/proxy/..;/admin", Refused),
        ("/proxy/..;jsessionid=x/admin", Refused),
        ("/proxy/%2e%2e;x/admin", Refused),
        ("/proxy/%c0%ae%c0%ae/admin", Refused),
        ("/proxy/%e0%80%ae%e0%80%ae/admin", Refused),
        ("/proxy/%ef%bc%8e%ef%bc%8e/admin", Refused),
        ("/proxy/a/..", Refused),
        ("/proxy/..", Refused),
        ("/proxy/%00/admin", Refused),
        ("/proxy/a%0d%0aX-Injected:%201", Refused),
        ("/proxy/%zz", Refused),
        // Encoded syntax stays data.
        (
            "/proxy/echo/a%3Fadmin=1",
            Upstream("/base/echo/a%3Fadmin=1"),
        ),
        (
            "/proxy/echo/b%23frag/tail",
            Upstream("/base/echo/b%23frag/tail"),
        ),
        ("/proxy/a%2Fb", Upstream("/base/a%2Fb")),
        ("/proxy/caf%C3%A9", Upstream("/base/caf%C3%A9")),
        // Harmless look-alikes pass byte for byte.
        ("/proxy/.../x", Upstream("/base/.../x")),
        ("/proxy/.well-known/x", Upstream("/base/.well-known/x")),
        ("/proxy/a..b/c.", Upstream("/base/a..b/c.")),
        ("/proxy/x;v=1/y", Upstream("/base/x;v=1/y")),
        // Empty segments stay, under the prefix.
        ("/proxy/x//y", Upstream("/base/x//y")),
        // (axum's `nest_service` strips `/proxy/` here.)
        ("/proxy//x", Upstream("/base/x")),
        ("/proxy/", Upstream("/base/")),
        // The query passes through as sent.
        (
            "/proxy/q?a=1&b=%2e%2e/../x",
            Upstream("/base/q?a=1&b=%2e%2e/../x"),
        ),
        ("/proxy?x=1", Upstream("/base/?x=1")),
        // Absolute form lends only its path; the upstream's origin is fixed.
        ("http://evil.example/proxy/abs", Upstream("/base/abs")),
    ];
    for (target, expect) in &cases {
        let before = s.upstream.seen().len();
        let answer = s.get(target, &[]).await;
        let seen = s.upstream.seen();
        match expect {
            Refused => {
                assert_eq!(answer.status, 400, "{target}: {answer:?}");
                assert_eq!(seen.len(), before, "{target} reached the upstream");
                assert!(!answer.body.contains("admin"), "{target}: {}", answer.body);
            }
            Upstream(want) => {
                assert_eq!(answer.status, 201, "{target}: {answer:?}");
                assert_eq!(seen.len(), before + 1, "{target}");
                assert_eq!(seen[before].target, *want, "{target}");
            }
        }
    }
    // Authority-form and asterisk-form targets are never forwarded.
    for line in ["CONNECT evil.example:443 HTTP/1.1", "OPTIONS * HTTP/1.1"] {
        let before = s.upstream.seen().len();
        let answer = s.raw(line, &[], b"").await;
        assert!(
            (400..500).contains(&answer.status),
            "{line}: {}",
            answer.status
        );
        assert_eq!(s.upstream.seen().len(), before, "{line}");
    }
    for seen in s.upstream.seen() {
        let t = &seen.target;
        assert!(
            t == "/base" || t.starts_with("/base/") || t.starts_with("/base?"),
            "{t}"
        );
    }
}

#[tokio::test]
async fn the_upstream_gets_only_the_identity_the_outbound_layer_set() {
    let s = stack(|f| f, |a| a).await;
    let answer = s
        .get(
            "/proxy/me",
            &[
                "X-On-Behalf-Of: user_123",
                "Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
                "Proxy_Authorization: Basic cHJveHk6c2VjcmV0",
                "Keep-Alive: timeout=5",
                "Proxy-Connection: keep-alive",
                "TE: trailers",
                "Trailer: X-Checksum",
                "Upgrade: websocket",
                "X-Secret-Hop: 1",
                "X_Other_Hop: 1",
                "Connection: X-Secret-Hop, x-other-hop",
                "X-Kept-Request: yes",
                "Forwarded: for=1.2.3.4;host=admin.internal",
                "X-Forwarded-For: 1.2.3.4",
                "X-Forwarded-Host: admin.internal",
                "X_Forwarded_Proto: https",
                "X-Real-IP: 1.2.3.4",
            ],
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = s.upstream.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.all("authorization"), [format!("Bearer {}", s.token)]);
    assert_eq!(seen.all("x-on-behalf-of"), ["user_123"]);
    assert_eq!(seen.all("x-kept-request"), ["yes"]);
    assert_eq!(seen.all("host"), [s.upstream.addr.to_string()]);
    for name in seen.names() {
        assert!(
            !matches!(
                name,
                "proxy-authorization"
                    | "proxy_authorization"
                    | "keep-alive"
                    | "proxy-connection"
                    | "te"
                    | "trailer"
                    | "upgrade"
                    | "x-secret-hop"
                    | "x_other_hop"
                    | "forwarded"
                    | "x-forwarded-for"
                    | "x-forwarded-host"
                    | "x_forwarded_proto"
                    | "x-real-ip"
            ),
            "{name} reached the upstream: {:?}",
            seen.names()
        );
    }
    // The upstream's answer comes back with its status, body and own headers, and without
    // its hop-by-hop ones.
    assert_eq!(answer.body, "ok");
    assert!(answer.head.contains("x-kept: yes"), "{}", answer.head);
    for gone in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!answer.head.contains(gone), "{gone}: {}", answer.head);
    }
}

#[tokio::test]
async fn an_underscore_on_behalf_of_cannot_smuggle_another_user() {
    // oauth2-proxy CVE-2025-64484's class: `X_On_Behalf_Of: admin` beside a valid token.
    let s = stack(|f| f, |a| a).await;
    let answer = s.get("/proxy/me", &["X_On_Behalf_Of: admin"]).await;
    assert_eq!(answer.status, 403);
    assert!(s.upstream.seen().is_empty());

    // With overwrite mode the request passes, and the upstream hears only the verified user.
    let s = stack(|f| f, |a| a.overwrite_on_behalf_of(true)).await;
    let answer = s
        .get(
            "/proxy/me",
            &["X_On_Behalf_Of: admin", "x-on_behalf_of: root"],
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = &s.upstream.seen()[0];
    let spellings: Vec<&str> = seen
        .names()
        .into_iter()
        .filter(|n| n.replace('_', "-") == "x-on-behalf-of")
        .collect();
    assert_eq!(spellings, ["x-on-behalf-of"]);
    assert_eq!(seen.all("x-on-behalf-of"), ["user_123"]);
}

#[tokio::test]
async fn forwarded_headers_are_kept_only_when_asked() {
    let s = stack(|f| f.forwarded_headers(ForwardedHeaders::Keep), |a| a).await;
    let answer = s
        .get(
            "/proxy/me",
            &["X-Forwarded-For: 10.1.2.3", "Forwarded: for=10.1.2.3"],
        )
        .await;
    assert_eq!(answer.status, 201);
    let seen = &s.upstream.seen()[0];
    assert_eq!(seen.all("x-forwarded-for"), ["10.1.2.3"]);
    assert_eq!(seen.all("forwarded"), ["for=10.1.2.3"]);
}

/// Path and method overrides in the spellings servers read, `_` for `-` and any case.
const OVERRIDES: [&str; 11] = [
    "X-Original-URL: /admin/users",
    "x_original_url: /admin/users",
    "X-Original-URI: /admin/users",
    "X-Rewrite-URL: /admin/users",
    "X_REWRITE_URL: /admin/users",
    "X-HTTP-Method-Override: DELETE",
    "x_http_method_override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "X_Method_Override: DELETE",
    "X-Original-Method: DELETE",
];

/// The headers of `seen` that any server could read as one of [`OVERRIDES`].
fn overrides_in(seen: &Seen) -> Vec<String> {
    let folded = |name: &str| name.to_ascii_lowercase().replace('_', "-");
    let overrides: Vec<String> = OVERRIDES
        .iter()
        .map(|line| folded(line.split(':').next().unwrap()))
        .collect();
    seen.names()
        .into_iter()
        .filter(|name| overrides.contains(&folded(name)))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn path_and_method_overrides_stop_here_unless_kept() {
    let s = stack(|f| f, |a| a).await;
    let mut lines = OVERRIDES.to_vec();
    lines.push("X-Kept-Request: yes");
    let answer = s.get("/proxy/reports", &lines).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = &s.upstream.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/base/reports")
    );
    assert_eq!(overrides_in(seen), Vec::<String>::new());
    assert_eq!(seen.all("x-kept-request"), ["yes"]);

    // Kept on request (a documented risk): every spelling reaches the upstream.
    let s = stack(|f| f.override_headers(OverrideHeaders::Keep), |a| a).await;
    let answer = s.get("/proxy/reports", &OVERRIDES).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let kept = overrides_in(&s.upstream.seen()[0]);
    assert_eq!(kept.len(), OVERRIDES.len(), "{kept:?}");
}

#[tokio::test]
async fn cookies_stop_here_and_the_token_cookie_never_goes_onward() {
    let cookie = |token: &str| format!("Cookie: theme=dark; mka1_token={token}; lang=en");
    // The token read from its cookie (no `Authorization`): the upstream gets it only as the
    // outbound layer's `Authorization`, and by default no cookie at all.
    let s = stack(|f| f, |a| a.cookie(CookieName::new("mka1_token").unwrap())).await;
    let line = cookie(&s.token);
    let answer = send_raw(
        s.addr,
        "GET /proxy/me HTTP/1.1",
        &[&line, "Cookie: sid=1"],
        b"",
    )
    .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = &s.upstream.seen()[0];
    assert_eq!(seen.all("cookie"), Vec::<&str>::new());
    assert_eq!(seen.all("authorization"), [format!("Bearer {}", s.token)]);

    // Cookies kept: all but the token cookie pass, read from the cookie or not.
    let s = stack(
        |f| f.cookies(ForwardCookies::Keep),
        |a| a.cookie(CookieName::new("mka1_token").unwrap()),
    )
    .await;
    let line = cookie(&s.token);
    let from_cookie = &[line.as_str(), "Cookie: sid=1; MKA1_TOKEN=x.y.z"];
    let answer = send_raw(s.addr, "GET /proxy/me HTTP/1.1", from_cookie, b"").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    // With `Authorization` too, the header wins, and the cookie still stays here.
    let answer = s.get("/proxy/me", &[&line]).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = s.upstream.seen();
    assert_eq!(seen[0].all("cookie"), ["theme=dark; lang=en", "sid=1"]);
    assert_eq!(seen[1].all("cookie"), ["theme=dark; lang=en"]);
    for seen in &seen {
        let head = format!("{:?}", seen.headers);
        assert_eq!(head.matches(s.token.as_str()).count(), 1, "{head}");
        assert_eq!(seen.all("authorization"), [format!("Bearer {}", s.token)]);
    }
}

/// An HTTP/2 upstream (h2c, prior knowledge) on 127.0.0.1 that records the body and the
/// trailers of every request.
async fn h2_upstream() -> (SocketAddr, Arc<Mutex<Vec<(Bytes, HeaderMap)>>>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let seen: Arc<Mutex<Vec<(Bytes, HeaderMap)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let log = log.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let collected = req.into_body().collect().await?;
                    let trailers = collected.trailers().cloned().unwrap_or_default();
                    log.lock().unwrap().push((collected.to_bytes(), trailers));
                    Ok::<_, hyper::Error>(Response::new(http_body_util::Full::new(Bytes::from(
                        "ok",
                    ))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn request_trailers_stop_here() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let (upstream, seen) = h2_upstream().await;
    let key = TestKey::ed25519("k1");
    let verifier = verifier_with_clock(&[&key], &ManualClock::at_unix(NOW));
    let token = key.sign(&claims_with(json!({ "sub": "user_123" })));
    let forward = ForwardLayer::builder(&format!("http://{upstream}/base"))
        .build()
        .unwrap();
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<CappedBody<Body>>();
    let client = OutboundLayer::builder(ForwardToken)
        .allow_origin(forward.origin())
        .build()
        .unwrap()
        .layer(h2);
    let app = Router::new()
        .nest_service("/proxy", forward.layer(client))
        .layer(Mka1AuthLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // A chunked body whose trailers name another user, other credentials and a method
    // override: an HTTP/2 upstream would receive them as they are.
    let auth = format!("Authorization: Bearer {token}");
    let lines = [
        auth.as_str(),
        "Transfer-Encoding: chunked",
        "Trailer: X-On-Behalf-Of, Authorization, X-HTTP-Method-Override, X-Checksum",
    ];
    let body = b"5\r\nhello\r\n0\r\nX-On-Behalf-Of: admin\r\nAuthorization: Bearer forged\r\n\
        X-HTTP-Method-Override: DELETE\r\nX-Checksum: 1\r\n\r\n";
    let answer = send_raw(addr, "POST /proxy/upload HTTP/1.1", &lines, body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "ok");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (body, trailers) = &seen[0];
    assert_eq!(body, "hello");
    assert!(
        trailers.is_empty(),
        "trailers reached the upstream: {trailers:?}"
    );
}

#[tokio::test]
async fn bodies_stream_through_under_the_cap_and_413_over_it() {
    let s = stack(|f| f.max_body_bytes(64), |a| a).await;
    let payload = b"x".repeat(64);
    let line = "POST /proxy/upload HTTP/1.1";
    let answer = s.raw(line, &["Content-Length: 64"], &payload).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = s.upstream.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, payload);

    // Declared too large: refused before anything is sent.
    let payload = b"x".repeat(65);
    let answer = s.raw(line, &["Content-Length: 65"], &payload).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(s.upstream.seen().len(), 1);

    // Chunked and under the cap: streamed through.
    let chunked = b"20\r\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n0\r\n\r\n";
    let answer = s.raw(line, &["Transfer-Encoding: chunked"], chunked).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(s.upstream.seen()[1].body, b"y".repeat(32));

    // Chunked past the cap: the stream is cut and the caller gets 413.
    let chunk = format!("40\r\n{}\r\n", "z".repeat(64));
    let over = format!("{chunk}{chunk}0\r\n\r\n");
    let answer = s
        .raw(line, &["Transfer-Encoding: chunked"], over.as_bytes())
        .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(s.upstream.seen().iter().all(|r| r.body.len() <= 64));
}

#[tokio::test]
async fn strip_prefix_takes_whole_segments_of_the_raw_path() {
    let forward = ForwardLayer::builder("http://127.0.0.1:9/base")
        .strip_prefix("/proxy/")
        .build()
        .unwrap();
    let onward = |target: &str| {
        let req = Request::get(target).body(()).unwrap();
        forward.onward_request(req).map(|r| r.uri().to_string())
    };
    assert_eq!(onward("/proxy/a").unwrap(), "http://127.0.0.1:9/base/a");
    assert_eq!(onward("/proxy").unwrap(), "http://127.0.0.1:9/base");
    for outside in ["/proxyx/a", "/other/proxy/a", "/PROXY/a", "/%70roxy/a"] {
        let err = onward(outside).unwrap_err();
        assert_eq!(err.kind(), ForwardErrorKind::NotFound, "{outside}");
        assert_eq!(err.kind().status(), 404);
    }
}

#[test]
fn bad_base_urls_are_config_errors() {
    for base in [
        "ftp://127.0.0.1/x",
        "/relative",
        "http://127.0.0.1:65536/base",
        "http://127.0.0.1:/base",
        "http://user:pw@127.0.0.1/base",
        "http://127.0.0.1/base?x=1",
        "http://127.0.0.1/base#f",
        "http://127.0.0.1/a/../b",
        "http://127.0.0.1/%2e%2e",
        "not a url",
    ] {
        let err = ForwardLayer::builder(base).build().unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }
    assert!(ForwardLayer::builder("http://127.0.0.1:9000")
        .build()
        .is_ok());
    assert!(ForwardLayer::builder("https://[::1]:443/a/b/")
        .build()
        .is_ok());
    assert!(ForwardLayer::builder("http://127.0.0.1/base")
        .strip_prefix("proxy")
        .build()
        .is_err());
}

type Onward = Request<CappedBody<String>>;

/// Answers with the onward request's URI, or fails as the closure says.
fn client(
    fail: Option<fn() -> std::io::Error>,
) -> impl Service<Onward, Response = Response<String>, Error = std::io::Error, Future: Send> + Clone
{
    service_fn(move |req: Onward| async move {
        match fail {
            Some(f) => Err(f()),
            None => Ok(Response::new(req.uri().to_string())),
        }
    })
}

async fn answer_of<S>(svc: Forward<S>, target: &str) -> Response<String>
where
    S: Service<Onward, Response = Response<String>, Error = std::io::Error> + Clone,
{
    let res = svc
        .oneshot(Request::get(target).body(String::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn failures_are_answers_with_the_error_in_extensions() {
    let layer = ForwardLayer::builder("http://127.0.0.1:9/base")
        .build()
        .unwrap();

    let ok = answer_of(layer.layer(client(None)), "/a").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.body(), "http://127.0.0.1:9/base/a");

    let refused = answer_of(layer.layer(client(None)), "/%2e%2e/a").await;
    assert_eq!(refused.status(), 400);
    let err = refused.extensions().get::<ForwardError>().unwrap();
    assert_eq!(err.kind(), ForwardErrorKind::PathRefused);
    assert!(!refused.body().contains("%2e"), "{}", refused.body());

    let down = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "internal-host:9");
    let failed = answer_of(layer.layer(client(Some(down))), "/a").await;
    assert_eq!(failed.status(), 502);
    assert_eq!(
        failed.extensions().get::<ForwardError>().unwrap().kind(),
        ForwardErrorKind::Upstream
    );
    // The client's error may name internal hosts: it is logged, never sent.
    assert!(
        !failed.body().contains("internal-host"),
        "{}",
        failed.body()
    );
}

/// A client whose `poll_ready` fails once.
#[derive(Clone)]
struct NotReady(Arc<Mutex<bool>>);

impl Service<Onward> for NotReady {
    type Response = Response<String>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Response<String>, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        let mut failed = self.0.lock().unwrap();
        if *failed {
            Poll::Ready(Ok(()))
        } else {
            *failed = true;
            Poll::Ready(Err(std::io::Error::other("pool closed")))
        }
    }

    fn call(&mut self, _req: Onward) -> Self::Future {
        std::future::ready(Ok(Response::new("called".into())))
    }
}

#[tokio::test]
async fn a_client_that_is_not_ready_gets_502_and_the_next_call_works() {
    let layer = ForwardLayer::builder("http://127.0.0.1:9/base")
        .build()
        .unwrap();
    let svc = layer.layer(NotReady(Arc::default()));
    let first = answer_of(svc.clone(), "/a").await;
    assert_eq!(first.status(), 502);
    let second = answer_of(svc, "/a").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body(), "called");
}

/// The most lenient reading of a path any server might make: percent-decode until nothing
/// changes, `\` as `/`, `;params` dropped, then RFC 3986's dot-segment removal.
fn hostile_reading(path: &str) -> String {
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..8 {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if out == bytes {
            break;
        }
        bytes = out;
    }
    let text = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut stack: Vec<&str> = Vec::new();
    for segment in text.split('/').skip(1) {
        match segment.split(';').next().unwrap_or("") {
            "." => {}
            ".." => {
                stack.pop();
            }
            _ => stack.push(segment),
        }
    }
    format!("/{}", stack.join("/"))
}

#[test]
fn the_hostile_reading_resolves_what_servers_resolve() {
    assert_eq!(hostile_reading("/base/a/../../admin"), "/admin");
    assert_eq!(hostile_reading("/base/%252e%252e/x"), "/x");
    assert_eq!(hostile_reading("/base/..;x/y"), "/y");
    assert_eq!(hostile_reading("/base/a\\..\\..\\z"), "/z");
    assert_eq!(hostile_reading("/base/a/b"), "/base/a/b");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

    /// Whatever path arrives, what the forward sends stays under `/base` even when read by
    /// the most lenient server.
    #[test]
    fn no_accepted_path_leaves_the_prefix(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "/", ".", "..", "%2e", "%2E", "%2f", "%5c", "\\", ";", "%25", "%252e", "a",
                "%c0%ae", "%3f", "%23", "//", "x;y", "%",
            ]),
            0..12,
        ),
    ) {
        let forward = ForwardLayer::builder("http://127.0.0.1:9/base").build().unwrap();
        let raw = format!("/{}", pieces.concat());
        let Ok(req) = Request::get(raw.as_str()).body(()) else {
            return Ok(()); // Not a request target http accepts.
        };
        if let Ok(onward) = forward.onward_request(req) {
            let path = onward.uri().path();
            proptest::prop_assert!(path == "/base" || path.starts_with("/base/"), "{raw} -> {path}");
            let read = hostile_reading(path);
            proptest::prop_assert!(
                read == "/base" || read.starts_with("/base/"),
                "{raw} -> {path}, read as {read}"
            );
        }
    }
}
