//! What goes into `Authorization`: [`Credential`], where it comes from ([`CredentialSource`],
//! [`ApiKey`], [`ForwardToken`]), what a source is told ([`OutboundContext`]), and
//! [`carry_identity`], which moves the inbound identity onto an outgoing request.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::sync::Arc;

use http::{Extensions, HeaderValue, Uri};

use super::{Refusal, RefusalKind};
use crate::claims::{bearer_header_value, BearerToken, OnBehalfOf, VerifiedToken};
use crate::error::ConfigError;

/// A bearer credential ready to go into `Authorization`: an API key or a token.
///
/// Its `Debug` is redacted and its header value is marked sensitive.
///
/// ```
/// use mka1_auth::outbound::Credential;
///
/// let cred = Credential::bearer("mk_live_example").unwrap();
/// assert_eq!(cred.authorization_value(), "Bearer mk_live_example");
/// assert!(cred.authorization_value().is_sensitive());
/// assert_eq!(format!("{cred:?}"), "Credential(<redacted>)");
/// assert!(Credential::bearer("two words").is_err());
/// ```
#[derive(Clone)]
pub struct Credential {
    value: HeaderValue,
}

impl Credential {
    /// A bearer credential from its secret text.
    ///
    /// The secret must be non-empty visible ASCII (no spaces or control characters), as API
    /// keys and JWTs are. The error never repeats the secret.
    pub fn bearer(secret: &str) -> Result<Self, Refusal> {
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "the credential is empty or has characters a bearer token cannot carry",
            ));
        }
        Ok(Credential {
            value: bearer_header_value(secret),
        })
    }

    /// `Bearer <secret>`, marked sensitive.
    pub fn authorization_value(&self) -> HeaderValue {
        self.value.clone()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// What a [`CredentialSource`] knows about the request it supplies a credential for.
///
/// ```
/// use mka1_auth::outbound::OutboundContext;
///
/// fn describe(cx: &OutboundContext<'_>) -> String {
///     format!("{} for {:?}", cx.uri(), cx.end_user())
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OutboundContext<'a> {
    uri: &'a Uri,
    end_user: Option<&'a str>,
    extensions: &'a Extensions,
}

impl<'a> OutboundContext<'a> {
    pub(super) fn new(uri: &'a Uri, end_user: Option<&'a str>, extensions: &'a Extensions) -> Self {
        OutboundContext {
            uri,
            end_user,
            extensions,
        }
    }

    /// The request's URI; its origin is one of the allowed ones.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The end user the call is made for, if any (a valid end-user id).
    pub fn end_user(&self) -> Option<&'a str> {
        self.end_user
    }

    /// The request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

/// Where the outbound layer gets the credential for a request.
///
/// The layer asks only after the request's host passed the allow-list. Implemented by
/// [`ApiKey`], [`ForwardToken`] and, with feature `remote`,
/// [`ExchangeSource`](crate::exchange::ExchangeSource). Implement it yourself for other
/// schemes:
///
/// ```
/// use std::future::{ready, Ready};
/// use mka1_auth::outbound::{Credential, CredentialSource, OutboundContext, Refusal, RefusalKind};
///
/// /// A key per end user, looked up in memory.
/// struct PerUserKey(std::collections::HashMap<String, Credential>);
///
/// impl CredentialSource for PerUserKey {
///     type Future = Ready<Result<Credential, Refusal>>;
///
///     fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
///         let found = cx.end_user().and_then(|user| self.0.get(user)).cloned();
///         ready(found.ok_or_else(|| Refusal::new(RefusalKind::CredentialUnavailable)))
///     }
/// }
/// ```
pub trait CredentialSource: Send + Sync + 'static {
    /// The future that yields the credential.
    type Future: Future<Output = Result<Credential, Refusal>> + Send + 'static;

    /// Supply the credential for one request.
    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future;
}

impl<C: CredentialSource> CredentialSource for Arc<C> {
    type Future = C::Future;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        (**self).credential(cx)
    }
}

/// A static MKA1 API key, for calls to MKA1 itself (`https://apigw.mka1.com`).
///
/// ```
/// use mka1_auth::outbound::ApiKey;
///
/// let key = ApiKey::new("mk_live_example")?;
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// assert!(ApiKey::new("").is_err());
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey(Credential);

impl ApiKey {
    /// Wrap the key. Fails if it is empty or has characters a bearer token cannot carry; the
    /// error does not repeat the key.
    pub fn new(key: impl AsRef<str>) -> Result<Self, ConfigError> {
        Credential::bearer(key.as_ref()).map(ApiKey).map_err(|_| {
            ConfigError::invalid_setting(
                "api_key",
                "it is empty or has characters a bearer token cannot carry",
            )
        })
    }

    #[cfg(feature = "remote")]
    pub(crate) fn credential(&self) -> &Credential {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl CredentialSource for ApiKey {
    type Future = Ready<Result<Credential, Refusal>>;

    fn credential(&self, _cx: &OutboundContext<'_>) -> Self::Future {
        ready(Ok(self.0.clone()))
    }
}

/// Forward the inbound bearer token unchanged.
///
/// Reads the [`BearerToken`] from the outgoing request's extensions: copy it there from the
/// inbound request with [`carry_identity`]. Without one the call fails with
/// [`RefusalKind::CredentialUnavailable`]. When a [`VerifiedToken`] rides along too, the end
/// user must be its subject: a token is never forwarded on behalf of someone else.
///
/// ```
/// use mka1_auth::outbound::{ForwardToken, OutboundLayer};
///
/// let layer = OutboundLayer::builder(ForwardToken).allow_origin("https://agents.internal.example").build()?;
/// # let _ = layer;
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardToken;

impl CredentialSource for ForwardToken {
    type Future = Ready<Result<Credential, Refusal>>;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        let Some(token) = BearerToken::from_extensions(cx.extensions()) else {
            return ready(Err(Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "no inbound bearer token in the request extensions to forward",
            )));
        };
        if let (Some(verified), Some(user)) = (
            VerifiedToken::from_extensions(cx.extensions()),
            cx.end_user(),
        ) {
            if verified.subject() != user {
                return ready(Err(Refusal::with_detail(
                    RefusalKind::CredentialUnavailable,
                    "the inbound token belongs to another end user than this call",
                )));
            }
        }
        ready(Credential::bearer(token.expose()))
    }
}

/// Copy what the inbound layer learned about a request (the [`VerifiedToken`], the
/// [`OnBehalfOf`] and the [`BearerToken`]) into an outgoing request's extensions.
///
/// ```
/// use http::{Extensions, Request};
/// use mka1_auth::outbound::carry_identity;
///
/// fn onward(inbound: &Extensions) -> Request<String> {
///     let mut req = Request::get("https://agents.internal.example/run")
///         .body(String::new())
///         .unwrap();
///     carry_identity(inbound, req.extensions_mut());
///     req
/// }
/// # let _ = onward(&Extensions::new());
/// ```
pub fn carry_identity(from: &Extensions, to: &mut Extensions) {
    if let Some(v) = VerifiedToken::from_extensions(from) {
        to.insert(v.clone());
    }
    if let Some(v) = OnBehalfOf::from_extensions(from) {
        to.insert(v.clone());
    }
    if let Some(v) = BearerToken::from_extensions(from) {
        to.insert(v.clone());
    }
}
