//! `McpSessionLayer` in front of a stand-in for a stateful Streamable HTTP server (it
//! issues `Mcp-Session-Id` on the first request, knows the ids it issued, and ends one on
//! `DELETE`): the owner continues, another user is refused before the server, sessions
//! leave the table when they end or their tokens expire, and the table is bounded.

use crate::common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::header::AUTHORIZATION;
use http::{Method, Request, Response, StatusCode};
use mka1_auth::mcp::McpSessionLayer;
use mka1_auth::{ManualClock, Mka1AuthLayer};
use serde_json::json;
use tower::util::BoxCloneService;
use tower::{service_fn, Layer, ServiceExt};

/// The Streamable HTTP session header (MCP 2025-06-18).
const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// The stand-in MCP server's state: the sessions it issued, and how many requests reached it.
#[derive(Clone, Default)]
struct Server {
    sessions: Arc<Mutex<HashSet<String>>>,
    issued: Arc<AtomicUsize>,
    reached: Arc<AtomicUsize>,
    stateless: bool,
}

impl Server {
    fn handle(&self, req: Request<String>) -> Response<String> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(String::from("ok"));
        let Some(id) = req.headers().get(MCP_SESSION_ID) else {
            if !self.stateless {
                let id = format!("session-{}", self.issued.fetch_add(1, Ordering::SeqCst));
                self.sessions.lock().unwrap().insert(id.clone());
                response
                    .headers_mut()
                    .insert(MCP_SESSION_ID, id.parse().unwrap());
            }
            return response;
        };
        let id = id.to_str().unwrap().to_owned();
        let mut sessions = self.sessions.lock().unwrap();
        if !sessions.contains(&id) {
            *response.status_mut() = StatusCode::NOT_FOUND;
        } else if req.method() == Method::DELETE {
            sessions.remove(&id);
        }
        response
    }

    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }
}

type Svc = BoxCloneService<Request<String>, Response<String>, Infallible>;

struct Fixture {
    key: TestKey,
    clock: ManualClock,
    server: Server,
    sessions: McpSessionLayer,
    svc: Svc,
}

fn fixture_with(server: Server, sessions: McpSessionLayer) -> Fixture {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier_with_clock(&[&key], &clock);
    let sessions = sessions.clock(clock.clone());
    let inner = server.clone();
    let svc = Mka1AuthLayer::new(verifier).layer(sessions.layer(service_fn(
        move |req: Request<String>| {
            let response = inner.handle(req);
            async move { Ok::<_, Infallible>(response) }
        },
    )));
    Fixture {
        key,
        clock,
        server,
        sessions,
        svc: BoxCloneService::new(svc),
    }
}

fn fixture() -> Fixture {
    fixture_with(Server::default(), McpSessionLayer::new())
}

impl Fixture {
    /// A token for `sub`, issued by `iss`, valid for `lifetime` seconds from now.
    fn token_for(&self, sub: &str, iss: &str, lifetime: u64) -> String {
        let now = self.clock.now_unix_secs();
        self.key.sign(&json!({
            "sub": sub, "aud": AUDIENCE, "iss": iss,
            "iat": now, "exp": now + lifetime, "permissions": ["agent:read"],
        }))
    }

    fn token(&self, sub: &str) -> String {
        self.token_for(sub, ISSUER, 3600)
    }

    async fn send(&self, method: Method, token: &str, session: Option<&str>) -> Response<String> {
        let mut req = Request::builder()
            .method(method)
            .uri("/mcp")
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(id) = session {
            req = req.header(MCP_SESSION_ID, id);
        }
        self.svc
            .clone()
            .oneshot(req.body(String::new()).unwrap())
            .await
            .unwrap()
    }

