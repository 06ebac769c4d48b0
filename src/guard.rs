//! The contract between the inbound layer and what reads its results (extractors, the
//! permissions layer, the `from_extensions` readers): the layer puts one value in the
//! extensions of every request it let through, [`Guarded`], which holds the verified token
//! and the bearer token of an authenticated request. Readers tell "anonymous" (marked, no
//! token) from "the layer never ran" (not marked: a wiring bug, answered 500) by that mark.
//!
//! One value, not one per type: `http::Extensions` boxes each value it holds, and the
//! boxes (made and freed per request) were most of what the layer cost a repeated token.

use std::sync::Arc;

use http::Extensions;

use crate::bearer::BearerToken;
use crate::claims::{OnBehalfOf, VerifiedToken};
use crate::error::{Error, ErrorKind};
use crate::rejection::grpc::Call;
use crate::rejection::{Realm, Rejection};

/// Marks a request that went through the layer, authenticated or anonymous, and carries
/// what extractors need to answer like the layer would: its realm, and the gRPC call the
/// request is when the layer opted into answering such calls the gRPC way. For an
/// authenticated request, also what the layer verified.
#[derive(Clone)]
pub(crate) struct Guarded {
    pub(crate) realm: Realm,
    pub(crate) grpc: Option<Call>,
    /// The cookies a token may be read from, by this layer or one in front of it: a
    /// forward never passes these on.
    pub(crate) token_cookies: TokenCookies,
    /// The verified token and the bearer token it came as; `None` for an anonymous request.
    pub(crate) verified: Option<(VerifiedToken, BearerToken)>,
}

/// A type the layer's one value gives: [`VerifiedToken`], [`OnBehalfOf`], [`BearerToken`].
pub(crate) trait FromGuarded: Send + Sync + 'static {
    /// This type's value in `guarded`, `None` for an anonymous request.
    fn from_guarded(guarded: &Guarded) -> Option<&Self>;
}

impl FromGuarded for VerifiedToken {
    fn from_guarded(guarded: &Guarded) -> Option<&Self> {
        guarded.verified.as_ref().map(|(token, _)| token)
    }
}

impl FromGuarded for OnBehalfOf {
    fn from_guarded(guarded: &Guarded) -> Option<&Self> {
        guarded
            .verified
            .as_ref()
            .map(|(token, _)| token.on_behalf_of())
    }
}

impl FromGuarded for BearerToken {
    fn from_guarded(guarded: &Guarded) -> Option<&Self> {
        guarded.verified.as_ref().map(|(_, bearer)| bearer)
    }
}

// The readers of the layer's value for code that is not an axum extractor: plain tower
// services, tonic handlers, the outbound layer. Here rather than beside each type, so the
// types do not depend on the layer's contract.

impl VerifiedToken {
    /// The verified token of a request that came through
    /// [`Mka1AuthLayer`](crate::Mka1AuthLayer): `None` for an anonymous request (optional
    /// mode), and when no layer ran and no `VerifiedToken` was put in `extensions` by hand.
    ///
    /// The layer keeps what it verified in one value of its own, so
    /// `extensions.get::<VerifiedToken>()` does not find it: read it with this (or the
    /// axum extractor).
    ///
    /// ```
    /// use http::{Request, Response};
    /// use mka1_auth::{Mka1AuthLayer, Verifier, VerifiedToken};
    /// use tower::{service_fn, Layer};
    ///
    /// # fn demo(verifier: Verifier) {
    /// let svc = Mka1AuthLayer::new(verifier).layer(service_fn(|req: Request<String>| async move {
    ///     let token = VerifiedToken::from_extensions(req.extensions()).expect("the layer ran");
    ///     Ok::<_, std::convert::Infallible>(Response::new(format!("hello {}", token.subject())))
    /// }));
    /// # let _ = svc;
    /// # }
    /// assert!(VerifiedToken::from_extensions(&http::Extensions::new()).is_none());
    /// ```
    pub fn from_extensions(extensions: &Extensions) -> Option<&VerifiedToken> {
        read(extensions)
    }
}

