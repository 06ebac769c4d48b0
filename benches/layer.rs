//! Per-request benchmarks through the layer (issue 7, bench 3; issue 30's four figures):
//! `oneshot` of a request on a trivial service behind `Mka1AuthLayer`, each beside its
//! reference in the same run, for EdDSA, ES256 and RS256.
//!
//! Issue 30's figures, each printed beside its reference and target:
//! - (a) `repeated: layer + router / router alone`: a repeated token through the layer in
//!   front of a trivial axum Router, keys from a JWKS URL, with the `metrics` feature's
//!   counting on, against the same Router alone (target at most 1.25x).
//! - (b) `fresh: layer, cache off / jsonwebtoken::decode`: every request verifies its token
//!   as if seen for the first time, against raw `jsonwebtoken::decode` (target at most 1.00x).
//! - (c) two threads through one layer against one (a layer each on one verifier: one
//!   cache, key set and counting), repeated tokens, keys from a JWKS URL, counting on
//!   (target at least 1.9x on the rounds the gate lets through: see `benches/README.md`).
//! - (d) the same three with revocation rules on (100,000 revoked users, none of them the
//!   bench's, and one `all` rule older than every token): built like the fixture's
//!   verifiers, the twin with rules of its own.
//!
//! For scale beside (a): the floor (`support/floor.rs`, the least an authenticating layer
//! does: find the bearer token, match it exactly, leave one value) in front of the same
//! Router, against the Router alone, and the layer against the floor.
//!
//! For information: the layer against jwt-authorizer 0.15's layer with the same tokens and
//! keys (fresh; repeated, target at least 10x faster), what an uncached claim check costs,
//! and counting and rules on against off.
//!
//! As in `benches/verify.rs`, criterion prints absolute wall-clock times and the ratios are
//! measured at the end, side by side, by thread CPU time (two-thread pairs by wall clock).
//! Run with `cargo bench -p mka1-auth-benches --bench layer`; a name filter after `--`
//! (for example `-- 'two threads'`) runs only the pairs whose names contain it.

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::ops::Range;

use axum07::body::Body;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use jwt_authorizer::{IntoLayer, JwtAuthorizer};
use mka1_auth::{ClaimRefusal, Mka1AuthLayer, Verifier};
use support::common::{jwks, TestKey, AUDIENCE};
use support::*;
use tower::{service_fn, Layer, Service, ServiceExt};

/// The service behind each layer: answers 200 with an empty body, and nothing else.
async fn trivial(_req: Request<()>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// One algorithm's tokens as `Authorization` values, and its verifier fixture.
struct Layers {
    fixture: Fixture,
    bearer: Vec<HeaderValue>,
    jwks: String,
    /// Verifiers with revocation rules on.
    rules: Ruled,
}

/// Verifiers obeying 100,000 revocation rules (none refusing the bench's tokens), built
/// like the fixture's: `ours` and `twin` on keys from one JWKS URL, each with a cache and
/// rules of its own (a twin shares nothing with `ours`); `uncached` on static keys, cache
/// off.
struct Ruled {
    ours: Verifier,
    twin: Verifier,
    uncached: Verifier,
}

impl Ruled {
    fn new(jwks: &str, tokens: &[String]) -> Ruled {
        let url = serve_jwks(jwks.to_owned());
        let remote = || {
            Verifier::builder()
                .jwks_url(url.as_str())
                .audience(AUDIENCE)
                .revocations(revocations())
                .build()
                .unwrap()
        };
        let ruled = Ruled {
            ours: remote(),
            twin: remote(),
            uncached: Verifier::builder()
                .jwks(jwks)
                .audience(AUDIENCE)
                .token_cache_capacity(0)
                .revocations(revocations())
                .build()
                .unwrap(),
        };
        // The first verification fetches the key set, which needs a runtime; after it every
        // verification is answered from what is held, without one (as the fixture's).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for verifier in [&ruled.ours, &ruled.twin] {
            runtime.block_on(verifier.verify(&tokens[0])).unwrap();
        }
        for token in tokens {
            for verifier in [&ruled.ours, &ruled.twin, &ruled.uncached] {
                ready(verifier.verify(token)).unwrap();
            }
        }
        ruled
    }
}

