//! [`CookieName`]: the name of the cookie [`Mka1AuthLayer::cookie`](super::Mka1AuthLayer::cookie)
//! reads the token from, checked when it is made.

use std::fmt;
use std::sync::Arc;

use crate::bearer::is_cookie_name;
use crate::error::ConfigError;

/// A valid cookie name (RFC 6265: one or more visible ASCII characters, none of
/// `()<>@,;:\"/[]?={}`), for [`Mka1AuthLayer::cookie`](super::Mka1AuthLayer::cookie). Made
/// with [`CookieName::new`], which refuses anything else with a [`ConfigError`], so the
/// layer's setter cannot fail.
///
/// ```
/// use mka1_auth::layer::CookieName;
/// use mka1_auth::{ConfigErrorKind, Mka1AuthLayer, Verifier};
///
/// # fn demo(verifier: Verifier) -> Result<(), mka1_auth::ConfigError> {
/// let layer = Mka1AuthLayer::new(verifier).cookie(CookieName::new("mka1_token")?);
/// # let _ = layer;
/// # Ok(()) }
/// assert_eq!(CookieName::new("mka1_token").unwrap().as_str(), "mka1_token");
/// for bad in ["", "my token", "a;b", "é"] {
///     let err = CookieName::new(bad).unwrap_err();
///     assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
/// }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CookieName(pub(super) Arc<str>);

impl CookieName {
    /// `name`, if it is a valid cookie name; a [`ConfigError`] of kind
    /// [`InvalidSetting`](crate::ConfigErrorKind::InvalidSetting) otherwise.
    pub fn new(name: impl Into<String>) -> Result<CookieName, ConfigError> {
        let name = name.into();
        if is_cookie_name(&name) {
            Ok(CookieName(name.into()))
        } else {
            Err(ConfigError::invalid_setting(
                "cookie",
                "is not a valid cookie name (one or more visible ascii characters, none of ()<>@,;:\\\"/[]?={})",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CookieName").field(&&*self.0).finish()
    }
}

impl fmt::Display for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
