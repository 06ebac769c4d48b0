//! The rules in force, merged for the hot path: at most one time per (subject, issuer), per
//! token id, and for every token. Built whole and never changed: a change builds a new set
//! (see [`RuleSet::with`]) that readers pick up through the published snapshot.

use std::collections::HashMap;

use super::rule::Rule;
use crate::claims::VerifiedToken;

/// The rules of one snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    /// Every token issued before this is refused.
    all_before: Option<u64>,
    /// Per subject: its rules.
    users: HashMap<Box<str>, UserRules>,
    /// Refused token ids, each with its rule's time (for its expiry).
    jtis: HashMap<Box<str>, u64>,
    /// The earliest time of any rule held: the first to expire.
    earliest: Option<u64>,
}

/// The rules about one subject.
#[derive(Debug, Clone, Default)]
struct UserRules {
    /// Tokens of any issuer issued before this are refused.
    any_issuer: Option<u64>,
    /// Tokens of this issuer issued before its time are refused.
    by_issuer: Vec<(Box<str>, u64)>,
}

impl UserRules {
    fn is_empty(&self) -> bool {
        self.any_issuer.is_none() && self.by_issuer.is_empty()
    }
}

/// Whether a token issued at `iat` was issued before `before`: a token without `iat` cannot
/// show that it was not.
#[inline]
fn issued_before(iat: Option<u64>, before: u64) -> bool {
    iat.is_none_or(|iat| iat < before)
}

/// The later of two optional times.
fn later(a: Option<u64>, b: u64) -> Option<u64> {
    Some(a.map_or(b, |a| a.max(b)))
}

impl RuleSet {
    /// How many merged rules the set holds.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.all_before.is_some())
            + self.jtis.len()
            + self
                .users
                .values()
                .map(|u| usize::from(u.any_issuer.is_some()) + u.by_issuer.len())
                .sum::<usize>()
    }

    /// Whether `token` is revoked.
    #[inline]
    pub(crate) fn refuses(&self, token: &VerifiedToken) -> bool {
        let iat = token.issued_at();
        if self.all_before.is_some_and(|b| issued_before(iat, b)) {
            return true;
        }
        if !self.jtis.is_empty() && token.jti().is_some_and(|j| self.jtis.contains_key(j)) {
            return true;
        }
        if self.users.is_empty() {
            return false;
        }
        let Some(rules) = self.users.get(token.subject()) else {
            return false;
        };
        if rules.any_issuer.is_some_and(|b| issued_before(iat, b)) {
            return true;
        }
        let iss = token.issuer();
        rules
            .by_issuer
            .iter()
            .any(|(i, b)| iss == Some(&**i) && issued_before(iat, *b))
    }

    /// This set without the rules dropped at `now` (those whose time plus `retention` has
    /// passed), plus `rules` (invalid or already expired ones skipped).
    pub(crate) fn with<'a>(
        &self,
        rules: impl IntoIterator<Item = &'a Rule>,
        now: u64,
        retention: u64,
    ) -> RuleSet {
        let mut set = self.clone();
        set.prune(now, retention);
        set.extend(rules, now, retention);
        set
    }

    /// The earliest time of any rule held (the first to expire), if any.
    pub(crate) fn earliest(&self) -> Option<u64> {
        self.earliest
    }

    /// Add `rules` (skipping invalid and expired ones).
    pub(crate) fn extend<'a>(
        &mut self,
        rules: impl IntoIterator<Item = &'a Rule>,
        now: u64,
        retention: u64,
    ) {
        for rule in rules {
            if !rule.is_valid() || rule.before().saturating_add(retention) <= now {
                continue;
            }
            let before = rule.before();
            self.earliest = Some(self.earliest.map_or(before, |e| e.min(before)));
            match rule {
                Rule::All { before } => self.all_before = later(self.all_before, *before),
                Rule::Jti { jti, before } => {
                    let at = self.jtis.entry(jti.as_str().into()).or_insert(*before);
                    *at = (*at).max(*before);
                }
                Rule::User { sub, iss, before } => {
                    let user = self.users.entry(sub.as_str().into()).or_default();
                    match iss {
                        None => user.any_issuer = later(user.any_issuer, *before),
                        Some(iss) => match user.by_issuer.iter_mut().find(|(i, _)| **i == **iss) {
                            Some((_, b)) => *b = (*b).max(*before),
                            None => user.by_issuer.push((iss.as_str().into(), *before)),
                        },
                    }
                }
            }
        }
    }

    /// Drop every rule that can no longer refuse a valid token at `now`.
    fn prune(&mut self, now: u64, retention: u64) {
        let live = |before: u64| before.saturating_add(retention) > now;
        if self.earliest.is_none_or(live) {
            return;
        }
        let mut earliest = None::<u64>;
        let mut keep = |before: u64| {
            let kept = live(before);
            if kept {
                earliest = Some(earliest.map_or(before, |e| e.min(before)));
            }
            kept
        };
        self.all_before = self.all_before.filter(|b| keep(*b));
        self.jtis.retain(|_, b| keep(*b));
        self.users.retain(|_, u| {
            u.any_issuer = u.any_issuer.filter(|b| keep(*b));
            u.by_issuer.retain(|(_, b)| keep(*b));
            !u.is_empty()
        });
        self.earliest = earliest;
    }

    /// The merged rules, as rules (for listing).
    pub(crate) fn rules(&self) -> Vec<Rule> {
        let mut out: Vec<Rule> = self.all_before.map(Rule::all).into_iter().collect();
        for (sub, u) in &self.users {
            out.extend(u.any_issuer.map(|b| Rule::user(&**sub, b)));
            for (iss, b) in &u.by_issuer {
                out.push(Rule::user_of_issuer(&**sub, &**iss, *b));
            }
        }
        out.extend(self.jtis.iter().map(|(j, b)| Rule::jti(&**j, *b)));
        out
    }
}

