//! The revocation scenario (issue 28): two verifier replicas, each a server of its own, share
//! one Redis that the soak starts itself (a free loopback port, a temporary directory, the
//! `redis-server` found or installed as the tests' helper does: never skipped). Under load,
//! rules are stored through one replica or the other, and Redis is killed and restarted
//! mid-run. Every answer is checked: a token a rule refuses gets 401 `invalid_token` once
//! the propagation bound (1 s) has passed, every other token 200, before, during and after
//! the restart. Answers while a rule propagates may be either; they are counted apart, not
//! as wrong.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mka1_auth::revocation::{RedisRevocations, Revocations, Rule};
use mka1_auth::Verifier;

use crate::load::{self, Case, Flip, Kind, Plan};
use crate::redis_server::RedisServer;
use crate::scenarios::{Row, World, USERS};
use crate::{server, tokens};

/// How soon every replica must obey a stored rule.
const BOUND: Duration = Duration::from_secs(1);
/// Users revoked by each of the two user-rule batches.
const GROUP: usize = 100;

/// A replica: its Redis source, and its server (a verifier obeying that source).
struct Replica {
    source: RedisRevocations,
    addr: SocketAddr,
}

impl Replica {
    fn start(world: &World, url: &str) -> Replica {
        let source = {
            let _entered = world.server_rt.enter();
            Revocations::redis(url)
                .clock(world.clock.as_clock())
                .start()
                .expect("the redis source")
        };
        let verifier = Verifier::builder()
            .jwks(world.issuer.jwks_json())
            .issuer(world.issuer.issuer())
            .audience(server::AUDIENCE)
            .clock(world.clock.as_clock())
            .revocations(source.revocations())
            .build()
            .expect("a replica's verifier");
        let addr = server::serve(&world.server_rt, server::router(verifier));
        Replica { source, addr }
    }

    fn rules(&self) -> usize {
        self.source.revocations().status().rule_count
    }

    fn stale(&self) -> bool {
        self.source.revocations().status().stale_since.is_some()
    }
}

