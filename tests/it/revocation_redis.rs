//! Revocation through a real Redis (feature `redis`): every test starts its own
//! `redis-server` (tests/support/redis_server.rs) and talks to nothing else.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use crate::redis_server::{free_port, RedisServer};

use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use mka1_auth::revocation::{RedisRevocations, Revocations, Rule};
use mka1_auth::{ErrorKind, Mka1AuthLayer, Verifier};
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A replica: its Redis source and a verifier obeying it (system clock).
struct Replica {
    source: RedisRevocations,
    verifier: Verifier,
}

fn replica(url: &str, key: &TestKey) -> Replica {
    let source = Revocations::redis(url).start().unwrap();
    let verifier = Verifier::builder()
        .jwks(jwks(&[key]))
        .audience(AUDIENCE)
        .revocations(source.revocations())
        .build()
        .unwrap();
    Replica { source, verifier }
}

/// A token of `sub` issued at `iat`, valid for an hour from now.
fn token(key: &TestKey, sub: &str, iat: u64) -> String {
    key.sign(&json!({
        "sub": sub, "aud": AUDIENCE, "iss": ISSUER, "iat": iat, "exp": now() + 3600,
    }))
}

async fn verdict(verifier: &Verifier, token: &str) -> Option<ErrorKind> {
    verifier.verify(token).await.err().map(|e| e.kind())
}

