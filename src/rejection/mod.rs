//! Turning a refused request into an HTTP answer, as RFC 6750 section 3 describes.
//!
//! | situation | [`ErrorKind`] | status | `WWW-Authenticate` |
//! |---|---|---|---|
//! | no credentials, or another scheme (`Basic …`) | `MissingCredentials` | 401 | `Bearer realm="…"` |
//! | malformed request | `InvalidRequest` | 400 | `… error="invalid_request"` |
//! | token refused | any [`ErrorKind::is_invalid_token`] kind | 401 | `… error="invalid_token"` |
//! | permission missing | `InsufficientPermission` | 403 | `… error="insufficient_scope", scope="…"` |
//! | `X-On-Behalf-Of` disagrees | `OnBehalfOfMismatch` | 403 | `… error="invalid_token"` |
//! | no usable key set | `KeysUnavailable` | 503 | none; `Retry-After` |
//! | revocation rules not loaded yet | `RevocationUnavailable` | 503 | none; `Retry-After` |
//! | layer missing or in the wrong order (wiring bug) | `MissingLayer` | 500 | none |
//! | a claim check of the service panicked | `CheckPanicked` | 500 | none |
//!
//! Each answer carries a small JSON body, `{"error": "…", "error_description": "…"}`, and
//! the [`Error`] itself in its response extensions.
//!
//! The answer is replaceable: give the layer any [`Reject`] implementation, for example a
//! closure `Fn(Rejection) -> http::Response<B>`. [`StandardReject`] is the default.
//!
//! [`Mka1AuthLayer::reject_with`](crate::Mka1AuthLayer::reject_with) applies to every
//! answer given behind that layer, not only its own: those of the extractors,
//! [`RequirePermissionsLayer`](crate::RequirePermissionsLayer) (unless it has a
//! `reject_with` of its own) and a [`Rejection`] a handler returns. Those are rendered the
//! standard way where they happen, marked, and rendered again through the layer's
//! [`Reject`] as the response passes back out through it, in the layer's realm; headers
//! that layers in between added (other than `Content-*`, `Grpc-*`, `WWW-Authenticate` and
//! `Retry-After`, which describe the standard answer) and response extensions are kept.
//! What no authentication layer wraps (an extractor on a route without one, a permission
//! layer outside it) keeps the standard answer, since no custom one is known there.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use self::grpc::Call;
use crate::error::{Error, ErrorKind};

pub(crate) mod grpc;

/// The realm named in `WWW-Authenticate` when none is configured.
pub(crate) const DEFAULT_REALM: &str = "mka1";

/// A layer's realm, as it rides on every request the layer lets through: the default one
/// costs no shared reference count per request (one `Arc` clone and drop, two atomic
/// operations, on a repeated token's path), a configured one is shared.
#[derive(Clone, Default)]
pub(crate) struct Realm(Option<Arc<str>>);

impl Realm {
    /// The realm `name`.
    pub(crate) fn named(name: Arc<str>) -> Self {
        Realm(Some(name))
    }

    /// The realm's name, shared, for a [`Rejection`] (the refusal path only).
    pub(crate) fn to_arc(&self) -> Arc<str> {
        static DEFAULT: std::sync::LazyLock<Arc<str>> =
            std::sync::LazyLock::new(|| Arc::from(DEFAULT_REALM));
        self.0.clone().unwrap_or_else(|| Arc::clone(&DEFAULT))
    }
}

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.as_deref().unwrap_or(DEFAULT_REALM).fmt(f)
    }
}

