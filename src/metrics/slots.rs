//! Where each [`Event`] is counted (its slot in a thread's cell), and the series (name and
//! labels) each slot is published as.

use super::{Event, EXCHANGE_TOTAL, JWKS_FETCHES_TOTAL, REQUESTS_TOTAL, TOKEN_CACHE_TOTAL};
use crate::error::ErrorKind;

/// Every refusal reason, in slot order, with its label value: the kind in snake case.
const REASONS: [(ErrorKind, &str); KINDS] = [
    (ErrorKind::MissingCredentials, "missing_credentials"),
    (ErrorKind::InvalidRequest, "invalid_request"),
    (ErrorKind::TokenTooLarge, "token_too_large"),
    (ErrorKind::Malformed, "malformed"),
    (ErrorKind::MissingKeyId, "missing_key_id"),
    (ErrorKind::UnknownKeyId, "unknown_key_id"),
    (ErrorKind::AlgorithmNotAllowed, "algorithm_not_allowed"),
    (ErrorKind::AlgorithmMismatch, "algorithm_mismatch"),
    (ErrorKind::CriticalHeader, "critical_header"),
    (ErrorKind::InvalidSignature, "invalid_signature"),
    (ErrorKind::InvalidClaim, "invalid_claim"),
    (ErrorKind::MissingExpiry, "missing_expiry"),
    (ErrorKind::Expired, "expired"),
    (ErrorKind::NotYetValid, "not_yet_valid"),
    (ErrorKind::IssuedInFuture, "issued_in_future"),
    (ErrorKind::LifetimeTooLong, "lifetime_too_long"),
    (ErrorKind::InvalidAudience, "invalid_audience"),
    (ErrorKind::InvalidIssuer, "invalid_issuer"),
    (ErrorKind::InvalidSubject, "invalid_subject"),
    (ErrorKind::InvalidPermissions, "invalid_permissions"),
    (ErrorKind::InsufficientPermission, "insufficient_permission"),
    (ErrorKind::OnBehalfOfMismatch, "on_behalf_of_mismatch"),
    (ErrorKind::KeysUnavailable, "keys_unavailable"),
    (ErrorKind::MissingLayer, "missing_layer"),
    (ErrorKind::InvalidType, "invalid_type"),
    (ErrorKind::CheckFailed, "check_failed"),
    (ErrorKind::CheckPanicked, "check_panicked"),
    (ErrorKind::Revoked, "revoked"),
    (ErrorKind::RevocationUnavailable, "revocation_unavailable"),
];

/// How many error kinds there are.
const KINDS: usize = 29;

/// The position of `kind` in [`REASONS`]. Exhaustive, so a new kind cannot be forgotten.
fn kind_index(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::MissingCredentials => 0,
        ErrorKind::InvalidRequest => 1,
        ErrorKind::TokenTooLarge => 2,
        ErrorKind::Malformed => 3,
        ErrorKind::MissingKeyId => 4,
        ErrorKind::UnknownKeyId => 5,
        ErrorKind::AlgorithmNotAllowed => 6,
        ErrorKind::AlgorithmMismatch => 7,
        ErrorKind::CriticalHeader => 8,
        ErrorKind::InvalidSignature => 9,
        ErrorKind::InvalidClaim => 10,
        ErrorKind::MissingExpiry => 11,
        ErrorKind::Expired => 12,
        ErrorKind::NotYetValid => 13,
        ErrorKind::IssuedInFuture => 14,
        ErrorKind::LifetimeTooLong => 15,
        ErrorKind::InvalidAudience => 16,
        ErrorKind::InvalidIssuer => 17,
        ErrorKind::InvalidSubject => 18,
        ErrorKind::InvalidPermissions => 19,
        ErrorKind::InsufficientPermission => 20,
        ErrorKind::OnBehalfOfMismatch => 21,
        ErrorKind::KeysUnavailable => 22,
        ErrorKind::MissingLayer => 23,
        ErrorKind::InvalidType => 24,
        ErrorKind::CheckFailed => 25,
        ErrorKind::CheckPanicked => 26,
        ErrorKind::Revoked => 27,
        ErrorKind::RevocationUnavailable => 28,
    }
}

/// The `reason` label of a refusal for `kind`: the kind's name in snake case.
#[cfg(test)]
fn reason(kind: ErrorKind) -> &'static str {
    REASONS[kind_index(kind)].1
}

