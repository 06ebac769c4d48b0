//! The memory scenario, in process: a million distinct valid tokens through a verifier with
//! the default token cache, then a million distinct invalid ones, sampling the resident set.

use std::time::Instant;

use mka1_auth::Verifier;
use mka1_auth_dev_issuer::DevIssuer;

use crate::tokens;

/// Resident set size in bytes, from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

pub struct MemoryReport {
    pub baseline: u64,
    /// RSS after each tenth of the valid tokens, then of the invalid ones.
    pub valid_samples: Vec<u64>,
    pub invalid_samples: Vec<u64>,
    pub wrong: u64,
    pub seconds: f64,
}

/// Verify `n` distinct valid tokens, then `n` distinct forged ones, on `threads` threads,
/// minting as it goes (nothing is kept, so only the verifier's memory can grow).
pub fn run(issuer: &DevIssuer, verifier: &Verifier, n: usize, threads: usize) -> MemoryReport {
    let started = Instant::now();
    let baseline = rss_bytes().unwrap_or(0);
    let tenth = (n / 10).max(1);
    let mut report = MemoryReport {
        baseline,
        valid_samples: Vec::new(),
        invalid_samples: Vec::new(),
        wrong: 0,
        seconds: 0.0,
    };
    for forged in [false, true] {
        for step in 0..10 {
            let first = 10_000_000 * usize::from(forged) + step * tenth;
            report.wrong += batch(issuer, verifier, first, tenth, threads, forged);
            let sample = rss_bytes().unwrap_or(0);
            if forged {
                report.invalid_samples.push(sample);
            } else {
                report.valid_samples.push(sample);
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Mint and verify users `first..first + n`; the number of wrong verdicts.
fn batch(
    issuer: &DevIssuer,
    verifier: &Verifier,
    first: usize,
    n: usize,
    threads: usize,
    forged: bool,
) -> u64 {
    let per = n.div_ceil(threads);
    let templates: Vec<String> = (0..64).map(|u| tokens::valid(issuer, u)).collect();
    let templates = &templates;
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let mut wrong = 0;
                    for user in first + t * per..first + (t + 1) * per {
                        let token = if forged {
                            // Distinct forgeries of a few valid tokens: no signing needed.
                            tokens::forged(
                                &templates[user % templates.len()],
                                user / templates.len(),
                            )
                        } else {
                            tokens::valid(issuer, user)
                        };
                        let verdict = runtime.block_on(verifier.verify(&token));
                        if verdict.is_ok() == forged {
                            wrong += 1;
                        }
                    }
                    wrong
                })
            })
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().expect("verifying thread"))
            .sum()
    })
}
