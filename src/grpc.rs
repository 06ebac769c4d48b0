//! gRPC services (tonic) behind the layers: refusals the gRPC way, and the verified user in
//! a handler.
//!
//! # Refusals
//!
//! A gRPC client cannot read an HTTP 401 with a JSON body: it wants HTTP 200 with the
//! outcome in `grpc-status` and `grpc-message`. So a refused request whose `content-type`
//! starts with `application/grpc` is answered that way, as a trailers-only response (the
//! status in the headers, no body):
//!
//! | refusal | `grpc-status` |
//! |---|---|
//! | no credentials, a malformed `Authorization`, any invalid token | 16 `UNAUTHENTICATED` |
//! | a missing permission, an `X-On-Behalf-Of` that names someone else | 7 `PERMISSION_DENIED` |
//! | no usable key set | 14 `UNAVAILABLE` |
//! | the layer missing in front of what needs it (a wiring bug), a claim check that panicked | 13 `INTERNAL` |
//!
//! `grpc-message` is the error's description, percent-encoded as the gRPC spec asks.
//!
//! **Automatic** for the standard answer: [`Mka1AuthLayer`](crate::Mka1AuthLayer) and
//! [`RequirePermissionsLayer`](crate::RequirePermissionsLayer) mark the [`Rejection`] of a
//! gRPC request ([`Rejection::is_grpc`]), and the standard answer honours the mark. A
//! service that speaks both (say tonic routes in an axum router) needs nothing more, and a
//! REST client never sends `application/grpc`, so nobody gets the wrong kind of answer. A
//! custom [`Reject`] sees the mark too.
//!
//! **[`GrpcReject`] for tonic's own server**: the standard answer builds its body from a
//! `String`, and `tonic::body::Body` cannot be made from one; `GrpcReject` answers every
//! refusal the gRPC way with an empty (`Default`) body, which is what a tonic server
//! needs. With the `tonic` feature the layers' services are tonic `NamedService`s, so they
//! wrap a generated server directly:
//!
//! ```
//! # #[cfg(feature = "tonic")]
//! # fn demo<S>(verifier: mka1_auth::Verifier, greeter: S)
//! # where S: tonic::server::NamedService + Clone {
//! use mka1_auth::grpc::GrpcReject;
//! use mka1_auth::{Mka1AuthLayer, RequirePermissionsLayer};
//! use tower::Layer;
//!
//! // tonic::transport::Server::builder()
//! //     .layer(Mka1AuthLayer::new(verifier).reject_with(GrpcReject))
//! //     .add_service(greeter)
//! let auth = Mka1AuthLayer::new(verifier).reject_with(GrpcReject);
//! let greeter = RequirePermissionsLayer::new(["agent:read"])
//!     .reject_with(GrpcReject)
//!     .layer(greeter);
//! # let _ = (auth, greeter);
//! # }
//! ```
//!
//! # The verified user in a handler
//!
//! tonic hands a handler the request's extensions, where the layer put [`OnBehalfOf`],
//! [`VerifiedToken`] and [`BearerToken`](crate::BearerToken):
//! `request.extensions().get::<OnBehalfOf>()`. With the `tonic` feature,
//! [`on_behalf_of`] and [`verified_token`] read them and answer with a `tonic::Status` when
//! they are missing, so a handler can use `?`.
//!
//! Calling onward over gRPC works through [`Outbound`](crate::outbound::Outbound): wrap the
//! tonic `Channel` in the outbound layer and give the client an absolute origin (tonic's
//! `Grpc::with_origin`, or a generated client's `with_origin`), and put the end user in the
//! request's extensions (`request.extensions_mut().insert(user)`, or
//! [`carry_identity`](crate::outbound::carry_identity)); each call then carries
//! `authorization` and `x-on-behalf-of` metadata. See `examples/grpc_service.rs`.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response};

#[cfg(feature = "tonic")]
use crate::claims::{OnBehalfOf, VerifiedToken};
use crate::error::ErrorKind;
use crate::rejection::{Reject, Rejection};

/// The `grpc-status` header.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The `grpc-message` header.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Whether the request is a gRPC call: its `content-type` starts with `application/grpc`
/// (`application/grpc+proto`, `application/grpc-web` and the like included; case ignored).
///
/// ```
/// use http::HeaderMap;
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/grpc+proto".parse().unwrap());
/// assert!(mka1_auth::grpc::is_grpc(&headers));
/// headers.insert("content-type", "application/json".parse().unwrap());
/// assert!(!mka1_auth::grpc::is_grpc(&headers));
/// ```
pub fn is_grpc(headers: &HeaderMap) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value.len() >= GRPC.len() && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
    })
}