/// How long a client is asked to wait (`Retry-After`) when no usable key set is held and
/// the error does not say: 30 seconds, the remote key set's refetch cooldown.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A refused request, with everything needed to answer it.
///
/// The layer builds one and hands it to its [`Reject`] implementation; handlers can return
/// one too (with the `axum` feature it is an `IntoResponse`).
///
/// ```
/// use http::StatusCode;
/// use mka1_auth::{Error, ErrorKind, Rejection};
///
/// let rejection = Rejection::new(Error::new(ErrorKind::Expired)).with_realm("orders");
/// assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
/// let header = rejection.www_authenticate().unwrap();
/// assert_eq!(
///     header.to_str().unwrap(),
///     r#"Bearer realm="orders", error="invalid_token", error_description="token has expired""#,
/// );
/// let response: http::Response<String> = rejection.into_http_response();
/// assert!(response.body().contains(r#""error":"invalid_token""#));
/// ```
#[derive(Debug, Clone)]
pub struct Rejection {
    error: Error,
    /// `None` until set: the default realm, or the realm of the layer it passes through.
    realm: Option<Arc<str>>,
    scope: Option<Arc<str>>,
    retry_after: Duration,
    grpc: Option<Call>,
}

impl Rejection {
    /// A rejection for `error`, in the default realm (or, when a handler returns it behind
    /// an [`Mka1AuthLayer`](crate::Mka1AuthLayer), that layer's realm).
    pub fn new(error: Error) -> Self {
        Rejection {
            error,
            realm: None,
            scope: None,
            retry_after: DEFAULT_RETRY_AFTER,
            grpc: None,
        }
    }

