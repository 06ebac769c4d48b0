//! The exchange endpoints (both paths): the request body's rules, the calling key's scopes,
//! and the token.

use aws_lc_rs::error::Unspecified;
use axum::extract::Request;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::reply::{bad_request, json_response, refusal, Issue};
#[cfg(test)]
use super::request::parse_object;
use super::request::{caller, json_object};
use super::state::IssuerState;
use super::{normalize, DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN};
use mka1_auth::claims::validate_end_user_id;

pub(super) async fn exchange(shared: &IssuerState, request: Request) -> Response<String> {
    let caller = match caller(shared, request.headers()) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let exchange = match json_object(request).await.map(ExchangeRequest::from_fields) {
        Ok(Ok(exchange)) => exchange,
        Ok(Err(issues)) => return bad_request(issues),
        Err(refused) => return *refused,
    };
    let permissions = match granted_permissions(&caller.scopes, exchange.permissions) {
        Ok(permissions) => permissions,
        Err(missing) => {
            return refusal(
                StatusCode::FORBIDDEN,
                "the requested permissions are not a subset of the api key's",
                missing,
            )
        }
    };
    match shared.issue(
        &exchange.audience,
        &exchange.external_user_id,
        &permissions,
        exchange.expires_in,
        &Map::new(),
    ) {
        Ok(token) => {
            let mut response = json_response(StatusCode::OK, &json!({ "token": token }));
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(Unspecified) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the token could not be signed",
            Vec::new(),
        ),
    }
}

/// The permissions an exchanged token carries: the API key's, or the subset the request
/// asks for; else the requested ones the key does not hold.
fn granted_permissions(
    held: &[String],
    requested: Option<Vec<String>>,
) -> Result<Vec<String>, Vec<Issue>> {
    let Some(requested) = requested else {
        return Ok(held.to_vec());
    };
    let missing: Vec<Issue> = requested
        .iter()
        .enumerate()
        .filter(|(_, p)| held.binary_search(p).is_err())
        .map(|(i, p)| {
            Issue::new(
                format!("permissions.{i}"),
                format!("`{p}` is not granted to this api key"),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(normalize(requested))
}

/// A valid exchange request body.
struct ExchangeRequest {
    audience: String,
    external_user_id: String,
    expires_in: u64,
    permissions: Option<Vec<String>>,
}

impl ExchangeRequest {
    /// The body's fields, as [`ExchangeRequest::from_fields`] reads them.
    #[cfg(test)]
    fn parse(body: &[u8]) -> Result<ExchangeRequest, Vec<Issue>> {
        let fields = parse_object(body).map_err(|issue| vec![issue])?;
        Self::from_fields(fields)
    }

    /// Check every field, reporting every problem at once. Unknown fields are ignored.
    fn from_fields(mut fields: Map<String, Value>) -> Result<ExchangeRequest, Vec<Issue>> {
        let mut issues = Vec::new();
        let audience = audience_field(fields.remove("audience"), &mut issues);
        let external_user_id = external_user_id_field(fields.remove("externalUserId"), &mut issues);
        let expires_in = expires_in_field(fields.remove("expiresIn"), &mut issues);
        let permissions = permissions_field(fields.remove("permissions"), &mut issues);
        match (audience, external_user_id) {
            (Some(audience), Some(external_user_id)) if issues.is_empty() => Ok(ExchangeRequest {
                audience,
                external_user_id,
                expires_in,
                permissions,
            }),
            _ => Err(issues),
        }
    }
}

/// `audience`: required, an absolute URI.
fn audience_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<String> {
    match value {
        Some(Value::String(audience)) if is_absolute_uri(&audience) => Some(audience),
        Some(Value::String(_)) => {
            issues.push(Issue::new("audience", "must be an absolute uri"));
            None
        }
        Some(_) => {
            issues.push(Issue::new("audience", "expected a string"));
            None
        }
        None => {
            issues.push(Issue::new("audience", "required"));
            None
        }
    }
}

/// `externalUserId`: required, a valid end-user id ([`validate_end_user_id`]).
fn external_user_id_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<String> {
    match value {
        Some(Value::String(id)) => match validate_end_user_id(&id) {
            Ok(()) => Some(id),
            Err(error) => {
                let reason = error.detail().unwrap_or("not a valid end-user id");
                issues.push(Issue::new(
                    "externalUserId",
                    format!("must be 1-150 printable ascii characters and not `*`: {reason}"),
                ));
                None
            }
        },
        Some(_) => {
            issues.push(Issue::new("externalUserId", "expected a string"));
            None
        }
        None => {
            issues.push(Issue::new("externalUserId", "required"));
            None
        }
    }
}

/// `expiresIn`: optional, a number of seconds in range; [`DEFAULT_EXPIRES_IN`] when absent.
fn expires_in_field(value: Option<Value>, issues: &mut Vec<Issue>) -> u64 {
    let range = format!("must be between {MIN_EXPIRES_IN} and {MAX_EXPIRES_IN} seconds");
    match value {
        None => DEFAULT_EXPIRES_IN,
        Some(Value::Number(n)) => match n.as_f64() {
            // Whole seconds: 300.0 (as the SDKs send it) is 300; 300.5 is 300 too.
            Some(secs) if (MIN_EXPIRES_IN as f64..=MAX_EXPIRES_IN as f64).contains(&secs) => {
                secs as u64
            }
            _ => {
                issues.push(Issue::new("expiresIn", range));
                DEFAULT_EXPIRES_IN
            }
        },
        Some(_) => {
            issues.push(Issue::new("expiresIn", "expected a number"));
            DEFAULT_EXPIRES_IN
        }
    }
}

/// `permissions`: optional, an array of non-empty strings.
fn permissions_field(value: Option<Value>, issues: &mut Vec<Issue>) -> Option<Vec<String>> {
    match value {
        None => None,
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(name) if !name.is_empty() => names.push(name),
                    _ => issues.push(Issue::new(
                        format!("permissions.{i}"),
                        "expected a non-empty string",
                    )),
                }
            }
            Some(names)
        }
        Some(_) => {
            issues.push(Issue::new("permissions", "expected an array of strings"));
            None
        }
    }
}

