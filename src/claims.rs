//! What a verified token says: [`VerifiedToken`], the end user it acts for ([`OnBehalfOf`]),
//! its [`Permissions`], and the rule an end-user id must follow.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use http::HeaderValue;
use serde::de::DeserializeOwned;

pub(crate) use crate::bearer::bearer_header_value;
pub use crate::bearer::BearerToken;
use crate::error::{Error, ErrorKind};

/// The header that carries the end user a call is made for.
///
/// Its value is MKA1's `externalUserId` whole (see [`validate_end_user_id`]): any printable
/// ASCII, so it may hold `,`, `;`, `"` and `=`. A service reading it must take it as one
/// opaque value, the exact bytes of the one header line, never split it as a list (HTTP's
/// comma-joined repeated headers) or parse it as parameters: `alice,bob` is one user. The
/// crate's layers always send exactly one such header.
///
/// ```
/// use mka1_auth::claims::{validate_end_user_id, X_ON_BEHALF_OF};
///
/// assert_eq!(X_ON_BEHALF_OF.as_str(), "x-on-behalf-of");
/// // One user, not a list: a valid id may hold a comma, a semicolon and a quote.
/// assert!(validate_end_user_id(r#"alice,bob;role="admin""#).is_ok());
/// ```
pub const X_ON_BEHALF_OF: http::HeaderName = http::HeaderName::from_static("x-on-behalf-of");

/// The longest end-user id MKA1 accepts.
const MAX_END_USER_ID_LEN: usize = 150;

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
/// value. It is one opaque id even when it holds `,`, `;` or `"` (see [`X_ON_BEHALF_OF`]):
/// compare it whole, never split it.
///
/// Cheap to clone: it shares the verified token's memory (one reference count), and it
/// compares, hashes and prints as the id alone.
///
/// ```
/// # async fn demo(verifier: mka1_auth::Verifier, token: &str) -> Result<(), mka1_auth::Error> {
/// let verified = verifier.verify(token).await?;
/// let user = verified.on_behalf_of();
/// println!("acting for {user}");
/// assert_eq!(user.as_str(), verified.subject());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OnBehalfOf(Arc<TokenContents>);

impl OnBehalfOf {
    /// The end-user id.
    pub fn as_str(&self) -> &str {
        self.0.get(self.0.subject)
    }

    /// The id as a header value, for `X-On-Behalf-Of`.
    pub fn to_header_value(&self) -> HeaderValue {
        // Printable ASCII only, checked when the token was verified. (The layer uses a value
        // kept by the thread's front cache entry instead, when there is one: a copy per
        // request cost an allocation; one kept per cached token, about 100 bytes a token.)
        HeaderValue::from_str(self.as_str()).expect("end-user ids are printable ascii")
    }
}

impl PartialEq for OnBehalfOf {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for OnBehalfOf {}

impl std::hash::Hash for OnBehalfOf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for OnBehalfOf {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for OnBehalfOf {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnBehalfOf").field(&self.as_str()).finish()
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
// The sorted, distinct names in one string, each written as its length in bytes (decimal),
// `:`, then the name: one allocation for them all, none when there are none. The form is
// canonical, so the derived equality compares the sets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Permissions(Box<str>);

/// How many decimal digits `n` is written with.
fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Append `n` in decimal.
fn push_decimal(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

impl Permissions {
    /// Build from permission names; empty names are dropped, duplicates collapse.
    pub(crate) fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut names: Vec<S> = names
            .into_iter()
            .filter(|n| !n.as_ref().is_empty())
            .collect();
        names.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        names.dedup_by(|a, b| a.as_ref() == b.as_ref());
        // Built at its exact size, without the formatting machinery: this runs once per
        // token verified afresh.
        let packed_len = names
            .iter()
            .map(|n| decimal_digits(n.as_ref().len()) + 1 + n.as_ref().len())
            .sum();
        let mut packed = String::with_capacity(packed_len);
        for name in &names {
            let name = name.as_ref();
            push_decimal(&mut packed, name.len());
            packed.push(':');
            packed.push_str(name);
        }
        Permissions(packed.into_boxed_str())
    }

    /// Whether the permission is present (exact, case-sensitive match).
    pub fn contains(&self, permission: &str) -> bool {
        self.iter().any(|p| p == permission)
    }

    /// Whether every one of `permissions` is present.
    pub fn contains_all<'a>(&self, permissions: impl IntoIterator<Item = &'a str>) -> bool {
        permissions.into_iter().all(|p| self.contains(p))
    }

