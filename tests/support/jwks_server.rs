//! A small JWKS endpoint on 127.0.0.1 for the metrics and refresher tests: serves a document
//! with an `ETag` (answering 304 to a matching `If-None-Match`), can be switched to fail
//! with 500, counts requests and lets a test wait for the next one.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;

struct Shared {
    document: Mutex<Value>,
    max_age: u64,
    failing: AtomicBool,
    requests: AtomicUsize,
    /// The `If-None-Match` of each request, in order.
    conditions: Mutex<Vec<Option<String>>>,
    /// Bumped after each answer.
    answered: watch::Sender<usize>,
}

/// The endpoint; clones share it.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

fn etag_of(document: &Value) -> String {
    // Any stable function of the text will do for a test.
    let text = document.to_string();
    let sum = text
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("\"{sum:x}\"")
}

async fn jwks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let condition = headers
        .get(header::IF_NONE_MATCH)
        .map(|v| v.to_str().unwrap().to_owned());
    shared.conditions.lock().unwrap().push(condition.clone());
    let response = if shared.failing.load(Ordering::SeqCst) {
        (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
    } else {
        let document = shared.document.lock().unwrap().clone();
        let etag = etag_of(&document);
        let cache_control = format!("max-age={}", shared.max_age);
        let headers = [
            (header::ETAG, etag.clone()),
            (header::CACHE_CONTROL, cache_control),
        ];
        if condition.as_deref() == Some(etag.as_str()) {
            (StatusCode::NOT_MODIFIED, headers).into_response()
        } else {
            (headers, axum::Json(document)).into_response()
        }
    };
    shared.answered.send_modify(|n| *n += 1);
    response
}

impl JwksServer {
    /// Serve `document`, fresh for `max_age` seconds.
    pub async fn start(document: Value, max_age: u64) -> JwksServer {
        let (answered, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            document: Mutex::new(document),
            max_age,
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            conditions: Mutex::new(Vec::new()),
            answered,
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Answer 500 (true) or serve the document (false).
    pub fn fail(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Serve this document from now on (its `ETag` changes with it).
    pub fn set_document(&self, document: Value) {
        *self.shared.document.lock().unwrap() = document;
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The `If-None-Match` each request carried.
    pub fn conditions(&self) -> Vec<Option<String>> {
        self.shared.conditions.lock().unwrap().clone()
    }

    /// Wait until `count` requests in all have been answered.
    pub async fn answered(&self, count: usize) {
        let mut answered = self.shared.answered.subscribe();
        answered.wait_for(|n| *n >= count).await.unwrap();
    }
}
