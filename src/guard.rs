//! The contract between the inbound layer and what reads its results (extractors, the
//! permissions layer): the layer marks every request it let through with [`Guarded`], and
//! readers tell "anonymous" (marked, no token) from "the layer never ran" (not marked: a
//! wiring bug, answered 500) by that mark.

use std::sync::Arc;

use http::Extensions;

use crate::error::{Error, ErrorKind};
use crate::rejection::grpc::Call;
use crate::rejection::Rejection;

/// Marks a request that went through the layer, authenticated or anonymous, and carries
/// what extractors need to answer like the layer would: its realm, and the gRPC call the
/// request is when the layer opted into answering such calls the gRPC way.
#[derive(Clone)]
pub(crate) struct Guarded {
    pub(crate) realm: Arc<str>,
    pub(crate) grpc: Option<Call>,
}

/// What an extractor (or a tonic helper) without the layer in front answers with.
#[cfg(any(feature = "axum", feature = "tonic"))]
pub(crate) const NO_LAYER_FOR_EXTRACTORS: &str =
    "add `Mka1AuthLayer` in front of routes that read the verified token";

/// The value of type `T` the layer put in `extensions`: `Ok(None)` for an anonymous request
/// (optional mode), a [`ErrorKind::MissingLayer`] rejection when the layer never ran.
#[cfg(feature = "axum")]
pub(crate) fn authenticated<T: Send + Sync + 'static>(
    extensions: &Extensions,
) -> Result<Option<&T>, Rejection> {
    authenticated_or(extensions, NO_LAYER_FOR_EXTRACTORS)
}

/// [`authenticated`], saying `no_layer` when the layer never ran.
fn authenticated_or<'e, T: Send + Sync + 'static>(
    extensions: &'e Extensions,
    no_layer: &'static str,
) -> Result<Option<&'e T>, Rejection> {
    match extensions.get::<Guarded>() {
        Some(_) => Ok(extensions.get::<T>()),
        None => Err(Rejection::new(Error::with_detail(
            ErrorKind::MissingLayer,
            no_layer,
        ))),
    }
}

/// Like [`authenticated`], but an anonymous request is a 401 in the layer's realm.
#[cfg(any(feature = "axum", feature = "tonic"))]
pub(crate) fn required<T: Send + Sync + 'static>(extensions: &Extensions) -> Result<&T, Rejection> {
    required_or(extensions, NO_LAYER_FOR_EXTRACTORS)
}

/// [`required`], saying `no_layer` when the layer never ran.
pub(crate) fn required_or<'e, T: Send + Sync + 'static>(
    extensions: &'e Extensions,
    no_layer: &'static str,
) -> Result<&'e T, Rejection> {
    authenticated_or(extensions, no_layer)?.ok_or_else(|| {
        like_the_layer(
            Rejection::new(Error::new(ErrorKind::MissingCredentials)),
            extensions,
        )
    })
}

/// `rejection` as the layer in front would answer it: in its realm, and the gRPC way when
/// it opted into that for this request's kind of call. Unchanged without a layer in front
/// (never the gRPC way, then).
pub(crate) fn like_the_layer(rejection: Rejection, extensions: &Extensions) -> Rejection {
    match extensions.get::<Guarded>() {
        Some(guarded) => rejection
            .with_realm(Arc::clone(&guarded.realm))
            .with_grpc(guarded.grpc),
        None => rejection,
    }
}