impl Layers {
    fn new(key: TestKey) -> Layers {
        let jwks = jwks(&[&key]).to_string();
        let fixture = Fixture::new(key);
        let bearer = fixture
            .tokens
            .iter()
            .map(|t| HeaderValue::try_from(format!("Bearer {t}")).unwrap())
            .collect();
        let layers = Layers {
            rules: Ruled::new(&jwks, &fixture.tokens),
            fixture,
            bearer,
            jwks,
        };
        layers.check(layers.mka1(false));
        layers.check(layers.mka1(true));
        layers.check(layers.jwt_authorizer());
        layers.check(layers.layer(&layers.fixture.ours.remote));
        layers.check(layers.checked(false));
        layers.check(layers.checked(true));
        for verifier in [
            &layers.rules.ours,
            &layers.rules.twin,
            &layers.rules.uncached,
        ] {
            layers.check(layers.layer(verifier));
        }
        layers.check_routed(layers.routed(&layers.fixture.ours.remote), true);
        layers.check_routed(layers.routed(&layers.rules.ours), true);
        layers.check_routed(layers.router(), false);
        layers.check_routed(layers.floor(), true);
        layers
    }

    /// The trivial service behind `Mka1AuthLayer` on `verifier`.
    fn layer(&self, verifier: &Verifier) -> impl Trivial {
        Mka1AuthLayer::new(verifier.clone()).layer(service_fn(trivial))
    }

    /// A trivial axum Router: one route, answering 200 with an empty body.
    fn router(&self) -> impl Routed {
        axum::Router::new().route("/orders", axum::routing::get(|| async {}))
    }

    /// The same Router behind `Mka1AuthLayer` on `verifier`.
    fn routed(&self, verifier: &Verifier) -> impl Routed {
        Mka1AuthLayer::new(verifier.clone()).layer(self.router())
    }

    /// The same Router behind the floor layer (support/floor.rs): the least a layer does.
    fn floor(&self) -> impl Routed {
        support::floor::FloorLayer::new(&self.fixture.tokens).layer(self.router())
    }

    /// A routed service must admit every token, and (`guarded`) refuse a request without
    /// one, or its numbers mean nothing.
    fn check_routed(&self, svc: impl Routed, guarded: bool) {
        for i in 0..USERS {
            let response = ready(svc.clone().oneshot(self.routed_request(i))).unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let bare = Request::get("/orders")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = ready(svc.oneshot(bare)).unwrap();
        let status = if guarded {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(response.status(), status);
    }

    fn routed_request(&self, user: usize) -> Request<axum::body::Body> {
        Request::get("/orders")
            .header(AUTHORIZATION, self.bearer[user].clone())
            .body(axum::body::Body::empty())
            .unwrap()
    }

    /// `oneshot` of one request per run on a clone of the routed `svc`, for `users`.
    fn per_routed(&self, svc: impl Routed, users: Range<usize>) -> Routine<'_> {
        Box::new(move |n| {
            timed(|| {
                for i in 0..n as usize {
                    let request = self.routed_request(users.start + i % users.len());
                    let response = ready(svc.clone().oneshot(request)).unwrap();
                    black_box(response);
                }
            })
        })
    }

    /// Two threads through layers on `ours` (a layer each, one verifier: one cache, key set
    /// and rule set), repeated tokens, counting on, against one thread; gated by the same
    /// work with the second thread on `twin` (nothing shared).
    fn two_threads<'a>(&'a self, what: &str, ours: &'a Verifier, twin: &'a Verifier) -> Pair<'a> {
        let shared = move |users| self.per_request(self.layer(ours), users);
        let apart = move |users: Range<usize>| {
            let verifier = if users.start == 0 { ours } else { twin };
            self.per_request(self.layer(verifier), users)
        };
        let name = format!("layer/{}/{what}: two threads / one", self.fixture.alg);
        let gate = Gate {
            two: counting(true, two_threads(apart)),
            one: counting(true, shared(ALL)),
        };
        thread_pair(
            name,
            (
                counting(true, two_threads(shared)),
                counting(true, shared(ALL)),
            ),
            gate,
            "throughput, two cores free",
            TWO_THREADS,
        )
    }

    /// The trivial service behind `Mka1AuthLayer`, cache on, with an uncached check that
    /// runs on every request: it reads a field, or (`claim`) deserializes a claim.
    fn checked(&self, claim: bool) -> impl Trivial {
        let builder = Verifier::builder()
            .jwks(self.jwks.as_str())
            .audience(AUDIENCE);
        let builder = if claim {
            builder.check_uncached(|t| match t.claim::<String>("iss")? {
                Some(_) => Ok(()),
                None => Err(ClaimRefusal::new("no iss")),
            })
        } else {
            builder.check_uncached(|t| match t.subject().is_empty() {
                false => Ok(()),
                true => Err(ClaimRefusal::new("no sub")),
            })
        };
        Mka1AuthLayer::new(builder.build().unwrap()).layer(service_fn(trivial))
    }

    /// A layer must admit every token and refuse a request without one, or its numbers mean
    /// nothing.
    fn check(&self, svc: impl Trivial) {
        for i in 0..USERS {
            let response = ready(svc.clone().oneshot(self.request(i))).unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let response = ready(svc.oneshot(Request::new(()))).unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    fn request(&self, user: usize) -> Request<()> {
        Request::builder()
            .uri("/orders")
            .header(AUTHORIZATION, self.bearer[user].clone())
            .body(())
            .unwrap()
    }

    /// The trivial service behind `Mka1AuthLayer`, its verifier's cache on or off.
    fn mka1(&self, cached: bool) -> impl Trivial {
        let verifier: &Verifier = if cached {
            &self.fixture.ours.cached
        } else {
            &self.fixture.ours.uncached
        };
        Mka1AuthLayer::new(verifier.clone()).layer(service_fn(trivial))
    }

    /// The trivial service behind jwt-authorizer's layer, on the same key set.
    fn jwt_authorizer(&self) -> impl Trivial {
        let validation = jwt_authorizer::Validation::new().aud(&[AUDIENCE]);
        let authorizer = ready(
            JwtAuthorizer::<ReferenceClaims>::from_jwks_text(&self.jwks)
                .validation(validation)
                .build(),
        )
        .unwrap();
        authorizer.into_layer().layer(service_fn(trivial))
    }

    /// `oneshot` of one request per run on a clone of `svc`, for the users in `users`.
    fn per_request(&self, svc: impl Trivial, users: Range<usize>) -> Routine<'_> {
        Box::new(move |n| {
            timed(|| {
                for i in 0..n as usize {
                    let request = self.request(users.start + i % users.len());
                    let response = ready(svc.clone().oneshot(request)).unwrap();
                    black_box(response);
                }
            })
        })
    }
}