/// Poll `done` every 2 ms until it holds; panic after `deadline`. Returns the time taken.
async fn within<F, Fut>(deadline: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if done().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn loaded(replica: &Replica) {
    within(Duration::from_secs(10), "first load", || async {
        replica.source.revocations().status().loaded
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_stored_through_one_replica_is_obeyed_by_both_within_one_second() {
    let redis = RedisServer::start().await;
    let key = TestKey::ed25519("k1");
    let (a, b) = (replica(&redis.url(), &key), replica(&redis.url(), &key));
    loaded(&a).await;
    loaded(&b).await;
    let t = now();
    let old = token(&key, "user-42", t - 60);
    let newer = token(&key, "user-42", t);
    let other = token(&key, "user-7", t - 60);
    for r in [&a, &b] {
        // Verified (and cached) before the rule.
        assert_eq!(verdict(&r.verifier, &old).await, None);
    }

    let start = Instant::now();
    a.source.store(&Rule::user("user-42", t)).await.unwrap();
    within(Duration::from_secs(1), "both replicas refuse", || async {
        verdict(&a.verifier, &old).await == Some(ErrorKind::Revoked)
            && verdict(&b.verifier, &old).await == Some(ErrorKind::Revoked)
    })
    .await;
    println!(
        "propagation to both replicas (from before the store): {:?}",
        start.elapsed()
    );
    for r in [&a, &b] {
        // Minted at the rule's time (not before it), or another user: accepted.
        assert_eq!(verdict(&r.verifier, &newer).await, None);
        assert_eq!(verdict(&r.verifier, &other).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_the_snapshot_holds_and_new_rules_arrive() {
    let mut redis = RedisServer::start().await;
    let key = TestKey::ed25519("k1");
    let r = replica(&redis.url(), &key);
    loaded(&r).await;
    let t = now();
    let alice = token(&key, "alice", t - 60);
    let bob = token(&key, "bob", t - 60);
    r.source.store(&Rule::user("alice", t)).await.unwrap();
    within(Duration::from_secs(1), "rule applied", || async {
        verdict(&r.verifier, &alice).await == Some(ErrorKind::Revoked)
    })
    .await;

    redis.kill();
    let revocations = r.source.revocations();
    within(Duration::from_secs(10), "marked stale", || async {
        revocations.status().stale_since.is_some()
    })
    .await;
    // The last snapshot holds while Redis is down.
    assert_eq!(verdict(&r.verifier, &alice).await, Some(ErrorKind::Revoked));
    assert_eq!(verdict(&r.verifier, &bob).await, None);
    assert!(r.source.store(&Rule::user("bob", t)).await.is_err());

    redis.restart();
    within(Duration::from_secs(15), "reconnected", || async {
        revocations.status().stale_since.is_none()
    })
    .await;
    // Reloaded from Redis's own data: the old rule is still there.
    assert_eq!(verdict(&r.verifier, &alice).await, Some(ErrorKind::Revoked));
    r.source.store(&Rule::user("bob", t)).await.unwrap();
    within(
        Duration::from_secs(1),
        "new rule after the reconnect",
        || async { verdict(&r.verifier, &bob).await == Some(ErrorKind::Revoked) },
    )
    .await;
}

async fn call(verifier: &Verifier, token: &str) -> Response<String> {
    Mka1AuthLayer::new(verifier.clone())
        .layer(service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::from("served")))
        }))
        .oneshot(
            Request::get("/")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_redis_down_answers_503_then_serves_once_redis_is_up() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let key = TestKey::ed25519("k1");
    let r = replica(&url, &key);
    let ok = token(&key, "user-42", now() - 60);
    let response = call(&r.verifier, &ok).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    assert_eq!(
        response
            .extensions()
            .get::<mka1_auth::Error>()
            .map(|e| e.kind()),
        Some(ErrorKind::RevocationUnavailable)
    );
    assert!(response
        .body()
        .contains(r#""error_description":"revocation rules are not loaded yet""#));
    assert!(!r.source.revocations().status().loaded);

    // The documented knob: serve without rules until loaded.
    let open = Revocations::redis(&url)
        .serve_without_rules_until_loaded()
        .start()
        .unwrap();
    let open_verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .revocations(open.revocations())
        .build()
        .unwrap();
    assert_eq!(call(&open_verifier, &ok).await.status(), StatusCode::OK);

    let _redis = RedisServer::start_on(port).await;
    within(
        Duration::from_secs(15),
        "served once redis is up",
        || async { call(&r.verifier, &ok).await.status() == StatusCode::OK },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_values_are_skipped_never_a_refusal_of_everyone() {
    let redis = RedisServer::start().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t = now();
    let valid = Rule::user("alice", t);
    for (k, v) in [
        ("mka1-auth:revoked:all:1", "not json".to_owned()),
        (
            "mka1-auth:revoked:user:x",
            r#"{"kind":"user","sub":"","before":1}"#.to_owned(),
        ),
        (
            "mka1-auth:revoked:all:2",
            r#"{"kind":"all","before":"soon"}"#.to_owned(),
        ),
        ("mka1-auth:revoked:user:ok", valid.to_json()),
    ] {
        redis::cmd("SET")
            .arg(k)
            .arg(v)
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    let key = TestKey::ed25519("k1");
    let r = replica(&redis.url(), &key);
    loaded(&r).await;
    let status = r.source.revocations().status();
    assert_eq!((status.rule_count, status.skipped_values), (1, 3));
    assert_eq!(
        verdict(&r.verifier, &token(&key, "alice", t - 1)).await,
        Some(ErrorKind::Revoked)
    );
    assert_eq!(verdict(&r.verifier, &token(&key, "bob", t - 1)).await, None);

    // A garbage announcement is skipped too; the next good one still applies.
    redis::cmd("PUBLISH")
        .arg("mka1-auth:revocations")
        .arg("{\"kind\":")
        .exec_async(&mut conn)
        .await
        .unwrap();
    r.source.store(&Rule::user("bob", t)).await.unwrap();
    within(
        Duration::from_secs(1),
        "good rule after garbage",
        || async {
            verdict(&r.verifier, &token(&key, "bob", t - 1)).await == Some(ErrorKind::Revoked)
        },
    )
    .await;
    assert_eq!(r.source.revocations().status().skipped_values, 4);
    assert_eq!(
        verdict(&r.verifier, &token(&key, "carol", t - 1)).await,
        None
    );
}

/// Resident memory of this process, in KiB (Linux), for the 100,000-rule figures.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_revoked_users_load_and_are_obeyed() {
    const USERS: usize = 100_000;
    let redis = RedisServer::start().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let t = now();
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(5_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let rule = Rule::user(format!("user-{i}"), t);
            pipe.set_ex(rule.key("mka1-auth:revoked:"), rule.to_json(), 3_600)
                .ignore();
        }
        pipe.exec_async(&mut conn).await.unwrap();
    }
    let key = TestKey::ed25519("k1");
    let before = rss_kib();
    let start = Instant::now();
    let r = replica(&redis.url(), &key);
    within(Duration::from_secs(60), "100,000 rules loaded", || async {
        r.source.revocations().status().loaded
    })
    .await;
    let load_time = start.elapsed();
    let after = rss_kib();
    let status = r.source.revocations().status();
    assert_eq!(status.rule_count, USERS);
    println!(
        "100,000 revoked users: loaded in {load_time:?}; resident memory {} KiB before, {} KiB after (other tests of this binary run beside it, so this is a rough figure)",
        before.unwrap_or(0),
        after.unwrap_or(0)
    );
    assert_eq!(
        verdict(&r.verifier, &token(&key, "user-99999", t - 1)).await,
        Some(ErrorKind::Revoked)
    );
    assert_eq!(
        verdict(&r.verifier, &token(&key, "user-100000", t - 1)).await,
        None
    );
}

/// A loopback TCP proxy in front of Redis whose first connection (a replica's
/// subscription: the source subscribes before it opens its command connection) can be
/// frozen: nothing more passes either way, and nothing is closed, as when a peer vanishes
/// without a word.
struct FreezingProxy {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    async fn start(upstream: u16) -> FreezingProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let freeze = Arc::clone(&frozen);
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let frozen = (n == 0).then(|| Arc::clone(&freeze));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let frozen = frozen.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            if frozen.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                                // Hold everything from now on, and keep the sockets open.
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy { addr, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gone_silent_is_found_and_replaced() {
    let redis = RedisServer::start().await;
    let port: u16 = redis
        .url()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = FreezingProxy::start(port).await;
    let key = TestKey::ed25519("k1");
    let r = replica(&format!("redis://{}/", proxy.addr), &key);
    loaded(&r).await;
    let revocations = r.source.revocations();
    let loaded_at = revocations.status().last_loaded;

    // A healthy session answers its pings (both connections') and carries on.
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    within(Duration::from_secs(10), "both connections pinged", || {
        let mut conn = conn.clone();
        async move {
            let stats: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            let calls = stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
                .and_then(|l| l.split(',').next())
                .and_then(|n| n.parse::<u32>().ok());
            calls.is_some_and(|n| n >= 2)
        }
    })
    .await;
    let status = revocations.status();
    assert_eq!(status.stale_since, None);
    assert_eq!(status.last_loaded, loaded_at, "no reload since the start");

    // The subscription stops answering; the command connection still does.
    proxy.freeze();
    within(
        Duration::from_secs(15),
        "the silent subscription found",
        || async { revocations.status().stale_since.is_some() },
    )
    .await;
    within(Duration::from_secs(15), "subscribed again", || async {
        revocations.status().stale_since.is_none()
    })
    .await;
    let t = now();
    r.source.store(&Rule::user("alice", t)).await.unwrap();
    within(
        Duration::from_secs(1),
        "a rule after the new subscription",
        || async {
            verdict(&r.verifier, &token(&key, "alice", t - 60)).await == Some(ErrorKind::Revoked)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_leave_the_snapshot_when_their_time_has_passed_even_without_a_change() {
    let redis = RedisServer::start().await;
    let t = now();
    let clock = mka1_auth::ManualClock::at_unix(t);
    let source = Revocations::redis(redis.url())
        .clock(clock.clone())
        .start()
        .unwrap();
    let revocations = source.revocations();
    within(Duration::from_secs(10), "loaded", || async {
        revocations.status().loaded
    })
    .await;
    // Kept 30 days and a minute after its time (no verifier asked for more): one more
    // minute for this one.
    source
        .store(&Rule::user("old", t - 30 * 86_400))
        .await
        .unwrap();
    source.store(&Rule::user("new", t)).await.unwrap();
    within(Duration::from_secs(1), "both rules", || async {
        revocations.status().rule_count == 2
    })
    .await;
    clock.advance(Duration::from_secs(61));
    // Nothing changes in Redis; the next connection check drops it.
    within(Duration::from_secs(10), "the old rule dropped", || async {
        revocations.rules() == vec![Rule::user("new", t)]
    })
    .await;
}
