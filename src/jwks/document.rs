//! The JWKS document, `{"keys": [...]}`, and the one parser every key set goes through:
//! JSON text given to [`KeySet::from_json`](super::KeySet::from_json) or to the builder, a
//! fetched body, a `serde_json::Value`, or a `jsonwebtoken` `JwkSet` ([`IntoJwks`]).

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ConfigError;

const NOT_AN_OBJECT: &str = "the document is not a json object";
const NO_KEYS_ARRAY: &str = "`keys` is missing or not an array";

/// A JWKS document: a JSON object whose `keys` member is an array (its entries are checked
/// one by one later, each skipped on its own when unusable). Other members are ignored; a
/// repeated `keys` is refused. Errors never echo the document.
pub(crate) struct JwksDocument {
    /// The entries of `keys`, not yet checked.
    pub(crate) keys: Vec<Value>,
}

impl JwksDocument {
    /// Parse JSON text.
    pub(crate) fn from_text(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

impl<'de> Deserialize<'de> for JwksDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocumentVisitor)
    }
}

struct DocumentVisitor;

/// Anything but an object: refused without naming what was found (no echo of the input).
fn not_an_object<E: de::Error>() -> Result<JwksDocument, E> {
    Err(E::custom(NOT_AN_OBJECT))
}

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = JwksDocument;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object with a `keys` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JwksDocument, A::Error> {
        let mut keys = None;
        while let Some(name) = map.next_key::<String>()? {
            if name != "keys" {
                map.next_value::<IgnoredAny>()?;
            } else if keys.is_some() {
                return Err(de::Error::custom("`keys` appears more than once"));
            } else {
                keys = Some(map.next_value::<Value>()?);
            }
        }
        match keys {
            Some(Value::Array(keys)) => Ok(JwksDocument { keys }),
            _ => Err(de::Error::custom(NO_KEYS_ARRAY)),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_unit<E: de::Error>(self) -> Result<JwksDocument, E> {
        not_an_object()
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<JwksDocument, A::Error> {
        not_an_object()
    }
}

/// Something that can serve as a static JWKS for
/// [`VerifierBuilder::jwks`](crate::VerifierBuilder::jwks): JSON text, a `serde_json::Value`,
/// or a `jsonwebtoken::jwk::JwkSet`.
///
/// ```
/// use mka1_auth::Verifier;
///
/// let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
/// let from_value = Verifier::builder().jwks(jwks.clone()).audience("https://api.example.com").build();
/// let from_text = Verifier::builder().jwks(jwks.to_string()).audience("https://api.example.com").build();
/// assert!(from_value.is_ok() && from_text.is_ok());
/// ```
pub trait IntoJwks {
    /// The document's `keys` entries.
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError>;
}

fn invalid(e: serde_json::Error) -> ConfigError {
    // serde_json's messages name the problem and position; the document's own errors above
    // name no content either.
    ConfigError::with_detail(crate::ConfigErrorKind::InvalidJwks, e.to_string())
}

impl IntoJwks for &str {
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError> {
        JwksDocument::from_text(self)
            .map(|d| d.keys)
            .map_err(invalid)
    }
}

impl IntoJwks for String {
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError> {
        self.as_str().into_jwk_entries()
    }
}

impl IntoJwks for Value {
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError> {
        JwksDocument::deserialize(self)
            .map(|d| d.keys)
            .map_err(invalid)
    }
}

impl IntoJwks for &jsonwebtoken::jwk::JwkSet {
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError> {
        serde_json::to_value(self)
            .map_err(invalid)
            .and_then(IntoJwks::into_jwk_entries)
    }
}

impl IntoJwks for jsonwebtoken::jwk::JwkSet {
    fn into_jwk_entries(self) -> Result<Vec<Value>, ConfigError> {
        (&self).into_jwk_entries()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(result: Result<Vec<Value>, ConfigError>) -> String {
        match result {
            Err(error) if error.kind() == crate::ConfigErrorKind::InvalidJwks => {
                error.detail().unwrap_or_default().to_owned()
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn every_input_reads_the_same_document() {
        let doc = json!({"keys": [{"kid": "a"}], "other": 1});
        let from_value = doc.clone().into_jwk_entries().unwrap();
        let from_text = doc.to_string().into_jwk_entries().unwrap();
        assert_eq!(from_value, from_text);
        assert_eq!(from_value, [json!({"kid": "a"})]);
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(json!({"keys": []})).unwrap();
        assert!(set.into_jwk_entries().unwrap().is_empty());
    }

    #[test]
    fn refusals_name_the_problem_not_the_content() {
        for doc in [json!("secret"), json!(["secret"]), json!(null), json!(7)] {
            assert_eq!(message(doc.clone().into_jwk_entries()), NOT_AN_OBJECT);
            let text = message(doc.to_string().into_jwk_entries());
            assert!(text.starts_with(NOT_AN_OBJECT) && !text.contains("secret"));
        }
        for doc in [json!({}), json!({"keys": "secret"}), json!({"keys": {}})] {
            assert_eq!(message(doc.into_jwk_entries()), NO_KEYS_ARRAY);
        }
        let twice = r#"{"keys": [], "keys": []}"#;
        assert!(message(twice.into_jwk_entries()).contains("more than once"));
        assert!(JwksDocument::from_text(twice).is_err());
        assert!(JwksDocument::from_text(r#"[[]]"#).is_err());
    }
}
