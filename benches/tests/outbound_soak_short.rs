//! The outbound soak's short mode, in `cargo test`: every scenario for a fraction of a second
//! over loopback, every answer checked (status, the user and token the upstream saw, no
//! credential at a foreign origin, none past its deadline). Correctness only: no target here
//! depends on speed or on the resident set.

#[path = "../outbound_soak/load.rs"]
mod load;
#[path = "../outbound_soak/raw.rs"]
mod raw;
#[path = "../outbound_soak/scenarios.rs"]
mod scenarios;
#[path = "../outbound_soak/world.rs"]
mod world;

#[test]
fn every_outbound_scenario_gives_every_answer_its_expected_verdict() {
    let outcome = scenarios::run_all(scenarios::Settings::short());
    println!("{}", outcome.line());
    assert_eq!(outcome.wrong, 0, "{}", outcome.line());
    assert_eq!(outcome.wrong_user, 0, "{}", outcome.line());
    assert_eq!(outcome.foreign_credentials, 0, "{}", outcome.line());
    assert_eq!(outcome.late, 0, "{}", outcome.line());
    assert_eq!(outcome.failed, 0, "{}", outcome.line());
}
