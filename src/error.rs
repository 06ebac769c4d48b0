//! Errors: [`Error`] for a request or token that was refused, [`ConfigError`] for a
//! verifier that could not be built.
//!
//! Messages are lowercase, say what was wrong and never contain the token, a key or any
//! other secret.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong, in a form code can match on.
///
/// New kinds may be added in minor releases, so match with a wildcard arm.
///
/// ```
/// use mka1_auth::ErrorKind;
///
/// fn is_client_fault(kind: ErrorKind) -> bool {
///     !matches!(kind, ErrorKind::KeysUnavailable | ErrorKind::MissingLayer)
/// }
/// assert!(is_client_fault(ErrorKind::Expired));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request carried no bearer credentials: none at all, or only credentials under
    /// another scheme such as `Basic` (RFC 6750 section 3.1 answers both alike).
    MissingCredentials,
    /// The request's credentials were malformed (two `Authorization` headers, an empty bearer
    /// token, a header with no scheme).
    InvalidRequest,
    /// The token is longer than the configured maximum; nothing of it was parsed.
    TokenTooLarge,
    /// The token is not a compact JWS: wrong number of segments, a header or payload that is
    /// not strict base64url, or not a JSON object. (A signature segment that does not decode
    /// is reported as [`InvalidSignature`](Self::InvalidSignature).)
    Malformed,
    /// The header has no `kid`, or a `kid` that is not a non-empty string.
    MissingKeyId,
    /// No key with the token's `kid` is in the key set (after at most one guarded refetch).
    UnknownKeyId,
    /// The header's `alg` is not in the verifier's allow-list (this covers `none` and `HS*`).
    AlgorithmNotAllowed,
    /// The header's `alg` disagrees with the key its `kid` names (type, curve or the key's `alg`).
    AlgorithmMismatch,
    /// The header carries `crit`; this verifier understands no JWS extension.
    CriticalHeader,
    /// The signature does not verify with the key.
    InvalidSignature,
    /// A registered claim has the wrong JSON type or an impossible value, or a claim name
    /// appears twice.
    InvalidClaim,
    /// `exp` is missing.
    MissingExpiry,
    /// The token has expired (past `exp` plus leeway).
    Expired,
    /// `nbf` lies in the future (beyond leeway).
    NotYetValid,
    /// `iat` lies in the future (beyond leeway).
    IssuedInFuture,
    /// `exp` lies further ahead than the configured maximum lifetime allows.
    LifetimeTooLong,
    /// `aud` is missing or names none of the configured audiences.
    InvalidAudience,
    /// The header's `typ` is missing or not the one the verifier requires
    /// ([`VerifierBuilder::require_typ`](crate::VerifierBuilder::require_typ)).
    InvalidType,
    /// `iss` is missing, not a string, or not one of the configured issuers.
    InvalidIssuer,
    /// `sub` is missing or breaks MKA1's rule for end-user ids (1-150 printable ASCII
    /// characters, not `*`).
    InvalidSubject,
    /// The permissions claim is neither an array of strings nor a space-separated string.
    InvalidPermissions,
    /// The token is valid but lacks a permission the route requires.
    InsufficientPermission,
    /// The request's `X-On-Behalf-Of` header names a different user than the token.
    OnBehalfOfMismatch,
    /// No usable key set is held (the JWKS endpoint is down and nothing is cached).
    KeysUnavailable,
    /// An extractor or a permission check ran without the authentication layer in front of
    /// it: the layer is missing, or placed in the wrong order (a wiring bug).
    MissingLayer,
    /// A claim check of this service refused the token
    /// ([`VerifierBuilder::check`](crate::VerifierBuilder::check)). Answered 401
    /// `invalid_token`, like the built-in rules: the check decides whether the token is
    /// acceptable here at all.
    CheckFailed,
    /// A claim check of this service panicked. Answered 500; the panic is contained, the
    /// token is not cached, and the next request is verified as usual.
    CheckPanicked,
    /// The token matches a revocation rule ([`crate::revocation`]): its user's, its id's,
    /// or one for every token issued before a time. Answered 401 `invalid_token`.
    Revoked,
    /// The verifier obeys revocation rules that are not loaded yet (their source, Redis,
    /// has not answered since the start). Answered 503 with `Retry-After`, like
    /// [`KeysUnavailable`](Self::KeysUnavailable), unless the rules were set to serve
    /// without them until loaded.
    RevocationUnavailable,
}

