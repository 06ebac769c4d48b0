//! The HTTP server: accepting connections, graceful shutdown, and the routes.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::exchange::exchange;
use super::faults::JwksFault;
use super::reply::{json_response, method_not_allowed, refusal};
use super::scoped;
use super::state::IssuerState;
use super::{
    EXCHANGE_TOKEN_PATH, JWKS_PATH, LEGACY_EXCHANGE_TOKEN_PATH, SCOPED_API_KEY_DELETE_PATH,
    SCOPED_API_KEY_LIST_PATH, SCOPED_API_KEY_PATH, SCOPED_API_KEY_REGENERATE_PATH,
    SCOPED_API_KEY_UPDATE_PATH,
};

/// How long a connection may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<IssuerState>,
    mut signal: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared), signal.clone()));
                }
                Err(error) => tracing::debug!(%error, "dev issuer could not accept a connection"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut signal) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    tracing::debug!("dev issuer stopped");
}

/// Resolves once the handle asks the server to stop (or is gone).
async fn stopped(signal: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, never held across an await.
    let _ = signal.wait_for(|stop| *stop).await;
}

async fn connection(
    stream: TcpStream,
    shared: Arc<IssuerState>,
    mut signal: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(&shared, request).await) }
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut signal) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "dev issuer connection ended with an error");
    }
}

/// Every endpoint the dev issuer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Exchange,
    Jwks,
    CreateKey,
    ListKeys,
    UpdateKey,
    RegenerateKey,
    DeleteKey,
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            EXCHANGE_TOKEN_PATH | LEGACY_EXCHANGE_TOKEN_PATH => Endpoint::Exchange,
            JWKS_PATH => Endpoint::Jwks,
            SCOPED_API_KEY_PATH => Endpoint::CreateKey,
            SCOPED_API_KEY_LIST_PATH => Endpoint::ListKeys,
            SCOPED_API_KEY_UPDATE_PATH => Endpoint::UpdateKey,
            SCOPED_API_KEY_REGENERATE_PATH => Endpoint::RegenerateKey,
            SCOPED_API_KEY_DELETE_PATH => Endpoint::DeleteKey,
            _ => return None,
        })
    }

    /// The methods it answers, as an `Allow` header lists them.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Jwks => "GET, HEAD",
            Endpoint::ListKeys => "GET",
            _ => "POST",
        }
    }

    fn allows(self, method: &str) -> bool {
        self.allow().split(", ").any(|allowed| allowed == method)
    }
}

/// Answer one request; every answer that is not a success leaves a debug event (status and
/// path: never a header or a body, so never a secret).
async fn route(shared: &IssuerState, request: Request<Incoming>) -> Response<String> {
    let endpoint = Endpoint::of(request.uri().path());
    let response = match endpoint {
        None => refusal(
            StatusCode::NOT_FOUND,
            "no such endpoint on the dev issuer",
            Vec::new(),
        ),
        Some(endpoint) if !endpoint.allows(request.method().as_str()) => {
            method_not_allowed(endpoint.allow())
        }
        Some(endpoint) => answer(shared, endpoint, request).await,
    };
    if !response.status().is_success() {
        tracing::debug!(
            status = response.status().as_u16(),
            ?endpoint,
            "dev issuer refused a request"
        );
    }
    response
}

async fn answer(
    shared: &IssuerState,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Response<String> {
    match endpoint {
        Endpoint::Exchange => exchange(shared, request).await,
        Endpoint::Jwks => {
            if shared.faults.on_jwks_request().await == JwksFault::Error500 {
                return refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the jwks endpoint is failing (a dev issuer fault switch)",
                    Vec::new(),
                );
            }
            let max_age = shared.jwks_max_age.as_secs();
            let mut response = json_response(StatusCode::OK, &shared.jwks());
            if let Ok(value) = HeaderValue::try_from(format!("public, max-age={max_age}")) {
                response.headers_mut().insert(header::CACHE_CONTROL, value);
            }
            response
        }
        Endpoint::CreateKey => scoped::create(shared, request).await,
        Endpoint::ListKeys => scoped::list(shared, request).await,
        Endpoint::UpdateKey => scoped::update(shared, request).await,
        Endpoint::RegenerateKey => scoped::regenerate(shared, request).await,
        Endpoint::DeleteKey => scoped::delete(shared, request).await,
    }
}
