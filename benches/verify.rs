//! Verification benchmarks, each against its reference in the same run (issue 7).
//!
//! 1. `fresh`: a token seen for the first time, cache off: `Verifier::verify` against raw
//!    `jsonwebtoken::decode` of the same token with the same aws-lc-rs backend and key.
//! 2. `cache_hit`: `verify` of a repeated token, against verifying it fresh.
//! 4. `threads`: two threads sharing one verifier, against one thread.
//!
//! Criterion prints absolute wall-clock times per bench. On a shared machine, load from
//! other processes moves those a lot, so the ratios are measured separately at the end:
//! blocks of the subject and its reference alternate for many rounds, each block timed by
//! the CPU time of its own threads (time the scheduler gave to others is not counted), and
//! the median of the per-round ratios is printed with its quartiles and the target. For two
//! threads both the wall-clock throughput (only meaningful with two idle cores) and the
//! throughput projected from CPU time are shown.
//!
//! A control pair (arithmetic sharing nothing, on two threads) shows how many cores the
//! machine actually gave the run; with less than two, the wall-clock thread figure says
//! nothing about the verifier.
//!
//! Run with `cargo bench --bench verify`; a name filter after `--` narrows both parts, and
//! `BENCH_SHOW_ROUNDS=1` prints every round's raw times.

mod support;

use std::time::Duration;

use criterion::Criterion;
use support::common::TestKey;
use support::*;

fn pairs(fixtures: &[Fixture]) -> Vec<Pair<'_>> {
    let mut pairs = Vec::new();
    for f in fixtures {
        pairs.push(Pair {
            name: format!("fresh/{}: verify, cache off", f.alg),
            subject: f.verify(false, ALL),
            reference: f.decode_raw(),
            block: Duration::from_millis(4),
            figures: vec![Figure {
                label: "cpu time / jsonwebtoken::decode",
                metric: cpu_cost,
                goal: Goal::AtMost(1.10),
            }],
        });
    }
    for f in fixtures {
        pairs.push(Pair {
            name: format!("cache_hit/{}: verify, repeated token", f.alg),
            subject: f.verify(true, ALL),
            reference: f.verify(false, ALL),
            block: Duration::from_millis(4),
            figures: vec![Figure {
                label: "speed-up over a fresh verify",
                metric: cpu_speed_up,
                goal: Goal::AtLeast(10.0),
            }],
        });
    }
    pairs.push(Pair {
        name: "threads/control: arithmetic sharing nothing, two threads / one".into(),
        subject: two_threads(arithmetic),
        reference: arithmetic(ALL),
        block: Duration::from_millis(20),
        figures: vec![Figure {
            label: "throughput, wall clock (cores given)",
            metric: wall_throughput,
            goal: Goal::Control,
        }],
    });
    let ed = &fixtures[0];
    for (cached, what) in [(false, "fresh"), (true, "cache_hit")] {
        pairs.push(Pair {
            name: format!("threads/{}/{what}: two threads / one", ed.alg),
            subject: ed.verify_two_threads(cached),
            reference: ed.verify(cached, ALL),
            block: Duration::from_millis(20),
            figures: vec![
                Figure {
                    label: "throughput, wall clock (as loaded)",
                    metric: wall_throughput,
                    goal: Goal::AtLeast(1.8),
                },
                Figure {
                    label: "throughput on 2 idle cores, from cpu",
                    metric: projected_two_cores,
                    goal: Goal::AtLeast(1.8),
                },
            ],
        });
    }
    pairs
}

fn criterion_benches(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut fresh = c.benchmark_group("fresh");
    for f in fixtures {
        bench(
            &mut fresh,
            format!("{}/verify", f.alg),
            f.verify(false, ALL),
        );
        bench(
            &mut fresh,
            format!("{}/jsonwebtoken", f.alg),
            f.decode_raw(),
        );
    }
    fresh.finish();

    let mut hit = c.benchmark_group("cache_hit");
    for f in fixtures {
        bench(&mut hit, format!("{}/verify", f.alg), f.verify(true, ALL));
    }
    hit.finish();

    let ed = &fixtures[0];
    let mut threads = c.benchmark_group("threads");
    for (cached, what) in [(false, "fresh"), (true, "cache_hit")] {
        bench(
            &mut threads,
            format!("{}/{what}/one", ed.alg),
            ed.verify(cached, ALL),
        );
        let two = ed.verify_two_threads(cached);
        bench(&mut threads, format!("{}/{what}/two", ed.alg), two);
    }
    threads.finish();
}

fn main() {
    let fixtures = [
        Fixture::new(TestKey::ed25519("ed-1")),
        Fixture::new(TestKey::es256("ec-1")),
        Fixture::new(TestKey::rs256("rsa-1")),
    ];
    let mut c = criterion();
    criterion_benches(&mut c, &fixtures);
    c.final_summary();
    report(pairs(&fixtures));
}
