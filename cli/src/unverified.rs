//! A token's header and claims, decoded WITHOUT verifying anything: for `inspect`, and for
//! explaining a refusal the library's verifier gave. Nothing here decides validity.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// A JSON object decoded from one segment, or what was wrong with the segment.
pub type Part = Result<Map<String, Value>, String>;

/// What a compact JWS holds, read without any check.
#[derive(Debug)]
pub struct Unverified {
    /// How many `.`-separated segments there are (3 in a compact JWS).
    pub segments: usize,
    pub header: Part,
    pub claims: Part,
    /// The signature segment's length in characters; its content is never shown.
    pub signature_chars: Option<usize>,
}

impl Unverified {
    pub fn decode(token: &str) -> Unverified {
        let mut parts = token.split('.');
        let header = part("header", parts.next());
        let claims = part("payload", parts.next());
        let signature_chars = parts.next().map(str::len);
        Unverified {
            segments: token.split('.').count(),
            header,
            claims,
            signature_chars,
        }
    }

    /// What keeps this from being a readable compact JWS, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.segments != 3 {
            problems.push(format!(
                "a compact JWS has 3 segments separated by `.`; this has {}",
                self.segments
            ));
        }
        for part in [&self.header, &self.claims] {
            if let Err(problem) = part {
                problems.push(problem.clone());
            }
        }
        problems
    }

    /// A header member, when the header decoded.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.header.as_ref().ok()?.get(name)
    }

    /// A claim, when the payload decoded.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.as_ref().ok()?.get(name)
    }

    /// A header member that is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)?.as_str()
    }
}

/// One segment decoded as a JSON object.
fn part(name: &str, segment: Option<&str>) -> Part {
    let segment = segment.ok_or_else(|| format!("the {name} segment is missing"))?;
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        format!(
            "the {name} is not strict base64url (no padding, no whitespace, `-` and `_` \
             rather than `+` and `/`)"
        )
    })?;
    // serde_json's messages give the problem and position, never the text.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "the {name} is JSON but not an object ({})",
            json_type(&other)
        )),
        Err(e) => Err(format!("the {name} is not JSON: {e}")),
    }
}

/// `string`, `number`, ...: a JSON value's type, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn a_token_decodes_without_its_signature() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"EdDSA","kid":"k"}"#),
            b64(r#"{"sub":"u"}"#)
        );
        let decoded = Unverified::decode(&token);
        assert!(decoded.problems().is_empty());
        assert_eq!(decoded.header_str("kid"), Some("k"));
        assert_eq!(decoded.claim("sub"), Some(&Value::from("u")));
        assert_eq!(decoded.signature_chars, Some(4));
    }

    #[test]
    fn every_problem_is_named() {
        let problems = Unverified::decode("not-a-jwt").problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("this has 1"));
        assert!(problems[1].contains("header is not strict base64url"));
        assert!(problems[2].contains("payload segment is missing"));

        let token = format!("{}.{}.x", b64("[1]"), b64("{\"a\":"));
        let problems = Unverified::decode(&token).problems();
        assert!(
            problems[0].contains("not an object (an array)"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("the payload is not JSON"),
            "{problems:?}"
        );
        assert!(Unverified::decode("").header.is_err());
        assert!(Unverified::decode("a=.b.c").header.is_err());
    }
}
