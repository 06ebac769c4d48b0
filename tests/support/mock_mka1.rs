//! Loopback servers for the outbound and exchange tests: an upstream that records what it
//! was sent, and an MKA1 stand-in whose exchange endpoint counts calls and can be scripted
//! to fail.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth::{Clock, ManualClock};
use serde_json::{json, Value};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
}

impl Seen {
    /// Every value of a header, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// An upstream service that records every request. `/redirect?to=URL` answers 302 to URL;
/// every other path answers 200 with the `x-on-behalf-of` it saw (or `-`).
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let app = Router::new()
            .fallback(any(
                |State(seen): State<Arc<Mutex<Vec<Seen>>>>, uri: Uri, headers: HeaderMap| async move {
                    seen.lock().unwrap().push(Seen {
                        path: uri.path().to_owned(),
                        headers: headers.clone(),
                    });
                    if uri.path() == "/redirect" {
                        let to = uri.query().unwrap().strip_prefix("to=").unwrap().to_owned();
                        return (StatusCode::FOUND, [("location", to)]).into_response();
                    }
                    let user = headers
                        .get("x-on-behalf-of")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_else(|| "-".into());
                    user.into_response()
                },
            ))
            .with_state(seen.clone());
        Upstream {
            addr: serve(app).await,
            seen,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A scripted answer of the mock exchange endpoint.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// One exchange call as MKA1 saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub path: String,
    pub authorization: Vec<String>,
    pub body: Value,
}

#[derive(Default)]
struct MockState {
    calls: Vec<Exchange>,
    script: VecDeque<Reply>,
}

/// An MKA1 stand-in. Unless a scripted reply is queued, the exchange endpoint mints an
/// unsigned JWT-shaped token with `sub`, `aud`, `permissions`, `iat` and
/// `exp = now + expiresIn` by the shared clock.
#[derive(Clone)]
pub struct MockMka1 {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    state: Arc<Mutex<MockState>>,
}

pub const API_KEY: &str = "mk_test_0123456789abcdef";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn exchange(
    State(mock): State<MockMka1>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scripted = {
        let mut state = mock.state.lock().unwrap();
        state.calls.push(Exchange {
            path: uri.path().to_owned(),
            authorization: headers
                .get_all("authorization")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            body: body.clone(),
        });
        state.script.pop_front()
    };
    if let Some(reply) = scripted {
        let mut res = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
        for (name, value) in reply.headers {
            res.headers_mut().insert(name, value.parse().unwrap());
        }
        return res;
    }
    let now = mock.clock.now_unix();
    let n = mock.calls().len();
    let claims = json!({
        "sub": body["externalUserId"],
        "aud": body["audience"],
        "permissions": body.get("permissions").cloned().unwrap_or(json!([])),
        "iat": now,
        "exp": now + body["expiresIn"].as_f64().unwrap_or(3600.0) as u64,
        "jti": n,
    });
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"EdDSA","kid":"mock"}"#),
        b64(claims.to_string())
    );
    axum::Json(json!({ "token": token })).into_response()
}

impl MockMka1 {
    pub async fn start(clock: ManualClock) -> MockMka1 {
        let state = Arc::new(Mutex::new(MockState::default()));
        let mut mock = MockMka1 {
            addr: ([127, 0, 0, 1], 0).into(),
            clock,
            state,
        };
        let app = Router::new()
            .route(
                "/api/v1/authentication/api-keys/exchange-token",
                post(exchange),
            )
            .route(
                "/api/v1/authentication/api-key/exchange-token",
                post(exchange),
            )
            .with_state(mock.clone());
        mock.addr = serve(app).await;
        mock
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue replies for the next calls (each used once, in order).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn calls(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().calls.clone()
    }

    /// An exchange client for this mock with zero backoff, so retries take no time.
    #[cfg(feature = "remote")]
    pub fn client(&self) -> mka1_auth::exchange::ExchangeClientBuilder {
        mka1_auth::exchange::ExchangeClient::builder()
            .base_url(self.base_url())
            .api_key(API_KEY)
            .clock(self.clock.clone())
            .backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
    }
}

/// The claims of a JWT-shaped token, without any check.
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
