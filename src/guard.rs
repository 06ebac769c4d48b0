//! The contract between the inbound layer and what reads its results (extractors, the
//! permissions layer): the layer marks every request it let through with [`Guarded`], and
//! readers tell "anonymous" (marked, no token) from "the layer never ran" (not marked: a
//! wiring bug, answered 500) by that mark.

use std::sync::Arc;

use http::Extensions;

use crate::error::{Error, ErrorKind};
use crate::rejection::{Rejection, DEFAULT_REALM};

/// Marks a request that went through the layer, authenticated or anonymous, and carries
/// what extractors need to answer like the layer would.
#[derive(Clone)]
pub(crate) struct Guarded {
    pub(crate) realm: Arc<str>,
}

/// What an extractor without the layer in front answers with.
#[cfg(feature = "axum")]
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
#[cfg(feature = "axum")]
pub(crate) fn required<T: Send + Sync + 'static>(extensions: &Extensions) -> Result<&T, Rejection> {
    required_or(extensions, NO_LAYER_FOR_EXTRACTORS)
}

/// [`required`], saying `no_layer` when the layer never ran.
pub(crate) fn required_or<'e, T: Send + Sync + 'static>(
    extensions: &'e Extensions,
    no_layer: &'static str,
) -> Result<&'e T, Rejection> {
    authenticated_or(extensions, no_layer)?.ok_or_else(|| {
        let mut rejection = Rejection::new(Error::new(ErrorKind::MissingCredentials));
        if let Some(guarded) = extensions.get::<Guarded>() {
            rejection = rejection.with_realm(Arc::clone(&guarded.realm));
        }
        rejection
    })
}

/// The realm the layer in front answers with, or the default.
pub(crate) fn realm_of(extensions: &Extensions) -> Arc<str> {
    extensions
        .get::<Guarded>()
        .map_or_else(|| Arc::from(DEFAULT_REALM), |g| Arc::clone(&g.realm))
}