impl OnBehalfOf {
    /// The verified end user of a request that came through
    /// [`Mka1AuthLayer`](crate::Mka1AuthLayer) (the verified token's subject): `None` for an
    /// anonymous request, and when no layer ran and no `OnBehalfOf` was put in `extensions`
    /// by hand (as [`carry_identity`](crate::outbound::carry_identity) does for an onward
    /// call). See [`VerifiedToken::from_extensions`].
    ///
    /// ```
    /// use mka1_auth::OnBehalfOf;
    ///
    /// fn greeting(req: &http::Request<()>) -> String {
    ///     match OnBehalfOf::from_extensions(req.extensions()) {
    ///         Some(user) => format!("hello {user}"),
    ///         None => "hello stranger".to_owned(),
    ///     }
    /// }
    /// assert_eq!(greeting(&http::Request::new(())), "hello stranger");
    /// ```
    pub fn from_extensions(extensions: &Extensions) -> Option<&OnBehalfOf> {
        read(extensions)
    }
}

impl BearerToken {
    /// The bearer token a request that came through [`Mka1AuthLayer`](crate::Mka1AuthLayer)
    /// was verified with, to send onward unchanged: `None` for an anonymous request, and
    /// when no layer ran and no `BearerToken` was put in `extensions` by hand. See
    /// [`VerifiedToken::from_extensions`].
    ///
    /// ```
    /// use mka1_auth::BearerToken;
    ///
    /// // Behind `Mka1AuthLayer`, a handler or client hands the inbound token onward unchanged.
    /// fn onward_authorization(inbound: &http::Extensions) -> Option<http::HeaderValue> {
    ///     BearerToken::from_extensions(inbound).map(BearerToken::authorization_value)
    /// }
    /// assert!(onward_authorization(&http::Extensions::new()).is_none());
    /// ```
    pub fn from_extensions(extensions: &Extensions) -> Option<&BearerToken> {
        read(extensions)
    }
}

/// What `T::from_extensions` answers: the value the layer left, when a layer ran (none for
/// an anonymous request); otherwise a `T` put in the extensions by hand (an outgoing
/// request that [`carry_identity`](crate::outbound::carry_identity) filled, or code that
/// verified a token itself).
pub(crate) fn read<T: FromGuarded>(extensions: &Extensions) -> Option<&T> {
    match extensions.get::<Guarded>() {
        Some(guarded) => T::from_guarded(guarded),
        None => extensions.get::<T>(),
    }
}

/// The names of the cookies the layers a request went through read tokens from.
#[derive(Clone, Debug, Default)]
pub(crate) enum TokenCookies {
    #[default]
    None,
    One(Arc<str>),
    /// Layers in a row that read different cookies (rare).
    Many(Arc<[Arc<str>]>),
}

impl TokenCookies {
    /// The cookie `ours` (this layer's, if any) and those of the layers the request went
    /// through before (`before`). Allocates only when both name cookies, and they differ.
    pub(crate) fn with(ours: Option<&Arc<str>>, before: Option<&Guarded>) -> TokenCookies {
        let before = before.map_or(&TokenCookies::None, |g| &g.token_cookies);
        match (ours, before) {
            (None, before) => before.clone(),
            (Some(ours), TokenCookies::None) => TokenCookies::One(Arc::clone(ours)),
            (Some(ours), before) if before.contains(ours) => before.clone(),
            (Some(ours), before) => {
                let mut all: Vec<Arc<str>> = before.iter().cloned().collect();
                all.push(Arc::clone(ours));
                TokenCookies::Many(all.into())
            }
        }
    }

    /// The cookie names.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let (one, many): (Option<&Arc<str>>, &[Arc<str>]) = match self {
            TokenCookies::None => (None, &[]),
            TokenCookies::One(name) => (Some(name), &[]),
            TokenCookies::Many(names) => (None, names),
        };
        one.into_iter().chain(many)
    }

    /// Whether `name` is one of them.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| &**n == name)
    }
}

/// The cookies that carried tokens to the layers `extensions`' request went through.
pub(crate) fn token_cookies(extensions: &Extensions) -> &TokenCookies {
    extensions
        .get::<Guarded>()
        .map_or(&TokenCookies::None, |g| &g.token_cookies)
}

