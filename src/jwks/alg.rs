//! The one table of JOSE algorithms: each `alg` name, its [`Algorithm`], the family of key
//! that verifies it, and how aws-lc-rs verifies it. Everything else that maps an algorithm
//! (parsing a header's `alg`, the algorithms a key type allows, the dev issuer's names)
//! reads this table, so no lookup falls through to a default.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self as sig, RsaParameters, VerificationAlgorithm};

use crate::error::ConfigError;

/// A JWS signature algorithm (RFC 7518 names).
///
/// The crate's own type, so its public API does not change with `jsonwebtoken`'s major
/// versions. Only the asymmetric algorithms verify tokens; `HS256`, `HS384` and `HS512` exist
/// so that configuring them can be refused by name (a shared secret in a public JWKS would
/// let anyone sign).
///
/// ```
/// use mka1_auth::Algorithm;
///
/// assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
/// assert_eq!(Algorithm::EdDSA.as_str(), "EdDSA");
/// assert!("es256".parse::<Algorithm>().is_err()); // names are case-sensitive (RFC 7515)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// EdDSA over Ed25519 (RFC 8037); MKA1's default.
    EdDSA,
    /// ECDSA over P-256 with SHA-256.
    ES256,
    /// ECDSA over P-384 with SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// HMAC with SHA-256: never accepted.
    HS256,
    /// HMAC with SHA-384: never accepted.
    HS384,
    /// HMAC with SHA-512: never accepted.
    HS512,
}

impl Algorithm {
    /// Every algorithm the crate can verify (asymmetric only), for an allow-list that accepts
    /// them all.
    ///
    /// ```
    /// use mka1_auth::{Algorithm, Verifier};
    ///
    /// assert!(!Algorithm::SUPPORTED.contains(&Algorithm::HS256));
    /// let verifier = Verifier::builder()
    ///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
    ///     .audience("https://api.example.com")
    ///     .algorithms(Algorithm::SUPPORTED)
    ///     .build();
    /// assert!(verifier.is_ok());
    /// ```
    pub const SUPPORTED: [Algorithm; 9] = super::SUPPORTED_ALGORITHMS;

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        row_of(self).name
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ConfigError;

    /// The exact JOSE name (`EdDSA`, `ES256`, ...), as in a token header; any other name is
    /// a [`ConfigErrorKind::UnsupportedAlgorithm`](crate::ConfigErrorKind::UnsupportedAlgorithm)
    /// error.
    ///
    /// ```
    /// use mka1_auth::{Algorithm, ConfigErrorKind};
    ///
    /// assert_eq!("ES256".parse::<Algorithm>()?, Algorithm::ES256);
    /// let err = "es256".parse::<Algorithm>().unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::UnsupportedAlgorithm);
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    fn from_str(name: &str) -> Result<Self, ConfigError> {
        parse_alg(name).ok_or_else(|| {
            // The name as given, cut and escaped: it may come from a command line.
            let shown: String = name.chars().take(32).collect();
            ConfigError::with_detail(
                crate::ConfigErrorKind::UnsupportedAlgorithm,
                format!("{shown:?}"),
            )
        })
    }
}

/// The family of key an algorithm is verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: RSA`.
    Rsa,
    /// A shared secret (`HS*`): never verified by this crate.
    Symmetric,
}

