//! What a verified token says: [`VerifiedToken`], the end user it acts for ([`OnBehalfOf`]),
//! its [`Permissions`], and the rule an end-user id must follow.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use http::HeaderValue;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// The header that carries the end user a call is made for.
pub const X_ON_BEHALF_OF: http::HeaderName = http::HeaderName::from_static("x-on-behalf-of");

/// The longest end-user id MKA1 accepts.
pub const MAX_END_USER_ID_LEN: usize = 150;

/// Check an end-user id against MKA1's rule for `externalUserId`, plus what HTTP needs.
///
/// An id is 1 to 150 characters, each printable ASCII (0x20..=0x7E), and not `*`. Because
/// HTTP strips spaces around header values, an id may also not begin or end with a space:
/// such an id could not travel in `X-On-Behalf-Of` without turning into another user's id.
///
/// ```
/// use mka1_auth::claims::validate_end_user_id;
///
/// assert!(validate_end_user_id("user-42@example.com").is_ok());
/// assert!(validate_end_user_id("*").is_err());
/// assert!(validate_end_user_id("").is_err());
/// assert!(validate_end_user_id("caf\u{e9}").is_err());
/// assert!(validate_end_user_id(" alice").is_err());
/// assert!(validate_end_user_id(&"a".repeat(151)).is_err());
/// ```
pub fn validate_end_user_id(id: &str) -> Result<(), Error> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_END_USER_ID_LEN {
        "it is longer than 150 characters"
    } else if id == "*" {
        "`*` is not a user id"
    } else if !id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        "it contains a character outside printable ascii"
    } else if id.starts_with(' ') || id.ends_with(' ') {
        "it begins or ends with a space"
    } else {
        return Ok(());
    };
    Err(Error::with_detail(ErrorKind::InvalidSubject, reason))
}

/// The end user a verified request acts for: the token's `sub`.
///
/// Only the crate creates one, from a token whose signature and claims were verified, so a
/// handler that takes `OnBehalfOf` never sees a value a client typed into a header. It is
/// always a valid end-user id (see [`validate_end_user_id`]) and so always a valid header
/// value.
///
/// ```
/// # async fn demo(verifier: mka1_auth::Verifier, token: &str) -> Result<(), mka1_auth::Error> {
/// let verified = verifier.verify(token).await?;
/// let user = verified.on_behalf_of();
/// println!("acting for {user}");
/// assert_eq!(user.as_str(), verified.subject());
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OnBehalfOf(Arc<str>);

impl OnBehalfOf {
    /// Wrap an id that already passed [`validate_end_user_id`].
    pub(crate) fn from_verified(id: Arc<str>) -> Self {
        debug_assert!(validate_end_user_id(&id).is_ok());
        OnBehalfOf(id)
    }

    /// The end-user id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value, for `X-On-Behalf-Of`.
    pub fn to_header_value(&self) -> HeaderValue {
        // Printable ASCII only, checked when the token was verified.
        HeaderValue::from_str(&self.0).expect("end-user ids are printable ascii")
    }
}

impl Deref for OnBehalfOf {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for OnBehalfOf {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnBehalfOf").field(&&*self.0).finish()
    }
}

/// The permissions a token carries (for example `agent:read`).
///
/// Read from the configured claim (default `permissions`), either a JSON array of strings or
/// one space-separated string. Absent means none.
///
/// ```
/// # async fn demo(verified: mka1_auth::VerifiedToken) {
/// let perms = verified.permissions();
/// if perms.contains("agent:read") { /* ... */ }
/// for p in perms.iter() { println!("{p}"); }
/// # }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Permissions(Box<[Box<str>]>);

impl Permissions {
    /// Build from permission names; empty names are dropped, duplicates collapse.
    pub(crate) fn from_names(mut names: Vec<Box<str>>) -> Self {
        names.retain(|n| !n.is_empty());
        names.sort_unstable();
        names.dedup();
        Permissions(names.into_boxed_slice())
    }

    /// Whether the permission is present (exact, case-sensitive match).
    pub fn contains(&self, permission: &str) -> bool {
        self.0.binary_search_by(|p| (**p).cmp(permission)).is_ok()
    }

