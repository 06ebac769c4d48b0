//! Inside a tool: the verified caller, and a per-tool permission check whose refusal is a
//! tool error (MCP's `isError: true` result), not an HTTP answer in the middle of a session.

use http::Extensions;

use crate::claims::VerifiedToken;
use crate::error::ErrorKind;

/// Why a tool refused to run: no verified caller, or a permission the caller lacks. Its
/// text (`Display`) is what the tool error says; it names the missing permissions, never
/// the token.
///
/// ```
/// use mka1_auth::mcp::ToolRefusal;
///
/// let refusal = ToolRefusal::missing(["agent:read"]);
/// assert_eq!(refusal.kind(), mka1_auth::ErrorKind::InsufficientPermission);
/// assert_eq!(refusal.to_string(), "permission denied: this tool needs agent:read");
/// assert_eq!(refusal.permissions().collect::<Vec<_>>(), ["agent:read"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRefusal {
    missing: Vec<String>,
}

impl ToolRefusal {
    /// A refusal naming the permissions `missing` (none: the call had no verified caller).
    pub fn missing<I>(missing: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        ToolRefusal {
            missing: missing.into_iter().map(Into::into).collect(),
        }
    }

    /// What kind of refusal, in the crate's inbound terms:
    /// [`ErrorKind::MissingCredentials`] when there was no verified caller,
    /// [`ErrorKind::InsufficientPermission`] when a permission is missing.
    ///
    /// ```
    /// use mka1_auth::{mcp::ToolRefusal, ErrorKind};
    ///
    /// let nobody = ToolRefusal::missing(Vec::<String>::new());
    /// assert_eq!(nobody.kind(), ErrorKind::MissingCredentials);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        if self.missing.is_empty() {
            ErrorKind::MissingCredentials
        } else {
            ErrorKind::InsufficientPermission
        }
    }

    /// The permissions the caller lacks (empty when there was no verified caller).
    pub fn permissions(&self) -> impl Iterator<Item = &str> + '_ {
        self.missing.iter().map(String::as_str)
    }
}

impl std::fmt::Display for ToolRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missing.is_empty() {
            f.write_str("unauthenticated: this tool needs a verified mka1 token")
        } else {
            write!(
                f,
                "permission denied: this tool needs {}",
                self.missing.join(", ")
            )
        }
    }
}

impl std::error::Error for ToolRefusal {}

/// The verified caller of a tool: the [`VerifiedToken`] that
/// [`Mka1AuthLayer`](crate::Mka1AuthLayer) left in the HTTP request's extensions. With
/// rmcp, a tool takes `Extension(parts): Extension<http::request::Parts>` and passes
/// `&parts.extensions`.
///
/// ```
/// use mka1_auth::mcp::caller;
///
/// let extensions = http::Extensions::new();
/// assert!(caller(&extensions).is_err()); // no layer in front, or an anonymous request
/// ```
pub fn caller(extensions: &Extensions) -> Result<&VerifiedToken, ToolRefusal> {
    VerifiedToken::from_extensions(extensions)
        .ok_or_else(|| ToolRefusal::missing(Vec::<String>::new()))
}

/// The verified caller, if it holds every permission in `needed`; otherwise a
/// [`ToolRefusal`] naming those it lacks. Check first, then run the tool's body:
///
/// ```
/// use mka1_auth::mcp::{require, ToolRefusal};
///
/// fn list_agents(extensions: &http::Extensions) -> Result<String, ToolRefusal> {
///     let caller = require(extensions, ["agent:read"])?;
///     Ok(format!("agents visible to {}", caller.subject()))
/// }
/// let refusal = list_agents(&http::Extensions::new()).unwrap_err();
/// assert!(refusal.to_string().starts_with("unauthenticated"));
/// ```
pub fn require<'e, 'p>(
    extensions: &'e Extensions,
    needed: impl IntoIterator<Item = &'p str>,
) -> Result<&'e VerifiedToken, ToolRefusal> {
    let token = caller(extensions)?;
    let missing: Vec<&str> = needed
        .into_iter()
        .filter(|p| !token.has_permission(p))
        .collect();
    if missing.is_empty() {
        Ok(token)
    } else {
        Err(ToolRefusal::missing(missing))
    }
}
