//! Memory held per cached token (issue 7, bench 5), counted by a global allocator.
//!
//! N distinct exchanged tokens (realistic MKA1 claims, distinct users) are verified through
//! a verifier with the default cache (10,000 tokens, filled to 80%), and the heap bytes still
//! held afterwards are divided by N.
//! That includes the `VerifiedToken` itself, the cache key and moka's per-entry bookkeeping
//! (and moka's fixed structures, spread over the N entries, as in a full cache). For the
//! breakdown, the same tokens are verified with the cache off while the results are kept:
//! those are the bytes of the `VerifiedToken`s alone. Target: at most 1 KiB per token.
//!
//! Also counted: the allocations of one forwarded request's onward request
//! (`ForwardLayer::onward_request`), beside building the same request's URI by hand with
//! `format!` (issue 12: the forward allocates nothing beyond the onward request itself).
//! And the forward's time per header of a large request head (issue 25): a `Connection`
//! header of about 350 KB beside 10, 100 and 1,000 other headers, half of them dropped;
//! the cost per header must stay flat as the count grows.
//!
//! Run with `cargo bench -p mka1-auth-benches --bench memory`; `-- forward` runs only the
//! forward's figures.

#[path = "support/counting.rs"]
mod counting;
mod support;

use std::time::Duration;

use counting::{made, Held};

use mka1_auth::outbound::forward::ForwardLayer;
use mka1_auth::{VerifiedToken, Verifier};
use serde_json::json;
use support::common::{claims_at, jwks, TestKey, AUDIENCE};
use support::{now_unix, ready, thread_cpu};

/// A verifier with the default cache, or with the cache off.
fn verifier(key: &TestKey, cache: bool) -> Verifier {
    let builder = Verifier::builder().jwks(jwks(&[key])).audience(AUDIENCE);
    let builder = if cache {
        builder
    } else {
        builder.token_cache_capacity(0)
    };
    builder.build().unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "forward") {
        forward_allocations();
        forward_head_cost();
        return;
    }
    // A default-size cache (10,000) filled to 80%: its shards fill unevenly, and none may
    // overflow and evict, or fewer tokens would be held than counted.
    let n: usize = 8_000;
    let key = TestKey::ed25519("ed-1");
    let now = now_unix();
    let claims = |i: usize| {
        let mut claims = claims_at(now);
        claims["sub"] = json!(format!("user-{i:06}@example.com"));
        claims
    };
    let tokens: Vec<String> = (0..n).map(|i| key.sign(&claims(i))).collect();
    println!("{n} tokens of {} bytes like {}", tokens[0].len(), claims(0));
    // Vectors for the results, allocated before anything is counted.
    let mut kept: Vec<VerifiedToken> = Vec::with_capacity(n);
    let mut hits: Vec<VerifiedToken> = Vec::with_capacity(n);

    // The verified tokens alone: kept, cache off.
    let uncached = verifier(&key, false);
    let before = Held::now();
    for token in &tokens {
        kept.push(ready(uncached.verify(token)).unwrap());
    }
    let alone = Held::per_token_since(before, n);
    kept.clear();

    // Everything the cache holds. The results are kept too, but they share the cache's
    // allocations, so they add nothing.
    let cached = verifier(&key, true);
    let before = Held::now();
    for token in &tokens {
        kept.push(ready(cached.verify(token)).unwrap());
    }
    // Let moka's periodic housekeeping run (due after 300 ms, on the next access) so no
    // pending write records are counted, and check that every token is answered from memory.
    std::thread::sleep(Duration::from_millis(400));
    for token in &tokens {
        hits.push(ready(cached.verify(token)).unwrap());
    }
    let cached_all = kept
        .iter()
        .zip(&hits)
        .all(|(a, b)| std::ptr::eq(a.raw_claims(), b.raw_claims()));
    assert!(cached_all, "some tokens were not held");
    let in_cache = Held::per_token_since(before, n);

    let row = |what: &str, [bytes, blocks, chunks]: [f64; 3]| {
        println!("  {what:<44} {bytes:>7.0} {blocks:>7.1} {chunks:>9.0}");
    };
    println!("\nper token:                                    bytes  allocs  with glibc overhead");
    row("VerifiedToken alone", alone);
    row("cached: token, key, cache key, moka entry", in_cache);
    row(
        "  of which moka and the cache key",
        [0, 1, 2].map(|i| in_cache[i] - alone[i]),
    );
    let verdict = if in_cache[0] <= 1024.0 {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "bytes held per cached token: {:.0} (target <= 1024: {verdict}); with malloc's \
         overhead about {:.0}",
        in_cache[0], in_cache[2]
    );
    forward_allocations();
    forward_head_cost();
}