    /// Whether at least one of `permissions` is present (never, for an empty list).
    pub fn contains_any<'a>(&self, permissions: impl IntoIterator<Item = &'a str>) -> bool {
        permissions.into_iter().any(|p| self.contains(p))
    }

    /// The permissions, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut rest = &*self.0;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_once(':')?;
            let (name, tail) = tail.split_at_checked(len.parse().ok()?)?;
            rest = tail;
            Some(name)
        })
    }

    /// How many distinct permissions there are.
    pub fn len(&self) -> usize {
        self.iter().count()
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
pub struct VerifiedToken(OnBehalfOf);

/// Where a string lies in [`TokenContents::text`]: its start and length in bytes.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// A verified token's contents, packed: every string is a span of one text, so a cached
/// token is three allocations (this, the text, the audience spans) plus its permissions.
pub(crate) struct TokenContents {
    /// The claims exactly as signed, then any string below that does not occur in them
    /// verbatim (one written with JSON escapes, or the key id).
    text: Box<str>,
    raw_len: u32,
    subject: Span,
    key_id: Span,
    issuer: Option<Span>,
    jti: Option<Span>,
    audiences: Box<[Span]>,
    permissions: Permissions,
    expires_at: u64,
    issued_at: Option<u64>,
    not_before: Option<u64>,
    algorithm: crate::jwks::Algorithm,
}

impl TokenContents {
    fn get(&self, span: Span) -> &str {
        let start = span.start as usize;
        &self.text[start..start + span.len as usize]
    }
}

/// What a verified token is built from.
pub(crate) struct Fields<'a> {
    /// The claims as signed.
    pub(crate) raw_claims: String,
    /// Already checked with [`validate_end_user_id`].
    pub(crate) subject: &'a str,
    pub(crate) audiences: &'a [Box<str>],
    pub(crate) issuer: Option<&'a str>,
    pub(crate) jti: Option<&'a str>,
    pub(crate) key_id: &'a str,
    pub(crate) expires_at: u64,
    pub(crate) issued_at: Option<u64>,
    pub(crate) not_before: Option<u64>,
    pub(crate) algorithm: crate::jwks::Algorithm,
    pub(crate) permissions: Permissions,
}

