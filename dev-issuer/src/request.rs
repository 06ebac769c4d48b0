//! What every endpoint reads from a request: the calling API key, authenticated against the
//! key store, and a JSON object body under the size cap. Failures come back as the answer.

use axum::extract::Request;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::api_keys::{Caller, Denied, WRITE_APIKEYS_SCOPE};
use super::reply::{bad_request, body_too_large, refusal, Issue, Refused};
use super::state::IssuerState;
use super::MAX_BODY_BYTES;

/// The key presenting itself as exactly one `Authorization: Bearer <secret>`, or a 401.
///
/// The secret is compared in constant time (`KeyStore::authenticate`) and never logged or
/// echoed.
pub(super) fn caller(shared: &IssuerState, headers: &HeaderMap) -> Result<Caller, Refused> {
    let secret = presented_secret(headers).map_err(|why| Box::new(unauthorized(why)))?;
    let now = shared.clock.now_unix();
    shared.api_keys.authenticate(secret, now).map_err(|denied| {
        Box::new(match denied {
            Denied::Unknown => {
                unauthorized("the api key is not valid (unknown, deleted or regenerated)")
            }
            Denied::Expired => unauthorized("the api key has expired"),
        })
    })
}

/// Like [`caller`], and the key must hold `write:apikeys` (else 403).
pub(super) fn key_manager(shared: &IssuerState, headers: &HeaderMap) -> Result<Caller, Refused> {
    let caller = caller(shared, headers)?;
    if !caller.holds(WRITE_APIKEYS_SCOPE) {
        let message = format!("managing api keys needs a key holding `{WRITE_APIKEYS_SCOPE}`");
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            &message,
            vec![Issue::new("authorization", message.as_str())],
        )));
    }
    Ok(caller)
}

/// The secret of the one `Authorization: Bearer <secret>` header; else why not.
fn presented_secret(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err("no api key was presented"),
        (Some(_), Some(_)) => return Err("more than one authorization header"),
        (Some(value), None) => value,
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim_matches(' '))
        .filter(|key| !key.is_empty())
        .ok_or("the authorization header is not `Bearer <api key>`")
}

fn unauthorized(message: &'static str) -> Response<String> {
    let mut response = refusal(
        StatusCode::UNAUTHORIZED,
        message,
        vec![Issue::new("authorization", message)],
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The body as a JSON object: 413 past [`MAX_BODY_BYTES`] (announced or streamed), 400 when
/// it is unreadable, not JSON, or not an object.
pub(super) async fn json_object(request: Request) -> Result<Map<String, Value>, Refused> {
    let declared_too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY_BYTES as u64);
    if declared_too_large {
        return Err(Box::new(body_too_large()));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(Box::new(body_too_large())),
        Err(_) => {
            let issue = Issue::new("", "the request body could not be read");
            return Err(Box::new(bad_request(vec![issue])));
        }
    };
    parse_object(&body).map_err(|issue| Box::new(bad_request(vec![issue])))
}

/// `body` as a JSON object, or the one problem with it.
pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Issue> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Issue::new("", "the body must be a json object")),
        Err(_) => Err(Issue::new("", "the body is not valid json")),
    }
}