    /// An [`ErrorKind::InsufficientPermission`] rejection naming every permission the route
    /// needs (sent as `scope`, space-separated).
    ///
    /// ```
    /// use mka1_auth::Rejection;
    ///
    /// let rejection = Rejection::insufficient(["agent:read", "agent:write"]);
    /// assert_eq!(rejection.scope(), Some("agent:read agent:write"));
    /// assert_eq!(rejection.status(), http::StatusCode::FORBIDDEN);
    /// ```
    pub fn insufficient<'a>(needed: impl IntoIterator<Item = &'a str>) -> Self {
        let scope = needed.into_iter().collect::<Vec<_>>().join(" ");
        Rejection::new(Error::new(ErrorKind::InsufficientPermission)).with_scope(scope)
    }

    /// An [`ErrorKind::InsufficientPermission`] rejection for a route that any one of
    /// `suffices` would open: they are sent as `scope` (a token with all of them passes),
    /// and the description says that any one would do.
    ///
    /// ```
    /// use mka1_auth::Rejection;
    ///
    /// let rejection = Rejection::insufficient_any(["agent:read", "agent:admin"]);
    /// assert_eq!(rejection.scope(), Some("agent:read agent:admin"));
    /// assert_eq!(
    ///     rejection.error().to_string(),
    ///     "token lacks a required permission: any one of agent:read, agent:admin would do",
    /// );
    /// ```
    pub fn insufficient_any<'a>(suffices: impl IntoIterator<Item = &'a str>) -> Self {
        let names: Vec<&str> = suffices.into_iter().collect();
        let detail = format!("any one of {} would do", names.join(", "));
        let error = Error::with_detail(ErrorKind::InsufficientPermission, detail);
        Rejection::new(error).with_scope(names.join(" "))
    }

    /// Name this realm in `WWW-Authenticate`.
    #[must_use]
    pub fn with_realm(mut self, realm: impl Into<Arc<str>>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Send these permissions (space-separated) as `scope` on an `insufficient_scope` answer.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<Arc<str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Ask the client to wait this long on a 503 answer (rounded up to whole seconds).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Answer the gRPC way for this kind of call ([`crate::grpc`]): HTTP 200 with
    /// `grpc-status`; `None` for the standard answer. The layers set it only for a real
    /// gRPC call, and only when opted in
    /// ([`Mka1AuthLayer::grpc_answers`](crate::Mka1AuthLayer::grpc_answers)).
    ///
    /// ```
    /// use mka1_auth::grpc::Call;
    /// use mka1_auth::{Error, ErrorKind, Rejection};
    ///
    /// let rejection = Rejection::new(Error::new(ErrorKind::Expired));
    /// assert_eq!(rejection.grpc(), None);
    /// let response: http::Response<String> =
    ///     rejection.with_grpc(Some(Call::Grpc)).into_http_response();
    /// assert_eq!(response.headers()["grpc-status"], "16");
    /// ```
    #[must_use]
    pub fn with_grpc(mut self, call: Option<Call>) -> Self {
        self.grpc = call;
        self
    }

    /// The gRPC call this refusal is answered as, if any (see [`with_grpc`](Self::with_grpc)).
    pub fn grpc(&self) -> Option<Call> {
        self.grpc
    }

    /// Why the request was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Take the error out.
    pub fn into_error(self) -> Error {
        self.error
    }

    /// The realm named in `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or(DEFAULT_REALM)
    }

    /// The permissions the route needs, for `insufficient_scope` answers.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `Retry-After` delay, sent only on 503 answers.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The status code RFC 6750 asks for (see the [module docs](self)).
    pub fn status(&self) -> StatusCode {
        match self.error.kind() {
            ErrorKind::MissingCredentials => StatusCode::UNAUTHORIZED,
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::InsufficientPermission | ErrorKind::OnBehalfOfMismatch => {
                StatusCode::FORBIDDEN
            }
            ErrorKind::KeysUnavailable | ErrorKind::RevocationUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            kind if kind.is_invalid_token() => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OAuth error code for the body's `error` member (and `WWW-Authenticate`, when the
    /// RFC gives one).
    pub fn error_code(&self) -> &'static str {
        match self.error.kind() {
            ErrorKind::MissingCredentials => "missing_credentials",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InsufficientPermission => "insufficient_scope",
            ErrorKind::OnBehalfOfMismatch => "invalid_token",
            ErrorKind::KeysUnavailable | ErrorKind::RevocationUnavailable => {
                "temporarily_unavailable"
            }
            kind if kind.is_invalid_token() => "invalid_token",
            _ => "server_error",
        }
    }

    /// The `WWW-Authenticate` challenge, or `None` for 5xx answers.
    ///
    /// Quotes and backslashes in the realm and scope are escaped; in the description (where
    /// RFC 6750 forbids them) they become `'`, and anything outside printable ASCII is dropped.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        if self.status().is_server_error() {
            return None;
        }
        let mut value = String::with_capacity(96);
        value.push_str("Bearer realm=\"");
        push_escaped(&mut value, self.realm());
        value.push('"');
        if self.error.kind() != ErrorKind::MissingCredentials {
            let _ = write!(value, ", error=\"{}\"", self.error_code());
            value.push_str(", error_description=\"");
            push_description(&mut value, &self.error.to_string());
            value.push('"');
            if let (ErrorKind::InsufficientPermission, Some(scope)) =
                (self.error.kind(), &self.scope)
            {
                value.push_str(", scope=\"");
                push_escaped(&mut value, scope);
                value.push('"');
            }
        }
        // Every byte pushed is printable ASCII, so this cannot fail; fall back to the bare
        // scheme rather than panic.
        Some(HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer")))
    }

    /// The JSON body: `{"error": …, "error_description": …}`, plus `scope` when known.
    pub fn json_body(&self) -> String {
        let mut body = serde_json::json!({
            "error": self.error_code(),
            "error_description": self.error.to_string(),
        });
        if let (ErrorKind::InsufficientPermission, Some(scope)) = (self.error.kind(), &self.scope) {
            body["scope"] = serde_json::Value::from(&**scope);
        }
        body.to_string()
    }

    /// The standard answer: status, `WWW-Authenticate` or `Retry-After`, JSON body, and the
    /// [`Error`] in the response extensions.
    ///
    /// Any body type that can be made from a `String` works: axum's `Body`,
    /// `http_body_util::Full<Bytes>`, `String` itself.
    ///
    /// A rejection marked as a gRPC call ([`grpc`](Self::grpc)) gets the gRPC answer
    /// instead: see [`crate::grpc`].
    pub fn into_http_response<B: From<String>>(self) -> Response<B> {
        if self.grpc.is_some() {
            return grpc::response(self, B::from(String::new()));
        }
        let body = B::from(self.json_body());
        let mut response = self.into_status_response(body);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    /// The RFC 6750 status, `WWW-Authenticate` or `Retry-After`, and the [`Error`] in the
    /// extensions, with `body` (whatever its type).
    pub(crate) fn into_status_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        if let Some(challenge) = self.www_authenticate() {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response.extensions_mut().insert(self.error);
        response
    }

    /// Emit the tracing event for this rejection: the error kind, never the token.
    pub(crate) fn trace(&self) {
        let kind = self.error.kind();
        let status = self.status().as_u16();
        if self.status().is_server_error() {
            tracing::warn!(?kind, status, error = %self.error, "mka1-auth rejected a request");
        } else {
            tracing::debug!(?kind, status, error = %self.error, "mka1-auth rejected a request");
        }
    }
}