impl VerifiedToken {
    /// Pack the fields. Fails only for claims beyond 4 GiB, which no sane limit lets in.
    pub(crate) fn new(fields: Fields<'_>) -> Result<Self, Error> {
        debug_assert!(validate_end_user_id(fields.subject).is_ok());
        let mut text = fields.raw_claims;
        let raw_len = text.len();
        // Most strings are found in the claims as they are (the JSON needed no escapes); the
        // rest (the key id, at least) go after them, with one exact reservation. Each string
        // is searched for once.
        let find = |s: &str| text.find(s);
        let subject = (fields.subject, find(fields.subject));
        let key_id = (fields.key_id, find(fields.key_id));
        let issuer = fields.issuer.map(|s| (s, find(s)));
        let jti = fields.jti.map(|s| (s, find(s)));
        let audiences: Vec<(&str, Option<usize>)> =
            fields.audiences.iter().map(|a| (&**a, find(a))).collect();
        let extra: usize = [subject, key_id]
            .iter()
            .chain(&issuer)
            .chain(&jti)
            .chain(&audiences)
            .filter(|(_, at)| at.is_none())
            .map(|(s, _)| s.len())
            .sum();
        text.reserve_exact(extra);
        let mut place = |(s, at): (&str, Option<usize>)| match at {
            Some(start) => (start, s.len()),
            None => {
                text.push_str(s);
                (text.len() - s.len(), s.len())
            }
        };
        let subject = place(subject);
        let key_id = place(key_id);
        let issuer = issuer.map(&mut place);
        let jti = jti.map(&mut place);
        let audiences: Vec<_> = audiences.into_iter().map(&mut place).collect();
        let too_large = || Error::new(ErrorKind::TokenTooLarge);
        u32::try_from(text.len()).map_err(|_| too_large())?;
        // Every span lies within `text`, whose length fits a u32.
        let span = |(start, len): (usize, usize)| Span {
            start: start as u32,
            len: len as u32,
        };
        let inner = TokenContents {
            raw_len: raw_len as u32,
            text: text.into_boxed_str(),
            subject: span(subject),
            key_id: span(key_id),
            issuer: issuer.map(span),
            jti: jti.map(span),
            audiences: audiences.into_iter().map(span).collect(),
            permissions: fields.permissions,
            expires_at: fields.expires_at,
            issued_at: fields.issued_at,
            not_before: fields.not_before,
            algorithm: fields.algorithm,
        };
        Ok(VerifiedToken(OnBehalfOf(Arc::new(inner))))
    }

    fn inner(&self) -> &TokenContents {
        &self.0 .0
    }

    /// The end-user id (`sub`).
    pub fn subject(&self) -> &str {
        self.0.as_str()
    }

    /// The end user as an [`OnBehalfOf`].
    pub fn on_behalf_of(&self) -> &OnBehalfOf {
        &self.0
    }

    /// Every audience in `aud` (at least one of them was a configured audience).
    pub fn audiences(&self) -> impl Iterator<Item = &str> + '_ {
        let inner = self.inner();
        inner.audiences.iter().map(|a| inner.get(*a))
    }

    /// The issuer (`iss`), when present.
    pub fn issuer(&self) -> Option<&str> {
        self.inner().issuer.map(|s| self.inner().get(s))
    }

    /// Expiry (`exp`) in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.inner().expires_at
    }

    /// Issue time (`iat`) in seconds since the Unix epoch, when present.
    pub fn issued_at(&self) -> Option<u64> {
        self.inner().issued_at
    }

    /// Not-before (`nbf`) in seconds since the Unix epoch, when present.
    pub fn not_before(&self) -> Option<u64> {
        self.inner().not_before
    }

    /// The token id (`jti`), when present.
    pub fn jti(&self) -> Option<&str> {
        self.inner().jti.map(|s| self.inner().get(s))
    }

    /// The `kid` of the key that signed the token.
    pub fn key_id(&self) -> &str {
        self.inner().get(self.inner().key_id)
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> crate::jwks::Algorithm {
        self.inner().algorithm
    }

    /// The token's permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.inner().permissions
    }

    /// Whether the token carries `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.inner().permissions.contains(permission)
    }

    /// The whole claims set as JSON text, exactly as signed.
    pub fn raw_claims(&self) -> &str {
        &self.inner().text[..self.inner().raw_len as usize]
    }

    /// Deserialize the claims into your own type (for claims this crate does not model).
    ///
    /// Use `serde_json::Value` for an untyped view.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.raw_claims())
    }

    /// One claim, deserialized into `T`: `Ok(None)` when the token has no claim of that
    /// name, an error when it has one that does not fit `T`. Custom claims included; only
    /// the claim asked for is deserialized.
    ///
    /// ```
    /// # fn demo(token: mka1_auth::VerifiedToken) -> Result<(), serde_json::Error> {
    /// let org: Option<String> = token.claim("org")?;
    /// let tier: Option<u8> = token.claim("tier")?;
    /// # let _ = (org, tier);
    /// # Ok(()) }
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, serde_json::Error> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_str(self.raw_claims());
        let found = OneClaim {
            name,
            wanted: std::marker::PhantomData,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }

    /// Whether two handles share one verified token (for the cache's tests).
    #[cfg(test)]
    pub(crate) fn same(&self, other: &VerifiedToken) -> bool {
        Arc::ptr_eq(&self.0 .0, &other.0 .0)
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signed token itself is never held here; claims are not secret.
        f.debug_struct("VerifiedToken")
            .field("sub", &self.subject())
            .field("aud", &self.audiences().collect::<Vec<_>>())
            .field("iss", &self.issuer())
            .field("exp", &self.expires_at())
            .field("kid", &self.key_id())
            .field("permissions", self.permissions())
            .finish_non_exhaustive()
    }
}

