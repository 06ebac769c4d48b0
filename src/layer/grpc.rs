//! The layer's gRPC settings: which gRPC calls it answers the gRPC way (see
//! [`crate::grpc`]).

use http::Request;

use super::Mka1AuthLayer;
use crate::rejection::grpc::{call_of, Call};

/// The layer's gRPC settings (its other settings are in [`crate::layer`]).
impl<R> Mka1AuthLayer<R> {
    /// Answer a refused gRPC call the gRPC way (HTTP 200, `grpc-status`; see
    /// [`grpc`](crate::grpc)): say so on a layer that guards gRPC services. Default `false`:
    /// every refusal is a 401, 403, 400, 500 or 503, whatever the request's headers.
    ///
    /// Only a request that is a gRPC call gets it: `POST` over HTTP/2 with `content-type`
    /// `application/grpc`, or that followed by `+` or `;`;
    /// anything else keeps the RFC 6750 answer, so REST routes beside gRPC ones keep their
    /// 401 and 403. The answers given behind the layer (the permission layer, the
    /// extractors, a handler's [`Rejection`]) follow this choice. Do not set it on a service
    /// a forward-auth gateway asks for its verdict: a refusal is then a 2xx to a client that
    /// sends a gRPC call.
    ///
    /// [`Rejection`]: crate::Rejection
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
        self.edit(|s| s.grpc.grpc = answer)
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
        self.edit(|s| s.grpc.web = answer)
    }
}

/// Which gRPC calls a layer answers the gRPC way: none unless it opted in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct GrpcAnswers {
    grpc: bool,
    web: bool,
}

impl GrpcAnswers {
    /// The call `request` is, when this layer answers such calls the gRPC way.
    #[inline]
    pub(super) fn call<B>(self, request: &Request<B>) -> Option<Call> {
        if !self.grpc && !self.web {
            return None;
        }
        call_of(request).filter(|call| match call {
            Call::Grpc => self.grpc,
            Call::GrpcWeb | Call::GrpcWebText => self.web,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header::CONTENT_TYPE;
    use http::Version;

    use super::*;

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
}
