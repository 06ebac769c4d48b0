//! The server under test: one router with a trivial route, protected and unprotected, on a
//! real TCP socket, with its own two-worker runtime (the load generator has another).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use mka1_auth::{Mka1AuthLayer, Verifier};
use mka1_auth_dev_issuer::DevIssuer;
use tokio::runtime::Runtime;

pub const AUDIENCE: &str = "https://soak.example.test";

/// The wall clock plus an offset the soak moves forward, so key-set freshness, the stale
/// window and the cooldown can be crossed without waiting for them. Delays stay jittered,
/// as with the system clock.
#[derive(Clone, Default)]
pub struct SkewedClock {
    ahead_secs: Arc<AtomicU64>,
}

impl SkewedClock {
    pub fn advance(&self, by: Duration) {
        self.ahead_secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.ahead_secs.load(Ordering::SeqCst))
    }

    /// As a [`mka1_auth::Clock`] (any `Fn() -> SystemTime` is one).
    pub fn as_clock(&self) -> impl Fn() -> SystemTime + Clone + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}

/// The verifier under test: the issuer's JWKS fetched over loopback, default settings.
pub fn verifier(issuer: &DevIssuer, clock: &SkewedClock) -> Verifier {
    Verifier::builder()
        .jwks_url(issuer.jwks_url())
        .issuer(issuer.issuer())
        .audience(AUDIENCE)
        .clock(clock.as_clock())
        .build()
        .expect("soak verifier")
}

pub fn router(verifier: Verifier) -> Router {
    let protected = Router::new()
        .route("/protected", get(|| async { "ok" }))
        .route_layer(Mka1AuthLayer::new(verifier));
    Router::new()
        .route("/open", get(|| async { "ok" }))
        .merge(protected)
}

/// Serve `router` on `127.0.0.1:0` on a runtime of its own; the address it listens on.
pub fn serve(runtime: &Runtime, router: Router) -> SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the soak server");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("soak server");
        });
        addr
    })
}
