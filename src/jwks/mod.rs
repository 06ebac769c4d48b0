//! Key sets: parsing a JWKS document into [`VerificationKey`]s by `kid`, skipping (never
//! failing on) keys that cannot be trusted, and the sources a verifier reads keys from.
//!
//! [`KeySet`] is also yours to use: load a JWKS with [`KeySet::from_json`] to see which keys
//! it holds and why any were skipped ([`KeySet::skipped`], [`SkipReason`]), in a start-up
//! check or a diagnostic tool, then hand it to
//! [`VerifierBuilder::key_set`](crate::VerifierBuilder::key_set).
//!
//! A key's public material is parsed and validated once, when the set is loaded; a token's
//! signature is then checked against the already-parsed key.

mod alg;
mod document;
mod epoch;
mod key;
cfg_feature! {
    #![feature = "remote"]
    pub mod remote;
}
mod set;
mod sources;
mod status;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub use alg::Algorithm;
pub(crate) use alg::{is_supported, parse_alg};
pub use document::IntoJwks;
pub(crate) use document::JwksDocument;
pub(crate) use epoch::Held;
pub use key::{KeyType, VerificationKey};
pub use set::{KeySet, SkipReason, SkippedKey};
pub(crate) use sources::{KeySource, KeySources, Lookup, SourceId};
pub use status::KeySetStatus;

/// The algorithms accepted when none are configured
/// ([`VerifierBuilder::DEFAULT_ALGORITHMS`](crate::VerifierBuilder::DEFAULT_ALGORITHMS)).
pub(crate) const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

/// Strict base64url: the URL-safe alphabet, no padding, no whitespace, canonical trailing bits.
pub(crate) fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// Every algorithm the crate can verify ([`Algorithm::SUPPORTED`]).
pub(crate) const SUPPORTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
