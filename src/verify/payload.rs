//! Stage 4: the payload, once the signature holds. It must be a JSON object without repeated
//! claim names; the claims this verifier reads are kept as JSON values, checked in stage 5.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::jws::{malformed, starts_as_object};
use super::validate::invalid_claim;
use crate::error::Error;
use crate::jwks::b64url_decode;

/// The claims a verifier reads, as they appear in the payload (types not yet checked).
#[derive(Default)]
pub(super) struct RawClaims {
    pub(super) exp: Option<Value>,
    pub(super) nbf: Option<Value>,
    pub(super) iat: Option<Value>,
    pub(super) aud: Option<Value>,
    pub(super) sub: Option<Value>,
    pub(super) iss: Option<Value>,
    pub(super) jti: Option<Value>,
    /// The configured permissions claim.
    pub(super) permissions: Option<Value>,
}

/// Decode the payload segment and read its claims. Returns the payload's JSON text (kept
/// whole in the verified token) and the claims read from it.
///
/// Refuses a payload that is not strict base64url, not UTF-8, or not a JSON object as
/// [`ErrorKind::Malformed`](crate::ErrorKind::Malformed), and one that repeats a claim name
/// as [`ErrorKind::InvalidClaim`](crate::ErrorKind::InvalidClaim).
#[inline]
pub(super) fn parse_claims(
    payload_b64: &str,
    permissions_claim: &str,
) -> Result<(String, RawClaims), Error> {
    let payload =
        b64url_decode(payload_b64).ok_or_else(|| malformed("payload is not base64url"))?;
    let payload = String::from_utf8(payload).map_err(|_| malformed("payload is not utf-8"))?;
    if !starts_as_object(payload.as_bytes()) {
        return Err(malformed("payload is not a json object"));
    }
    let duplicate = Cell::new(false);
    let seed = ClaimsSeed {
        permissions_claim,
        duplicate: &duplicate,
    };
    let mut de = serde_json::Deserializer::from_str(&payload);
    let claims = seed
        .deserialize(&mut de)
        .and_then(|c| de.end().map(|()| c))
        .map_err(|_| {
            if duplicate.get() {
                invalid_claim("a claim name appears more than once")
            } else {
                malformed("payload is not a valid json object")
            }
        })?;
    Ok((payload, claims))
}

struct ClaimsSeed<'a> {
    permissions_claim: &'a str,
    duplicate: &'a Cell<bool>,
}

struct MapKey<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MapKey<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MapKey(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MapKey(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawClaims, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = RawClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
        let mut out = RawClaims::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(12);
        while let Some(MapKey(name)) = map.next_key()? {
            if seen.contains(&name) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate claim"));
            }
            let slot = match &*name {
                "exp" => Some(&mut out.exp),
                "nbf" => Some(&mut out.nbf),
                "iat" => Some(&mut out.iat),
                "aud" => Some(&mut out.aud),
                "sub" => Some(&mut out.sub),
                "iss" => Some(&mut out.iss),
                "jti" => Some(&mut out.jti),
                other if other == self.permissions_claim => Some(&mut out.permissions),
                _ => None,
            };
            match slot {
                Some(slot) => *slot = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            seen.push(name);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    fn parse(payload: &str) -> Result<RawClaims, ErrorKind> {
        parse_claims(&URL_SAFE_NO_PAD.encode(payload), "scope")
            .map(|(text, claims)| {
                assert_eq!(text, payload);
                claims
            })
            .map_err(|e| e.kind())
    }

    #[test]
    fn reads_the_claims_it_checks() {
        let claims = parse(r#"{"sub":"u","exp":1,"scope":"a b","permissions":[],"x":{}}"#)
            .unwrap_or_else(|k| panic!("{k:?}"));
        assert_eq!(claims.sub, Some(json!("u")));
        assert_eq!(claims.exp, Some(json!(1)));
        assert_eq!(claims.permissions, Some(json!("a b")));
        assert!(claims.aud.is_none() && claims.iss.is_none());
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        for bad in ["[]", "\"x\"", "{", "{} {}", "{\"a\":1,}"] {
            assert_eq!(parse(bad).err(), Some(ErrorKind::Malformed), "{bad}");
        }
        assert_eq!(
            parse_claims("e30=", "p").err().map(|e| e.kind()),
            Some(ErrorKind::Malformed)
        );
        let twice = r#"{"x":1,"x":2}"#;
        assert_eq!(parse(twice).err(), Some(ErrorKind::InvalidClaim));
    }
}
