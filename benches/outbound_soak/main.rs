//! The outbound soak (issue 29): the calling side under load and faults. A real axum service
//! with `/proxy/{*path}` (`ForwardLayer` over `ReqwestService` behind `OutboundLayer`, as the
//! demo wires it) and an exchange-backed route (a handler calling the upstream for the
//! verified user with a token from `ExchangeClient`), behind `Mka1AuthLayer`, driven over
//! loopback by many connections with many users' tokens, while the upstream and MKA1 (the
//! dev issuer behind a switchable front) misbehave. Every answer is checked: its status,
//! the user and token the upstream saw, no credential at a foreign origin, no answer past
//! its deadline (the documented timeouts plus a margin).
//!
//! Run: `cargo bench -p mka1-auth-benches --bench outbound_soak` (about 2 minutes on 2
//! cores). Settings (environment): `OSOAK_BLOCK_MS` (10000), `OSOAK_CONNECTIONS` (64),
//! `OSOAK_USERS` (2000), `OSOAK_BURST_USERS` (10000), `OSOAK_BURST_CONNECTIONS` (1000);
//! `OSOAK_SHORT=1` is the few-seconds correctness run `cargo test`
//! makes (`tests/outbound_soak_short.rs`), with no target that depends on speed or memory.
//! It ends with one line, `outbound soak: W wrong answers (...), RSS plateau P MiB, max open
//! connections N ...`, and exits 1 when a check fails.

mod load;
mod raw;
mod scenarios;
mod world;

use std::time::Duration;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; the scenarios always run together.
    let short = std::env::var_os("OSOAK_SHORT").is_some();
    let settings = if short {
        scenarios::Settings::short()
    } else {
        scenarios::Settings {
            block: Duration::from_millis(setting("OSOAK_BLOCK_MS", 10_000)),
            connections: setting("OSOAK_CONNECTIONS", 64) as usize,
            burst_users: setting("OSOAK_BURST_USERS", 10_000) as usize,
            burst_connections: setting("OSOAK_BURST_CONNECTIONS", 1000) as usize,
            users: setting("OSOAK_USERS", 2000) as usize,
            fresh_users: 4000,
            timeouts: world::Timeouts::soak(),
            margin: Duration::from_secs(1),
            short: false,
        }
    };
    let outcome = scenarios::run_all(settings);
    println!("{}", outcome.line());
    if outcome.failed > 0 || outcome.wrong > 0 {
        eprintln!(
            "outbound soak: {} check(s) failed (see the table)",
            outcome.failed
        );
        std::process::exit(1);
    }
}
