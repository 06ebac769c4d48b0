//! `mka1-auth revoke` and `mka1-auth revocations`: revocation rules in Redis, through the
//! library's own [`RedisStore`](mka1_auth::revocation::RedisStore) (the same keys, values
//! and channel every replica follows).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mka1_auth::revocation::{RedisStore, Revocations, Rule};

use crate::args::{RevocationsArgs, RevokeArgs};
use crate::{out, Failure, Outcome};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn store(url: &str) -> Result<RedisStore, Failure> {
    Revocations::redis(url)
        .store()
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// The rule the flags ask for.
fn rule(args: &RevokeArgs, now: u64) -> Result<Rule, Failure> {
    let before = args.before.unwrap_or(now);
    let rule = match (&args.user, args.all, &args.jti) {
        (Some(user), false, None) => match &args.issuer {
            Some(iss) => Rule::user_of_issuer(user, iss, before),
            None => Rule::user(user, before),
        },
        (None, true, None) => Rule::all(before),
        (None, false, Some(jti)) => Rule::jti(jti, before),
        _ => {
            return Err(Failure::Usage(
                "give exactly one of --user, --all or --jti".into(),
            ))
        }
    };
    Ok(rule)
}

pub async fn revoke(args: RevokeArgs) -> Result<Outcome, Failure> {
    let now = now();
    let rule = rule(&args, now)?;
    let store = store(&args.redis_url)?;
    store
        .store(&rule, Duration::from_secs(args.retain), now)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let expires_in = rule
        .before()
        .saturating_add(args.retain)
        .saturating_sub(now);
    out::print(&format!(
        "stored {} under {} (expires in {expires_in} s)\n",
        rule.to_json(),
        out::quoted(&rule.key(store.prefix())),
    ));
    Ok(Outcome::Success)
}

pub async fn list(args: RevocationsArgs) -> Result<Outcome, Failure> {
    let store = store(&args.redis_url)?;
    let (mut rules, skipped) = store
        .load()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    rules.sort_by_key(|r| (r.before(), r.to_json()));
    let mut text = String::new();
    for rule in &rules {
        text.push_str(&rule.to_json());
        text.push('\n');
    }
    out::print(&text);
    if skipped > 0 {
        out::error(&format!("{skipped} stored values do not parse; skipped"));
    }
    Ok(Outcome::Success)
}
