//! Why the library's verifier refused a token, in terms a person can act on.
//!
//! The verdict and its [`ErrorKind`] come from the library; this module only sets what the
//! token says (decoded unverified) beside what was configured and what the key set holds.
//! It decides nothing.

use mka1_auth::claims::validate_end_user_id;
use mka1_auth::{Error, ErrorKind, VerifierBuilder};
use serde_json::{json, Map, Value};

use crate::keys::{names, skipped_json, KeyFacts, KidStatus};
use crate::out::{json_text, quoted};
use crate::unverified::{json_type, Part, Unverified};
use crate::verify::Settings;
use crate::when;

/// A refused token and everything that explains it.
pub struct Refusal<'a> {
    pub error: &'a Error,
    pub token_bytes: usize,
    pub token: &'a Unverified,
    pub settings: &'a Settings,
    pub keys: &'a KeyFacts,
}

/// `invalid_audience` for [`ErrorKind::InvalidAudience`].
pub fn kind_name(kind: ErrorKind) -> String {
    let mut name = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// A header member or claim as compact JSON (quoted and escaped), or `absent`.
fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_owned(), json_text)
}

/// The members `names` of a decoded part, those present.
fn pick(part: &Part, names: &[&str]) -> Map<String, Value> {
    let Ok(map) = part else {
        return Map::new();
    };
    names
        .iter()
        .filter_map(|n| Some(((*n).to_owned(), map.get(*n)?.clone())))
        .collect()
}

/// `"a", "b"`, or `none`.
fn list(values: &[String]) -> String {
    if values.is_empty() {
        return "none".into();
    }
    let quoted: Vec<_> = values.iter().map(|v| quoted(v)).collect();
    quoted.join(", ")
}