/// An absolute URI by RFC 3986's outline: a scheme, `:`, something after it (a non-empty
/// authority when it starts with `//`), printable ASCII only.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = match rest.strip_prefix("//") {
        Some(after) => after
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|authority| !authority.is_empty()),
        None => !rest.is_empty(),
    };
    scheme_ok && authority_ok && s.len() <= 2048 && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues_of(body: &str) -> Vec<(String, String)> {
        match ExchangeRequest::parse(body.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.into_iter().map(|i| (i.path, i.message)).collect(),
        }
    }

    fn paths_of(body: &str) -> Vec<String> {
        issues_of(body).into_iter().map(|(path, _)| path).collect()
    }

    #[test]
    fn absolute_uris() {
        for ok in [
            "https://api.example.com",
            "http://127.0.0.1:8080/v1?x=1",
            "urn:mka1:service",
        ] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "api.example.com",
            "/relative",
            "https://",
            "https:",
            "1http://x",
            "https://exa mple.com",
            "https://caf\u{e9}.example",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
        assert!(!is_absolute_uri(&format!("https://{}", "a".repeat(2048))));
    }

    #[test]
    fn parses_a_full_request() {
        let r = ExchangeRequest::parse(
            br#"{"audience":"https://a.example","externalUserId":"u-1","expiresIn":300.0,
                 "permissions":["agent:read"],"unknown":true}"#,
        )
        .unwrap_or_else(|_| panic!("refused"));
        assert_eq!(r.audience, "https://a.example");
        assert_eq!(r.external_user_id, "u-1");
        assert_eq!(r.expires_in, 300);
        assert_eq!(r.permissions, Some(vec!["agent:read".to_string()]));
    }

    #[test]
    fn expires_in_bounds() {
        let body =
            |e: &str| format!(r#"{{"audience":"urn:a","externalUserId":"u","expiresIn":{e}}}"#);
        for ok in ["300", "300.0", "2592000", "2592000.0", "3600.9"] {
            assert!(issues_of(&body(ok)).is_empty(), "{ok}");
        }
        for bad in [
            "299",
            "299.99",
            "2592000.5",
            "2592001",
            "-1",
            "1e300",
            "\"3600\"",
            "null",
        ] {
            assert_eq!(paths_of(&body(bad)), ["expiresIn"], "{bad}");
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        assert_eq!(
            paths_of(r#"{"expiresIn":1,"permissions":["a",2,""]}"#),
            [
                "audience",
                "externalUserId",
                "expiresIn",
                "permissions.1",
                "permissions.2"
            ]
        );
        assert_eq!(paths_of("[]"), [""]);
        assert_eq!(paths_of("{"), [""]);
        assert_eq!(paths_of(""), [""]);
    }
}
