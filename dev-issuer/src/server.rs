//! The HTTP server: accepting connections and graceful shutdown (by hand, for the header
//! read timeout `axum::serve` does not set), and the routes (an axum `Router`).

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder};

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
    let routes = ServiceBuilder::new()
        .map_response(spaced_allow)
        .service(routes(shared));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, routes.clone(), signal.clone()));
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

async fn connection<S>(stream: TcpStream, routes: S, mut signal: watch::Receiver<bool>)
where
    S: Service<Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let service = TowerToHyperService::new(routes);
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

/// The issuer's state, as every handler takes it.
type Shared = State<Arc<IssuerState>>;

/// Every endpoint, by path and method. Another method on a known path gets 405 with `Allow`,
/// an unknown path 404, both in the JSON shape of every refusal.
fn routes(shared: Arc<IssuerState>) -> Router {
    Router::new()
        .route(EXCHANGE_TOKEN_PATH, post(exchange_endpoint))
        .route(LEGACY_EXCHANGE_TOKEN_PATH, post(exchange_endpoint))
        .route(JWKS_PATH, get(jwks))
        .route(
            SCOPED_API_KEY_PATH,
            post(|State(s): Shared, r: Request| async move { scoped::create(&s, r).await }),
        )
        .route(
            SCOPED_API_KEY_LIST_PATH,
            get(|State(s): Shared, r: Request| async move { scoped::list(&s, r).await }),
        )
        .route(
            SCOPED_API_KEY_UPDATE_PATH,
            post(|State(s): Shared, r: Request| async move { scoped::update(&s, r).await }),
        )
        .route(
            SCOPED_API_KEY_REGENERATE_PATH,
            post(|State(s): Shared, r: Request| async move { scoped::regenerate(&s, r).await }),
        )
        .route(
            SCOPED_API_KEY_DELETE_PATH,
            post(|State(s): Shared, r: Request| async move { scoped::delete(&s, r).await }),
        )
        .fallback(|| async {
            refusal(
                StatusCode::NOT_FOUND,
                "no such endpoint on the dev issuer",
                Vec::new(),
            )
        })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(middleware::from_fn(logged))
        .with_state(shared)
}

async fn exchange_endpoint(State(shared): Shared, request: Request) -> Response<String> {
    exchange(&shared, request).await
}

async fn jwks(State(shared): Shared) -> Response<String> {
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

/// Every answer that is not a success leaves a debug event (status and the endpoint's path:
/// never a header, a body or an unknown path, so never a secret).
async fn logged(request: Request, next: Next) -> axum::response::Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_success() {
        tracing::debug!(
            status = status.as_u16(),
            ?endpoint,
            "dev issuer refused a request"
        );
    }
    response
}

/// A 405's `Allow` as `GET, HEAD`, as the dev issuer has always written it (axum writes
/// `GET,HEAD`: the same list). Outside the router, which adds `Allow` last.
fn spaced_allow(mut response: axum::response::Response) -> axum::response::Response {
    let allow = response.headers().get(header::ALLOW);
    let spaced = allow
        .and_then(|v| v.to_str().ok())
        .and_then(|v| HeaderValue::try_from(v.replace(',', ", ")).ok());
    if let Some(spaced) = spaced {
        response.headers_mut().insert(header::ALLOW, spaced);
    }
    response
}
