//! Stages 2 and 3: the key the header names, and the signature against it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::Algorithm;

use super::jws::{Compact, Header, KidValue};
use super::NotVerified;
use crate::error::{Error, ErrorKind};
use crate::jwks::{self, b64url_decode, KeySource, Lookup, VerificationKey};

/// The key a token names, and the algorithm it is to be verified with.
pub(super) struct SelectedKey<'k> {
    pub(super) key: Cow<'k, Arc<VerificationKey>>,
    pub(super) alg: Algorithm,
}

/// Find the key for a header, without I/O. Refuses, in this order: an `alg` that is unknown
/// or not in `algorithms` ([`ErrorKind::AlgorithmNotAllowed`]); a missing, empty or
/// non-string `kid` ([`ErrorKind::MissingKeyId`]); a `kid` the key source does not hold
/// ([`NotVerified::KeyNotHeld`] when a refetch may find it, else
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
        .ok_or_else(|| Error::new(ErrorKind::AlgorithmNotAllowed))?;
    let kid = match &header.kid {
        Some(KidValue::Str(k)) if !k.is_empty() => k,
        _ => return Err(Error::new(ErrorKind::MissingKeyId).into()),
    };
    let key = match keys.lookup(kid, at) {
        Lookup::Found(key) => key,
        Lookup::NeedsFetch => return Err(NotVerified::KeyNotHeld(Box::from(&**kid))),
        Lookup::Unknown => return Err(Error::new(ErrorKind::UnknownKeyId).into()),
    };
    if !key.accepts(alg) {
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
