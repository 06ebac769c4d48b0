//! A service's own claim checks ([`VerifierBuilder::check`] and
//! [`VerifierBuilder::check_uncached`]), run in order after the built-in rules, each with
//! its panic contained.
//!
//! [`VerifierBuilder::check`]: super::VerifierBuilder::check
//! [`VerifierBuilder::check_uncached`]: super::VerifierBuilder::check_uncached

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::claims::VerifiedToken;
use crate::error::{Error, ErrorKind};

/// Why a claim check of yours refused a token: what the client is told, after
/// "token was refused by a check of this service: ".
///
/// The token is answered 401 `invalid_token` with [`ErrorKind::CheckFailed`] (see
/// [`VerifierBuilder::check`](crate::VerifierBuilder::check) for why 401 and not 403).
/// The reason reaches the client in `error_description`: name the rule, never a secret.
///
/// A claim of the wrong type refuses the token too: `?` turns a `serde_json::Error` from
/// [`VerifiedToken::claim`] into a refusal that names no claim value.
///
/// ```
/// use mka1_auth::{ClaimRefusal, VerifiedToken};
///
/// fn only_acme(token: &VerifiedToken) -> Result<(), ClaimRefusal> {
///     match token.claim::<String>("org")? {
///         Some(org) if org == "acme" => Ok(()),
///         _ => Err(ClaimRefusal::new("`org` must be acme")),
///     }
/// }
/// # let _ = only_acme;
/// ```
#[derive(Clone)]
pub struct ClaimRefusal {
    reason: Cow<'static, str>,
    source: Option<Arc<serde_json::Error>>,
}

impl ClaimRefusal {
    /// A refusal with this reason (lowercase, no secret: the client sees it).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        ClaimRefusal {
            reason: reason.into(),
            source: None,
        }
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn into_error(self) -> Error {
        let error = Error::with_detail(ErrorKind::CheckFailed, self.reason);
        match self.source {
            Some(source) => error.with_source(SharedJsonError(source)),
            None => error,
        }
    }
}

impl fmt::Debug for ClaimRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRefusal")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ClaimRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ClaimRefusal {}

/// A claim that does not deserialize into the type asked for. serde_json's message may quote
/// the claim's value, so it is kept as the cause (for logs), not sent as the reason.
impl From<serde_json::Error> for ClaimRefusal {
    fn from(e: serde_json::Error) -> Self {
        ClaimRefusal {
            reason: Cow::Borrowed("a claim does not have the type this service expects"),
            source: Some(Arc::new(e)),
        }
    }
}

/// A `serde_json::Error` shared between clones of a refusal.
#[derive(Debug)]
struct SharedJsonError(Arc<serde_json::Error>);

impl fmt::Display for SharedJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedJsonError {}

/// One claim check, as given to the builder.
pub(crate) type Check = Arc<dyn Fn(&VerifiedToken) -> Result<(), ClaimRefusal> + Send + Sync>;

/// The checks of one kind (cached or uncached), in the order they were added.
#[derive(Clone, Default)]
pub(crate) struct Checks(Box<[Check]>);

impl Checks {
    pub(crate) fn new(list: Vec<Check>) -> Self {
        Checks(list.into_boxed_slice())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Run every check on `token`, in order; the first refusal is the answer. A check that
    /// panics is answered [`ErrorKind::CheckPanicked`]: the panic stops here, and nothing
    /// it may have left half-done is shared (a check only reads the token).
    #[inline]
    pub(crate) fn run(&self, token: &VerifiedToken) -> Result<(), Error> {
        for (index, check) in self.0.iter().enumerate() {
            match catch_unwind(AssertUnwindSafe(|| check(token))) {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => return Err(refusal.into_error()),
                Err(_) => {
                    tracing::error!(
                        check = index,
                        "a claim check panicked; the token is refused with 500 and not cached"
                    );
                    return Err(Error::with_detail(
                        ErrorKind::CheckPanicked,
                        "a claim check panicked",
                    ));
                }
            }
        }
        Ok(())
    }
}