impl ErrorKind {
    /// A short, stable, lowercase description of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MissingCredentials => "no credentials were presented",
            ErrorKind::InvalidRequest => "the credentials in the request are malformed",
            ErrorKind::TokenTooLarge => "token is too large",
            ErrorKind::Malformed => "token is malformed",
            ErrorKind::MissingKeyId => "token header has no usable `kid`",
            ErrorKind::UnknownKeyId => "token is signed with an unknown key",
            ErrorKind::AlgorithmNotAllowed => "token algorithm is not allowed",
            ErrorKind::AlgorithmMismatch => "token algorithm does not match its key",
            ErrorKind::CriticalHeader => "token header has unsupported critical extensions",
            ErrorKind::InvalidSignature => "token signature is invalid",
            ErrorKind::InvalidClaim => "token has an invalid claim",
            ErrorKind::MissingExpiry => "token has no `exp` claim",
            ErrorKind::Expired => "token has expired",
            ErrorKind::NotYetValid => "token is not valid yet",
            ErrorKind::IssuedInFuture => "token was issued in the future",
            ErrorKind::LifetimeTooLong => "token lifetime exceeds the allowed maximum",
            ErrorKind::InvalidAudience => "token is not meant for this audience",
            ErrorKind::InvalidType => "token type (`typ`) is not the one required",
            ErrorKind::InvalidIssuer => "token issuer is not accepted",
            ErrorKind::InvalidSubject => "token subject is not a valid end-user id",
            ErrorKind::InvalidPermissions => "token permissions claim is malformed",
            ErrorKind::InsufficientPermission => "token lacks a required permission",
            ErrorKind::OnBehalfOfMismatch => "`x-on-behalf-of` does not match the token subject",
            ErrorKind::KeysUnavailable => "no usable signing keys are available",
            ErrorKind::MissingLayer => {
                "the authentication layer is missing in front of this point, or in the wrong order"
            }
            ErrorKind::CheckFailed => "token was refused by a check of this service",
            ErrorKind::CheckPanicked => "a check of this service failed unexpectedly",
            ErrorKind::Revoked => "token has been revoked",
            ErrorKind::RevocationUnavailable => "revocation rules are not loaded yet",
        }
    }

    /// Whether this kind means the token itself was refused (RFC 6750 `invalid_token`).
    pub fn is_invalid_token(self) -> bool {
        !matches!(
            self,
            ErrorKind::MissingCredentials
                | ErrorKind::InvalidRequest
                | ErrorKind::InsufficientPermission
                | ErrorKind::KeysUnavailable
                | ErrorKind::RevocationUnavailable
                | ErrorKind::MissingLayer
                | ErrorKind::CheckPanicked
                | ErrorKind::OnBehalfOfMismatch
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A kind enum of one of the crate's errors: a stable lowercase description per kind.
pub(crate) trait Kind: Copy + fmt::Debug {
    fn describe(self) -> &'static str;
}

impl Kind for ErrorKind {
    fn describe(self) -> &'static str {
        self.as_str()
    }
}

/// What each of the crate's opaque errors carries: a kind, an optional detail (never a
/// secret) and an optional cause. Its `Display` is the kind's description, then the detail.
#[derive(Clone)]
pub(crate) struct Described<K> {
    pub(crate) kind: K,
    detail: Option<Cow<'static, str>>,
    source: Option<Source>,
}

impl<K: Kind> Described<K> {
    pub(crate) fn new(kind: K, detail: Option<Cow<'static, str>>) -> Self {
        Described {
            kind,
            detail,
            source: None,
        }
    }

    pub(crate) fn set_source(&mut self, source: impl std::error::Error + Send + Sync + 'static) {
        self.source = Some(Arc::new(source));
    }

    pub(crate) fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub(crate) fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }

    /// The kind, detail and source as fields of `d`.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("kind", &self.kind);
        if let Some(detail) = &self.detail {
            d.field("detail", detail);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
    }
}

impl<K: Kind> fmt::Display for Described<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// A token or request that was refused, or an operation that failed.
///
/// Opaque: inspect it with [`Error::kind`]; its `Display` is a short lowercase sentence that
/// never contains the token. Cheap to clone, so it can ride in response extensions.
///
/// ```
/// use mka1_auth::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::Expired);
/// assert_eq!(err.kind(), ErrorKind::Expired);
/// assert_eq!(err.to_string(), "token has expired");
/// ```
#[derive(Clone)]
pub struct Error {
    described: Described<ErrorKind>,
    retry_after: Option<Duration>,
}

impl Error {
    /// An error of this kind with no further detail.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            described: Described::new(kind, None),
            retry_after: None,
        }
    }

    /// An error of this kind with a short detail appended to its message.
    ///
    /// The detail must never contain a token or secret.
    pub fn with_detail(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Error {
            described: Described::new(kind, Some(detail.into())),
            retry_after: None,
        }
    }

    /// Attach an underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.described.set_source(source);
        self
    }
    /// Suggest when a retry may succeed (for [`ErrorKind::KeysUnavailable`]: when the key
    /// set will next be fetched).
    pub(crate) fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// How long a client should wait before retrying, when the error is temporary.
    ///
    /// Set on [`ErrorKind::KeysUnavailable`] errors from a remote key set: the time until
    /// the next fetch may be attempted, at least one second. A response layer turns it into
    /// `Retry-After`. `None` for errors a retry will not fix.
    ///
    /// ```
    /// use mka1_auth::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::new(ErrorKind::Expired).retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.described.kind
    }

    /// The detail, if any, without the kind's description.
    pub fn detail(&self) -> Option<&str> {
        self.described.detail()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.described.fmt(f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        self.described.debug_fields(&mut d);
        if let Some(after) = &self.retry_after {
            d.field("retry_after", after);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.described.source()
    }
}

mod config;
pub use config::{ConfigError, ConfigErrorKind};
