//! A failed exchange: [`ExchangeError`], its kind and the issues MKA1 listed.

use std::fmt;
use std::time::Duration;

use crate::outbound::{Refusal, RefusalKind};

/// What kind of exchange failure an [`ExchangeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExchangeErrorKind {
    /// The request was refused before sending: a bad end-user id, lifetime or audience.
    InvalidRequest,
    /// MKA1 answered 400: it found the request invalid (see [`ExchangeError::issues`]).
    BadRequest,
    /// MKA1 answered 401: the API key is missing, unknown, revoked, regenerated or expired.
    /// Never retried; the client drops every token it cached, and the [`Refusal`] is of kind
    /// [`RefusalKind::ApiKeyRejected`].
    Unauthorized,
    /// MKA1 answered 403: the API key may not mint this token (audience or permissions).
    Forbidden,
    /// MKA1 answered 429 and retrying did not help, or asked to wait too long; or the
    /// exchange was not sent because an answer to another paused every exchange of the
    /// client (the message says so, and [`ExchangeError::retry_after`] how long is left).
    RateLimited,
    /// MKA1 answered 5xx on every attempt.
    Unavailable,
    /// MKA1 answered another status, a redirect included (redirects are never followed, so
    /// the API key never leaves the configured origin).
    UnexpectedStatus,
    /// MKA1 could not be reached, or the connection failed.
    Transport,
    /// No answer within the client's [`timeout`](super::ExchangeClientBuilder::timeout):
    /// MKA1 accepted the request and did not answer in time, or every exchange slot stayed
    /// taken (see [`max_concurrent_exchanges`](super::ExchangeClientBuilder::max_concurrent_exchanges)).
    /// Not retried.
    Timeout,
    /// MKA1 answered success, but not with `{"token": "<jwt>"}`.
    InvalidResponse,
}

/// One problem MKA1 (or local validation) found with the request: a field path and a
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIssue {
    path: String,
    message: String,
}

impl ExchangeIssue {
    /// The field, like `externalUserId` (empty when MKA1 named none).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The typed view of a failed exchange: what kind, which HTTP status, and what MKA1 said.
///
/// Get it from the [`Refusal`] with [`ExchangeError::of`]. Texts from MKA1 are
/// shortened and never contain the API key.
///
/// ```
/// # async fn demo(client: mka1_auth::exchange::ExchangeClient) {
/// use mka1_auth::exchange::{ExchangeError, ExchangeErrorKind, ExchangeRequest};
///
/// let request = ExchangeRequest::new("https://agents.example.com", "*");
/// let err = client.token(&request).await.unwrap_err();
/// let exchange = ExchangeError::of(&err).unwrap();
/// assert_eq!(exchange.kind(), ExchangeErrorKind::InvalidRequest);
/// assert_eq!(exchange.issues()[0].path(), "externalUserId");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeError {
    kind: ExchangeErrorKind,
    pub(super) status: Option<u16>,
    pub(super) message: Option<String>,
    issues: Vec<ExchangeIssue>,
    pub(super) retry_after: Option<Duration>,
    pub(super) attempts: u32,
}

impl ExchangeError {
    pub(super) fn new(kind: ExchangeErrorKind) -> Self {
        ExchangeError {
            kind,
            status: None,
            message: None,
            issues: Vec::new(),
            retry_after: None,
            attempts: 0,
        }
    }

    pub(super) fn with_issue(mut self, path: &str, message: String) -> Self {
        self.issues.push(ExchangeIssue {
            path: path.to_owned(),
            message,
        });
        self
    }

    pub(super) fn with_message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }

    /// The exchange failure inside a [`Refusal`], if it is one.
    pub fn of(error: &Refusal) -> Option<&ExchangeError> {
        std::error::Error::source(error)?.downcast_ref()
    }

    /// What kind of failure.
    pub fn kind(&self) -> ExchangeErrorKind {
        self.kind
    }

    /// MKA1's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// MKA1's `detail` (or `message`) when it was a single text, or the transport failure.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The problems listed in MKA1's `{"detail": [{"path", "message"}]}`, or found locally.
    pub fn issues(&self) -> &[ExchangeIssue] {
        &self.issues
    }

    /// How long MKA1 asked to wait (`Retry-After`) on the last answer, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How many requests were sent (0 when refused before sending).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(super) fn into_error(self) -> Refusal {
        let kind = match self.kind {
            ExchangeErrorKind::Unauthorized => RefusalKind::ApiKeyRejected,
            _ => RefusalKind::Exchange,
        };
        Refusal::with_detail(kind, self.to_string()).with_source(self)
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ExchangeErrorKind::InvalidRequest => "the exchange request is invalid",
            ExchangeErrorKind::BadRequest => "mka1 rejected the exchange request as invalid",
            ExchangeErrorKind::Unauthorized => "mka1 did not accept the api key",
            ExchangeErrorKind::Forbidden => "mka1 refused to mint this token for the api key",
            ExchangeErrorKind::RateLimited => "mka1 is rate limiting exchanges",
            ExchangeErrorKind::Unavailable => "mka1 failed to serve the exchange",
            ExchangeErrorKind::UnexpectedStatus => "mka1 answered the exchange unexpectedly",
            ExchangeErrorKind::Transport => "mka1 could not be reached",
            ExchangeErrorKind::Timeout => "the mka1 token exchange timed out",
            ExchangeErrorKind::InvalidResponse => "mka1's exchange answer holds no usable token",
        };
        f.write_str(what)?;
        if let Some(status) = self.status {
            write!(f, " (status {status})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        for (i, issue) in self.issues.iter().enumerate() {
            let sep = if i == 0 && self.message.is_none() {
                ": "
            } else {
                "; "
            };
            if issue.path.is_empty() {
                write!(f, "{sep}{}", issue.message)?;
            } else {
                write!(f, "{sep}`{}` {}", issue.path, issue.message)?;
            }
        }
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            write!(f, " (retry after {secs} s)")?;
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        if self.kind == ExchangeErrorKind::Unauthorized {
            f.write_str(
                "; check the configured api key: mka1 does not know it, or it was revoked, \
                 regenerated or has expired",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ExchangeError {}
