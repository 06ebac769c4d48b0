//! One revocation rule, and its text form: the JSON value stored in Redis (see the
//! [revocation guide](crate::guide::revocation)).

use serde::{Deserialize, Serialize};

/// What a revocation refuses.
///
/// Times are Unix seconds. A token "issued before T" has an `iat` lower than T; a token
/// with no `iat` cannot show that it is newer, so a `User` or `All` rule refuses it too.
///
/// ```
/// use mka1_auth::revocation::Rule;
///
/// let rule = Rule::user("alice", 1_765_000_000);
/// assert_eq!(rule.to_json(), r#"{"kind":"user","sub":"alice","before":1765000000}"#);
/// assert_eq!(Rule::parse(&rule.to_json()), Some(rule));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Rule {
    /// Tokens of this end user (`sub`), of any issuer or only of `iss`, issued before
    /// `before`.
    User {
        /// The end user's id (the token's `sub`).
        sub: String,
        /// Only tokens of this issuer, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iss: Option<String>,
        /// Tokens issued before this time (Unix seconds) are refused.
        before: u64,
    },
    /// Every token issued before `before` (the leaked-key case).
    All {
        /// Tokens issued before this time (Unix seconds) are refused.
        before: u64,
    },
    /// The token with this id (`jti`), whenever it was issued. `before` is when the rule was
    /// made; it only dates the rule, for its expiry.
    Jti {
        /// The token id.
        jti: String,
        /// When the rule was made (Unix seconds).
        before: u64,
    },
}

/// Longest `sub`, `iss` or `jti` a rule may hold (an MKA1 end-user id is at most 150).
const MAX_FIELD: usize = 1024;

impl Rule {
    /// Tokens of end user `sub` issued before `before` (Unix seconds), whatever their issuer.
    pub fn user(sub: impl Into<String>, before: u64) -> Self {
        Rule::User {
            sub: sub.into(),
            iss: None,
            before,
        }
    }

    /// Tokens of end user `sub` from issuer `iss`, issued before `before`.
    ///
    /// ```
    /// use mka1_auth::revocation::Rule;
    /// let rule = Rule::user_of_issuer("alice", "https://apigw.mka1.com", 10);
    /// assert!(rule.to_json().contains(r#""iss":"https://apigw.mka1.com""#));
    /// ```
    pub fn user_of_issuer(sub: impl Into<String>, iss: impl Into<String>, before: u64) -> Self {
        Rule::User {
            sub: sub.into(),
            iss: Some(iss.into()),
            before,
        }
    }

    /// Every token issued before `before` (Unix seconds).
    ///
    /// ```
    /// use mka1_auth::revocation::Rule;
    /// assert_eq!(Rule::all(5).to_json(), r#"{"kind":"all","before":5}"#);
    /// ```
    pub fn all(before: u64) -> Self {
        Rule::All { before }
    }

    /// The token whose `jti` is `jti`; `now` (Unix seconds) dates the rule.
    ///
    /// ```
    /// use mka1_auth::revocation::Rule;
    /// assert_eq!(Rule::jti("t-1", 5).to_json(), r#"{"kind":"jti","jti":"t-1","before":5}"#);
    /// ```
    pub fn jti(jti: impl Into<String>, now: u64) -> Self {
        Rule::Jti {
            jti: jti.into(),
            before: now,
        }
    }

    /// The rule's time (Unix seconds): its `before`.
    pub fn before(&self) -> u64 {
        match self {
            Rule::User { before, .. } | Rule::All { before } | Rule::Jti { before, .. } => *before,
        }
    }

    /// The rule as the JSON value stored in Redis.
    pub fn to_json(&self) -> String {
        // Serializing strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A rule from its JSON value, or `None` when the value is not a valid rule (not JSON,
    /// an unknown kind, a missing or empty field, a field over 1,024 bytes).
    pub fn parse(value: &str) -> Option<Self> {
        let rule: Rule = serde_json::from_str(value).ok()?;
        rule.is_valid().then_some(rule)
    }

    /// Whether every string field is non-empty and not too long.
    pub(crate) fn is_valid(&self) -> bool {
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_FIELD;
        match self {
            Rule::User { sub, iss, .. } => ok(sub) && iss.as_deref().is_none_or(ok),
            Rule::All { .. } => true,
            Rule::Jti { jti, .. } => ok(jti),
        }
    }

    /// The Redis key this rule is stored under, below `prefix`: one key per rule, its time
    /// included, so a later rule never overwrites an earlier one. `:` and `%` in the
    /// subject, issuer and token id are percent-encoded, so every rule has its own key.
    ///
    /// ```
    /// use mka1_auth::revocation::Rule;
    /// let p = "mka1-auth:revoked:";
    /// assert_eq!(Rule::all(7).key(p), "mka1-auth:revoked:all:7");
    /// assert_eq!(Rule::user("a:b", 7).key(p), "mka1-auth:revoked:user:7:a%3Ab");
    /// assert_eq!(
    ///     Rule::user_of_issuer("a", "https://i", 7).key(p),
    ///     "mka1-auth:revoked:user:7:a:https%3A//i"
    /// );
    /// assert_eq!(Rule::jti("t", 7).key(p), "mka1-auth:revoked:jti:t");
    /// ```
    pub fn key(&self, prefix: &str) -> String {
        match self {
            Rule::User { sub, iss, before } => {
                let mut key = format!("{prefix}user:{before}:{}", encode(sub));
                if let Some(iss) = iss {
                    key.push(':');
                    key.push_str(&encode(iss));
                }
                key
            }
            Rule::All { before } => format!("{prefix}all:{before}"),
            Rule::Jti { jti, .. } => format!("{prefix}jti:{}", encode(jti)),
        }
    }
}

/// `s` with `%` and `:` percent-encoded.
fn encode(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        for rule in [
            Rule::user("alice", 1),
            Rule::user_of_issuer("alice", "https://i", 2),
            Rule::all(3),
            Rule::jti("j", 4),
        ] {
            assert_eq!(Rule::parse(&rule.to_json()), Some(rule));
        }
        for garbage in [
            "",
            "not json",
            "{}",
            r#"{"kind":"user","before":1}"#,
            r#"{"kind":"user","sub":"","before":1}"#,
            r#"{"kind":"all","before":-1}"#,
            r#"{"kind":"all","before":"1"}"#,
            r#"{"kind":"everyone","before":1}"#,
            r#"{"kind":"jti","jti":"","before":1}"#,
        ] {
            assert_eq!(Rule::parse(garbage), None, "{garbage}");
        }
        let long = "x".repeat(MAX_FIELD + 1);
        assert_eq!(Rule::parse(&Rule::user(long, 1).to_json()), None);
    }

    #[test]
    fn keys_tell_rules_apart() {
        let p = "p:";
        assert_ne!(
            Rule::user_of_issuer("a:b", "c", 1).key(p),
            Rule::user_of_issuer("a", "b:c", 1).key(p)
        );
        assert_ne!(Rule::user("a%3A", 1).key(p), Rule::user("a:", 1).key(p));
    }
}
