//! Test-only controls: make the JWKS endpoint fail or hang, and count its requests, to
//! rehearse what a verifier does while its issuer misbehaves.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// What the dev issuer's JWKS endpoint does. A **test-only control**, set with
/// [`DevIssuer::set_jwks_fault`](super::DevIssuer::set_jwks_fault); MKA1 has nothing like it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwksFault {
    /// Serve the key set (the default).
    #[default]
    None,
    /// Answer `500 Internal Server Error` with a JSON error body.
    Error500,
    /// Read the request and answer nothing until the fault is changed (the held requests
    /// are then answered as the new setting says) or the issuer stops.
    Hang,
}

/// The fault switch and the request counter the server and the handle share.
pub(super) struct Faults {
    jwks: watch::Sender<JwksFault>,
    jwks_requests: AtomicU64,
}

impl Faults {
    pub(super) fn new() -> Self {
        Faults {
            jwks: watch::Sender::new(JwksFault::None),
            jwks_requests: AtomicU64::new(0),
        }
    }

    pub(super) fn set_jwks(&self, fault: JwksFault) {
        self.jwks.send_replace(fault);
    }

    pub(super) fn jwks(&self) -> JwksFault {
        *self.jwks.borrow()
    }

    pub(super) fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(Ordering::Relaxed)
    }

    /// Count a JWKS request, hold it while the endpoint hangs, then say how to answer it.
    pub(super) async fn on_jwks_request(&self) -> JwksFault {
        self.jwks_requests.fetch_add(1, Ordering::Relaxed);
        let mut setting = self.jwks.subscribe();
        let fault = match setting.wait_for(|fault| *fault != JwksFault::Hang).await {
            Ok(fault) => *fault,
            // The sender lives as long as the issuer's state, which outlives this request.
            Err(_) => JwksFault::None,
        };
        fault
    }
}
