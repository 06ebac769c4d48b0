//! The one table of JOSE algorithms: each `alg` name, its [`Algorithm`], the family of key
//! that verifies it, and how aws-lc-rs verifies it. Everything else that maps an algorithm
//! (parsing a header's `alg`, the algorithms a key type allows, the dev issuer's names)
//! reads this table, so no lookup falls through to a default.

use aws_lc_rs::signature::{self as sig, RsaParameters, VerificationAlgorithm};
use jsonwebtoken::Algorithm;

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

/// Every algorithm `jsonwebtoken` names, supported or not. Within a family, rows are in
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

/// The row for `alg`; `None` only for an algorithm a later `jsonwebtoken` adds.
pub(crate) fn row_of(alg: Algorithm) -> Option<&'static AlgorithmRow> {
    ALGORITHMS.iter().find(|r| r.algorithm == alg)
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

/// The JOSE `alg` name of `alg`.
#[cfg_attr(not(feature = "dev-issuer"), allow(dead_code))]
pub(crate) fn alg_name(alg: Algorithm) -> Option<&'static str> {
    row_of(alg).map(|r| r.name)
}

/// Whether the crate can verify `alg` at all (asymmetric algorithms only).
pub(crate) fn is_supported(alg: Algorithm) -> bool {
    row_of(alg).is_some_and(|r| !matches!(r.verification, Refused))
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
    fn names_round_trip_and_are_exact() {
        for r in &ALGORITHMS {
            assert_eq!(parse_alg(r.name), Some(r.algorithm));
            assert_eq!(alg_name(r.algorithm), Some(r.name));
            assert_eq!(parse_alg(&r.name.to_lowercase()), None);
        }
        assert_eq!(parse_alg("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(alg_name(Algorithm::EdDSA), Some("EdDSA"));
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