/// Poll `done` every 2 ms until it holds, at most `deadline`; how long it took, or `None`.
fn wait_for(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// What the script saw, for the row.
#[derive(Default)]
struct Notes {
    /// How long the first batch's stores took (one `SET` + `PUBLISH` each, in turn).
    first_stores: Duration,
    /// From the last store of the first batch to both replicas holding all of it.
    first_applied: Option<Duration>,
    down: Duration,
    /// Both replicas marked their snapshot stale, and it held the first batch meanwhile.
    held: bool,
    /// From the restart to both replicas loaded again.
    reconnected: Option<Duration>,
    /// From the end of the `all` rule's store to both replicas holding it.
    all_applied: Option<Duration>,
    /// What went wrong in the script itself (a store that failed, a deadline missed).
    failures: Vec<String>,
}

/// Store `rules` through `replica`, flipping `flip`'s cases; the instant the stores ended.
fn store(
    world: &World,
    replica: &Replica,
    flip: &Flip,
    rules: &[Rule],
    notes: &mut Notes,
) -> Instant {
    flip.begin();
    for rule in rules {
        if let Err(e) = world.server_rt.block_on(replica.source.store(rule)) {
            notes.failures.push(format!("store failed: {e}"));
        }
    }
    Instant::now()
}

/// Sleep until `when`.
fn sleep_until(when: Instant) {
    std::thread::sleep(when.saturating_duration_since(Instant::now()));
}

pub(crate) fn row(world: &World) -> Row {
    let settings = &world.settings;
    let mut redis = world.server_rt.block_on(RedisServer::start());
    let replicas = [
        Replica::start(world, &redis.url()),
        Replica::start(world, &redis.url()),
    ];
    let loaded = wait_for(Duration::from_secs(20), || {
        replicas
            .iter()
            .all(|r| r.source.revocations().status().loaded)
    });
    assert!(loaded.is_some(), "the replicas never loaded their rules");

    // Tokens issued before the rules' time, and tokens of the same users issued at or after
    // it (accepted throughout, revoked users' included).
    let old = tokens::valid_many(&world.issuer, 0, USERS, settings.cores);
    world.clock.advance(Duration::from_secs(2));
    let t = world
        .clock
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let new = tokens::valid_many(&world.issuer, 0, USERS, settings.cores);
    let (first, after_restart, everyone) = (Flip::new(), Flip::new(), Flip::new());
    let cases: Vec<Case> = old
        .iter()
        .zip(&new)
        .enumerate()
        .flat_map(|(user, (old, new))| {
            let flip = match user / GROUP {
                0 => &first,
                1 => &after_restart,
                _ => &everyone,
            };
            [
                Case::bearer(old, 200, Kind::Valid).flipping(flip),
                Case::bearer(new, 200, Kind::Valid),
            ]
        })
        .collect();
    let users = |group: usize| -> Vec<Rule> {
        (group * GROUP..(group + 1) * GROUP)
            .map(|u| Rule::user(format!("user-{u}"), t))
            .collect()
    };
    let down_for = if settings.short {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };

    let stop = Arc::new(AtomicBool::new(false));
    let addrs = [replicas[0].addr, replicas[1].addr];
    let plan = Plan::rotating(cases);
    let (report, notes) = std::thread::scope(|scope| {
        let script = scope.spawn(|| {
            let mut notes = Notes::default();
            std::thread::sleep(settings.block);
            // 1. A hundred users revoked through replica A.
            let began = Instant::now();
            let stored = store(world, &replicas[0], &first, &users(0), &mut notes);
            first.settle_at(stored + BOUND);
            notes.first_stores = stored - began;
            notes.first_applied = wait_for(Duration::from_secs(10), || {
                replicas.iter().all(|r| r.rules() >= GROUP)
            });
            sleep_until(stored + BOUND + settings.block);

            // 2. Redis killed: each replica keeps its snapshot and marks it stale.
            redis.kill();
            let killed = Instant::now();
            let stale = wait_for(Duration::from_secs(10), || {
                replicas.iter().all(Replica::stale)
            });
            sleep_until(killed + down_for);
            notes.held = stale.is_some() && replicas.iter().all(|r| r.rules() == GROUP);
            redis.restart();
            notes.down = killed.elapsed();
            let restarted = Instant::now();

            // 3. A hundred more, through replica B, as soon as Redis answers: each replica
            // has them within the bound of its reconnect (or of the store, if later).
            let stored = store(world, &replicas[1], &after_restart, &users(1), &mut notes);
            let back = wait_for(Duration::from_secs(30), || {
                replicas.iter().all(|r| !r.stale())
            });
            notes.reconnected = back.map(|_| restarted.elapsed());
            after_restart.settle_at(stored.max(Instant::now()) + BOUND);
            sleep_until(stored.max(Instant::now()) + BOUND + settings.block);

            // 4. Every token issued before the rules' time (the leaked-key case).
            let stored = store(world, &replicas[0], &everyone, &[Rule::all(t)], &mut notes);
            everyone.settle_at(stored + BOUND);
            notes.all_applied = wait_for(Duration::from_secs(10), || {
                replicas.iter().all(|r| r.rules() > 2 * GROUP)
            });
            sleep_until(stored + BOUND + settings.block);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            notes
        });
        let report = world.client_rt.block_on(load::drive_across(
            &addrs,
            settings.connections,
            &plan,
            load::until(&stop),
        ));
        (report, script.join().expect("the revocation script"))
    });
    drop(replicas);
    drop(redis);

    let ms =
        |d: Option<Duration>| d.map_or("NEVER".to_owned(), |d| format!("{} ms", d.as_millis()));
    let mut checked = format!(
        "2 replicas, 1 redis: {GROUP} users revoked (stored one by one in {} ms; both replicas had them all {} after the last); redis down {} ms, snapshot held: {}; {GROUP} more revoked at the restart (replicas back {} after it); then `all` (both had it {} after its store); {} answers 401 invalid_token after the bound, {} in grace windows (either verdict)",
        notes.first_stores.as_millis(),
        ms(notes.first_applied),
        notes.down.as_millis(),
        if notes.held { "yes" } else { "NO" },
        ms(notes.reconnected),
        ms(notes.all_applied),
        report.flipped,
        report.grace,
    );
    for failure in &notes.failures {
        checked.push_str("; ");
        checked.push_str(failure);
    }
    let ok = notes.failures.is_empty()
        && notes.held
        && notes.first_applied.is_some()
        && notes.reconnected.is_some()
        && notes.all_applied.is_some()
        && report.flipped > 0;
    Row::from_report(
        "revocation (2 replicas on redis, restarted mid-run)",
        &report,
        checked,
        ok,
    )
}
