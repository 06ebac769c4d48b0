//! Stages 2 and 3: the key the header names, and the signature against it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::jwks::Algorithm;

use super::jws::{Compact, Header, StrValue};
use super::{MissingKey, NotVerified};
use crate::error::{Error, ErrorKind};
use crate::jwks::{self, b64url_decode, KeySource, Lookup, VerificationKey};
use crate::shown::Shown;

/// The key a token names, and the algorithm it is to be verified with.
pub(super) struct SelectedKey<'k> {
    pub(super) key: Cow<'k, Arc<VerificationKey>>,
    pub(super) alg: Algorithm,
}

/// Find the key for a header, without I/O. Refuses, in this order: an `alg` that is unknown
/// or not in `algorithms` ([`ErrorKind::AlgorithmNotAllowed`]); a missing, empty or
/// non-string `kid` ([`ErrorKind::MissingKeyId`]); a `kid` the key source does not hold
/// ([`NotVerified::KeyNotHeld`] when a refetch may find it, in source `0` until the caller
/// says which; else
/// [`ErrorKind::UnknownKeyId`]); a key that does not verify `alg`
/// ([`ErrorKind::AlgorithmMismatch`]). Only `kid` finds a key.
#[inline]
pub(super) fn select_key<'k>(
    header: &Header<'_>,
    algorithms: &[Algorithm],
    keys: &'k KeySource,
    at: SystemTime,
) -> Result<SelectedKey<'k>, NotVerified> {
    let alg = header
        .alg
        .as_deref()
        .and_then(jwks::parse_alg)
        .filter(|a| algorithms.contains(a))
        .ok_or_else(|| {
            // The header's `alg` is no secret, but it is the sender's unverified text: shown
            // quoted, escaped and cut short.
            tracing::debug!(
                token_alg = ?header.alg.as_deref().map(Shown),
                allowed = ?algorithms,
                "token refused: its `alg` is not on the allow-list"
            );
            Error::new(ErrorKind::AlgorithmNotAllowed)
        })?;
    let kid = match &header.kid {
        Some(StrValue::Str(k)) if !k.is_empty() => k,
        _ => return Err(Error::new(ErrorKind::MissingKeyId).into()),
    };
    let key = match keys.lookup(kid, at) {
        Lookup::Found(key) => key,
        Lookup::NeedsFetch => {
            let missing = MissingKey {
                kid: Box::from(&**kid),
                source: 0,
            };
            return Err(NotVerified::KeyNotHeld(missing));
        }
        Lookup::Unknown => return Err(Error::new(ErrorKind::UnknownKeyId).into()),
    };
    if !key.accepts(alg) {
        tracing::debug!(
            token_alg = %alg,
            kid = ?Shown(key.kid()),
            key_type = ?key.key_type(),
            "token refused: its `alg` does not fit the key its `kid` names"
        );
        return Err(Error::new(ErrorKind::AlgorithmMismatch).into());
    }
    Ok(SelectedKey { key, alg })
}

/// Check the token's signature with the selected key: [`ErrorKind::InvalidSignature`] when
/// the signature segment is not strict base64url or does not verify.
#[inline]
pub(super) fn check_signature(
    jws: &Compact<'_, '_>,
    selected: &SelectedKey<'_>,
) -> Result<(), Error> {
    let signature =
        b64url_decode(jws.signature_b64).ok_or_else(|| Error::new(ErrorKind::InvalidSignature))?;
    if !selected.key.verify(selected.alg, jws.signed, &signature) {
        return Err(Error::new(ErrorKind::InvalidSignature));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jwks::KeySet;
    use crate::test_support::{claims_at, jwks, TestKey, NOW};

    fn source(keys: &[&TestKey]) -> KeySource {
        KeySource::Static(Arc::new(
            KeySet::from_json(&jwks(keys).to_string()).unwrap(),
        ))
    }

    /// The outcome of the key and signature stages for `token`.
    fn stages(token: &str, keys: &KeySource, algorithms: &[Algorithm]) -> Result<(), ErrorKind> {
        let mut header_json = Vec::new();
        let jws = Compact::parse(token, &mut header_json).map_err(|e| e.kind())?;
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(NOW);
        let selected = match select_key(&jws.header, algorithms, keys, at) {
            Ok(selected) => selected,
            Err(NotVerified::Refused(e)) => return Err(e.kind()),
            Err(NotVerified::KeyNotHeld(_)) => panic!("a static set never asks for a fetch"),
        };
        check_signature(&jws, &selected).map_err(|e| e.kind())
    }

    #[test]
    fn the_key_is_found_by_kid_and_must_fit_alg() {
        let (ed, es) = (TestKey::ed25519("ed"), TestKey::es256("es"));
        let keys = source(&[&ed, &es]);
        let all = [Algorithm::EdDSA, Algorithm::ES256];
        let claims = claims_at(NOW);
        assert_eq!(stages(&ed.sign(&claims), &keys, &all), Ok(()));
        assert_eq!(stages(&es.sign(&claims), &keys, &all), Ok(()));
        assert_eq!(
            stages(&ed.sign(&claims), &keys, &[Algorithm::ES256]),
            Err(ErrorKind::AlgorithmNotAllowed)
        );
        let header = |h: serde_json::Value| ed.sign_with_header(&h, &claims);
        let cases = [
            (
                json!({"alg": "none", "kid": "ed"}),
                ErrorKind::AlgorithmNotAllowed,
            ),
            (json!({"alg": "EdDSA"}), ErrorKind::MissingKeyId),
            (json!({"alg": "EdDSA", "kid": ""}), ErrorKind::MissingKeyId),
            (json!({"alg": "EdDSA", "kid": 1}), ErrorKind::MissingKeyId),
            (
                json!({"alg": "EdDSA", "kid": "other"}),
                ErrorKind::UnknownKeyId,
            ),
            (
                json!({"alg": "ES256", "kid": "ed"}),
                ErrorKind::AlgorithmMismatch,
            ),
        ];
        for (h, kind) in cases {
            assert_eq!(stages(&header(h.clone()), &keys, &all), Err(kind), "{h}");
        }
        // A key in the header is never used: `es`'s token names `ed` by kid, and fails.
        let mixed = json!({"alg": "EdDSA", "kid": "ed", "jwk": es.jwk()});
        let forged = es.sign_with_header(&mixed, &claims);
        assert_eq!(
            stages(&forged, &keys, &all),
            Err(ErrorKind::InvalidSignature)
        );
    }

    #[test]
    fn the_signature_must_be_strict_base64url_and_verify() {
        let ed = TestKey::ed25519("ed");
        let keys = source(&[&ed]);
        let token = ed.sign(&claims_at(NOW));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let other = TestKey::ed25519("ed").sign(&claims_at(NOW));
        let (_, other_signature) = other.rsplit_once('.').unwrap();
        for bad in [
            format!("{signed}.{other_signature}"),
            format!("{signed}.{signature}="),
            format!("{signed}."),
        ] {
            let kind = stages(&bad, &keys, &[Algorithm::EdDSA]);
            assert_eq!(kind, Err(ErrorKind::InvalidSignature));
        }
    }
}