/// Reads one member of the claims object into `T` and skips the others.
struct OneClaim<'n, T> {
    name: &'n str,
    wanted: std::marker::PhantomData<fn() -> T>,
}

impl<'de, T: DeserializeOwned> serde::de::DeserializeSeed<'de> for OneClaim<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for OneClaim<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(is_it) = map.next_key_seed(NameIs(self.name))? {
            if is_it && found.is_none() {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A claim name, read as whether it is the one wanted (no copy of it).
struct NameIs<'n>(&'n str);

impl<'de> serde::de::DeserializeSeed<'de> for NameIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NameIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_packed_in_decimal_at_the_exact_size() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, usize::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
            assert_eq!(decimal_digits(n), out.len(), "{n}");
        }
        let long = ["x".repeat(9), "y".repeat(10), "z".repeat(100)];
        let perms = Permissions::from_names(&long);
        assert_eq!(
            perms.iter().collect::<Vec<_>>(),
            long.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(perms.0.len(), 1 + 1 + 9 + 2 + 1 + 10 + 3 + 1 + 100);
    }

    #[test]
    fn permissions_keep_names_that_look_like_the_packing() {
        let perms = Permissions::from_names(["b:1", "12:x", "", "a", "b:1", "é:2"]);
        let names: Vec<_> = perms.iter().collect();
        assert_eq!(names, ["12:x", "a", "b:1", "é:2"]);
        assert_eq!(perms.len(), 4);
        assert!(perms.contains("12:x") && perms.contains("é:2"));
        assert!(!perms.contains("x") && !perms.contains("12") && !perms.contains(""));
        assert_eq!(perms, Permissions::from_names(["a", "é:2", "12:x", "b:1"]));
        assert!(Permissions::from_names([""]).is_empty());
    }

    #[test]
    fn packed_strings_read_back_whether_or_not_the_claims_hold_them_verbatim() {
        let raw =
            r#"{"sub":"u\/1","aud":["https://a.test","https:\/\/b.test"],"iss":"i","jti":"j"}"#;
        let token = VerifiedToken::new(Fields {
            raw_claims: raw.into(),
            subject: "u/1",
            audiences: &[Box::from("https://a.test"), Box::from("https://b.test")],
            issuer: Some("i"),
            jti: Some("j"),
            key_id: "key-9",
            expires_at: 2,
            issued_at: Some(1),
            not_before: None,
            algorithm: crate::jwks::Algorithm::EdDSA,
            permissions: Permissions::default(),
        })
        .unwrap();
        assert_eq!(token.raw_claims(), raw);
        assert_eq!(token.subject(), "u/1");
        assert_eq!(token.on_behalf_of().as_str(), "u/1");
        let audiences: Vec<_> = token.audiences().collect();
        assert_eq!(audiences, ["https://a.test", "https://b.test"]);
        assert_eq!((token.issuer(), token.jti()), (Some("i"), Some("j")));
        assert_eq!(token.key_id(), "key-9");
        assert_eq!(token.on_behalf_of(), &token.clone().on_behalf_of().clone());
    }
}
