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
use support::*;

fn pairs(fixtures: &[Fixture]) -> Vec<Pair<'_>> {
    let mut pairs = Vec::new();
    for f in fixtures {
        let name = format!("fresh/{}: verify, cache off", f.alg);
        pairs.push(
            Pair::new(name, f.verify(false, ALL), f.decode_raw()).figure(
                "cpu time / jsonwebtoken::decode",
                cpu_cost,
                Goal::AtMost(1.10),
            ),
        );
    }
    for f in fixtures {
        let name = format!("cache_hit/{}: verify, repeated token", f.alg);
        pairs.push(
            Pair::new(name, f.verify(true, ALL), f.verify(false, ALL)).figure(
                "speed-up over a fresh verify",
                cpu_speed_up,
                Goal::AtLeast(10.0),
            ),
        );
    }
    let threads = Duration::from_millis(20);
    let name = "threads/control: arithmetic sharing nothing, two threads / one".into();
    pairs.push(
        Pair::new(name, two_threads(arithmetic), arithmetic(ALL))
            .block(threads)
            .figure(
                "throughput, wall clock (cores given)",
                wall_throughput,
                Goal::Control,
            ),
    );
    let ed = &fixtures[0];
    for (cached, what) in [(false, "fresh"), (true, "cache_hit")] {
        let name = format!("threads/{}/{what}: two threads / one", ed.alg);
        let (two, one) = (ed.verify_two_threads(cached), ed.verify(cached, ALL));
        pairs.push(
            Pair::new(name, two, one)
                .block(threads)
                .figure(
                    "throughput, wall clock (as loaded)",
                    wall_throughput,
                    Goal::AtLeast(1.8),
                )
                .figure(
                    "throughput on 2 idle cores, from cpu",
                    projected_two_cores,
                    Goal::AtLeast(1.8),
                ),
        );
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
    run(Fixture::new, criterion_benches, pairs);
}