/// What ran without [`Mka1AuthLayer`](crate::Mka1AuthLayer) in front of it, and how to
/// fix that: logged for the operator (at error level), never sent to the client, whose
/// answer is the bare [`ErrorKind::MissingLayer`] 500.
pub(crate) struct NoLayer {
    /// The reader that found no layer mark: a layer's name, or "an extractor".
    pub(crate) reader: &'static str,
    /// The set-up advice.
    pub(crate) advice: &'static str,
}

/// What an extractor (or a tonic helper) without the layer in front logs.
#[cfg(any(feature = "axum", feature = "tonic"))]
pub(crate) const NO_LAYER_FOR_EXTRACTORS: NoLayer = NoLayer {
    reader: "an extractor (or a tonic helper)",
    advice: "add `Mka1AuthLayer` in front of routes that read the verified token",
};

/// The value of type `T` the layer left in `extensions`: `Ok(None)` for an anonymous
/// request (optional mode), a [`ErrorKind::MissingLayer`] rejection when the layer never ran.
#[cfg(feature = "axum")]
pub(crate) fn authenticated<T: FromGuarded>(
    extensions: &Extensions,
) -> Result<Option<&T>, Rejection> {
    authenticated_or(extensions, &NO_LAYER_FOR_EXTRACTORS)
}

/// [`authenticated`], logging `no_layer` when the layer never ran. The answer says only
/// what the kind says; the advice is the operator's, in the log.
fn authenticated_or<'e, T: FromGuarded>(
    extensions: &'e Extensions,
    no_layer: &NoLayer,
) -> Result<Option<&'e T>, Rejection> {
    match extensions.get::<Guarded>() {
        Some(guarded) => Ok(T::from_guarded(guarded)),
        None => {
            tracing::error!(
                reader = no_layer.reader,
                missing = "Mka1AuthLayer",
                advice = no_layer.advice,
                "mka1-auth: {} ran without `Mka1AuthLayer` in front of it (a wiring bug)",
                no_layer.reader,
            );
            Err(Rejection::new(Error::new(ErrorKind::MissingLayer)))
        }
    }
}

/// Like [`authenticated`], but an anonymous request is a 401 in the layer's realm.
#[cfg(any(feature = "axum", feature = "tonic"))]
pub(crate) fn required<T: FromGuarded>(extensions: &Extensions) -> Result<&T, Rejection> {
    required_or(extensions, &NO_LAYER_FOR_EXTRACTORS)
}

/// [`required`], logging `no_layer` when the layer never ran.
pub(crate) fn required_or<'e, T: FromGuarded>(
    extensions: &'e Extensions,
    no_layer: &NoLayer,
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
            .with_realm(guarded.realm.to_arc())
            .with_grpc(guarded.grpc),
        None => rejection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(cookies: TokenCookies) -> Guarded {
        Guarded {
            realm: Realm::named(Arc::from("r")),
            grpc: None,
            token_cookies: cookies,
            verified: None,
        }
    }

    #[test]
    fn token_cookies_add_up_across_layers() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let names = |c: &TokenCookies| c.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(names(&TokenCookies::with(None, None)).is_empty());
        let one = TokenCookies::with(Some(&a), None);
        assert_eq!(names(&one), ["a"]);
        // A layer without a cookie keeps what the one before read.
        assert_eq!(
            names(&TokenCookies::with(None, Some(&mark(one.clone())))),
            ["a"]
        );
        assert_eq!(
            names(&TokenCookies::with(Some(&a), Some(&mark(one.clone())))),
            ["a"]
        );
        let two = TokenCookies::with(Some(&b), Some(&mark(one)));
        assert_eq!(names(&two), ["a", "b"]);
        assert!(two.contains("a") && two.contains("b") && !two.contains("c"));
        let mut ext = Extensions::new();
        assert!(names(token_cookies(&ext)).is_empty());
        ext.insert(mark(two));
        assert_eq!(names(token_cookies(&ext)), ["a", "b"]);
    }
}
