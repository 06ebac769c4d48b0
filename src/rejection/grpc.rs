//! The gRPC wire answer to a refusal, beside the standard one: which requests are gRPC calls,
//! and the trailers-only response carrying `grpc-status`. When a layer gives it is told in
//! [`crate::grpc`], which re-exports [`Call`] and [`GrpcReject`].

use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, Request, Response, Version};

use super::{Reject, Rejection};
use crate::error::ErrorKind;

/// The `grpc-status` header.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The `grpc-message` header.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The kind of gRPC call a request is (see the [module docs](crate::grpc)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// gRPC: `POST` over HTTP/2, `content-type: application/grpc` (`+proto`, `;...`).
    Grpc,
    /// gRPC-web: `POST` over HTTP/1.1 or 2, `content-type: application/grpc-web` (`+proto`,
    /// `;...`).
    GrpcWeb,
    /// gRPC-web in base64 text: as [`GrpcWeb`](Call::GrpcWeb), with
    /// `content-type: application/grpc-web-text` (`+proto`, `;...`).
    GrpcWebText,
}

impl Call {
    /// The `content-type` of the gRPC answer to such a call.
    ///
    /// ```
    /// use mka1_auth::grpc::Call;
    /// assert_eq!(Call::Grpc.content_type(), "application/grpc");
    /// assert_eq!(Call::GrpcWebText.content_type(), "application/grpc-web-text");
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Call::Grpc => "application/grpc",
            Call::GrpcWeb => "application/grpc-web",
            Call::GrpcWebText => "application/grpc-web-text",
        }
    }
}

/// The gRPC call `request` is, if it is one (see the table in the [module docs](crate::grpc)):
/// `POST`, the HTTP version the protocol runs on, and a `content-type` that is exactly the
/// protocol's media type (case ignored), or that followed by `+` (a codec, `+proto`) or `;`
/// (parameters). Whether a layer answers it the gRPC way is the layer's choice
/// ([`Mka1AuthLayer::grpc_answers`](crate::Mka1AuthLayer::grpc_answers)).
pub(crate) fn call_of<B>(request: &Request<B>) -> Option<Call> {
    if request.method() != Method::POST {
        return None;
    }
    let content_type = request.headers().get(CONTENT_TYPE)?.as_bytes();
    let call = if is_media_type(content_type, b"application/grpc") {
        Call::Grpc
    } else if is_media_type(content_type, b"application/grpc-web") {
        Call::GrpcWeb
    } else if is_media_type(content_type, b"application/grpc-web-text") {
        Call::GrpcWebText
    } else {
        return None;
    };
    let version = request.version();
    let version_fits = match call {
        Call::Grpc => version == Version::HTTP_2,
        Call::GrpcWeb | Call::GrpcWebText => {
            version == Version::HTTP_11 || version == Version::HTTP_2
        }
    };
    version_fits.then_some(call)
}

/// Whether `value` is `media_type` (case ignored), alone or followed by `+` or `;`.
fn is_media_type(value: &[u8], media_type: &[u8]) -> bool {
    value.len() >= media_type.len()
        && value[..media_type.len()].eq_ignore_ascii_case(media_type)
        && matches!(value.get(media_type.len()), None | Some(b'+' | b';'))
}

/// The gRPC status code a refusal of this kind is answered with (see the
/// [module docs](crate::grpc)).
pub(crate) fn status_code(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InsufficientPermission | ErrorKind::OnBehalfOfMismatch => 7,
        ErrorKind::KeysUnavailable | ErrorKind::RevocationUnavailable => 14,
        ErrorKind::MissingLayer | ErrorKind::CheckPanicked => 13,
        _ => 16,
    }
}

/// The gRPC answer to `rejection`, with `body` (empty, for a trailers-only response): HTTP
/// 200, the `content-type` of the call the rejection is marked with ([`Rejection::grpc`];
/// `application/grpc` when unmarked), `grpc-status` and the percent-encoded `grpc-message`.
///
/// It answers whatever it is given with 200: the layers call it only for a call they opted
/// into (see the [module docs](crate::grpc)).
pub(crate) fn response<B>(rejection: Rejection, body: B) -> Response<B> {
    let call = rejection.grpc().unwrap_or(Call::Grpc);
    let error = rejection.into_error();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(call.content_type()));
    headers.insert(GRPC_STATUS, HeaderValue::from(status_code(error.kind())));
    if let Ok(message) = HeaderValue::try_from(percent_encode(&error.to_string())) {
        headers.insert(GRPC_MESSAGE, message);
    }
    response.extensions_mut().insert(error);
    response
}

