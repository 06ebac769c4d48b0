//! What an exchanged token may do: exactly the permissions named (possibly none), or every
//! scope the API key holds. Two values, so that an empty list can never mean "everything".

/// Which permissions an exchanged token is to carry.
///
/// MKA1 reads the exchange request's `permissions` field in two ways: a list, `[]` included,
/// is exactly what to embed (each one a scope the API key holds, else 403); a request
/// without the field gets every scope the key holds. This type keeps the two apart, so a
/// least-privilege list that comes out empty asks for nothing rather than for the widest
/// token there is.
///
/// **The default is `Exactly` none**, for [`ExchangeRequest`](super::ExchangeRequest) and
/// [`ExchangeSource`](super::ExchangeSource) alike: the token names its user and audience
/// and grants nothing more, so a forgotten `permissions(..)` shows up as a 403 from the
/// target instead of as a token that can do everything the key can. Name what a call needs
/// with `permissions([..])`; ask for all of the key's scopes only on purpose, with
/// `all_key_scopes()`.
///
/// ```
/// use mka1_auth::exchange::{ExchangeRequest, Scopes};
///
/// let request = ExchangeRequest::new("https://agents.example.com", "user-42");
/// assert_eq!(request.scopes(), &Scopes::Exactly(vec![]));
///
/// let reader = request.clone().permissions(["agent:read", "agent:read"]);
/// assert_eq!(reader.scopes(), &Scopes::Exactly(vec!["agent:read".to_owned()]));
///
/// let everything = request.all_key_scopes();
/// assert_eq!(everything.scopes(), &Scopes::AllOfKey);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scopes {
    /// Exactly these permissions, sorted and without repeats; none when empty. Sent as
    /// `"permissions": [..]`, and `[]` for none.
    Exactly(Vec<String>),
    /// Every scope the API key holds when the token is minted: the request leaves
    /// `permissions` out, which MKA1 reads as all of them. The widest token the key can get
    /// (`write:apikeys` too, if the key holds it).
    AllOfKey,
}

impl Scopes {
    /// `Exactly` these, in order and without repeats (so that the cache sees one value).
    pub(super) fn exactly<I>(permissions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut list: Vec<String> = permissions.into_iter().map(Into::into).collect();
        list.sort_unstable();
        list.dedup();
        Scopes::Exactly(list)
    }

    /// The request body's `permissions`: `None` leaves the field out.
    pub(super) fn field(&self) -> Option<&[String]> {
        match self {
            Scopes::Exactly(list) => Some(list),
            Scopes::AllOfKey => None,
        }
    }
}