impl Refusal<'_> {
    fn header(&self, name: &str) -> Option<&Value> {
        self.token.header(name)
    }

    fn claim(&self, name: &str) -> Option<&Value> {
        self.token.claim(name)
    }

    /// A time claim: its date and how far from the moment judged, or why it is no date.
    fn time(&self, name: &str) -> String {
        match self.claim(name) {
            None => "absent".into(),
            Some(value) => match when::numeric(value) {
                Some(t) => when::describe(t, self.settings.now),
                None => format!(
                    "{} (not a NumericDate: {})",
                    json_text(value),
                    json_type(value)
                ),
            },
        }
    }

    fn time_json(&self, name: &str) -> Value {
        match self.claim(name) {
            None => Value::Null,
            Some(value) => match when::numeric(value) {
                Some(t) => when::json(t, self.settings.now),
                None => json!({ "raw": value }),
            },
        }
    }

    /// A time claim as `2027-01-15T08:00:00Z` and its distance from now, for a `why`.
    fn distance(&self, name: &str) -> Option<(String, u64)> {
        let t = when::numeric(self.claim(name)?)?;
        let date = when::date(t).unwrap_or_else(|| t.to_string());
        Some((date, t.abs_diff(self.settings.now)))
    }

    /// Whether the key set holds the token's `kid`, in words.
    fn kid_status(&self) -> String {
        let Some(kid) = self.token.header_str("kid") else {
            return "there is no kid to look up".into();
        };
        match self.keys.find(kid) {
            KidStatus::Held(key) => format!("the key set holds it ({})", key.describe()),
            KidStatus::Skipped(skipped) => format!(
                "the key set does not hold it: that key was skipped ({})",
                skipped.reason
            ),
            KidStatus::Absent => "the key set does not hold it".into(),
        }
    }

    /// One sentence on what was wrong, for the token's kind of refusal.
    pub fn why(&self) -> String {
        self.why_shape_or_key()
            .or_else(|| self.why_times())
            .or_else(|| self.why_claims())
            .unwrap_or_else(|| self.error.to_string())
    }

    /// The refusals of the first three stages: size, shape, key and signature.
    fn why_shape_or_key(&self) -> Option<String> {
        Some(match self.error.kind() {
            ErrorKind::TokenTooLarge => format!(
                "the token is {} bytes; a verifier reads at most {} by default",
                self.token_bytes,
                VerifierBuilder::DEFAULT_MAX_TOKEN_BYTES
            ),
            ErrorKind::Malformed => {
                let problems = self.token.problems();
                if problems.is_empty() {
                    let detail = self.error.detail();
                    detail
                        .unwrap_or("the token is not a compact JWS")
                        .to_owned()
                } else {
                    problems.join("; ")
                }
            }
            ErrorKind::MissingKeyId => match self.header("kid") {
                None => "the header has no kid; keys are found by kid only".into(),
                Some(kid) => format!(
                    "the header's kid is {}, not a non-empty string",
                    json_text(kid)
                ),
            },
            ErrorKind::UnknownKeyId => self.unknown_kid(),
            ErrorKind::AlgorithmNotAllowed => format!(
                "the header's alg is {}; allowed: {}",
                shown(self.header("alg")),
                names(&self.settings.algorithms)
            ),
            ErrorKind::AlgorithmMismatch => format!(
                "the header's alg {} does not fit the key its kid {} names: {}",
                shown(self.header("alg")),
                shown(self.header("kid")),
                self.kid_status()
            ),
            ErrorKind::CriticalHeader => format!(
                "the header carries crit {}; no JWS extension is understood",
                shown(self.header("crit"))
            ),
            ErrorKind::InvalidSignature => format!(
                "the signature does not verify with the key {} ({}): the token was changed \
                 after signing, or signed by another key under this kid",
                shown(self.header("kid")),
                self.kid_status()
            ),
            ErrorKind::KeysUnavailable => format!(
                "no usable key set: {}",
                self.error.detail().unwrap_or("the keys could not be had")
            ),
            _ => return None,
        })
    }

    /// The refusals of the time rules, with dates and how far off they are.
    fn why_times(&self) -> Option<String> {
        let leeway = format!("leeway {}", when::span(self.settings.leeway));
        let span = when::span;
        match self.error.kind() {
            ErrorKind::MissingExpiry => {
                Some("the token has no exp; every token must expire".into())
            }
            ErrorKind::Expired => {
                let (date, ago) = self.distance("exp")?;
                Some(format!(
                    "exp is {date}: it expired {} ago ({leeway})",
                    span(ago)
                ))
            }
            ErrorKind::NotYetValid => {
                let (date, ahead) = self.distance("nbf")?;
                Some(format!(
                    "nbf is {date}: it is valid only in {} ({leeway})",
                    span(ahead)
                ))
            }
            ErrorKind::IssuedInFuture => {
                let (date, ahead) = self.distance("iat")?;
                Some(format!(
                    "iat is {date}, {} ahead of the clock ({leeway}): check the issuer's and \
                     this machine's clocks",
                    span(ahead)
                ))
            }
            ErrorKind::LifetimeTooLong => {
                let (date, ahead) = self.distance("exp")?;
                Some(format!(
                    "exp is {date}, {} ahead; the longest lifetime accepted is {}",
                    span(ahead),
                    span(VerifierBuilder::DEFAULT_MAX_LIFETIME.as_secs())
                ))
            }
            _ => None,
        }
    }

    /// The refusals of the claim rules, and the permissions the command required.
    fn why_claims(&self) -> Option<String> {
        let s = self.settings;
        Some(match self.error.kind() {
            ErrorKind::InvalidAudience => format!(
                "the token's aud is {}; accepted: {}",
                shown(self.claim("aud")),
                list(&s.audiences)
            ),
            ErrorKind::InvalidIssuer => format!(
                "the token's iss is {}; accepted: {}",
                shown(self.claim("iss")),
                list(&s.issuers)
            ),
            ErrorKind::InvalidSubject => self.invalid_subject(),
            ErrorKind::InvalidPermissions => format!(
                "the permissions claim is {}; it must be an array of strings or one \
                 space-separated string",
                self.claim("permissions").map_or("absent", json_type)
            ),
            ErrorKind::InsufficientPermission => self.missing_permissions(),
            _ => return None,
        })
    }

    fn unknown_kid(&self) -> String {
        let kid = shown(self.header("kid"));
        let held = if self.keys.usable.is_empty() {
            "none".to_owned()
        } else {
            let kids: Vec<_> = self.keys.usable.iter().map(|k| quoted(&k.kid)).collect();
            kids.join(", ")
        };
        let mut why = format!("the key set holds no key with kid {kid} (it holds: {held})");
        if let Some(KidStatus::Skipped(skipped)) =
            self.token.header_str("kid").map(|k| self.keys.find(k))
        {
            why.push_str(&format!(
                "; a key with this kid was skipped: {}",
                skipped.reason
            ));
        }
        why
    }

    fn invalid_subject(&self) -> String {
        match self.claim("sub") {
            None => "the token has no sub".into(),
            Some(Value::String(sub)) => {
                let reason = validate_end_user_id(sub)
                    .err()
                    .and_then(|e| e.detail().map(str::to_owned))
                    .unwrap_or_else(|| "it breaks the end-user id rule".into());
                format!(
                    "sub {} is not a valid end-user id: {reason} (1-150 printable ASCII \
                     characters, not `*`, no space at either end)",
                    quoted(sub)
                )
            }
            Some(other) => format!("sub is {}, not a string", json_type(other)),
        }
    }

    fn missing_permissions(&self) -> String {
        let has: Vec<String> = match self.claim("permissions") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(text)) => text.split(' ').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let missing: Vec<String> = (self.settings.permissions.iter())
            .filter(|p| !has.contains(p))
            .cloned()
            .collect();
        format!(
            "the token lacks {}; it carries {}",
            list(&missing),
            list(&has)
        )
    }

    /// The refusal as lines of text: verdict, reason, then the token beside the settings.
    pub fn human(&self) -> String {
        let s = self.settings;
        let kind = self.error.kind();
        let issuers = if s.issuers.is_empty() {
            "any".to_owned()
        } else {
            list(&s.issuers)
        };
        let rows = [
            ("why", self.why()),
            (
                "aud",
                format!(
                    "{}; accepted: {}",
                    shown(self.claim("aud")),
                    list(&s.audiences)
                ),
            ),
            (
                "iss",
                format!("{}; accepted: {issuers}", shown(self.claim("iss"))),
            ),
            (
                "alg",
                format!(
                    "{}; allowed: {}",
                    shown(self.header("alg")),
                    names(&s.algorithms)
                ),
            ),
            (
                "kid",
                format!("{}; {}", shown(self.header("kid")), self.kid_status()),
            ),
            ("sub", shown(self.claim("sub"))),
            (
                "perms",
                format!(
                    "{}; required: {}",
                    shown(self.claim("permissions")),
                    list(&s.permissions)
                ),
            ),
            ("exp", self.time("exp")),
            ("nbf", self.time("nbf")),
            ("iat", self.time("iat")),
            (
                "keys",
                format!("{}: {}", self.keys.source, self.keys.summary()),
            ),
            (
                "checked",
                format!(
                    "{} (leeway {})",
                    when::date(s.now).unwrap_or_else(|| s.now.to_string()),
                    when::span(s.leeway)
                ),
            ),
        ];
        let mut text = format!("refused: {} ({})\n", kind_name(kind), kind);
        for (label, value) in rows {
            text.push_str(&format!("  {label:<8} {value}\n"));
        }
        if !self.token.problems().is_empty() && kind != ErrorKind::Malformed {
            text.push_str(&format!(
                "  decoding {}\n",
                self.token.problems().join("; ")
            ));
        }
        text
    }

    /// The same as JSON.
    pub fn json(&self) -> Value {
        let s = self.settings;
        let mut claims = pick(
            &self.token.claims,
            &["sub", "aud", "iss", "permissions", "jti"],
        );
        for name in ["exp", "nbf", "iat"] {
            if self.claim(name).is_some() {
                claims.insert(name.into(), self.time_json(name));
            }
        }
        let kid = self.token.header_str("kid");
        let key = match kid.map(|k| self.keys.find(k)) {
            Some(KidStatus::Held(key)) => json!({"status": "held", "key": key.json()}),
            Some(KidStatus::Skipped(skipped)) => {
                json!({"status": "skipped", "skipped": skipped_json(skipped)})
            }
            Some(KidStatus::Absent) => json!({"status": "absent"}),
            None => json!({"status": "no kid"}),
        };
        json!({
            "result": "refused",
            "kind": kind_name(self.error.kind()),
            "message": self.error.to_string(),
            "why": self.why(),
            "token": {
                "header": pick(&self.token.header, &["alg", "kid", "typ", "crit"]),
                "claims": claims,
                "problems": self.token.problems(),
            },
            "configured": {
                "audiences": s.audiences,
                "issuers": s.issuers,
                "algorithms": s.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "required_permissions": s.permissions,
                "leeway_secs": s.leeway,
            },
            "kid": key,
            "key_set": self.keys.json(),
            "checked_at": when::json(s.now, s.now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_in_snake_case() {
        assert_eq!(kind_name(ErrorKind::InvalidAudience), "invalid_audience");
        assert_eq!(kind_name(ErrorKind::Expired), "expired");
        assert_eq!(kind_name(ErrorKind::UnknownKeyId), "unknown_key_id");
    }
}