/// The gRPC status code a refusal of this kind is answered with (see the
/// [module docs](self)).
///
/// ```
/// use mka1_auth::{grpc, ErrorKind};
/// assert_eq!(grpc::status_code(ErrorKind::Expired), 16);
/// assert_eq!(grpc::status_code(ErrorKind::InsufficientPermission), 7);
/// assert_eq!(grpc::status_code(ErrorKind::KeysUnavailable), 14);
/// ```
pub fn status_code(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InsufficientPermission | ErrorKind::OnBehalfOfMismatch => 7,
        ErrorKind::KeysUnavailable => 14,
        ErrorKind::MissingLayer | ErrorKind::CheckPanicked => 13,
        _ => 16,
    }
}

/// The gRPC answer to `rejection`, with `body` (empty, for a trailers-only response): HTTP
/// 200, `content-type: application/grpc`, `grpc-status` and the percent-encoded
/// `grpc-message`.
///
/// ```
/// use mka1_auth::{grpc, Error, ErrorKind, Rejection};
///
/// let response = grpc::response(Rejection::new(Error::new(ErrorKind::Expired)), ());
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "16");
/// assert_eq!(response.headers()["grpc-message"], "token has expired");
/// ```
pub fn response<B>(rejection: Rejection, body: B) -> Response<B> {
    let error = rejection.into_error();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
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

/// Answers every refusal the gRPC way (see the [module docs](self)), with an empty body of
/// any `Default` type: for tonic's own server, whose body cannot be made from a `String`.
///
/// ```
/// use mka1_auth::{grpc::GrpcReject, Error, ErrorKind, Reject, Rejection};
///
/// let rejection = Rejection::new(Error::new(ErrorKind::InsufficientPermission));
/// let response: http::Response<()> = GrpcReject.reject(rejection);
/// assert_eq!(response.headers()["grpc-status"], "7");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcReject;

impl<B: Default> Reject<B> for GrpcReject {
    fn reject(&self, rejection: Rejection) -> Response<B> {
        response(rejection, B::default())
    }
}

/// The verified end user of a request that came through the layer, for a tonic handler; a
/// `tonic::Status` otherwise: `UNAUTHENTICATED` for an anonymous request (optional mode),
/// `INTERNAL` when no layer ran (a wiring bug).
///
/// ```
/// # #[cfg(feature = "tonic")]
/// async fn hello(request: tonic::Request<()>) -> Result<tonic::Response<String>, tonic::Status> {
///     let user = mka1_auth::grpc::on_behalf_of(&request)?;
///     Ok(tonic::Response::new(format!("hello {user}")))
/// }
/// ```
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub fn on_behalf_of<T>(request: &tonic::Request<T>) -> Result<&OnBehalfOf, tonic::Status> {
    crate::guard::required(request.extensions()).map_err(tonic_status)
}

/// The verified token of a request that came through the layer, for a tonic handler; a
/// `tonic::Status` otherwise (see [`on_behalf_of`]).
///
/// ```
/// # #[cfg(feature = "tonic")]
/// fn can_write<T>(request: &tonic::Request<T>) -> Result<bool, tonic::Status> {
///     let token = mka1_auth::grpc::verified_token(request)?;
///     Ok(token.permissions().contains("agent:write"))
/// }
/// ```
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub fn verified_token<T>(request: &tonic::Request<T>) -> Result<&VerifiedToken, tonic::Status> {
    crate::guard::required(request.extensions()).map_err(tonic_status)
}

/// The `tonic::Status` for a refusal: its gRPC code and description.
///
/// ```
/// # #[cfg(feature = "tonic")] {
/// use mka1_auth::{grpc, Error, ErrorKind, Rejection};
/// let status = grpc::tonic_status(Rejection::new(Error::new(ErrorKind::KeysUnavailable)));
/// assert_eq!(status.code(), tonic::Code::Unavailable);
/// # }
/// ```
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub fn tonic_status(rejection: Rejection) -> tonic::Status {
    rejection.trace();
    let error = rejection.into_error();
    let code = tonic::Code::from_i32(i32::from(status_code(error.kind())));
    tonic::Status::new(code, error.to_string())
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, R> tonic::server::NamedService
    for crate::layer::Mka1Auth<S, R>
{
    const NAME: &'static str = S::NAME;
}

#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService, R> tonic::server::NamedService
    for crate::permissions::RequirePermissions<S, R>
{
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a b%c"), "a b%25c");
        assert_eq!(percent_encode("é\n"), "%C3%A9%0A");
        assert_eq!(percent_encode("`kid`"), "`kid`");
    }

    #[test]
    fn only_grpc_content_types_are_grpc() {
        let is = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            is_grpc(&headers)
        };
        assert!(is("application/grpc"));
        assert!(is("Application/GRPC+proto"));
        assert!(is("application/grpc-web+proto"));
        assert!(!is("application/json"));
        assert!(!is("application/grp"));
        assert!(!is_grpc(&HeaderMap::new()));
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
        assert_eq!(status_code(MissingLayer), 13);
        assert_eq!(status_code(CheckPanicked), 13);
        assert_eq!(status_code(CheckFailed), 16);
    }
}
