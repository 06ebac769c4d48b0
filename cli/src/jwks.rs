//! `mka1-auth jwks <URL|FILE>`: each key of a set, usable or skipped and why, and how long a
//! verifier would keep the set fresh.

use std::path::Path;

use mka1_auth::jwks::{KeySet, SkipReason};
use mka1_auth::Algorithm;
use serde_json::{json, Value};

use crate::args::JwksArgs;
use crate::keys::{self, names, Loaded, NotLoaded, UsableKey};
use crate::out::{self, quoted};
use crate::unverified::json_type;
use crate::when::span;
use crate::{Failure, Outcome};

pub async fn run(args: JwksArgs) -> Result<Outcome, Failure> {
    let algorithms = args.algorithms.list();
    let loaded = if is_url(&args.source) {
        keys::fetch(&args.source, args.allow_http, &algorithms).await
    } else {
        keys::read(Path::new(&args.source), &algorithms)
    };
    let loaded = loaded.map_err(|e| match e {
        NotLoaded::Unavailable(error) => Failure::Failed(format!(
            "could not fetch the key set from {}: {}",
            args.source,
            error.detail().unwrap_or(error.kind().as_str())
        )),
        NotLoaded::Usage(failure) => failure,
    })?;
    let entries: Vec<Entry> = loaded
        .entries
        .iter()
        .map(|raw| Entry::classify(raw, &loaded.keys, &algorithms))
        .collect();
    if args.json {
        out::print_json(&listing_json(&loaded, &entries, &algorithms));
    } else {
        out::print(&listing(&loaded, &entries, &algorithms));
    }
    // A set without a usable key is one a verifier refuses to use.
    Ok(if loaded.keys.is_empty() {
        Outcome::Refused
    } else {
        Outcome::Success
    })
}

fn is_url(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// One entry of the document, and what loading made of it.
struct Entry<'a> {
    raw: &'a Value,
    status: Result<UsableKey, SkipReason>,
}

impl<'a> Entry<'a> {
    /// Usable when the loaded set holds its `kid`; otherwise the reason it was skipped, found
    /// by loading the entry alone (the library's own rules), or, for an entry that is fine
    /// alone, the set-wide reason the library recorded for its `kid` (a duplicate).
    fn classify(raw: &'a Value, set: &KeySet, algorithms: &[Algorithm]) -> Entry<'a> {
        let kid = raw.get("kid").and_then(Value::as_str);
        if let Some(key) = kid.and_then(|kid| set.get(kid)) {
            return Entry {
                raw,
                status: Ok(UsableKey::of(key)),
            };
        }
        let alone = KeySet::from_json_for(&json!({ "keys": [raw] }).to_string(), algorithms);
        let reason = match alone.as_ref().map(|alone| alone.skipped().first()) {
            Ok(Some(skipped)) => skipped.reason.clone(),
            _ => {
                let cut = kid.map(|kid| kid.chars().take(64).collect::<String>());
                set.skipped()
                    .iter()
                    .find(|s| s.kid == cut)
                    .map_or(SkipReason::DuplicateKid, |s| s.reason.clone())
            }
        };
        Entry {
            raw,
            status: Err(reason),
        }
    }

    fn kid(&self) -> String {
        match self.raw.get("kid") {
            Some(Value::String(kid)) => quoted(kid),
            Some(other) => format!("(kid is {})", json_type(other)),
            None => "(no kid)".into(),
        }
    }

    /// `kty "oct", alg "HS256"`: what the entry says it is (string members only, quoted:
    /// they are the key set's text).
    fn claims_to_be(&self) -> String {
        let members: Vec<String> = ["kty", "crv", "alg", "use"]
            .into_iter()
            .filter_map(|name| Some(format!("{name} {}", quoted(self.raw.get(name)?.as_str()?))))
            .collect();
        if members.is_empty() {
            "no kty".into()
        } else {
            members.join(", ")
        }
    }

    fn json(&self) -> Value {
        let member = |name: &str| self.raw.get(name).and_then(Value::as_str);
        let mut entry = json!({
            "kid": self.raw.get("kid"),
            "kty": member("kty"),
            "crv": member("crv"),
            "alg": member("alg"),
            "use": member("use"),
        });
        match &self.status {
            Ok(key) => {
                entry["status"] = "usable".into();
                entry["type"] = key.key_type.clone().into();
                entry["algorithms"] = key.json()["algorithms"].clone();
            }
            Err(reason) => {
                entry["status"] = "skipped".into();
                entry["reason"] = reason.to_string().into();
            }
        }
        entry
    }
}

/// `fresh for 5m (Cache-Control max-age=300)`.
fn freshness(loaded: &Loaded) -> String {
    let Some(freshness) = &loaded.freshness else {
        return "a file: read once, never refreshed".into();
    };
    let fresh = span(freshness.fresh_for.as_secs());
    match freshness.cache_max_age {
        Some(max_age) if max_age == freshness.fresh_for => {
            format!(
                "fresh for {fresh} (Cache-Control max-age={})",
                max_age.as_secs()
            )
        }
        Some(max_age) => format!(
            "fresh for {fresh} (Cache-Control max-age={}, clamped to the verifier's bounds)",
            max_age.as_secs()
        ),
        None => format!("fresh for {fresh} (no Cache-Control max-age: the verifier's default)"),
    }
}

fn listing(loaded: &Loaded, entries: &[Entry], algorithms: &[Algorithm]) -> String {
    let usable = entries.iter().filter(|e| e.status.is_ok()).count();
    let count = match entries.len() {
        1 => "1 entry".to_owned(),
        n => format!("{n} entries"),
    };
    let mut text = format!(
        "key set  {}\n         {}\n         {count}: {usable} usable, {} skipped (loaded for {})\n",
        loaded.source,
        freshness(loaded),
        entries.len() - usable,
        names(algorithms)
    );
    let width = entries
        .iter()
        .map(|e| e.kid().chars().count())
        .max()
        .unwrap_or(0);
    for entry in entries {
        let kid = entry.kid();
        let pad = " ".repeat(width - kid.chars().count());
        let line = match &entry.status {
            Ok(key) => format!("usable   {kid}{pad}  {}", key.describe()),
            Err(reason) => format!("skipped  {kid}{pad}  {}: {reason}", entry.claims_to_be()),
        };
        text.push_str(&line);
        text.push('\n');
    }
    if usable == 0 {
        text.push_str("no usable key: a verifier refuses every token with this set\n");
    }
    text
}

fn listing_json(loaded: &Loaded, entries: &[Entry], algorithms: &[Algorithm]) -> Value {
    let usable = entries.iter().filter(|e| e.status.is_ok()).count();
    json!({
        "source": loaded.source,
        "freshness": loaded.freshness.as_ref().map(|f| json!({
            "cache_max_age_secs": f.cache_max_age.map(|d| d.as_secs()),
            "fresh_for_secs": f.fresh_for.as_secs(),
        })),
        "algorithms": algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "usable": usable,
        "skipped": entries.len() - usable,
        "keys": entries.iter().map(Entry::json).collect::<Vec<_>>(),
    })
}