/// The trivial service behind either layer (no boxing, so nothing is added to either side).
trait Trivial:
    Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone + 'static
{
}

impl<S> Trivial for S where
    S: Service<Request<()>, Response = Response<Body>, Error = Infallible> + Clone + 'static
{
}

/// An axum 0.8 service (the `Router` alone, or behind `Mka1AuthLayer`).
trait Routed:
    Service<Request<axum::body::Body>, Response = Response<axum::body::Body>, Error = Infallible>
    + Clone
    + 'static
{
}

impl<S> Routed for S where
    S: Service<
            Request<axum::body::Body>,
            Response = Response<axum::body::Body>,
            Error = Infallible,
        > + Clone
        + 'static
{
}

/// Figure (c)'s and (d)'s target: two threads through one layer against one thread.
const TWO_THREADS: Goal = Goal::AtLeast(1.9);

fn pairs(all: &[Layers]) -> Vec<Pair<'_>> {
    let mut pairs = Vec::new();
    for l in all {
        let alg = l.fixture.alg;
        // (a) A repeated token through the layer in front of a trivial axum Router, against
        // the same Router alone, counting on (feature `metrics`).
        let name = format!("layer/{alg}/(a) repeated: layer + router / router alone, counting on");
        let subject = counting(true, l.per_routed(l.routed(&l.fixture.ours.remote), ALL));
        pairs.push(
            Pair::new(name, subject, l.per_routed(l.router(), ALL)).figure(
                "cpu time / the router alone",
                cpu_cost,
                Goal::AtMost(1.25),
            ),
        );
        // For scale: the least an authenticating layer does, in front of the same Router
        // (support/floor.rs), against the Router alone: the part of (a) no layer avoids.
        let name = format!("layer/{alg}/(a) floor: the least a layer does + router / router alone");
        pairs.push(
            Pair::new(
                name,
                l.per_routed(l.floor(), ALL),
                l.per_routed(l.router(), ALL),
            )
            .figure("cpu time / the router alone", cpu_cost, Goal::Info),
        );
        // And the layer against that floor, both in front of the Router, counting on.
        let name = format!("layer/{alg}/(a) repeated: layer + router / floor + router");
        let subject = counting(true, l.per_routed(l.routed(&l.fixture.ours.remote), ALL));
        pairs.push(
            Pair::new(name, subject, l.per_routed(l.floor(), ALL)).figure(
                "cpu time / the floor",
                cpu_cost,
                Goal::Info,
            ),
        );
        // (b) A fresh token through the layer (cache off) against raw `jsonwebtoken::decode`.
        let name = format!("layer/{alg}/(b) fresh: layer, cache off / jsonwebtoken::decode");
        let subject = l.per_request(l.layer(&l.fixture.ours.uncached), ALL);
        pairs.push(Pair::new(name, subject, l.fixture.decode_raw()).figure(
            "cpu time / jsonwebtoken::decode",
            cpu_cost,
            Goal::AtMost(1.00),
        ));
        // (d) The same two with revocation rules on.
        let name = format!(
            "layer/{alg}/(d) repeated, revocations on: layer + router / router alone, counting on"
        );
        let subject = counting(true, l.per_routed(l.routed(&l.rules.ours), ALL));
        pairs.push(
            Pair::new(name, subject, l.per_routed(l.router(), ALL)).figure(
                "cpu time / the router alone",
                cpu_cost,
                Goal::AtMost(1.25),
            ),
        );
        let name = format!(
            "layer/{alg}/(d) fresh, revocations on: layer, cache off / jsonwebtoken::decode"
        );
        let subject = l.per_request(l.layer(&l.rules.uncached), ALL);
        pairs.push(Pair::new(name, subject, l.fixture.decode_raw()).figure(
            "cpu time / jsonwebtoken::decode",
            cpu_cost,
            Goal::AtMost(1.00),
        ));
        let speed_up = "speed-up over jwt-authorizer's layer";
        let name = format!("layer/{alg}/fresh: mka1 layer, cache off, vs jwt-authorizer");
        let mka1 = |cached| l.per_request(l.mka1(cached), ALL);
        let reference = || l.per_request(l.jwt_authorizer(), ALL);
        pairs.push(Pair::new(name, mka1(false), reference()).figure(
            speed_up,
            cpu_speed_up,
            Goal::Info,
        ));
        let name = format!("layer/{alg}/repeated: mka1 layer, cache on, vs jwt-authorizer");
        pairs.push(Pair::new(name, mka1(true), reference()).figure(
            speed_up,
            cpu_speed_up,
            Goal::AtLeast(10.0),
        ));
    }
    let l = &all[0];
    // (c) Two threads through one layer (a clone each, one verifier and cache), repeated
    // tokens, keys from a JWKS URL as most services run, counting on; and (d) the same with
    // revocation rules on.
    pairs.push(l.two_threads(
        "(c) repeated, jwks url, counting on",
        &l.fixture.ours.remote,
        &l.fixture.twin.remote,
    ));
    pairs.push(l.two_threads(
        "(d) repeated, jwks url, counting on, revocations on",
        &l.rules.ours,
        &l.rules.twin,
    ));
    // What an uncached check costs a repeated token, beside the same layer without one.
    // Half the users: both sides' tokens then fit this thread's front cache together (the
    // two verifiers have a cache each), so neither side pays for the other's evictions.
    let half = 0..USERS / 2;
    for (claim, what) in [(false, "reads a field"), (true, "deserializes a claim")] {
        let alg = l.fixture.alg;
        let name = format!("layer/{alg}/repeated, uncached check that {what}");
        let checked = l.per_request(l.checked(claim), half.clone());
        let unchecked = l.per_request(l.mka1(true), half.clone());
        let pair = Pair::new(name, checked, unchecked);
        pairs.push(pair.figure("cpu time / no check", cpu_cost, Goal::Info));
    }
    let alg = l.fixture.alg;
    let through = |verifier, on| counting(on, l.per_request(l.layer(verifier), ALL));
    let (ours, rules) = (&l.fixture.ours.remote, &l.rules.ours);
    pairs.push(
        Pair::new(
            format!("layer/{alg}/repeated, jwks url: metrics counting on vs off"),
            through(ours, true),
            through(ours, false),
        )
        .figure("cpu time, counting / not", cpu_cost, Goal::Info),
    );
    pairs.push(
        Pair::new(
            format!("layer/{alg}/repeated, jwks url: revocations on (100,000 users) vs off"),
            through(rules, false),
            through(ours, false),
        )
        .figure("cpu time, rules on / off", cpu_cost, Goal::Info),
    );
    pairs
}

/// `routine` with the `metrics` feature's counting on or off for its blocks; off again
/// after, as every other pair runs.
fn counting(on: bool, mut routine: Routine<'_>) -> Routine<'_> {
    Box::new(move |n| {
        mka1_auth::metrics::set_counting(on);
        let times = routine(n);
        mka1_auth::metrics::set_counting(false);
        times
    })
}

fn criterion_benches(c: &mut Criterion, all: &[Layers]) {
    let mut group = c.benchmark_group("layer");
    for l in all {
        let alg = l.fixture.alg;
        let fresh = l.per_request(l.mka1(false), ALL);
        bench(&mut group, format!("{alg}/fresh/mka1"), fresh);
        let repeated = l.per_request(l.mka1(true), ALL);
        bench(&mut group, format!("{alg}/repeated/mka1"), repeated);
        let reference = l.per_request(l.jwt_authorizer(), ALL);
        bench(&mut group, format!("{alg}/jwt-authorizer"), reference);
    }
    group.finish();
}

fn main() {
    // Counting (feature `metrics`) is on only where a pair turns it on.
    mka1_auth::metrics::set_counting(false);
    run(Layers::new, criterion_benches, pairs);
}
