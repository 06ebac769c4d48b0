//! What to mint: [`ExchangeRequest`], and the checks it passes before it is sent.

use std::time::Duration;

use super::{ExchangeError, ExchangeErrorKind, Scopes};
use super::{DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN};
use crate::claims::validate_end_user_id;

/// What to mint: a token for `audience` acting for one end user.
///
/// ```
/// use std::time::Duration;
/// use mka1_auth::exchange::ExchangeRequest;
///
/// let request = ExchangeRequest::new("https://agents.example.com", "user-42")
///     .expires_in(Duration::from_secs(900))
///     .permissions(["agent:read", "agent:write"]);
/// assert_eq!(request.external_user_id(), "user-42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    pub(super) audience: String,
    pub(super) external_user_id: String,
    pub(super) expires_in: Option<Duration>,
    pub(super) scopes: Scopes,
}

impl ExchangeRequest {
    /// A token for `audience` (the target service's URL) and the end user
    /// `external_user_id`, with no permissions until
    /// [`permissions`](Self::permissions) names some (see the [module docs](super)).
    pub fn new(audience: impl Into<String>, external_user_id: impl Into<String>) -> Self {
        ExchangeRequest {
            audience: audience.into(),
            external_user_id: external_user_id.into(),
            expires_in: None,
            scopes: Scopes::Exactly(Vec::new()),
        }
    }

    /// The lifetime to ask for: 300 s to 30 days in whole seconds (default one hour).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// Exactly the permissions to embed (for example `agent:read`), sent as
    /// `"permissions": [..]`. Order and repeats do not matter; an empty list asks for a token
    /// with none (never for all of the key's scopes).
    pub fn permissions<I>(mut self, permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes = Scopes::exactly(permissions);
        self
    }

    /// Every scope the API key holds, whatever they are when the token is minted (the request
    /// leaves `permissions` out, which MKA1 reads as all of them). The widest token the key can get; prefer
    /// [`permissions`](Self::permissions) with what the call needs.
    pub fn all_key_scopes(mut self) -> Self {
        self.scopes = Scopes::AllOfKey;
        self
    }

    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The end user.
    pub fn external_user_id(&self) -> &str {
        &self.external_user_id
    }

    /// Check everything MKA1 would check about the request's shape, and return the lifetime
    /// in seconds.
    pub(super) fn validate(&self) -> Result<u64, ExchangeError> {
        let issue = |path: &str, message: String| {
            ExchangeError::new(ExchangeErrorKind::InvalidRequest).with_issue(path, message)
        };
        if self.audience.is_empty() || self.audience.chars().any(char::is_control) {
            return Err(issue(
                "audience",
                "is empty or has control characters".into(),
            ));
        }
        if let Err(e) = validate_end_user_id(&self.external_user_id) {
            let why = e.detail().unwrap_or("it breaks the end-user id rule");
            return Err(issue("externalUserId", why.to_owned()));
        }
        let secs = match self.expires_in {
            None => DEFAULT_EXPIRES_IN,
            Some(d) if d.subsec_nanos() != 0 => {
                return Err(issue(
                    "expiresIn",
                    "is not a whole number of seconds".into(),
                ))
            }
            Some(d) => d.as_secs(),
        };
        if !(MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(&secs) {
            return Err(issue(
                "expiresIn",
                format!("is {secs} s; it must lie in {MIN_EXPIRES_IN}..={MAX_EXPIRES_IN}"),
            ));
        }
        if self
            .scopes
            .field()
            .is_some_and(|list| list.iter().any(String::is_empty))
        {
            return Err(issue("permissions", "holds an empty permission".into()));
        }
        Ok(secs)
    }
}