/// Allocations per onward request, ours beside a URI built by hand, over the same requests.
fn forward_allocations() {
    let n = 1_000;
    let forward = ForwardLayer::builder("http://127.0.0.1:9000/base")
        .build()
        .unwrap();
    let inbound = |i: usize| {
        http::Request::post(format!("/agents/{i}/runs?page=2"))
            .header("host", "api.example.com")
            .header("authorization", "Bearer a.b.c")
            .header("connection", "keep-alive")
            .header("content-type", "application/json")
            .header("accept", "*/*")
            .header("x-request-id", "0123456789")
            .body(())
            .unwrap()
    };
    let made = |requests: Vec<http::Request<()>>, f: &dyn Fn(http::Request<()>)| {
        let before = made();
        for req in requests {
            f(req);
        }
        (made() - before) as f64 / n as f64
    };
    let by_hand = made((0..n).map(inbound).collect(), &|req| {
        let uri: http::Uri = format!(
            "http://127.0.0.1:9000/base{}",
            req.uri().path_and_query().unwrap()
        )
        .parse()
        .unwrap();
        std::hint::black_box((uri, req));
    });
    let ours = made((0..n).map(inbound).collect(), &|req| {
        std::hint::black_box(forward.onward_request(req).unwrap());
    });
    println!(
        "\nforward: {ours:.1} allocations per onward request (path, query, headers checked and \
         cleaned); a URI built by hand with format!: {by_hand:.1}"
    );
}

/// The forward's CPU time for a request head with `n` headers beside its `Connection`
/// header, half kept and half dropped (`X-Forwarded-*`): per request, and per header beyond
/// the request with `n = 0`. Twice: with a `Connection` header of about 350 KB (20,000
/// tokens, as a client may send within hyper's limits), and with `Connection: keep-alive`.
fn forward_head_cost() {
    let tokens: Vec<String> = (0..20_000).map(|i| format!("x-hop-token-{i:05}")).collect();
    let large = http::HeaderValue::try_from(tokens.join(", ")).unwrap();
    println!(
        "\nforward: CPU time for a request head with n headers (half dropped) beside a {} KB \
         `Connection` header, and beside `Connection: keep-alive`",
        large.len() / 1000
    );
    println!(
        "  {:>6} {:>14} {:>12} {:>14} {:>12}",
        "n", "large: request", "per header", "usual: request", "per header"
    );
    let usual = http::HeaderValue::from_static("keep-alive");
    let (mut large_alone, mut usual_alone) = (0.0, 0.0);
    for n in [0, 10, 100, 1_000] {
        let large_request = head_cost(&large, n);
        let usual_request = head_cost(&usual, n);
        if n == 0 {
            (large_alone, usual_alone) = (large_request, usual_request);
            println!(
                "  {n:>6} {large_request:>11.1} µs {:>12} {usual_request:>11.2} µs",
                ""
            );
        } else {
            let per = |request: f64, alone: f64| (request - alone) / n as f64;
            println!(
                "  {n:>6} {large_request:>11.1} µs {:>9.3} µs {usual_request:>11.2} µs {:>9.3} µs",
                per(large_request, large_alone),
                per(usual_request, usual_alone),
            );
        }
    }
}

/// Microseconds of CPU time per onward request for a head of `connection` and `n` headers.
fn head_cost(connection: &http::HeaderValue, n: usize) -> f64 {
    let forward = ForwardLayer::builder("http://127.0.0.1:9000/base")
        .build()
        .unwrap();
    let inbound = || {
        let mut req = http::Request::get("/agents/runs").body(()).unwrap();
        let headers = req.headers_mut();
        headers.insert("connection", connection.clone());
        for i in 0..n {
            let name = if i % 2 == 0 {
                format!("x-app-{i}")
            } else {
                format!("x-forwarded-app-{i}")
            };
            let name = http::HeaderName::try_from(name).unwrap();
            headers.insert(name, http::HeaderValue::from_static("v"));
        }
        req
    };
    // Enough requests for about a second, at least three (unless one request takes seconds,
    // as the quadratic scan before issue 25 did).
    let (mut spent, mut requests) = (Duration::ZERO, 0u32);
    while (requests < 3 || spent < Duration::from_secs(1)) && spent < Duration::from_secs(5) {
        let req = inbound();
        let start = thread_cpu();
        std::hint::black_box(forward.onward_request(req).unwrap());
        spent += thread_cpu() - start;
        requests += 1;
    }
    (spent / requests).as_secs_f64() * 1e6
}
