//! The scenarios, in the order they run, and the table they print.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mka1_auth::Verifier;
use mka1_auth_dev_issuer::{DevIssuer, JwksFault};
use tokio::runtime::Runtime;

use crate::load::{self, Case, Kind, Plan, Report};
use crate::server::{self, SkewedClock};
use crate::{memory, revocation, tokens};

pub struct Settings {
    pub block: Duration,
    pub connections: usize,
    pub hang: Duration,
    pub memory_tokens: usize,
    pub cores: usize,
    /// Correctness only (`cargo test`): tiny blocks, and no target that depends on speed or
    /// on the resident set (a few thousand tokens say nothing about a plateau).
    pub short: bool,
}

/// What the closing line reports, and whether the targets were met.
pub struct Outcome {
    pub wrong: u64,
    pub unexpected_5xx: u64,
    pub repeated_ratio: f64,
    pub rss_plateau_mib: f64,
    pub rss_bound_mib: f64,
    /// Rows whose checks failed.
    pub failed: usize,
}

impl Outcome {
    /// `soak: W wrong answers, X unexpected 5xx, repeated/baseline R, RSS plateau P MiB (bound B MiB)`
    pub fn line(&self) -> String {
        format!(
            "soak: {} wrong answers, {} unexpected 5xx, repeated/baseline {:.2}, RSS plateau {:.1} MiB (bound {:.1} MiB)",
            self.wrong,
            self.unexpected_5xx,
            self.repeated_ratio,
            self.rss_plateau_mib,
            self.rss_bound_mib
        )
    }
}

/// The least share of the baseline's rate that repeated tokens must reach.
const REPEATED_TARGET: f64 = 0.97;

/// One line of the table.
pub(crate) struct Row {
    scenario: &'static str,
    rate: f64,
    p50: u32,
    p99: u32,
    wrong: u64,
    unexpected_5xx: u64,
    checked: String,
    ok: bool,
}

impl Row {
    pub(crate) fn from_report(
        scenario: &'static str,
        report: &Report,
        checked: String,
        ok: bool,
    ) -> Row {
        let (p50, p99) = report.percentiles();
        for example in &report.wrong_examples {
            eprintln!("  {scenario}: wrong answer: {example}");
        }
        Row {
            scenario,
            rate: report.rate(),
            p50,
            p99,
            wrong: report.wrong(),
            unexpected_5xx: report.unexpected_5xx,
            ok: ok && report.wrong() == 0,
            checked,
        }
    }
}

/// The server, the issuer and the load generator, each on its own runtime.
pub(crate) struct World {
    /// Runs the server and the issuer (and the revocation scenario's replicas).
    pub(crate) server_rt: Runtime,
    pub(crate) client_rt: Runtime,
    pub(crate) issuer: DevIssuer,
    pub(crate) clock: SkewedClock,
    addr: SocketAddr,
    /// 1,000 users' valid tokens under the issuer's first key.
    users: Vec<String>,
    pub(crate) settings: Settings,
}

/// The number of users whose tokens rotate in the "repeated" cases.
pub(crate) const USERS: usize = 1000;

impl World {
    fn new(settings: Settings) -> World {
        let server_rt = multi_thread(2, "soak-server");
        let client_rt = multi_thread(2, "soak-load");
        let clock = SkewedClock::default();
        let issuer = server_rt.block_on(async {
            DevIssuer::builder()
                .clock(clock.as_clock())
                .start()
                .await
                .expect("dev issuer")
        });
        let verifier = server::verifier(&issuer, &clock);
        let addr = server::serve(&server_rt, server::router(verifier.clone()));
        let users = tokens::valid_many(&issuer, 0, USERS, settings.cores);
        World {
            server_rt,
            client_rt,
            issuer,
            clock,
            addr,
            users,
            settings,
        }
    }

    fn drive(&self, plan: &Plan, duration: Duration) -> Report {
        let connections = self.settings.connections;
        self.client_rt
            .block_on(load::drive(self.addr, connections, plan, duration))
    }

    /// Every user's token on the protected route, all expecting `expect`.
    fn users_plan(&self, expect: u16) -> Plan {
        Plan::rotating(
            self.users
                .iter()
                .map(|t| Case::bearer(t, expect, Kind::Valid))
                .collect(),
        )
    }
}

