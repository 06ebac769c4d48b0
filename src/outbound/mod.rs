//! Calling onward: a tower layer for outgoing requests that adds `Authorization` and
//! `X-On-Behalf-Of`, and only ever sends them to the hosts you name.
//!
//! The layer wraps any client that is a `Service<http::Request<B>>`: hyper-util's client,
//! [`ReqwestService`] (feature `remote`), or your own. For each request it
//!
//! 1. refuses the request unless its URI is absolute and names an allowed origin (scheme,
//!    host and port), and unless a `Host` header, if present, names the same host;
//! 2. finds the end user: the [`OnBehalfOf`](crate::OnBehalfOf) in the request's extensions (so the value the
//!    inbound layer verified passes straight through), or else the closure given to
//!    [`OutboundBuilder::end_user_from`], validated with
//!    [`validate_end_user_id`](crate::claims::validate_end_user_id);
//! 3. asks its [`CredentialSource`] for a credential ([`ApiKey`], [`ForwardToken`], or an
//!    exchanged token from [`ExchangeClient`](crate::exchange::ExchangeClient));
//! 4. sets `Authorization: Bearer <credential>` and `X-On-Behalf-Of: <end user>`, replacing any
//!    values already there under any spelling of either name (case is ignored and `_` counts
//!    as `-`, as CGI-style servers read them); with no end user, every `X-On-Behalf-Of` is
//!    removed: a backend-only call. Both values are marked sensitive.
//!
//! Refusals never reach the inner client: they come back as an [`OutboundError`] of kind
//! [`OutboundErrorKind::Refused`] with a [`Refusal`] whose [`kind`](Refusal::kind) is
//! [`RefusalKind::HostNotAllowed`], [`RefusalKind::CredentialUnavailable`] or
//! [`RefusalKind::Exchange`]. The inner client's own errors come back as
//! [`OutboundErrorKind::Service`].
//!
//! # Redirects
//!
//! A client that follows redirects by itself would carry the headers this layer set to wherever
//! the server points. hyper-util's client never follows redirects. [`ReqwestService`] builds its
//! reqwest client with a same-origin redirect policy, which stops at the first redirect to
//! another origin (reqwest's default strips `Authorization` on such a hop but keeps `X-On-Behalf-Of`).
//! If you follow redirects with a tower layer, put it *outside* this one, so every hop is
//! checked against the allowed origins again.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{header::AUTHORIZATION, Request, Response};
//! use mka1_auth::outbound::{ApiKey, OutboundLayer};
//! use mka1_auth::X_ON_BEHALF_OF;
//! use tower::{service_fn, ServiceExt};
//!
//! // Any `Service<http::Request<B>>` works; this one answers with what it was sent.
//! let client = service_fn(|req: Request<String>| async move {
//!     let auth = req.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
//!     Ok::<_, std::convert::Infallible>(Response::new(auth))
//! });
//! let layer = OutboundLayer::builder(ApiKey::new("mk_live_example")?)
//!     .allow_origin("https://apigw.mka1.com")
//!     .build()?;
//! let client = layer.layer(client);
//!
//! let req = Request::get("https://apigw.mka1.com/api/v1/agents")
//!     .header(X_ON_BEHALF_OF, "spoofed-by-someone")
//!     .body(String::new())?;
//! let res = client.clone().oneshot(req).await?;
//! assert_eq!(res.body(), "Bearer mk_live_example");
//!
//! // Another host gets nothing: the request fails before it is sent.
//! let req = Request::get("https://elsewhere.example/").body(String::new())?;
//! let err = client.oneshot(req).await.unwrap_err();
//! assert_eq!(err.refusal().unwrap().kind(), mka1_auth::outbound::RefusalKind::HostNotAllowed);
//! # Ok(()) }
//! # use tower_layer::Layer;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

mod credential;
mod error;
pub mod forward;
mod layer;
mod origin;
mod refusal;
#[cfg(feature = "remote")]
pub(crate) mod reqwest_adapter;

pub use self::credential::{
    carry_identity, ApiKey, Credential, CredentialSource, ForwardToken, OutboundContext,
};
pub use self::error::{OutboundError, OutboundErrorKind};
pub use self::layer::{Outbound, OutboundBuilder, OutboundLayer, ResponseFuture};
pub use self::refusal::{Refusal, RefusalKind};
#[cfg(feature = "remote")]
pub use self::reqwest_adapter::{ReqwestError, ReqwestErrorKind, ReqwestFuture, ReqwestService};
