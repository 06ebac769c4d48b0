//! gRPC services (tonic) behind the layers: refusals the gRPC way, and the verified user in
//! a handler.
//!
//! # Refusals
//!
//! A gRPC client cannot read an HTTP 401 with a JSON body: it wants HTTP 200 with the
//! outcome in `grpc-status` and `grpc-message`. A service that guards gRPC says so on its
//! layer, [`Mka1AuthLayer::grpc_answers`](crate::Mka1AuthLayer::grpc_answers) (and
//! [`grpc_web_answers`](crate::Mka1AuthLayer::grpc_web_answers) for gRPC-web); then a
//! refused request that is such a call ([`call_of`]) is answered that way, as a
//! trailers-only response (the status in the headers, no body):
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
//! **Opt-in, and only for a real call.** A refusal answered with HTTP 200 is a grant to
//! anything that reads only the status: a forward-auth gateway (nginx `auth_request`,
//! Traefik `ForwardAuth`, Envoy `ext_authz` over HTTP) lets a request through on any 2xx,
//! and passes the client's headers on. So no refusal is a 2xx unless the layer opted in, and
//! even then only a request that is a gRPC call gets it, whatever its headers say otherwise:
//!
//! | call | opt-in | method | HTTP version | `content-type` (case ignored) |
//! |---|---|---|---|---|
//! | [`Call::Grpc`] | `grpc_answers(true)` | `POST` | 2 | `application/grpc`, or followed by `+` or `;` |
//! | [`Call::GrpcWeb`] | `grpc_web_answers(true)` | `POST` | 1.1 or 2 | `application/grpc-web`, or followed by `+` or `;` |
//! | [`Call::GrpcWebText`] | `grpc_web_answers(true)` | `POST` | 1.1 or 2 | `application/grpc-web-text`, or followed by `+` or `;` |
//!
//! Anything else (a `GET`, HTTP/1.1 with `application/grpc`, `application/grpcx`, gRPC-web
//! without its opt-in) gets the standard RFC 6750 answer, so a router that mixes REST and
//! gRPC routes keeps 401 and 403 on its REST routes. Do not opt in on a service that a
//! forward-auth gateway asks for its verdict.
//!
//! [`RequirePermissionsLayer`](crate::RequirePermissionsLayer), the extractors and a
//! handler's [`Rejection`] behind the layer follow the layer's choice: the layer marks the
//! [`Rejection`] ([`Rejection::grpc`]) and the standard answer honours the mark. A
//! permission layer with no authentication layer in front never answers the gRPC way. A
//! custom [`Reject`] sees the mark too.
//!
//! **[`GrpcReject`] for tonic's own server**: the standard answer builds its body from a
//! `String`, and `tonic::body::Body` cannot be made from one; `GrpcReject` is the standard
//! answer with an empty (`Default`) body, which is what a tonic server needs (a call the
//! layer did not mark gets the RFC 6750 status and headers, without the JSON body). With
//! the `tonic` feature the layers' services are tonic `NamedService`s, so they wrap a
//! generated server directly:
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
//! //     .layer(Mka1AuthLayer::new(verifier).grpc_answers(true).reject_with(GrpcReject))
//! //     .add_service(greeter)
//! let auth = Mka1AuthLayer::new(verifier)
//!     .grpc_answers(true)
//!     .reject_with(GrpcReject);
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
use http::{HeaderName, HeaderValue, Method, Request, Response, Version};

#[cfg(feature = "tonic")]
use crate::claims::{OnBehalfOf, VerifiedToken};
use crate::error::ErrorKind;
use crate::layer::Mka1AuthLayer;
use crate::rejection::{Reject, Rejection};

/// The `grpc-status` header.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The `grpc-message` header.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The kind of gRPC call a request is (see [`call_of`]).
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

