//! Per-request benchmarks through the layer (issue 7, bench 3): `oneshot` of a request on a
//! trivial service behind `Mka1AuthLayer`, against the same behind jwt-authorizer 0.15's
//! layer, with the same tokens and keys, for EdDSA, ES256 and RS256.
//!
//! - `fresh`: cache off, so every request verifies its token as if seen for the first time;
//!   against raw `jsonwebtoken::decode` (target at most 1.15x) and, for information,
//!   against jwt-authorizer's layer.
//! - `repeated`: cache on, tokens presented again; against jwt-authorizer's layer, which
//!   verifies every time (target at least 10x faster).
//! - `repeated, uncached check`: cache on, with a `check_uncached` claim check, which runs on
//!   every request; against the same layer without a check (its cost; EdDSA only). One
//!   check reads a field of the token, the other deserializes a claim with
//!   `VerifiedToken::claim`.
//!
//! - `metrics`: repeated tokens with the `metrics` feature's counting on, beside the same
//!   layer with it off, one thread; and two threads against one with counting on (target at
//!   least 1.8x). The other pairs run with counting off, so they read as before the feature.
//!
//! - `revocations`: repeated tokens with revocation rules on (100,000 revoked users, none of
//!   them the bench's), beside the same layer with none configured, one thread; two
//!   threads against one with rules on (target at least 1.8x), and the same with none
//!   configured, to tell what the rules add to the scaling. Memory, load and propagation
//!   figures are `--bench revocation`'s.
//!
//! As in `benches/verify.rs`, criterion prints absolute wall-clock times and the ratios are
//! measured at the end, side by side, by thread CPU time. Run with `cargo bench -p mka1-auth-benches --bench layer`.

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::ops::Range;