    /// Whether every one of `permissions` is present.
    pub fn contains_all<'a>(&self, permissions: impl IntoIterator<Item = &'a str>) -> bool {
        permissions.into_iter().all(|p| self.contains(p))
    }

    /// The permissions, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(|p| &**p)
    }

    /// How many distinct permissions there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A token whose signature, algorithm and claims all passed verification.
///
/// Cheap to clone (shared inside). Produced only by [`Verifier::verify`](crate::Verifier::verify)
/// and the layer; handlers get it from request extensions or the claims extractor.
///
/// ```
/// # async fn demo(verifier: mka1_auth::Verifier, token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// #[derive(serde::Deserialize)]
/// struct Extra { org: Option<String> }
///
/// let verified = verifier.verify(token).await?;
/// println!("user {} until {}", verified.subject(), verified.expires_at());
/// if verified.has_permission("agent:read") { /* ... */ }
/// let extra: Extra = verified.claims()?;
/// # let _ = extra.org;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct VerifiedToken(Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) subject: OnBehalfOf,
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) issuer: Option<Box<str>>,
    pub(crate) expires_at: u64,
    pub(crate) issued_at: Option<u64>,
    pub(crate) not_before: Option<u64>,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) key_id: Box<str>,
    pub(crate) algorithm: jsonwebtoken::Algorithm,
    pub(crate) permissions: Permissions,
    pub(crate) raw_claims: Box<str>,
}

impl VerifiedToken {
    pub(crate) fn new(inner: Inner) -> Self {
        VerifiedToken(Arc::new(inner))
    }

    /// The end-user id (`sub`).
    pub fn subject(&self) -> &str {
        self.0.subject.as_str()
    }

    /// The end user as an [`OnBehalfOf`].
    pub fn on_behalf_of(&self) -> &OnBehalfOf {
        &self.0.subject
    }

    /// Every audience in `aud` (at least one of them was a configured audience).
    pub fn audiences(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.audiences.iter().map(|a| &**a)
    }

    /// The issuer (`iss`), when present.
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// Expiry (`exp`) in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.0.expires_at
    }

    /// Issue time (`iat`) in seconds since the Unix epoch, when present.
    pub fn issued_at(&self) -> Option<u64> {
        self.0.issued_at
    }

    /// Not-before (`nbf`) in seconds since the Unix epoch, when present.
    pub fn not_before(&self) -> Option<u64> {
        self.0.not_before
    }

    /// The token id (`jti`), when present.
    pub fn jti(&self) -> Option<&str> {
        self.0.jti.as_deref()
    }

    /// The `kid` of the key that signed the token.
    pub fn key_id(&self) -> &str {
        &self.0.key_id
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.0.algorithm
    }

    /// The token's permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// Whether the token carries `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.0.permissions.contains(permission)
    }

    /// The whole claims set as JSON text, exactly as signed.
    pub fn raw_claims(&self) -> &str {
        &self.0.raw_claims
    }

    /// Deserialize the claims into your own type (for claims this crate does not model).
    ///
    /// Use `serde_json::Value` for an untyped view.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0.raw_claims)
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signed token itself is never held here; claims are not secret.
        f.debug_struct("VerifiedToken")
            .field("sub", &self.subject())
            .field("aud", &self.0.audiences)
            .field("iss", &self.0.issuer)
            .field("exp", &self.0.expires_at)
            .field("kid", &self.0.key_id)
            .field("permissions", &self.0.permissions)
            .finish_non_exhaustive()
    }
}

/// The bearer token a request was verified with, for forwarding it onward unchanged.
///
/// The layer puts it in request extensions beside the [`VerifiedToken`]. Its `Debug` is
/// redacted, and the header value it produces is marked sensitive.
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    pub(crate) fn new(token: &str) -> Self {
        BearerToken(Arc::from(token))
    }

    /// The token text. Treat it as a secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>` as a sensitive header value.
    pub fn authorization_value(&self) -> HeaderValue {
        bearer_header_value(&self.0)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// `Bearer <secret>` as a header value marked sensitive.
///
/// Panics never: a secret with bytes a header cannot carry yields an empty sensitive value,
/// which the receiving side rejects.
pub(crate) fn bearer_header_value(secret: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Bearer {secret}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}