/// The gRPC call `request` is, if it is one (see the table in the [module docs](self)):
/// `POST`, the HTTP version the protocol runs on, and a `content-type` that is exactly the
/// protocol's media type (case ignored), or that followed by `+` (a codec, `+proto`) or `;`
/// (parameters). Whether a layer answers it the gRPC way is the layer's choice
/// ([`Mka1AuthLayer::grpc_answers`](crate::Mka1AuthLayer::grpc_answers)).
///
/// ```
/// use http::{Method, Request, Version};
/// use mka1_auth::grpc::{call_of, Call};
///
/// let call = |method: Method, version: Version, content_type: &str| {
///     let request = Request::builder()
///         .method(method)
///         .version(version)
///         .header("content-type", content_type)
///         .body(())
///         .unwrap();
///     call_of(&request)
/// };
/// assert_eq!(call(Method::POST, Version::HTTP_2, "application/grpc+proto"), Some(Call::Grpc));
/// assert_eq!(call(Method::POST, Version::HTTP_11, "application/grpc-web"), Some(Call::GrpcWeb));
/// assert_eq!(call(Method::GET, Version::HTTP_2, "application/grpc"), None);
/// assert_eq!(call(Method::POST, Version::HTTP_11, "application/grpc"), None);
/// assert_eq!(call(Method::POST, Version::HTTP_2, "application/grpcx"), None);
/// ```
pub fn call_of<B>(request: &Request<B>) -> Option<Call> {
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

/// The layer's gRPC settings (its other settings are in [`crate::layer`]).
impl<R> Mka1AuthLayer<R> {
    /// Answer a refused gRPC call the gRPC way (HTTP 200, `grpc-status`; see
    /// [`grpc`](crate::grpc)): say so on a layer that guards gRPC services. Default `false`:
    /// every refusal is a 401, 403, 400, 500 or 503, whatever the request's headers.
    ///
    /// Only a request that is a gRPC call gets it: `POST` over HTTP/2 with `content-type`
    /// `application/grpc`, or that followed by `+` or `;` ([`grpc::call_of`](crate::grpc::call_of));
    /// anything else keeps the RFC 6750 answer, so REST routes beside gRPC ones keep their
    /// 401 and 403. The answers given behind the layer (the permission layer, the
    /// extractors, a handler's [`Rejection`]) follow this choice. Do not set it on a service
    /// a forward-auth gateway asks for its verdict: a refusal is then a 2xx to a client that
    /// sends a gRPC call.
    ///
    /// ```
    /// use mka1_auth::{grpc::GrpcReject, Mka1AuthLayer, Verifier};
    /// # fn demo(verifier: Verifier) {
    /// // tonic::transport::Server::builder().layer(layer)...
    /// let layer = Mka1AuthLayer::new(verifier).grpc_answers(true).reject_with(GrpcReject);
    /// # let _ = layer;
    /// # }
    /// ```
    #[must_use]
    pub fn grpc_answers(self, answer: bool) -> Self {
        self.edit_grpc(|g| g.grpc = answer)
    }

    /// Answer a refused gRPC-web call the gRPC-web way (HTTP 200, `grpc-status`,
    /// `content-type: application/grpc-web` or `application/grpc-web-text`): say so on a
    /// layer that guards gRPC-web services (a browser client, tonic-web). Default `false`.
    ///
    /// Only `POST` over HTTP/1.1 or HTTP/2 with `content-type` `application/grpc-web` or
    /// `application/grpc-web-text`, alone or followed by `+` or `;`, gets it; see
    /// [`grpc_answers`](Self::grpc_answers), which it does not imply (nor the reverse).
    ///
    /// ```
    /// use mka1_auth::{Mka1AuthLayer, Verifier};
    /// # fn demo(verifier: Verifier) {
    /// let layer = Mka1AuthLayer::new(verifier)
    ///     .grpc_answers(true)
    ///     .grpc_web_answers(true);
    /// # let _ = layer;
    /// # }
    /// ```
    #[must_use]
    pub fn grpc_web_answers(self, answer: bool) -> Self {
        self.edit_grpc(|g| g.web = answer)
    }
}

/// Which gRPC calls a layer answers the gRPC way: none unless it opted in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GrpcAnswers {
    pub(crate) grpc: bool,
    pub(crate) web: bool,
}

impl GrpcAnswers {
    /// The call `request` is, when this layer answers such calls the gRPC way.
    #[inline]
    pub(crate) fn call<B>(self, request: &Request<B>) -> Option<Call> {
        if !self.grpc && !self.web {
            return None;
        }
        call_of(request).filter(|call| match call {
            Call::Grpc => self.grpc,
            Call::GrpcWeb | Call::GrpcWebText => self.web,
        })
    }
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
/// 200, the `content-type` of the call the rejection is marked with ([`Rejection::grpc`];
/// `application/grpc` when unmarked), `grpc-status` and the percent-encoded `grpc-message`.
///
/// It answers whatever it is given with 200: the layers call it only for a call they opted
/// into (see the [module docs](self)).
///
/// ```
/// use mka1_auth::{grpc, Error, ErrorKind, Rejection};
///
/// let response = grpc::response(Rejection::new(Error::new(ErrorKind::Expired)), ());
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-type"], "application/grpc");
/// assert_eq!(response.headers()["grpc-status"], "16");
/// assert_eq!(response.headers()["grpc-message"], "token has expired");
/// ```
pub fn response<B>(rejection: Rejection, body: B) -> Response<B> {
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
/// RFC 6750 status and headers, without the JSON body. See the [module docs](self).
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
    fn a_layer_answers_only_the_calls_it_opted_into() {
        let request = |version, content_type| {
            Request::post("/")
                .version(version)
                .header(CONTENT_TYPE, content_type)
                .body(())
                .unwrap()
        };
        let grpc = request(Version::HTTP_2, "application/grpc");
        let web = request(Version::HTTP_11, "application/grpc-web+proto");
        let none = GrpcAnswers::default();
        let only_grpc = GrpcAnswers {
            grpc: true,
            web: false,
        };
        let only_web = GrpcAnswers {
            grpc: false,
            web: true,
        };
        assert_eq!(none.call(&grpc), None);
        assert_eq!(none.call(&web), None);
        assert_eq!(only_grpc.call(&grpc), Some(Call::Grpc));
        assert_eq!(only_grpc.call(&web), None);
        assert_eq!(only_web.call(&grpc), None);
        assert_eq!(only_web.call(&web), Some(Call::GrpcWeb));
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
