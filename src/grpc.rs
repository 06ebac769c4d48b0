//! gRPC services (tonic) behind the layers: refusals the gRPC way, and the verified user in
//! a handler.
//!
//! # Refusals
//!
//! A gRPC client cannot read an HTTP 401 with a JSON body: it wants HTTP 200 with the
//! outcome in `grpc-status` and `grpc-message`. A service that guards gRPC says so on its
//! layer, [`Mka1AuthLayer::grpc_answers`](crate::Mka1AuthLayer::grpc_answers) (and
//! [`grpc_web_answers`](crate::Mka1AuthLayer::grpc_web_answers) for gRPC-web); then a
//! refused request that is such a call (see the second table) is answered that way, as a
//! trailers-only response (the status in the headers, no body):
//!
//! | refusal | `grpc-status` |
//! |---|---|
//! | no credentials, a malformed `Authorization`, any invalid token | 16 `UNAUTHENTICATED` |
//! | a missing permission, an `X-On-Behalf-Of` that names someone else | 7 `PERMISSION_DENIED` |
//! | no usable key set, revocation rules not loaded yet | 14 `UNAVAILABLE` |
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
//! tonic hands a handler the request's extensions, where the layer left what it verified:
//! [`OnBehalfOf::from_extensions`]`(request.extensions())`, and likewise
//! [`VerifiedToken`] and [`BearerToken`](crate::BearerToken). With the `tonic` feature,
//! [`on_behalf_of`] and [`verified_token`] read them and answer with a `tonic::Status` when
//! they are missing, so a handler can use `?`.
//!
//! Calling onward over gRPC works through [`Outbound`](crate::outbound::Outbound): wrap the
//! tonic `Channel` in the outbound layer and give the client an absolute origin (tonic's
//! `Grpc::with_origin`, or a generated client's `with_origin`), and put the end user in the
//! request's extensions (`request.extensions_mut().insert(user)`, or
//! [`carry_identity`](crate::outbound::carry_identity)); each call then carries
//! `authorization` and `x-on-behalf-of` metadata. See `examples/grpc_service.rs`.
//!
//! [`Reject`]: crate::Reject
//! [`Rejection`]: crate::Rejection
//! [`Rejection::grpc`]: crate::Rejection::grpc
//! [`OnBehalfOf`]: crate::OnBehalfOf
//! [`VerifiedToken`]: crate::VerifiedToken

#[cfg(feature = "tonic")]
use crate::claims::{OnBehalfOf, VerifiedToken};
#[cfg(feature = "tonic")]
use crate::rejection::Rejection;

#[cfg(feature = "tonic")]
use crate::rejection::grpc::status_code;
pub use crate::rejection::grpc::{Call, GrpcReject};

cfg_feature! {
    #![feature = "tonic"]

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
    pub fn on_behalf_of<T>(request: &tonic::Request<T>) -> Result<&OnBehalfOf, tonic::Status> {
        crate::guard::required(request.extensions()).map_err(tonic::Status::from)
    }
}

cfg_feature! {
    #![feature = "tonic"]

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
    pub fn verified_token<T>(request: &tonic::Request<T>) -> Result<&VerifiedToken, tonic::Status> {
        crate::guard::required(request.extensions()).map_err(tonic::Status::from)
    }
}

cfg_feature! {
    #![feature = "tonic"]

    /// A refusal as a `tonic::Status`: its gRPC code and description (and the refusal's
    /// tracing event), for a tonic handler that refuses by itself.
    ///
    /// ```
    /// # #[cfg(feature = "tonic")] {
    /// use mka1_auth::{Error, ErrorKind, Rejection};
    /// let status = tonic::Status::from(Rejection::new(Error::new(ErrorKind::KeysUnavailable)));
    /// assert_eq!(status.code(), tonic::Code::Unavailable);
    ///
    /// fn check<T>(request: &tonic::Request<T>) -> Result<(), tonic::Status> {
    ///     let token = mka1_auth::grpc::verified_token(request)?;
    ///     if !token.has_permission("agent:write") {
    ///         Err(Rejection::new(Error::new(ErrorKind::InsufficientPermission)))?;
    ///     }
    ///     Ok(())
    /// }
    /// # }
    /// ```
    impl From<Rejection> for tonic::Status {
        fn from(rejection: Rejection) -> tonic::Status {
            rejection.trace();
            let error = rejection.into_error();
            let code = tonic::Code::from_i32(i32::from(status_code(error.kind())));
            tonic::Status::new(code, error.to_string())
        }
    }
}

cfg_feature! {
    #![feature = "tonic"]

    impl<S: tonic::server::NamedService, R> tonic::server::NamedService
        for crate::layer::Mka1Auth<S, R>
    {
        const NAME: &'static str = S::NAME;
    }
}

cfg_feature! {
    #![feature = "tonic"]

    impl<S: tonic::server::NamedService, R> tonic::server::NamedService
        for crate::permissions::RequirePermissions<S, R>
    {
        const NAME: &'static str = S::NAME;
    }
}