/// How aws-lc-rs verifies an algorithm's signatures.
#[derive(Clone, Copy)]
pub(crate) enum Verification {
    /// With a key parsed from its raw public bytes (an Ed25519 key, an uncompressed EC point).
    PublicBytes(&'static dyn VerificationAlgorithm),
    /// With an RSA key parsed from its modulus and exponent.
    RsaComponents(&'static RsaParameters),
    /// Not at all: symmetric algorithms are refused.
    Refused,
}

/// One row of [`ALGORITHMS`].
pub(crate) struct AlgorithmRow {
    /// The JOSE `alg` name (RFC 7518), matched exactly.
    pub(crate) name: &'static str,
    pub(crate) algorithm: Algorithm,
    pub(crate) family: KeyFamily,
    pub(crate) verification: Verification,
}

const fn row(
    name: &'static str,
    algorithm: Algorithm,
    family: KeyFamily,
    verification: Verification,
) -> AlgorithmRow {
    AlgorithmRow {
        name,
        algorithm,
        family,
        verification,
    }
}

use KeyFamily::{Ed25519, Rsa, Symmetric, P256, P384};
use Verification::{PublicBytes, Refused, RsaComponents};

/// Every [`Algorithm`], supported or not. Within a family, rows are in
/// the order a key lists its algorithms.
pub(crate) static ALGORITHMS: [AlgorithmRow; 12] = [
    row(
        "EdDSA",
        Algorithm::EdDSA,
        Ed25519,
        PublicBytes(&sig::ED25519),
    ),
    row(
        "ES256",
        Algorithm::ES256,
        P256,
        PublicBytes(&sig::ECDSA_P256_SHA256_FIXED),
    ),
    row(
        "ES384",
        Algorithm::ES384,
        P384,
        PublicBytes(&sig::ECDSA_P384_SHA384_FIXED),
    ),
    row(
        "RS256",
        Algorithm::RS256,
        Rsa,
        RsaComponents(&sig::RSA_PKCS1_2048_8192_SHA256),
    ),
    row(
        "RS384",
        Algorithm::RS384,
        Rsa,
        RsaComponents(&sig::RSA_PKCS1_2048_8192_SHA384),
    ),
    row(
        "RS512",
        Algorithm::RS512,
        Rsa,
        RsaComponents(&sig::RSA_PKCS1_2048_8192_SHA512),
    ),
    row(
        "PS256",
        Algorithm::PS256,
        Rsa,
        RsaComponents(&sig::RSA_PSS_2048_8192_SHA256),
    ),
    row(
        "PS384",
        Algorithm::PS384,
        Rsa,
        RsaComponents(&sig::RSA_PSS_2048_8192_SHA384),
    ),
    row(
        "PS512",
        Algorithm::PS512,
        Rsa,
        RsaComponents(&sig::RSA_PSS_2048_8192_SHA512),
    ),
    row("HS256", Algorithm::HS256, Symmetric, Refused),
    row("HS384", Algorithm::HS384, Symmetric, Refused),
    row("HS512", Algorithm::HS512, Symmetric, Refused),
];

/// Other names for a row's algorithm. RFC 9864's fully-specified `Ed25519` is EdDSA over
/// Ed25519, the only EdDSA curve supported: it is allowed by allowing EdDSA and verified
/// only with an Ed25519 key.
const ALIASES: [(&str, Algorithm); 1] = [("Ed25519", Algorithm::EdDSA)];

/// The row for `alg`: every algorithm has one (a test checks).
pub(crate) fn row_of(alg: Algorithm) -> &'static AlgorithmRow {
    // The table is indexed in variant order.
    &ALGORITHMS[alg as usize]
}

/// Parse a JOSE `alg` name, exactly (case-sensitive, as RFC 7515 says).
#[inline]
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    ALGORITHMS
        .iter()
        .map(|r| (r.name, r.algorithm))
        .chain(ALIASES)
        .find(|(n, _)| *n == name)
        .map(|(_, alg)| alg)
}

/// Whether the crate can verify `alg` at all (asymmetric algorithms only).
pub(crate) fn is_supported(alg: Algorithm) -> bool {
    !matches!(row_of(alg).verification, Refused)
}

/// The algorithms a key of this family verifies, in table order.
pub(crate) fn algorithms_of(family: KeyFamily) -> impl Iterator<Item = Algorithm> {
    ALGORITHMS
        .iter()
        .filter(move |r| r.family == family)
        .map(|r| r.algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::SUPPORTED_ALGORITHMS;

    #[test]
    fn the_table_is_in_variant_order() {
        for (i, r) in ALGORITHMS.iter().enumerate() {
            assert_eq!(r.algorithm as usize, i, "{}", r.name);
            assert_eq!(r.algorithm.to_string(), r.name);
            assert_eq!(r.name.parse(), Ok(r.algorithm));
        }
    }

    #[test]
    fn names_round_trip_and_are_exact() {
        for r in &ALGORITHMS {
            assert_eq!(parse_alg(r.name), Some(r.algorithm));
            assert_eq!(r.algorithm.as_str(), r.name);
            assert_eq!(parse_alg(&r.name.to_lowercase()), None);
        }
        assert_eq!(parse_alg("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(Algorithm::EdDSA.as_str(), "EdDSA");
        assert_eq!(parse_alg("none"), None);
        assert_eq!(parse_alg(""), None);
    }

    #[test]
    fn supported_algorithms_are_the_asymmetric_rows() {
        let supported: Vec<Algorithm> = ALGORITHMS
            .iter()
            .map(|r| r.algorithm)
            .filter(|a| is_supported(*a))
            .collect();
        assert_eq!(supported, SUPPORTED_ALGORITHMS);
        for r in &ALGORITHMS {
            assert_eq!(
                matches!(r.verification, Refused),
                r.family == KeyFamily::Symmetric
            );
        }
    }
}
