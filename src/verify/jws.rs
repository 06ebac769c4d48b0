//! Stage 1: the token's shape. A compact JWS is three strict-base64url segments; its header
//! is a JSON object without repeated member names and without `crit`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::jwks::b64url_decode;

pub(super) fn malformed(detail: &'static str) -> Error {
    Error::with_detail(ErrorKind::Malformed, detail)
}

/// A compact JWS, split, with its header read. Nothing here is trusted yet: the signature is
/// checked later ([`check_signature`](super::key::check_signature)), and the payload is
/// decoded only after that ([`parse_claims`](super::payload::parse_claims)).
pub(super) struct Compact<'t, 'h> {
    /// `header.payload`, the bytes the signature covers.
    pub(super) signed: &'t [u8],
    /// The payload segment, still base64url.
    pub(super) payload_b64: &'t str,
    /// The signature segment, still base64url.
    pub(super) signature_b64: &'t str,
    /// The header members this verifier reads.
    pub(super) header: Header<'h>,
}

impl<'t, 'h> Compact<'t, 'h> {
    /// Split `token` into its three segments and read its header, which is decoded into
    /// `header_json` (the header's strings borrow from it).
    ///
    /// Refuses, in this order: anything but three segments, a header that is not strict
    /// base64url, not a JSON object, or not a valid JOSE header (a repeated `alg`, `kid` or
    /// `crit`, a non-string `alg`) as [`ErrorKind::Malformed`]; then a `crit` member as
    /// [`ErrorKind::CriticalHeader`].
    #[inline]
    pub(super) fn parse(token: &'t str, header_json: &'h mut Vec<u8>) -> Result<Self, Error> {
        let (header_b64, rest) = token
            .split_once('.')
            .ok_or_else(|| malformed("expected three segments"))?;
        let (payload_b64, signature_b64) = rest
            .split_once('.')
            .ok_or_else(|| malformed("expected three segments"))?;
        if signature_b64.contains('.') {
            return Err(malformed("expected three segments"));
        }
        *header_json =
            b64url_decode(header_b64).ok_or_else(|| malformed("header is not base64url"))?;
        let header_json: &'h [u8] = header_json;
        if !starts_as_object(header_json) {
            return Err(malformed("header is not a json object"));
        }
        let header: Header<'h> = serde_json::from_slice(header_json)
            .map_err(|_| malformed("header is not a valid jose header"))?;
        if header.crit {
            return Err(Error::new(ErrorKind::CriticalHeader));
        }
        Ok(Compact {
            signed: &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()],
            payload_b64,
            signature_b64,
            header,
        })
    }
}

/// The header members this verifier reads; all others (including `jku`, `jwk`, `x5u`,
/// `x5c`) are ignored and never used to find a key.
#[derive(Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub(super) alg: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) kid: Option<StrValue<'a>>,
    /// Read whatever its type, so that a `typ` only matters when one is required.
    #[serde(default, borrow)]
    pub(super) typ: Option<StrValue<'a>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

impl Header<'_> {
    /// With a required `typ` ([`VerifierBuilder::require_typ`](super::VerifierBuilder::require_typ)):
    /// the header's must be a string naming the same media type. RFC 7515 4.1.9: compared
    /// case-insensitively, and `application/` is implied when the value has no `/`
    /// (`JWT`, `jwt` and `application/jwt` are one type). [`ErrorKind::InvalidType`] if not.
    #[inline]
    pub(super) fn check_typ(&self, required: &str) -> Result<(), Error> {
        match &self.typ {
            Some(StrValue::Str(typ)) if same_media_type(typ, required) => Ok(()),
            Some(StrValue::Str(_)) => Err(Error::with_detail(
                ErrorKind::InvalidType,
                "the header's `typ` must name the required type",
            )),
            Some(StrValue::Other) => Err(Error::with_detail(
                ErrorKind::InvalidType,
                "the header's `typ` must be a string",
            )),
            None => Err(Error::with_detail(
                ErrorKind::InvalidType,
                "the header has no `typ`",
            )),
        }
    }
}

