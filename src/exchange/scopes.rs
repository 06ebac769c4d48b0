//! What an exchanged token may do: exactly the permissions named (possibly none), or every
//! scope the API key holds. Two values, so that an empty list can never mean "everything".

/// Which permissions an exchanged token is to carry: exactly a list (`[]` included), or
/// every scope of the API key (the field left out). The default is `Exactly` none (see the
/// [module docs](super) for why).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scopes {
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

#[cfg(test)]
mod tests {
    use super::Scopes;
    use crate::exchange::ExchangeRequest;

    #[test]
    fn none_by_default_sorted_without_repeats_and_all_only_on_request() {
        let request = ExchangeRequest::new("https://agents.example.com", "user-42");
        assert_eq!(request.scopes, Scopes::Exactly(vec![]));
        assert_eq!(request.scopes.field(), Some(&[][..]));
        let reader = request
            .clone()
            .permissions(["b:read", "agent:read", "b:read"]);
        assert_eq!(
            reader.scopes,
            Scopes::Exactly(vec!["agent:read".to_owned(), "b:read".to_owned()])
        );
        let everything = request.all_key_scopes();
        assert_eq!(everything.scopes, Scopes::AllOfKey);
        assert_eq!(everything.scopes.field(), None);
    }
}