/// The gRPC spec's percent-encoding of `grpc-message`: bytes outside printable ASCII (space
/// included in it), and `%` itself, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The standard answer with an empty body of any `Default` type: for tonic's own server,
/// whose body cannot be made from a `String`. A rejection marked as a gRPC call
/// ([`Rejection::grpc`], set by a layer that opted in) gets the gRPC answer; any other the
/// RFC 6750 status and headers, without the JSON body. See the [module docs](crate::grpc).
///
/// ```
/// use mka1_auth::grpc::{Call, GrpcReject};
/// use mka1_auth::{Error, ErrorKind, Reject, Rejection};
///
/// let rejection = Rejection::new(Error::new(ErrorKind::InsufficientPermission));
/// let response: http::Response<()> = GrpcReject.reject(rejection.clone().with_grpc(Some(Call::Grpc)));
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "7");
/// let response: http::Response<()> = GrpcReject.reject(rejection);
/// assert_eq!(response.status(), 403);
/// assert!(response.headers().get("grpc-status").is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcReject;

impl<B: Default> Reject<B> for GrpcReject {
    fn reject(&self, rejection: Rejection) -> Response<B> {
        if rejection.grpc().is_some() {
            response(rejection, B::default())
        } else {
            rejection.into_status_response(B::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_grpc_answer_is_200_with_content_type_status_and_message() {
        let response = response(Rejection::new(Error::new(ErrorKind::Expired)), ());
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(response.headers()["grpc-message"], "token has expired");
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%c"), "a b%25c");
        assert_eq!(percent_encode("é\n"), "%C3%A9%0A");
        assert_eq!(percent_encode("`kid`"), "`kid`");
    }

    fn call(method: Method, version: Version, content_type: Option<&str>) -> Option<Call> {
        let mut request = Request::builder().method(method).version(version);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        call_of(&request.body(()).unwrap())
    }

    #[test]
    fn only_post_with_an_exact_grpc_media_type_is_a_grpc_call() {
        let h2 = |content_type| call(Method::POST, Version::HTTP_2, Some(content_type));
        for grpc in [
            "application/grpc",
            "APPLICATION/GRPC",
            "Application/Grpc+proto",
            "application/grpc+json",
            "application/grpc;charset=utf-8",
        ] {
            assert_eq!(h2(grpc), Some(Call::Grpc), "{grpc}");
        }
        for web in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/GRPC-WEB;x=y",
        ] {
            assert_eq!(h2(web), Some(Call::GrpcWeb), "{web}");
        }
        for text in [
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ] {
            assert_eq!(h2(text), Some(Call::GrpcWebText), "{text}");
        }
        for other in [
            "application/grpcx",
            "application/grpc-",
            "application/grpc-webx",
            "application/grpc-web-textx",
            "application/grpc-web-text-x",
            "application/grpc ",
            "application/grpc ;charset=utf-8",
            "application/grp",
            "application/json",
            " application/grpc",
            "text/grpc",
            "",
        ] {
            assert_eq!(h2(other), None, "{other:?}");
        }
        assert_eq!(call(Method::POST, Version::HTTP_2, None), None);
    }

    #[test]
    fn grpc_needs_post_over_http2_and_grpc_web_http11_or_2() {
        let grpc = Some("application/grpc");
        let web = Some("application/grpc-web");
        let text = Some("application/grpc-web-text");
        for method in [Method::GET, Method::PUT, Method::HEAD, Method::OPTIONS] {
            for content_type in [grpc, web, text] {
                assert_eq!(call(method.clone(), Version::HTTP_2, content_type), None);
                assert_eq!(call(method.clone(), Version::HTTP_11, content_type), None);
            }
        }
        for version in [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_3,
        ] {
            assert_eq!(call(Method::POST, version, grpc), None, "{version:?}");
        }
        for version in [Version::HTTP_11, Version::HTTP_2] {
            assert_eq!(call(Method::POST, version, web), Some(Call::GrpcWeb));
            assert_eq!(call(Method::POST, version, text), Some(Call::GrpcWebText));
        }
        for version in [Version::HTTP_09, Version::HTTP_10, Version::HTTP_3] {
            assert_eq!(call(Method::POST, version, web), None, "{version:?}");
        }
    }

    #[test]
    fn every_kind_has_its_grpc_status() {
        use ErrorKind::*;
        for kind in [
            MissingCredentials,
            InvalidRequest,
            Malformed,
            Expired,
            UnknownKeyId,
        ] {
            assert_eq!(status_code(kind), 16, "{kind:?}");
        }
        assert_eq!(status_code(InsufficientPermission), 7);
        assert_eq!(status_code(OnBehalfOfMismatch), 7);
        assert_eq!(status_code(KeysUnavailable), 14);
        assert_eq!(status_code(RevocationUnavailable), 14);
        assert_eq!(status_code(MissingLayer), 13);
        assert_eq!(status_code(CheckPanicked), 13);
        assert_eq!(status_code(CheckFailed), 16);
    }
}