/// A verified token with these claims, for tests.
#[cfg(test)]
pub(crate) fn test_token(
    sub: &str,
    iss: Option<&str>,
    iat: Option<u64>,
    jti: Option<&str>,
) -> VerifiedToken {
    VerifiedToken::new(crate::claims::Fields {
        raw_claims: "{}".into(),
        subject: sub,
        audiences: &[],
        issuer: iss,
        jti,
        key_id: "k",
        expires_at: 1_000,
        issued_at: iat,
        not_before: None,
        algorithm: crate::jwks::Algorithm::EdDSA,
        permissions: crate::claims::Permissions::from_names(Vec::<&str>::new()),
    })
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_token as token;

    const R: u64 = 100;

    #[test]
    fn user_rules_refuse_older_tokens_of_that_user_only() {
        let set = RuleSet::default().with(&[Rule::user("alice", 50)], 0, R);
        assert!(set.refuses(&token("alice", None, Some(49), None)));
        assert!(!set.refuses(&token("alice", None, Some(50), None)));
        assert!(!set.refuses(&token("bob", None, Some(1), None)));
        // No `iat`: it cannot show it is newer.
        assert!(set.refuses(&token("alice", None, None, None)));
        assert!(!set.refuses(&token("bob", None, None, None)));
    }

    #[test]
    fn an_issuer_rule_binds_that_issuer_only() {
        let set = RuleSet::default().with(&[Rule::user_of_issuer("alice", "i1", 50)], 0, R);
        assert!(set.refuses(&token("alice", Some("i1"), Some(10), None)));
        assert!(!set.refuses(&token("alice", Some("i2"), Some(10), None)));
        assert!(!set.refuses(&token("alice", None, Some(10), None)));
    }

    #[test]
    fn all_and_jti_rules() {
        let set = RuleSet::default().with(&[Rule::all(50), Rule::jti("j1", 10)], 0, R);
        assert!(set.refuses(&token("x", None, Some(49), None)));
        assert!(set.refuses(&token("x", None, None, None)));
        assert!(!set.refuses(&token("x", None, Some(50), None)));
        assert!(set.refuses(&token("x", None, Some(60), Some("j1"))));
        assert!(!set.refuses(&token("x", None, Some(60), Some("j2"))));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn the_later_time_wins_and_rules_expire_after_the_retention() {
        let set = RuleSet::default().with(
            &[
                Rule::user("a", 50),
                Rule::user("a", 40),
                Rule::all(30),
                Rule::all(20),
            ],
            0,
            R,
        );
        assert_eq!(set.len(), 2);
        assert!(set.refuses(&token("a", None, Some(45), None)));
        assert!(set.refuses(&token("b", None, Some(25), None)));
        // At 135 the `all` rule (30 + 100) is gone, the user rule (50 + 100) is not.
        let later = set.with(&[], 135, R);
        assert_eq!(later.len(), 1);
        assert!(!later.refuses(&token("b", None, Some(25), None)));
        assert_eq!(later.earliest(), Some(50));
        assert!(later.with(&[], 150, R).rules().is_empty());
        assert_eq!(later.with(&[], 150, R).earliest(), None);
        // An already expired rule is not even added.
        assert_eq!(RuleSet::default().with(&[Rule::all(1)], 101, R).len(), 0);
    }
}