/// Label pairs of a series.
type Labels = &'static [(&'static str, &'static str)];

/// The slots before the refusals, one per other event, in this order.
const FIXED: [(Event, &str, Labels); 11] = [
    (Event::Allowed, REQUESTS_TOTAL, &[("result", "allowed")]),
    (Event::Anonymous, REQUESTS_TOTAL, &[("result", "anonymous")]),
    (Event::CacheHit, TOKEN_CACHE_TOTAL, &[("result", "hit")]),
    (Event::CacheMiss, TOKEN_CACHE_TOTAL, &[("result", "miss")]),
    (Event::FetchOk, JWKS_FETCHES_TOTAL, &[("result", "ok")]),
    (
        Event::FetchNotModified,
        JWKS_FETCHES_TOTAL,
        &[("result", "not_modified")],
    ),
    (
        Event::FetchError,
        JWKS_FETCHES_TOTAL,
        &[("result", "error")],
    ),
    (Event::ExchangeOk, EXCHANGE_TOTAL, &[("result", "ok")]),
    (
        Event::ExchangeCached,
        EXCHANGE_TOTAL,
        &[("result", "cached")],
    ),
    (
        Event::ExchangeRetried,
        EXCHANGE_TOTAL,
        &[("result", "retried")],
    ),
    (Event::ExchangeError, EXCHANGE_TOTAL, &[("result", "error")]),
];

/// Slots in a cell: the fixed ones, then one per refusal reason.
pub(super) const SLOTS: usize = FIXED.len() + KINDS;

/// The slot `event` is counted in.
#[inline]
pub(super) fn slot(event: Event) -> usize {
    match event {
        Event::Allowed => 0,
        Event::Anonymous => 1,
        Event::CacheHit => 2,
        Event::CacheMiss => 3,
        Event::FetchOk => 4,
        Event::FetchNotModified => 5,
        Event::FetchError => 6,
        Event::ExchangeOk => 7,
        Event::ExchangeCached => 8,
        Event::ExchangeRetried => 9,
        Event::ExchangeError => 10,
        Event::Refused(kind) => FIXED.len() + kind_index(kind),
    }
}

/// A counter series: its name and labels.
pub(super) struct Series {
    pub(super) name: &'static str,
    pub(super) labels: Vec<(&'static str, &'static str)>,
    /// Published even while zero, so dashboards see it from the start (refusal reasons
    /// appear once they happen).
    pub(super) always: bool,
}

/// The series slot `slot` is published as.
pub(super) fn series(slot: usize) -> Series {
    match FIXED.get(slot) {
        Some((_, name, labels)) => Series {
            name,
            labels: labels.to_vec(),
            always: true,
        },
        None => Series {
            name: REQUESTS_TOTAL,
            labels: vec![
                ("result", "refused"),
                ("reason", REASONS[slot - FIXED.len()].1),
            ],
            always: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_slot_and_series() {
        let mut events: Vec<Event> = FIXED.iter().map(|(e, _, _)| *e).collect();
        events.extend(REASONS.iter().map(|(kind, _)| Event::Refused(*kind)));
        let slots: Vec<usize> = events.iter().map(|e| slot(*e)).collect();
        assert_eq!(slots, (0..SLOTS).collect::<Vec<_>>());
        for (i, (kind, name)) in REASONS.iter().enumerate() {
            assert_eq!(kind_index(*kind), i);
            assert_eq!(reason(*kind), *name);
            let expected = format!("{kind:?}")
                .chars()
                .flat_map(|c| {
                    let lower = c.to_ascii_lowercase();
                    (c.is_ascii_uppercase().then_some('_').into_iter()).chain([lower])
                })
                .skip(1)
                .collect::<String>();
            assert_eq!(*name, expected, "the snake case of {kind:?}");
            // The module docs list every reason (the names are not public constants).
            assert!(
                include_str!("mod.rs").contains(&format!("`{name}`")),
                "{name} is missing from the metrics module docs"
            );
        }
        let refused = series(slot(Event::Refused(ErrorKind::Expired)));
        assert_eq!(refused.name, REQUESTS_TOTAL);
        assert_eq!(
            refused.labels,
            [("result", "refused"), ("reason", "expired")]
        );
    }
}
