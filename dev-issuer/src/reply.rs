//! The dev issuer's answers: JSON bodies and MKA1-shaped refusals.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::MAX_BODY_BYTES;

/// A refusal on its way out of a helper: boxed, as a response is large to move around in
/// every `Result`.
pub(super) type Refused = Box<Response<String>>;

/// One problem with a request, MKA1 style: a dot-path into the body and what is wrong there.
pub(super) struct Issue {
    pub(super) path: String,
    pub(super) message: String,
}

impl Issue {
    pub(super) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error response: `{"message", "detail": [{path, message}], "details": (the same)}`.
pub(super) fn refusal(status: StatusCode, message: &str, issues: Vec<Issue>) -> Response<String> {
    let detail: Vec<Value> = issues
        .into_iter()
        .map(|issue| json!({"path": issue.path, "message": issue.message}))
        .collect();
    json_response(
        status,
        &json!({"message": message, "detail": detail, "details": detail}),
    )
}

pub(super) fn bad_request(issues: Vec<Issue>) -> Response<String> {
    refusal(StatusCode::BAD_REQUEST, "invalid request body", issues)
}

pub(super) fn body_too_large() -> Response<String> {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
        vec![Issue::new(
            "",
            format!("the body may be at most {MAX_BODY_BYTES} bytes"),
        )],
    )
}

/// A 405; the router adds `Allow`.
pub(super) fn method_not_allowed() -> Response<String> {
    refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
        Vec::new(),
    )
}