/// Answer `rejection` with `reject`: emit the tracing event, build the response, and put the
/// [`Error`] in its extensions.
pub(crate) fn respond<B, R: Reject<B> + ?Sized>(reject: &R, rejection: Rejection) -> Response<B> {
    rejection.trace();
    let error = rejection.error().clone();
    let mut response = reject.reject(rejection);
    response.extensions_mut().insert(error);
    response
}

/// Marks an answer rendered the standard way behind an authentication layer (by an
/// extractor, the permission layer, or a handler's [`Rejection`]): the layer renders it
/// again through its own [`Reject`] ([`answer_behind`]).
#[derive(Clone)]
pub(crate) struct Pending(pub(crate) Rejection);

/// Headers of a standard answer that describe it (its body, challenge, `Retry-After`, or
/// gRPC status), and so do not carry over to another.
fn describes_the_answer(name: &http::HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("content-")
        || name.starts_with("grpc-")
        || name == WWW_AUTHENTICATE
        || name == RETRY_AFTER
}

/// The authentication layer's last look at a response from behind it: one marked
/// [`Pending`] is rendered again through `reject`, in `realm` unless it named its own, as
/// the gRPC call `call` (the layer's choice for this request) unless it named one.
/// The headers layers in between added (but those describing the standard answer) and
/// the response extensions are kept. Any other response passes unchanged.
#[inline]
pub(crate) fn answer_behind<B, R: Reject<B> + ?Sized>(
    reject: &R,
    realm: &Realm,
    call: Option<Call>,
    mut response: Response<B>,
) -> Response<B> {
    let Some(Pending(mut rejection)) = response.extensions_mut().remove::<Pending>() else {
        return response;
    };
    if rejection.realm.is_none() {
        rejection.realm = Some(realm.to_arc());
    }
    rejection.grpc = rejection.grpc.or(call);
    let error = rejection.error().clone();
    let mut answer = reject.reject(rejection);
    let (parts, _) = response.into_parts();
    for name in parts.headers.keys() {
        if !describes_the_answer(name) && !answer.headers().contains_key(name) {
            for value in parts.headers.get_all(name) {
                answer.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    let mut extensions = parts.extensions;
    extensions.extend(std::mem::take(answer.extensions_mut()));
    extensions.insert(error);
    *answer.extensions_mut() = extensions;
    answer
}

/// Quoted-string content: `"` and `\` escaped, anything not printable ASCII dropped.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
}

/// RFC 6750 `error_description`: printable ASCII except `"` and `\`.
fn push_description(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' | '\\' => out.push('\''),
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
}

/// Builds the response for a refused request. Implement it to replace the standard answer;
/// any `Fn(Rejection) -> http::Response<B>` closure already does.
///
/// Whatever it returns, the layer adds the [`Error`] to the response extensions.
///
/// ```
/// use http::{Response, StatusCode};
/// use mka1_auth::{Mka1AuthLayer, Rejection, Verifier};
///
/// # fn demo(verifier: Verifier) {
/// // Plain-text answers, keeping the standard status and WWW-Authenticate header.
/// let layer = Mka1AuthLayer::new(verifier).reject_with(|rejection: Rejection| {
///     let mut response = Response::new(rejection.error().to_string());
///     *response.status_mut() = rejection.status();
///     if let Some(challenge) = rejection.www_authenticate() {
///         response.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge);
///     }
///     response
/// });
/// # let _ = layer;
/// # }
/// ```
pub trait Reject<B> {
    /// The response to send instead of calling the inner service.
    fn reject(&self, rejection: Rejection) -> Response<B>;
}

impl<B, F> Reject<B> for F
where
    F: Fn(Rejection) -> Response<B>,
{
    fn reject(&self, rejection: Rejection) -> Response<B> {
        self(rejection)
    }
}

/// The standard answer: [`Rejection::into_http_response`], for any body made from a `String`.
///
/// ```
/// use mka1_auth::{Error, ErrorKind, Reject, Rejection, rejection::StandardReject};
///
/// let response: http::Response<String> =
///     StandardReject.reject(Rejection::new(Error::new(ErrorKind::MissingCredentials)));
/// assert_eq!(response.status(), 401);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardReject;

impl<B: From<String>> Reject<B> for StandardReject {
    fn reject(&self, rejection: Rejection) -> Response<B> {
        rejection.into_http_response()
    }
}

cfg_feature! {
    #![feature = "axum"]

    /// With feature `axum`, a handler can return a [`Rejection`] as its error.
    ///
    /// Like every answer the crate gives, it leaves a `tracing` event (kind and status; a
    /// missing layer, a wiring bug, at `warn`). Behind an
    /// [`Mka1AuthLayer`](crate::Mka1AuthLayer), the layer's realm and `reject_with` apply to it.
    impl axum_core::response::IntoResponse for Rejection {
        fn into_response(self) -> axum_core::response::Response {
            self.trace();
            let pending = Pending(self.clone());
            let mut response = self.into_http_response::<axum_core::body::Body>();
            response.extensions_mut().insert(pending);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Rejection) -> String {
        r.www_authenticate()
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn every_kind_maps_to_a_status_and_code() {
        let cases = [
            (ErrorKind::MissingCredentials, 401, "missing_credentials"),
            (ErrorKind::InvalidRequest, 400, "invalid_request"),
            (ErrorKind::Expired, 401, "invalid_token"),
            (ErrorKind::InvalidSignature, 401, "invalid_token"),
            (ErrorKind::InsufficientPermission, 403, "insufficient_scope"),
            (ErrorKind::OnBehalfOfMismatch, 403, "invalid_token"),
            (ErrorKind::KeysUnavailable, 503, "temporarily_unavailable"),
            (
                ErrorKind::RevocationUnavailable,
                503,
                "temporarily_unavailable",
            ),
            (ErrorKind::Revoked, 401, "invalid_token"),
            (ErrorKind::MissingLayer, 500, "server_error"),
        ];
        for (kind, status, code) in cases {
            let r = Rejection::new(Error::new(kind));
            assert_eq!(r.status().as_u16(), status, "{kind:?}");
            assert_eq!(r.error_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn challenge_escapes_and_sanitizes() {
        let r = Rejection::new(Error::with_detail(
            ErrorKind::InvalidClaim,
            "a \"quoted\" \\ thing\u{e9}\n",
        ))
        .with_realm("my \"realm\"");
        assert_eq!(
            header(&r),
            r#"Bearer realm="my \"realm\"", error="invalid_token", error_description="token has an invalid claim: a 'quoted' ' thing""#
        );
    }

    #[test]
    fn missing_credentials_has_no_error_code() {
        let r = Rejection::new(Error::new(ErrorKind::MissingCredentials));
        assert_eq!(header(&r), r#"Bearer realm="mka1""#);
    }

    #[test]
    fn server_errors_have_no_challenge_and_503_has_retry_after() {
        let r = Rejection::new(Error::new(ErrorKind::KeysUnavailable))
            .with_retry_after(Duration::from_millis(1500));
        assert!(r.www_authenticate().is_none());
        let response: Response<String> = r.into_http_response();
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(
            response.extensions().get::<Error>().unwrap().kind(),
            ErrorKind::KeysUnavailable
        );
        assert!(Rejection::new(Error::new(ErrorKind::MissingLayer))
            .www_authenticate()
            .is_none());
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::insufficient(["agent:read", "a\"b"]);
        assert_eq!(
            header(&r),
            r#"Bearer realm="mka1", error="insufficient_scope", error_description="token lacks a required permission", scope="agent:read a\"b""#
        );
        let body: serde_json::Value = serde_json::from_str(&r.json_body()).unwrap();
        assert_eq!(body["scope"], "agent:read a\"b");
        assert_eq!(body["error"], "insufficient_scope");
    }
}