fn multi_thread(workers: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn run_all(settings: Settings) -> Outcome {
    let started = Instant::now();
    let world = World::new(settings);
    eprintln!(
        "soak: server on {}, {} connections",
        world.addr, world.settings.connections
    );
    // Memory first, while the process holds nothing freed by other scenarios that the
    // allocator could hand the cache without the resident set growing.
    let (memory, rss_plateau_mib, rss_bound_mib) = memory_row(&world);
    let mut rows = Vec::new();
    let (first, repeated_ratio) = baseline_and_repeated(&world);
    rows.extend(first);
    rows.push(fresh(&world));
    rows.push(garbage(&world));
    rows.push(rotation(&world));
    rows.push(kid_flood(&world));
    rows.extend(outage(&world));
    rows.push(revocation::row(&world));
    rows.push(memory);
    print_table(&rows, started.elapsed());
    Outcome {
        wrong: rows.iter().map(|r| r.wrong).sum(),
        unexpected_5xx: rows.iter().map(|r| r.unexpected_5xx).sum(),
        repeated_ratio,
        rss_plateau_mib,
        rss_bound_mib,
        failed: rows.iter().filter(|r| !r.ok).count(),
    }
}

/// Alternating blocks: the open route, then the protected one with 1,000 users' tokens.
///
/// Both send the same requests (the users' tokens in `Authorization`), so the figure is what
/// the layer costs, not what a 400-byte header costs hyper.
fn baseline_and_repeated(world: &World) -> ([Row; 2], f64) {
    let users: Vec<Case> = world
        .users
        .iter()
        .map(|t| Case::bearer(t, 200, Kind::Valid))
        .collect();
    let open = Plan::rotating(users.iter().map(Case::open_like).collect());
    let repeated = Plan::rotating(users);
    // Warm-up: the cold JWKS fetch, connections, the token cache.
    world.drive(&repeated, world.settings.block / 2);
    let (mut base, mut rep) = (Report::empty(), Report::empty());
    for _ in 0..4 {
        base.absorb(world.drive(&open, world.settings.block));
        rep.absorb(world.drive(&repeated, world.settings.block));
    }
    let ratio = rep.rate() / base.rate();
    let met = world.settings.short || ratio >= REPEATED_TARGET;
    let rows = [
        Row::from_report(
            "baseline (open route, same requests)",
            &base,
            "every answer 200".into(),
            true,
        ),
        Row::from_report(
            "repeated tokens (1,000 users)",
            &rep,
            format!(
                "{ratio:.2}x the baseline's rate, in alternating blocks (target {REPEATED_TARGET})"
            ),
            met,
        ),
    ];
    (rows, ratio)
}

/// Signature checks one core does per second: fresh tokens through a static-key verifier
/// with no cache, on this thread.
fn raw_verification_rate(world: &World) -> f64 {
    let verifier = Verifier::builder()
        .jwks(world.issuer.jwks_json())
        .audience(server::AUDIENCE)
        .clock(world.clock.as_clock())
        .token_cache_capacity(0)
        .build()
        .expect("reference verifier");
    let n = if world.settings.short { 300 } else { 3000 };
    let batch = tokens::valid_many(&world.issuer, 2_000_000, n, world.settings.cores);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let started = Instant::now();
    for token in &batch {
        runtime
            .block_on(verifier.verify(token))
            .expect("a valid token");
    }
    batch.len() as f64 / started.elapsed().as_secs_f64()
}

/// Every request a never-seen token.
fn fresh(world: &World) -> Row {
    let raw = raw_verification_rate(world);
    let cores = world.settings.cores as f64;
    let duration = world.settings.block * 4;
    let needed = (raw * cores * duration.as_secs_f64() * 1.2) as usize;
    let floor = if world.settings.short { 500 } else { 10_000 };
    let needed = needed.clamp(floor, 600_000);
    let pool = tokens::valid_many(&world.issuer, 3_000_000, needed, world.settings.cores);
    let plan = Plan::each_once(
        pool.iter()
            .map(|t| Case::bearer(t, 200, Kind::Valid))
            .collect(),
    );
    let report = world.drive(&plan, duration);
    let ratio = report.rate() / (raw * cores);
    let mut checked = format!(
        "{:.0}% of raw verification x {} cores ({:.0}/s per core; load generator on the same cores)",
        ratio * 100.0,
        world.settings.cores,
        raw
    );
    if report.exhausted {
        checked.push_str("; token pool ran out early");
    }
    Row::from_report("fresh tokens", &report, checked, true)
}

/// Half the requests forged (a changed signature) or malformed.
fn garbage(world: &World) -> Row {
    let bad: Vec<String> = (0..USERS)
        .map(|i| {
            let user = &world.users[i];
            if i % 2 == 0 {
                tokens::forged(user, i)
            } else {
                tokens::malformed(user, i)
            }
        })
        .collect();
    let valid = world.users_plan(200);
    let only_bad = Plan::rotating(
        bad.iter()
            .map(|t| Case::bearer(t, 401, Kind::Attack))
            .collect(),
    );
    let mixed = Plan::rotating(
        world
            .users
            .iter()
            .zip(&bad)
            .flat_map(|(good, bad)| {
                [
                    Case::bearer(good, 200, Kind::Valid),
                    Case::bearer(bad, 401, Kind::Attack),
                ]
            })
            .collect(),
    );
    let (mut v, mut g, mut m) = (Report::empty(), Report::empty(), Report::empty());
    for _ in 0..3 {
        v.absorb(world.drive(&valid, world.settings.block));
        g.absorb(world.drive(&only_bad, world.settings.block));
        m.absorb(world.drive(&mixed, world.settings.block));
    }
    // What the mix costs if each request costs what it costs alone.
    let expected = 1.0 / (0.5 / v.rate() + 0.5 / g.rate());
    let ratio = m.rate() / expected;
    let checked = format!(
        "valid half {:.0}/s; mix at {:.2}x the rate its parts' costs predict ({:.0}/s valid alone, {:.0}/s garbage alone)",
        m.valid_rate(),
        ratio,
        v.rate(),
        g.rate()
    );
    let all_right = v.wrong() + g.wrong() == 0;
    Row::from_report(
        "garbage (50% forged/malformed)",
        &m,
        checked,
        all_right && (world.settings.short || ratio >= 0.8),
    )
}

/// The issuer rotates its key mid-run: tokens under both keys must pass throughout.
fn rotation(world: &World) -> Row {
    let before = world.issuer.jwks_requests();
    let mut report = world.drive(&world.users_plan(200), world.settings.block);
    world.issuer.rotate_key();
    let rotated = tokens::valid_many(&world.issuer, 4_000_000, USERS, world.settings.cores);
    let both = Plan::rotating(
        world
            .users
            .iter()
            .zip(&rotated)
            .flat_map(|(old, new)| {
                [
                    Case::bearer(old, 200, Kind::Valid),
                    Case::bearer(new, 200, Kind::Valid),
                ]
            })
            .collect(),
    );
    report.absorb(world.drive(&both, world.settings.block * 2));
    let fetches = world.issuer.jwks_requests() - before;
    let checked = format!("old and new key accepted; {fetches} JWKS fetch(es) for the new kid");
    Row::from_report("rotation mid-run", &report, checked, true)
}

/// Unknown kids at full rate beside valid traffic.
fn kid_flood(world: &World) -> Row {
    let distinct = if world.settings.short { 2000 } else { 200_000 };
    let flood: Vec<Case> = (0..distinct)
        .map(|i| Case::bearer(&tokens::unknown_kid(&world.users[0], i), 401, Kind::Attack))
        .collect();
    let cases: Vec<Case> = flood
        .into_iter()
        .enumerate()
        .flat_map(|(i, bad)| [Case::bearer(&world.users[i % USERS], 200, Kind::Valid), bad])
        .collect();
    // Past the cooldown the rotation's refetch opened, so the flood can cause its one.
    world.clock.advance(Duration::from_secs(31));
    let before = world.issuer.jwks_requests();
    let duration = world.settings.block * 4;
    let report = world.drive(&Plan::rotating(cases), duration);
    let fetches = world.issuer.jwks_requests() - before;
    // One refetch per cooldown (30 s), plus a scheduled refresh that may fall due.
    let bound = 1 + duration.as_secs().div_ceil(30) + 1;
    let (_, valid_p99) = load::percentiles(&mut report.valid.latencies_us.clone());
    let checked = format!(
        "{fetches} JWKS fetch(es) (bound {bound}); valid requests all 200, p99 {valid_p99} us"
    );
    Row::from_report("random-kid flood (50%)", &report, checked, fetches <= bound)
}

/// The JWKS answers 500, then hangs; the clock moves through max-age and the stale window.
fn outage(world: &World) -> [Row; 2] {
    let block = world.settings.block;
    let issuer = &world.issuer;
    issuer.set_jwks_fault(JwksFault::Error500);
    // Past max-age (5 min): stale, refreshes fail, the held keys keep answering.
    world.clock.advance(Duration::from_secs(301));
    let mut report = world.drive(&world.users_plan(200), block * 2);
    let stale_ok = report.wrong() == 0;
    // Past the stale-if-error window (24 h): no usable keys, 503 with Retry-After.
    world.clock.advance(Duration::from_secs(24 * 60 * 60));
    report.absorb(world.drive(&world.users_plan(503), block));
    let unavailable_ok = report.wrong() == 0;
    // The endpoint returns; within one cooldown (30 s) every request passes again.
    issuer.set_jwks_fault(JwksFault::None);
    world.clock.advance(Duration::from_secs(30));
    report.absorb(world.drive(&world.users_plan(200), block));
    let checked = format!(
        "stale keys served: {}; 503 + Retry-After past the window: {}; recovered within the cooldown: {}",
        yes(stale_ok),
        yes(unavailable_ok),
        yes(report.wrong() == 0)
    );
    let error500 = Row::from_report("JWKS outage (500)", &report, checked, true);

    issuer.set_jwks_fault(JwksFault::Hang);
    let before = issuer.jwks_requests();
    world.clock.advance(Duration::from_secs(301));
    let hung = world.drive(&world.users_plan(200), world.settings.hang);
    let held = issuer.jwks_requests() - before;
    issuer.set_jwks_fault(JwksFault::None);
    let checked = format!(
        "JWKS hung for {} s ({held} fetch(es) held, each cut at the 5 s timeout); every request answered from the held keys",
        world.settings.hang.as_secs()
    );
    [
        error500,
        Row::from_report("JWKS hang", &hung, checked, held >= 1),
    ]
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

/// The memory row, the plateau's growth and the bound, in MiB.
fn memory_row(world: &World) -> (Row, f64, f64) {
    let verifier = Verifier::builder()
        .jwks(world.issuer.jwks_json())
        .audience(server::AUDIENCE)
        .clock(world.clock.as_clock())
        .build()
        .expect("memory verifier");
    let n = world.settings.memory_tokens;
    let m = memory::run(&world.issuer, &verifier, n, world.settings.cores);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let valid_peak = m.valid_samples.iter().copied().max().unwrap_or(0);
    let invalid_peak = m.invalid_samples.iter().copied().max().unwrap_or(0);
    let growth = valid_peak.saturating_sub(m.baseline);
    let invalid_growth = invalid_peak.saturating_sub(valid_peak);
    // The cache's documented bound: 10,000 tokens at about 1 KiB each, plus the front of
    // up to 2,048 tokens of each thread that verified (the memory run's threads, which end
    // with it, so this is the peak during the run).
    let bound = (10_000 + 2048 * world.settings.cores as u64) * 1024;
    let checked = format!(
        "{n} valid then {n} invalid tokens in {:.0} s: RSS +{:.1} MiB over {:.0} MiB (cache bound {:.1} MiB), +{:.1} MiB during the invalid ones",
        m.seconds,
        mib(growth),
        mib(m.baseline),
        mib(bound),
        mib(invalid_growth)
    );
    let within = growth <= bound && invalid_growth <= bound / 4;
    let ok = m.wrong == 0 && (world.settings.short || within);
    let row = Row {
        scenario: "memory (in process)",
        rate: 2.0 * n as f64 / m.seconds,
        p50: 0,
        p99: 0,
        wrong: m.wrong,
        unexpected_5xx: 0,
        checked,
        ok,
    };
    (row, mib(growth), mib(bound))
}

fn print_table(rows: &[Row], took: Duration) {
    println!();
    println!("| scenario | requests/s | p50 | p99 | wrong answers | checked | verdict |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let latency = |us: u32| {
            if us == 0 {
                "-".to_owned()
            } else {
                format!("{us} us")
            }
        };
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.rate,
            latency(row.p50),
            latency(row.p99),
            row.wrong,
            row.checked,
            if row.ok { "ok" } else { "FAILED" }
        );
    }
    println!();
    println!("whole run: {:.0} s", took.as_secs_f64());
}
