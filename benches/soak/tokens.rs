//! Tokens for the scenarios: valid ones minted by the dev issuer (on every core), and the
//! kinds an attacker sends: forged signatures, malformed text, kids nobody published.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth_dev_issuer::{DevIssuer, Mint};
use serde_json::json;

use crate::server::AUDIENCE;

/// Long enough for the outage scenario to move the clock a day ahead.
const LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

pub fn valid(issuer: &DevIssuer, user: usize) -> String {
    issuer.mint(Mint::new(AUDIENCE, format!("user-{user}")).expires_in(LIFETIME))
}

/// `n` valid tokens for users `first..first + n`, minted on `threads` threads.
pub fn valid_many(issuer: &DevIssuer, first: usize, n: usize, threads: usize) -> Vec<String> {
    let per = n.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let start = first + t * per;
                let end = (first + n).min(start + per);
                scope.spawn(move || (start..end).map(|u| valid(issuer, u)).collect::<Vec<_>>())
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("minting thread"))
            .collect()
    })
}

/// `token` with one signature character changed (variant `i` picks which and to what, so
/// one token gives thousands of distinct forgeries): the header and payload are intact, so
/// only the signature check can refuse it.
pub fn forged(token: &str, i: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sig_start = token.rfind('.').expect("a compact jws") + 1;
    let mut bytes = token.as_bytes().to_vec();
    // Away from the last character, whose low bits are padding.
    let span = bytes.len() - sig_start - 2;
    let at = sig_start + 1 + (i % span);
    let mut with = ALPHABET[(i / span) % 64];
    if with == bytes[at] {
        with = ALPHABET[(i / span + 1) % 64];
    }
    bytes[at] = with;
    String::from_utf8(bytes).expect("ascii")
}

/// Text that is no valid token in one of several ways (variant `i`).
pub fn malformed(valid_token: &str, i: usize) -> String {
    let header = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = valid_token.split('.').nth(1).expect("a payload");
    match i % 6 {
        0 => format!("not-a-jwt-{i}"),
        1 => format!("{}.{payload}.", header(json!({"alg": "none", "n": i}))),
        2 => format!(
            "{}.{payload}.c2ln",
            header(json!({"alg": "HS256", "kid": i}))
        ),
        3 => valid_token[..valid_token.len() / 2].to_owned() + &i.to_string(),
        4 => format!("{}.e30.{i}", header(json!({"alg": "EdDSA", "crit": ["x"]}))),
        _ => format!("a.{}.{i}", "b".repeat(i % 50)),
    }
}

/// A well-formed token under a `kid` nobody published (variant `i`), with a junk signature:
/// it is refused before any signature work, after at most one guarded refetch.
pub fn unknown_kid(valid_token: &str, i: usize) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": format!("flood-{i}")}).to_string());
    let payload = valid_token.split('.').nth(1).expect("a payload");
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]))
}
