//! The crate's internal macros. Declared first in `lib.rs` (`#[macro_use]`), so every
//! module can use them.

/// Items that exist only with a cargo feature, each badged with it on docs.rs.
///
/// Every feature-gated public item goes through this macro, so none misses its badge
/// (`doc(cfg)`, shown under `--cfg docsrs`), as hyper's `cfg_feature!` does. It works
/// wherever items do: a module's items, or an `impl` block's methods.
///
/// ```ignore
/// cfg_feature! {
///     #![feature = "remote"]
///
///     /// Fetch the key set from `url`.
///     pub fn jwks_url(self, url: impl Into<String>) -> Self { .. }
/// }
/// ```
///
/// Private items gated on a feature (a field, a `use`) keep a plain `#[cfg(feature = ..)]`:
/// there is no badge to show.
macro_rules! cfg_feature {
    (#![feature = $feature:literal] $($item:item)*) => {
        $(
            #[cfg(feature = $feature)]
            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            $item
        )*
    };
}