/// Whether two `typ` values name one media type (see [`Header::check_typ`]).
pub(super) fn same_media_type(a: &str, b: &str) -> bool {
    fn short(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    short(a).eq_ignore_ascii_case(short(b))
}

/// A member that may be of any JSON type, so a number or object is reported as a bad
/// `kid` (or `typ`), not as a malformed header.
pub(super) enum StrValue<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for StrValue<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key id")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrValue::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrValue::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrValue::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrValue::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StrValue::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StrValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

fn present<'de, D: de::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// Whether `bytes` is a JSON object (and not an array a derived struct would also accept).
pub(super) fn starts_as_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn b64(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn kind_of(token: &str) -> Result<(), ErrorKind> {
        let mut buffer = Vec::new();
        Compact::parse(token, &mut buffer)
            .map(|_| ())
            .map_err(|e| e.kind())
    }

    #[test]
    fn splits_a_compact_jws() {
        let token = format!("{}.cGF5bG9hZA.c2ln", b64(r#"{"alg":"EdDSA","kid":"k1"}"#));
        let mut buffer = Vec::new();
        let jws = Compact::parse(&token, &mut buffer).unwrap_or_else(|_| panic!("refused"));
        assert_eq!(jws.signed, token.rsplit_once('.').unwrap().0.as_bytes());
        assert_eq!((jws.payload_b64, jws.signature_b64), ("cGF5bG9hZA", "c2ln"));
        assert_eq!(jws.header.alg.as_deref(), Some("EdDSA"));
        assert!(matches!(jws.header.kid, Some(StrValue::Str(ref k)) if k == "k1"));
    }

    #[test]
    fn refuses_what_is_not_a_jose_header() {
        let malformed = Err(ErrorKind::Malformed);
        assert_eq!(kind_of("a.b"), malformed);
        assert_eq!(kind_of("a.b.c.d"), malformed);
        assert_eq!(kind_of(&format!("{}=.p.s", b64("{}"))), malformed);
        assert_eq!(kind_of(&format!("{}.p.s", b64("[]"))), malformed);
        assert_eq!(kind_of(&format!("{}.p.s", b64(r#"{"alg":1}"#))), malformed);
        let twice = b64(r#"{"alg":"EdDSA","alg":"EdDSA"}"#);
        assert_eq!(kind_of(&format!("{twice}.p.s")), malformed);
        let crit = b64(r#"{"alg":"EdDSA","crit":[]}"#);
        assert_eq!(
            kind_of(&format!("{crit}.p.s")),
            Err(ErrorKind::CriticalHeader)
        );
        // A kid of another type is read, and refused later as a missing key id.
        assert_eq!(kind_of(&format!("{}.p.s", b64(r#"{"kid":7}"#))), Ok(()));
        // So is a `typ` of another type, which matters only when one is required.
        assert_eq!(kind_of(&format!("{}.p.s", b64(r#"{"typ":[1]}"#))), Ok(()));
        let twice = b64(r#"{"typ":"JWT","typ":"JWT"}"#);
        assert_eq!(kind_of(&format!("{twice}.p.s")), malformed);
    }

    #[test]
    fn a_required_typ_names_one_media_type() {
        let check = |header: &str, required: &str| {
            let token = format!("{}.p.s", b64(header));
            let mut buffer = Vec::new();
            let jws = Compact::parse(&token, &mut buffer).unwrap_or_else(|_| panic!("refused"));
            jws.header.check_typ(required).map_err(|e| e.kind())
        };
        for (typ, required) in [
            ("JWT", "JWT"),
            ("jwt", "JWT"),
            ("application/jwt", "JWT"),
            ("Application/JWT", "jwt"),
            ("at+jwt", "application/AT+JWT"),
        ] {
            let header = format!(r#"{{"typ":"{typ}"}}"#);
            assert_eq!(check(&header, required), Ok(()), "{typ} as {required}");
        }
        for header in [
            r#"{"typ":"at+jwt"}"#,
            r#"{"typ":"JWS"}"#,
            r#"{"typ":"text/jwt"}"#,
            r#"{"typ":"application/"}"#,
            r#"{"typ":"JWT "}"#,
            r#"{"typ":""}"#,
            r#"{"typ":null}"#,
            r#"{"typ":["JWT"]}"#,
            r#"{"alg":"EdDSA"}"#,
        ] {
            assert_eq!(
                check(header, "JWT"),
                Err(ErrorKind::InvalidType),
                "{header}"
            );
        }
    }
}
