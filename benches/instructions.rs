//! Instructions per request through the layer, beside the router alone, for callgrind
//! (issue 30): where the layer's cost over a trivial axum `Router` goes, counted rather than
//! timed, so the same binary gives the same counts whatever else the machine does.
//!
//! Each side runs `N` requests (default 20,000) with the same repeated tokens (keys from a
//! JWKS URL, `metrics` counting on), after a warm-up of 1,000; `subject` is the layer in
//! front of the router, `reference` the router alone, and `floor` the least a layer does
//! (support/floor.rs) in front of it. Count one side at a time:
//!
//! ```text
//! cargo bench -p mka1-auth-benches --bench instructions --no-run
//! B=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --toggle-collect='instructions::subject*' $B
//! valgrind --tool=callgrind --toggle-collect='instructions::reference*' $B
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Each side's total over `N + 1000` calls is its instructions per request. `RULES=1` puts
//! revocation rules on the layer's verifier, as `--bench layer`'s figure (d) does (100,000
//! revoked users, none of them the bench's, and an `all` rule older than every token). Run
//! alone, it also prints wall-clock times per request (for orientation only; the
//! side-by-side ratios are `--bench layer`'s).

mod support;

use std::hint::black_box;

use axum::body::Body;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use mka1_auth::{Mka1AuthLayer, Verifier};
use support::common::{jwks, TestKey, AUDIENCE};
use support::*;
use tower::{Layer, Service, ServiceExt};

fn request(bearer: &HeaderValue) -> Request<Body> {
    Request::get("/orders")
        .header(AUTHORIZATION, bearer.clone())
        .body(Body::empty())
        .unwrap()
}

/// `n` requests through `svc`, one `oneshot` on a clone each, as the layer bench does.
fn drive<S>(svc: &S, bearer: &[HeaderValue], n: usize)
where
    S: Service<Request<Body>> + Clone,
{
    for i in 0..n {
        let response = ready(svc.clone().oneshot(request(&bearer[i % bearer.len()])));
        black_box(response.is_ok());
    }
}

/// The layer in front of the router (a function of its own, for `--toggle-collect`).
#[inline(never)]
fn subject<S: Service<Request<Body>> + Clone>(svc: &S, bearer: &[HeaderValue], n: usize) {
    drive(svc, bearer, n);
}

/// The floor layer in front of the router (support/floor.rs): the least a layer does.
#[inline(never)]
fn floor<S: Service<Request<Body>> + Clone>(svc: &S, bearer: &[HeaderValue], n: usize) {
    drive(svc, bearer, n);
}

/// The router alone.
#[inline(never)]
fn reference<S: Service<Request<Body>> + Clone>(svc: &S, bearer: &[HeaderValue], n: usize) {
    drive(svc, bearer, n);
}

/// A verifier like the fixture's on a JWKS URL, with 100,000 revoked users (none of the
/// bench's) and an `all` rule a day old.
fn ruled(jwks: String, tokens: &[String]) -> Verifier {
    let verifier = Verifier::builder()
        .jwks_url(serve_jwks(jwks).as_str())
        .audience(AUDIENCE)
        .revocations(revocations())
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for token in tokens {
        runtime.block_on(verifier.verify(token)).unwrap();
    }
    verifier
}

fn main() {
    let key = TestKey::ed25519("k1");
    let document = jwks(&[&key]).to_string();
    let fixture = Fixture::new(key);
    let bearer: Vec<HeaderValue> = fixture
        .tokens
        .iter()
        .map(|t| HeaderValue::try_from(format!("Bearer {t}")).unwrap())
        .collect();
    let router = axum::Router::new().route("/orders", axum::routing::get(|| async {}));
    let verifier = match std::env::var("RULES").as_deref() {
        Ok("1") => ruled(document, &fixture.tokens),
        _ => fixture.ours.remote.clone(),
    };
    let layered = Mka1AuthLayer::new(verifier).layer(router.clone());
    let floored = support::floor::FloorLayer::new(&fixture.tokens).layer(router.clone());
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    mka1_auth::metrics::set_counting(true);
    subject(&layered, &bearer, 1_000);
    floor(&floored, &bearer, 1_000);
    reference(&router, &bearer, 1_000);
    let start = std::time::Instant::now();
    subject(&layered, &bearer, n);
    let layer = start.elapsed();
    let start = std::time::Instant::now();
    floor(&floored, &bearer, n);
    let least = start.elapsed();
    let start = std::time::Instant::now();
    reference(&router, &bearer, n);
    let alone = start.elapsed();
    println!(
        "layer + router {:?} a request, floor + router {:?}, router alone {:?} \
         (wall clock, for orientation)",
        layer / n as u32,
        least / n as u32,
        alone / n as u32
    );
}
