//! `mka1-auth inspect`: a token's header and claims, decoded WITHOUT any check and labelled
//! so. The signature is never shown, only its length.

use serde_json::{json, Map, Value};

use crate::args::InspectArgs;
use crate::unverified::Unverified;
use crate::{input, out, when, Failure, Outcome};

const UNVERIFIED: &str = "UNVERIFIED: decoded without checking the signature, the key or any \
                          claim; do not trust these values";

/// The claims shown as dates beside their numbers.
const TIME_CLAIMS: [&str; 3] = ["exp", "nbf", "iat"];

pub fn run(args: InspectArgs) -> Result<Outcome, Failure> {
    let token = input::token(&args.token)?;
    let decoded = Unverified::decode(&token);
    let now = when::now();
    if args.json {
        out::print_json(&as_json(&decoded, now));
    } else {
        out::print(&as_text(&decoded, now));
    }
    // A token whose header or claims cannot be read is not one any verifier could accept.
    Ok(if decoded.header.is_ok() && decoded.claims.is_ok() {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

fn members(text: &mut String, map: &Map<String, Value>, now: i64) {
    let width = map
        .keys()
        .map(|k| out::quoted(k).chars().count())
        .max()
        .unwrap_or(0);
    for (name, value) in map {
        let name_shown = out::quoted(name);
        let pad = " ".repeat(width - name_shown.chars().count());
        let date = match when::numeric(value) {
            Some(t) if TIME_CLAIMS.contains(&name.as_str()) => {
                format!("  {}", when::describe(t, now))
            }
            _ => String::new(),
        };
        let value = out::json_text(value);
        text.push_str(&format!("  {name_shown}{pad}  {value}{date}\n"));
    }
}

fn as_text(decoded: &Unverified, now: i64) -> String {
    let mut text = format!("{UNVERIFIED}\n");
    for (title, part) in [("header", &decoded.header), ("claims", &decoded.claims)] {
        match part {
            Ok(map) => {
                text.push_str(&format!("{title}\n"));
                members(&mut text, map, now);
            }
            Err(problem) => text.push_str(&format!("{title}: unreadable: {problem}\n")),
        }
    }
    match decoded.signature_chars {
        Some(1) => text.push_str("signature: 1 character (not shown)\n"),
        Some(chars) => text.push_str(&format!("signature: {chars} characters (not shown)\n")),
        None => {}
    }
    if decoded.segments != 3 {
        text.push_str(&format!("{}\n", decoded.problems()[0]));
    }
    text
}

fn as_json(decoded: &Unverified, now: i64) -> Value {
    let times: Map<String, Value> = match &decoded.claims {
        Ok(claims) => TIME_CLAIMS
            .iter()
            .filter_map(|n| {
                Some((
                    (*n).to_owned(),
                    when::json(when::numeric(claims.get(*n)?)?, now),
                ))
            })
            .collect(),
        Err(_) => Map::new(),
    };
    json!({
        "verified": false,
        "warning": UNVERIFIED,
        "header": decoded.header.as_ref().ok(),
        "claims": decoded.claims.as_ref().ok(),
        "times": times,
        "signature_chars": decoded.signature_chars,
        "problems": decoded.problems(),
    })
}