use axum07::body::Body;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use jwt_authorizer::{IntoLayer, JwtAuthorizer};
use mka1_auth::revocation::{Revocations, Rule};
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
            fixture,
            bearer,
            jwks,
        };
        layers.check(layers.mka1(false));
        layers.check(layers.mka1(true));
        layers.check(layers.jwt_authorizer());
        layers.check(
            Mka1AuthLayer::new(layers.fixture.ours.remote.clone()).layer(service_fn(trivial)),
        );
        layers.check(layers.checked(false));
        layers.check(layers.checked(true));
        layers.check(layers.revoking(&revocations()));
        layers
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

    /// The trivial service behind `Mka1AuthLayer`, cache on, keys from a JWKS URL (as the
    /// other two-thread pairs, and most services), obeying `revocations`, or no revocation
    /// rules at all (`None`) for the other side of the pair.
    fn with_rules(&self, revocations: Option<&Revocations>) -> impl Trivial {
        let builder = Verifier::builder()
            .jwks_url(serve_jwks(self.jwks.clone()))
            .audience(AUDIENCE);
        let builder = match revocations {
            Some(r) => builder.revocations(r.clone()),
            None => builder,
        };
        let verifier = builder.build().unwrap();
        // The first verification fetches the key set; after it, nothing waits.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(verifier.verify(self.fixture.tokens[0].as_str()))
            .unwrap();
        Mka1AuthLayer::new(verifier).layer(service_fn(trivial))
    }

    fn revoking(&self, revocations: &Revocations) -> impl Trivial {
        self.with_rules(Some(revocations))
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

fn pairs(all: &[Layers]) -> Vec<Pair<'_>> {
    let mut pairs = Vec::new();
    for l in all {
        let alg = l.fixture.alg;
        let mka1 = |cached| l.per_request(l.mka1(cached), ALL);
        let reference = || l.per_request(l.jwt_authorizer(), ALL);
        let speed_up = "speed-up over jwt-authorizer's layer";
        let name = format!("layer/{alg}/fresh: mka1 layer, cache off");
        pairs.push(Pair::new(name, mka1(false), l.fixture.decode_raw()).figure(
            "cpu time / jsonwebtoken::decode",
            cpu_cost,
            Goal::AtMost(1.15),
        ));
        let name = format!("layer/{alg}/fresh: mka1 layer, cache off, vs jwt-authorizer");
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
    // What an uncached check costs a repeated token, beside the same layer without one.
    // Half the users: both sides' tokens then fit this thread's front cache together (the
    // two verifiers have a cache each), so neither side pays for the other's evictions.
    let l = &all[0];
    let half = 0..USERS / 2;
    for (claim, what) in [(false, "reads a field"), (true, "deserializes a claim")] {
        let alg = l.fixture.alg;
        let name = format!("layer/{alg}/repeated, uncached check that {what}");
        let checked = l.per_request(l.checked(claim), half.clone());
        let unchecked = l.per_request(l.mka1(true), half.clone());
        let pair = Pair::new(name, checked, unchecked);
        pairs.push(pair.figure("cpu time / no check", cpu_cost, Goal::Info));
    }
    // Two threads through one layer (a clone each, one verifier and cache), repeated tokens,
    // on keys from a JWKS URL as most services run; gated as in the verify bench, by two
    // threads each behind a layer of its own (the twin verifier: nothing shared).
    let l = &all[0];
    let through = |verifiers: &Verifiers, users| {
        let svc = Mka1AuthLayer::new(verifiers.remote.clone()).layer(service_fn(trivial));
        l.per_request(svc, users)
    };
    let shared = move |users| through(&l.fixture.ours, users);
    let apart = move |users: Range<usize>| {
        let verifiers = if users.start == 0 {
            &l.fixture.ours
        } else {
            &l.fixture.twin
        };
        through(verifiers, users)
    };
    let name = format!(
        "layer/{}/repeated, jwks url: two threads / one",
        l.fixture.alg
    );
    let label = "throughput, two cores free";
    let gate = Gate {
        two: two_threads(apart),
        one: shared(ALL),
    };
    pairs.push(thread_pair(
        name,
        (two_threads(shared), shared(ALL)),
        gate,
        label,
        Goal::Info,
    ));
    pairs.extend(metrics_pairs(l));
    pairs.extend(revocation_pairs(l));
    pairs
}

/// 100,000 revoked users (none of them the bench's tokens' subjects) and one `all` rule
/// older than every token: the check looks up every request's `sub`.
fn revocations() -> Revocations {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut rules: Vec<Rule> = (0..100_000)
        .map(|i| Rule::user(format!("revoked-user-{i}"), now))
        .collect();
    rules.push(Rule::all(now - 86_400));
    let revocations = Revocations::in_process();
    revocations.revoke_many(&rules);
    revocations
}

/// What revocation costs: repeated tokens through the layer with rules on against none
/// configured; two threads against one with rules on, gated like the pairs above (the
/// apart side: two layers with rules of their own); and that pair again with none.
fn revocation_pairs(l: &Layers) -> Vec<Pair<'_>> {
    let alg = l.fixture.alg;
    // Leaked (a bench's lifetime) so that the routines below are `Copy` closures over them.
    let on = &*Box::leak(Box::new(l.revoking(&revocations())));
    let twin = &*Box::leak(Box::new(l.revoking(&revocations())));
    let cost = Pair::new(
        format!("layer/{alg}/repeated, jwks url: revocations on (100,000 users) vs off"),
        l.per_request(on.clone(), ALL),
        l.per_request(l.with_rules(None), ALL),
    )
    .figure("cpu time, rules on / off", cpu_cost, Goal::Info);
    let shared = move |users| l.per_request(on.clone(), users);
    let apart = move |users: Range<usize>| {
        let layer = if users.start == 0 { on } else { twin };
        l.per_request(layer.clone(), users)
    };
    let gate = Gate {
        two: two_threads(apart),
        one: shared(ALL),
    };
    let scaling = thread_pair(
        format!("layer/{alg}/repeated, jwks url, revocations on: two threads / one"),
        (two_threads(shared), shared(ALL)),
        gate,
        "throughput, two cores free",
        Goal::AtLeast(1.8),
    );
    // The same two-thread pair with no rules configured, to tell what the rules add to the
    // scaling. (On static keys both read about 1.4x on this machine, rules or not: that is
    // the static-key layer path's, not the rules'.)
    let off = &*Box::leak(Box::new(l.with_rules(None)));
    let off_twin = &*Box::leak(Box::new(l.with_rules(None)));
    let shared_off = move |users| l.per_request(off.clone(), users);
    let apart_off = move |users: Range<usize>| {
        let layer = if users.start == 0 { off } else { off_twin };
        l.per_request(layer.clone(), users)
    };
    let gate_off = Gate {
        two: two_threads(apart_off),
        one: shared_off(ALL),
    };
    let scaling_off = thread_pair(
        format!("layer/{alg}/repeated, jwks url, revocations off: two threads / one"),
        (two_threads(shared_off), shared_off(ALL)),
        gate_off,
        "throughput, two cores free",
        Goal::Info,
    );
    vec![cost, scaling, scaling_off]
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

/// What counting costs (feature `metrics`): repeated tokens through the layer, keys from a
/// JWKS URL, counting on against off; and two threads against one with counting on, gated
/// like the pair above.
fn metrics_pairs(l: &Layers) -> Vec<Pair<'_>> {
    let through = move |verifiers: &Verifiers, users, on| {
        let svc = Mka1AuthLayer::new(verifiers.remote.clone()).layer(service_fn(trivial));
        counting(on, l.per_request(svc, users))
    };
    let alg = l.fixture.alg;
    let cost = Pair::new(
        format!("layer/{alg}/repeated, jwks url: metrics counting on vs off"),
        through(&l.fixture.ours, ALL, true),
        through(&l.fixture.ours, ALL, false),
    )
    .figure("cpu time, counting / not", cpu_cost, Goal::Info);
    let shared = move |users| through(&l.fixture.ours, users, true);
    let apart = move |users: Range<usize>| {
        let twin = users.start != 0;
        through(
            if twin {
                &l.fixture.twin
            } else {
                &l.fixture.ours
            },
            users,
            true,
        )
    };
    let gate = Gate {
        two: two_threads(apart),
        one: shared(ALL),
    };
    let scaling = thread_pair(
        format!("layer/{alg}/repeated, jwks url, metrics counting on: two threads / one"),
        (two_threads(shared), shared(ALL)),
        gate,
        "throughput, two cores free",
        Goal::AtLeast(1.8),
    );
    vec![cost, scaling]
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