    /// Open a session as the holder of `token`; its id.
    async fn open(&self, token: &str) -> String {
        let response = self.send(Method::POST, token, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()[MCP_SESSION_ID]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

trait Secs {
    fn now_unix_secs(&self) -> u64;
}

impl Secs for ManualClock {
    fn now_unix_secs(&self) -> u64 {
        mka1_auth::Clock::now_unix(self)
    }
}

#[tokio::test]
async fn the_owner_continues_the_session() {
    let f = fixture();
    let token = f.token("user-42");
    let id = f.open(&token).await;
    assert_eq!(f.sessions.len(), 1);
    let response = f.send(Method::POST, &token, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.server.reached(), 2);
    // A newer token of the same user continues it too.
    f.clock.advance(Duration::from_secs(600));
    let newer = f.token("user-42");
    let response = f.send(Method::GET, &newer, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.server.reached(), 3);
}

#[tokio::test]
async fn another_user_is_refused_before_the_session() {
    let f = fixture();
    let id = f.open(&f.token("user-42")).await;
    let response = f.send(Method::POST, &f.token("user-43"), Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        f.server.reached(),
        1,
        "the refused request reached the server"
    );
    // Nor can the other user end it.
    let response = f.send(Method::DELETE, &f.token("user-43"), Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.server.reached(), 1);
    // The owner still can use it.
    let response = f.send(Method::POST, &f.token("user-42"), Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_same_subject_from_another_issuer_is_another_user() {
    let f = fixture();
    let id = f.open(&f.token("user-42")).await;
    let other = f.token_for("user-42", "https://other-issuer.example.test", 3600);
    let response = f.send(Method::POST, &other, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.server.reached(), 1);
}

#[tokio::test]
async fn an_unknown_session_id_is_refused_before_the_server() {
    let f = fixture();
    let token = f.token("user-42");
    for id in ["session-0", "made-up"] {
        let response = f.send(Method::POST, &token, Some(id)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(f.server.reached(), 0);
}

#[tokio::test]
async fn an_expired_token_is_401_and_the_session_leaves_with_it() {
    let f = fixture();
    let token = f.token_for("user-42", ISSUER, 600);
    let id = f.open(&token).await;
    // Past `exp` plus the verifier's leeway: the authentication layer answers 401.
    f.clock.advance(Duration::from_secs(600 + 61));
    let response = f.send(Method::POST, &token, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(f.server.reached(), 1);
    // The session's last token could no longer be valid: a fresh token of the same user
    // finds no session (the client opens a new one), and the entry is gone.
    let fresh = f.token("user-42");
    let response = f.send(Method::POST, &fresh, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.sessions.len(), 0);
    assert_eq!(f.server.reached(), 1);
}

#[tokio::test]
async fn a_newer_token_keeps_the_session_alive() {
    let f = fixture();
    let id = f.open(&f.token_for("user-42", ISSUER, 600)).await;
    f.clock.advance(Duration::from_secs(500));
    let newer = f.token_for("user-42", ISSUER, 600);
    assert_eq!(
        f.send(Method::POST, &newer, Some(&id)).await.status(),
        StatusCode::OK
    );
    // Past the first token's lifetime, within the newer one's.
    f.clock.advance(Duration::from_secs(500));
    assert_eq!(
        f.send(Method::POST, &newer, Some(&id)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn delete_ends_the_session() {
    let f = fixture();
    let token = f.token("user-42");
    let id = f.open(&token).await;
    let response = f.send(Method::DELETE, &token, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(f.sessions.len(), 0);
    let response = f.send(Method::POST, &token, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.server.reached(), 2);
}

#[tokio::test]
async fn a_session_the_server_no_longer_knows_leaves_the_table() {
    let f = fixture();
    let token = f.token("user-42");
    let id = f.open(&token).await;
    f.server.sessions.lock().unwrap().clear(); // the server timed it out
    let response = f.send(Method::POST, &token, Some(&id)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.sessions.len(), 0);
}

#[tokio::test]
async fn the_table_is_bounded_and_drops_the_session_closest_to_expiry() {
    let f = fixture_with(
        Server::default(),
        McpSessionLayer::new().max_sessions(NonZeroUsize::new(2).unwrap()),
    );
    let short = f.token_for("user-1", ISSUER, 300);
    let long_a = f.token_for("user-2", ISSUER, 3600);
    let long_b = f.token_for("user-3", ISSUER, 3600);
    let first = f.open(&short).await;
    let second = f.open(&long_a).await;
    let third = f.open(&long_b).await;
    assert_eq!(f.sessions.len(), 2);
    // The dropped session is refused, even to its owner; the others go on.
    assert_eq!(
        f.send(Method::POST, &short, Some(&first)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.send(Method::POST, &long_a, Some(&second)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.send(Method::POST, &long_b, Some(&third)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_entries_leave_before_a_live_one_when_full() {
    let f = fixture_with(
        Server::default(),
        McpSessionLayer::new().max_sessions(NonZeroUsize::new(2).unwrap()),
    );
    let short = f.token_for("user-1", ISSUER, 300);
    f.open(&short).await;
    let long = f.token_for("user-2", ISSUER, 7200);
    let kept = f.open(&long).await;
    f.clock.advance(Duration::from_secs(3600));
    let later = f.token_for("user-3", ISSUER, 600);
    let newest = f.open(&later).await;
    assert_eq!(f.sessions.len(), 2);
    assert_eq!(
        f.send(Method::POST, &long, Some(&kept)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.send(Method::POST, &later, Some(&newest)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stateless_server_passes_untouched() {
    let server = Server {
        stateless: true,
        ..Server::default()
    };
    let f = fixture_with(server, McpSessionLayer::new());
    for sub in ["user-42", "user-43"] {
        let response = f.send(Method::POST, &f.token(sub), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(MCP_SESSION_ID).is_none());
    }
    assert_eq!(f.server.reached(), 2);
    assert!(f.sessions.is_empty());
}

#[tokio::test]
async fn two_session_headers_are_a_bad_request() {
    let f = fixture();
    let token = f.token("user-42");
    let id = f.open(&token).await;
    let req = Request::post("/mcp")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(MCP_SESSION_ID, &id)
        .header(MCP_SESSION_ID, "other")
        .body(String::new())
        .unwrap();
    let response = f.svc.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(f.server.reached(), 1);
}

#[tokio::test]
async fn anonymous_requests_are_401_and_a_missing_auth_layer_is_500() {
    let key = TestKey::ed25519("ed-1");
    let clock = ManualClock::at_unix(NOW);
    let echo = service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    let optional = Mka1AuthLayer::optional(verifier_with_clock(&[&key], &clock))
        .layer(McpSessionLayer::new().layer(echo));
    let response = optional
        .oneshot(Request::post("/mcp").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let bare = McpSessionLayer::new().layer(echo);
    let response = bare
        .oneshot(Request::post("/mcp").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let error = response.extensions().get::<mka1_auth::Error>().unwrap();
    assert_eq!(error.kind(), mka1_auth::ErrorKind::MissingLayer);
}
