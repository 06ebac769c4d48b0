//! [`ExchangeSource`]: exchanged tokens as the outbound layer's credentials.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{ExchangeClient, ExchangeRequest, Scopes};
use crate::outbound::{Credential, CredentialSource, OutboundContext, Refusal, RefusalKind};

/// The outbound layer's credential source backed by an [`ExchangeClient`]; made by
/// [`ExchangeClient::source`].
///
/// ```
/// use std::time::Duration;
/// # let client = mka1_auth::exchange::ExchangeClient::builder().api_key("mk_live_example").build().unwrap();
/// let source = client
///     .source("https://agents.example.com")
///     .permissions(["agent:read"])
///     .expires_in(Duration::from_secs(900));
/// # let _ = source;
/// ```
#[derive(Clone)]
pub struct ExchangeSource {
    client: ExchangeClient,
    audience: Arc<str>,
    scopes: Scopes,
    expires_in: Option<Duration>,
}

impl ExchangeSource {
    /// Exactly the permissions every token carries (default none, see the
    /// [module docs](super) for why). Order and repeats do not matter.
    pub fn permissions<I>(mut self, permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = Scopes::exactly(permissions);
        self
    }

    /// Every token carries every scope the API key holds (`permissions` left out): the widest
    /// tokens the key can get, for every user. Prefer [`permissions`](Self::permissions).
    pub fn all_key_scopes(mut self) -> Self {
        self.scopes = Scopes::AllOfKey;
        self
    }

    /// The lifetime to ask for (300 s to 30 days; default one hour).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }
}

impl fmt::Debug for ExchangeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeSource")
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl CredentialSource for ExchangeSource {
    type Future = ExchangeFuture;

    fn credential(&self, cx: &OutboundContext<'_>) -> Self::Future {
        let Some(user) = cx.end_user() else {
            let error = Refusal::with_detail(
                RefusalKind::CredentialUnavailable,
                "an exchanged token needs an end user, and the request names none",
            );
            return ExchangeFuture(Box::pin(std::future::ready(Err(error))));
        };
        let mut request = ExchangeRequest::new(&*self.audience, user);
        request.scopes = self.scopes.clone();
        request.expires_in = self.expires_in;
        let client = self.client.clone();
        ExchangeFuture(Box::pin(async move {
            client.token(&request).await.map(|t| t.credential)
        }))
    }
}

/// The future of [`ExchangeSource`]: a cache lookup, or an exchange.
pub struct ExchangeFuture(Pin<Box<dyn Future<Output = Result<Credential, Refusal>> + Send>>);

impl Future for ExchangeFuture {
    type Output = Result<Credential, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for ExchangeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExchangeFuture")
    }
}

impl ExchangeClient {
    /// A [`CredentialSource`] for the outbound layer: tokens for `audience`, one per end
    /// user (a request without an end user fails with
    /// [`RefusalKind::CredentialUnavailable`]), with no permissions until
    /// [`ExchangeSource::permissions`] names some (see the [module docs](super)).
    pub fn source(&self, audience: impl Into<String>) -> ExchangeSource {
        ExchangeSource {
            client: self.clone(),
            audience: audience.into().into(),
            scopes: Scopes::Exactly(Vec::new()),
            expires_in: None,
        }
    }
}
