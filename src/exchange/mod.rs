//! The MKA1 exchange-token client (feature `remote`): trade your API key for a short-lived
//! token minted for another service's audience and one end user, cached until shortly
//! before it expires.
//!
//! [`ExchangeClient::token`] calls
//! `POST {base}/api/v1/authentication/api-keys/exchange-token` with
//! `Authorization: Bearer <api key>` and `{"audience", "externalUserId", "expiresIn",
//! "permissions"}`, and MKA1 answers `{"token": "<jwt>"}`.
//!
//! - **Permissions.** A request asks for exactly the permissions it names
//!   ([`permissions`](ExchangeRequest::permissions)), none by default (`"permissions": []`),
//!   or, only when it says so with [`all_key_scopes`](ExchangeRequest::all_key_scopes), for
//!   every scope the API key holds (the field left out). MKA1 reads the field in those two
//!   ways: a list, `[]` included, is exactly what to embed (each one a scope the key holds,
//!   else 403); a request without it gets every scope of the key, `write:apikeys` too if
//!   the key holds it. The two are kept apart, so a least-privilege list that comes out
//!   empty asks for nothing rather than for the widest token there is, and a forgotten
//!   `permissions(..)` shows up as a 403 from the target instead of as a token that can do
//!   everything the key can.
//! - **Validation first.** The end-user id must pass
//!   [`validate_end_user_id`] and `expiresIn` lie in
//!   300..=2592000 seconds; a request that breaks either is refused without being sent.
//! - **Cache.** Tokens are kept per (audience, end user, permissions, lifetime asked for), so
//!   a token is never handed to a caller that asked for other permissions or a shorter
//!   life. The cache is bounded in number, and a token is reused until
//!   [`renew_before`](ExchangeClientBuilder::renew_before) its `exp` (read
//!   from the token's payload without checking its signature: it only schedules renewal, and
//!   is never trusted past the lifetime that was asked for). Time comes from the client's
//!   [`Clock`]. Concurrent callers for one key share one exchange. Failures are
//!   not cached; while a renewal fails, a token that has not yet expired is still used.
//! - **Retries.** 429 and 5xx answers and transport failures are retried with exponential
//!   backoff and jitter, honouring `Retry-After` (seconds or an HTTP date) up to
//!   [`max_retry_after`](ExchangeClientBuilder::max_retry_after): a longer wait is not
//!   waited for, the error is returned at once with [`ExchangeError::retry_after`]. Waits
//!   run on the client's [`Clock`] ([`ManualClock`] moves them in tests).
//!
//! ## Under pressure
//!
//! - **A cap on exchanges in flight.** At most
//!   [`max_concurrent_exchanges`](ExchangeClientBuilder::max_concurrent_exchanges) requests
//!   (default 64) are in flight to MKA1, however many users arrive at once; concurrent
//!   callers for one token share one exchange. A caller waits for a free slot, and that wait
//!   counts against the [`timeout`](ExchangeClientBuilder::timeout) (default 10 s), so
//!   nothing queues forever: 10,000 new users make 10,000 exchanges, at most 64 at a time,
//!   and those that cannot get a slot in time fail with [`ExchangeErrorKind::Timeout`].
//! - **One pause for the whole client.** A 429 (or a 5xx with `Retry-After`) pauses every
//!   exchange of the client until the moment MKA1 named (a 429 without `Retry-After`: for
//!   the backoff delay), instead of each caller retrying on its own schedule. Until then no
//!   request is sent: an exchange waits for the moment if it is at most `max_retry_after`
//!   away, else fails at once ([`ExchangeErrorKind::RateLimited`], unsent, with how long is
//!   left as [`ExchangeError::retry_after`]); a caller whose token is due for renewal but
//!   still valid keeps using it without waiting. One answer pauses the client for at most
//!   5 minutes (or `max_retry_after`, when longer).
//! - **A hanging MKA1** fails each exchange within the timeout, the wait for a slot
//!   included, with [`ExchangeErrorKind::Timeout`]; a timeout is not retried. At most the
//!   cap's worth of requests is ever left waiting on MKA1.
//! - **One renewal.** When a token falls due, the callers using it share one renewal, as
//!   they share the first exchange.
//! - **Origin.** The API key is sent only to the configured endpoint: the client follows
//!   no redirect, not even one within the same origin. A redirect answer (3xx) is a failed
//!   exchange, [`ExchangeErrorKind::UnexpectedStatus`] with its status, and is not retried.
//! - **Errors.** Every failure is a [`Refusal`] of kind [`RefusalKind::Exchange`] (or
//!   [`RefusalKind::ApiKeyRejected`], below) whose
//!   [`ExchangeError`] (from [`ExchangeError::of`]) tells the status and what MKA1 refused,
//!   including the `{"detail":[{"path","message"}]}` list of a 400. The API key never
//!   appears in an error.
//! - **A rejected key.** A 401 means MKA1 no longer accepts the API key (unknown, revoked,
//!   regenerated or expired): the refusal is of kind [`RefusalKind::ApiKeyRejected`], is
//!   never retried, says to check the key, and the cache drops every token the key minted,
//!   so no caller is handed one again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mka1_auth::exchange::{ExchangeClient, ExchangeRequest};
//!
//! let client = ExchangeClient::builder()
//!     .api_key(std::env::var("MKA1_API_KEY")?)
//!     .build()?;
//! let request = ExchangeRequest::new("https://agents.example.com", "user-42")
//!     .permissions(["agent:read"]);
//! let token = client.token(&request).await?;
//! println!("token valid until {}", token.expires_at());
//! # Ok(()) }
//! ```
//!
//! [`validate_end_user_id`]: crate::claims::validate_end_user_id
//! [`Clock`]: crate::Clock
//! [`ManualClock`]: crate::ManualClock
//! [`Refusal`]: crate::outbound::Refusal
//! [`RefusalKind::Exchange`]: crate::outbound::RefusalKind::Exchange
//! [`RefusalKind::ApiKeyRejected`]: crate::outbound::RefusalKind::ApiKeyRejected

pub(crate) mod builder;
mod cache;
pub(crate) mod client;
mod error;
pub(crate) mod pacing;
mod request;
mod scopes;
mod source;

pub use builder::ExchangeClientBuilder;
pub use client::{ExchangeClient, ExchangedToken};
pub use error::{ExchangeError, ExchangeErrorKind, ExchangeIssue};
pub use request::ExchangeRequest;
pub(crate) use scopes::Scopes;
pub use source::{ExchangeFuture, ExchangeSource};

// MKA1's facts have one public path, `crate::protocol`; the exchange's files read them here.
use crate::protocol::{
    DEFAULT_BASE_URL, DEFAULT_EXPIRES_IN, EXCHANGE_TOKEN_PATH, MAX_EXPIRES_IN, MIN_EXPIRES_IN,
};
