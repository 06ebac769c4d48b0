//! The core verifier's contract: every rule, both sides of each boundary, for EdDSA, ES256
//! and RS256 tokens minted in the test.

use crate::common;

use std::time::Duration;

use common::*;
use mka1_auth::jwks::{KeySet, SkipReason};
use mka1_auth::{Algorithm, ConfigErrorKind, ErrorKind, ManualClock, Verifier};
use serde_json::{json, Value};

const LEEWAY: u64 = 60;
const MAX_LIFETIME: u64 = 2_592_000;

fn verifier_for(keys: &[&TestKey]) -> Verifier {
    Verifier::builder()
        .jwks(jwks(keys))
        .audience(AUDIENCE)
        .audience("https://second.example.test")
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap()
}

/// A verifier for `keys` that allows only `algorithms`.
fn verifier_allowing(
    keys: &[&TestKey],
    algorithms: impl IntoIterator<Item = Algorithm>,
) -> Verifier {
    Verifier::builder()
        .jwks(jwks(keys))
        .audience(AUDIENCE)
        .algorithms(algorithms)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap()
}

/// One row of the table: a token and what verifying it must give.
struct Case {
    name: String,
    token: String,
    expect: Result<(), ErrorKind>,
}

fn case(name: impl Into<String>, token: String, expect: Result<(), ErrorKind>) -> Case {
    Case {
        name: name.into(),
        token,
        expect,
    }
}

async fn run_table(verifier: &Verifier, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let got = verifier
            .verify(&c.token)
            .await
            .map(|_| ())
            .map_err(|e| e.kind());
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Rules 1-8 for one signing key.
fn cases_for(key: &TestKey, other: &TestKey) -> Vec<Case> {
    use ErrorKind::*;
    let a = key.alg;
    let ok = Ok(());
    let good = key.sign(&claims_at(NOW));
    let with = |changes: Value| key.sign(&claims_with(changes));
    let with_header = |header: Value| key.sign_with_header(&header, &claims_at(NOW));
    let mut header = key.header();
    let mut cases = vec![
        case("valid", good.clone(), ok),
        // 1. shape
        case(
            "two segments",
            good.rsplit_once('.').unwrap().0.to_owned(),
            Err(Malformed),
        ),
        case("four segments", format!("{good}.x"), Err(Malformed)),
        case("empty", String::new(), Err(Malformed)),
        case("padded header", good.replacen('.', "=.", 1), Err(Malformed)),
        case("space in header", format!(" {good}"), Err(Malformed)),
        case(
            "standard alphabet",
            good.replacen(['-', '_'], "+", 1).replacen('.', "/.", 1),
            Err(Malformed),
        ),
        case(
            "header is an array",
            key.sign_raw(
                format!(r#"["{a}","{}"]"#, key.kid).as_bytes(),
                claims_at(NOW).to_string().as_bytes(),
            ),
            Err(Malformed),
        ),
        case(
            "payload is an array",
            key.sign_raw(key.header().to_string().as_bytes(), b"[1,2]"),
            Err(Malformed),
        ),
        case(
            "payload is not json",
            key.sign_raw(key.header().to_string().as_bytes(), b"{\"sub\":"),
            Err(Malformed),
        ),
        case(
            "duplicate claim",
            key.sign_raw(
                key.header().to_string().as_bytes(),
                format!(
                    r#"{{"sub":"a","sub":"b","aud":"{AUDIENCE}","exp":{}}}"#,
                    NOW + 60
                )
                .as_bytes(),
            ),
            Err(InvalidClaim),
        ),
        // 2. key selection and algorithm
        case("no kid", with_header(json!({"alg": a})), Err(MissingKeyId)),
        case(
            "empty kid",
            with_header(json!({"alg": a, "kid": ""})),
            Err(MissingKeyId),
        ),
        case(
            "numeric kid",
            with_header(json!({"alg": a, "kid": 7})),
            Err(MissingKeyId),
        ),
        case(
            "unknown kid",
            with_header(json!({"alg": a, "kid": "nope"})),
            Err(UnknownKeyId),
        ),
        case(
            "alg none",
            with_header(json!({"alg": "none", "kid": key.kid})),
            Err(AlgorithmNotAllowed),
        ),
        case(
            "alg HS256",
            with_header(json!({"alg": "HS256", "kid": key.kid})),
            Err(AlgorithmNotAllowed),
        ),
        case(
            "alg lowercase",
            with_header(json!({"alg": a.to_lowercase(), "kid": key.kid})),
            Err(AlgorithmNotAllowed),
        ),
        case(
            "no alg",
            with_header(json!({"kid": key.kid})),
            Err(AlgorithmNotAllowed),
        ),
        // 3. crit, and key-carrying headers that are ignored
        case(
            "crit",
            with_header(json!({"alg": a, "kid": key.kid, "crit": ["exp"]})),
            Err(CriticalHeader),
        ),
        case(
            "crit null",
            with_header(json!({"alg": a, "kid": key.kid, "crit": null})),
            Err(CriticalHeader),
        ),
        case(
            "jku ignored",
            with_header(json!({"alg": a, "kid": key.kid, "jku": "http://127.0.0.1:9/jwks"})),
            ok,
        ),
        case(
            "attacker jwk in header",
            other.sign_with_header(
                &json!({"alg": other.alg, "kid": key.kid, "jwk": other.jwk()}),
                &claims_at(NOW),
            ),
            Err(if other.alg == a {
                InvalidSignature
            } else {
                AlgorithmMismatch
            }),
        ),
        // 4. signature
        case(
            "signed by another key",
            other.sign_with_header(&json!({"alg": a, "kid": key.kid}), &claims_at(NOW)),
            Err(InvalidSignature),
        ),
        case(
            "empty signature",
            format!("{}.", good.rsplit_once('.').unwrap().0),
            Err(InvalidSignature),
        ),
        case(
            "payload swapped",
            {
                let parts: Vec<&str> = good.split('.').collect();
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(claims_with(json!({"sub": "admin"})).to_string()),
                    parts[2]
                )
            },
            Err(InvalidSignature),
        ),
        // 5. times
        case("no exp", with(json!({"exp": null})), Err(MissingExpiry)),
        case(
            "expired at the leeway edge",
            with(json!({"exp": NOW - LEEWAY})),
            Err(Expired),
        ),
        case(
            "alive inside the leeway",
            with(json!({"exp": NOW - LEEWAY + 1})),
            ok,
        ),
        case(
            "longest lifetime",
            with(json!({"exp": NOW + MAX_LIFETIME + LEEWAY})),
            ok,
        ),
        case(
            "lifetime too long",
            with(json!({"exp": NOW + MAX_LIFETIME + LEEWAY + 1})),
            Err(LifetimeTooLong),
        ),
        case(
            "year 3000",
            with(json!({"exp": 32_503_680_000u64})),
            Err(LifetimeTooLong),
        ),
        case(
            "fractional exp floored",
            with(json!({"exp": (NOW + 100) as f64 + 0.9})),
            ok,
        ),
        case(
            "fractional exp at the edge",
            with(json!({"exp": (NOW - LEEWAY) as f64 + 0.5})),
            Err(Expired),
        ),
        case(
            "exp string",
            with(json!({"exp": (NOW + 100).to_string()})),
            Err(InvalidClaim),
        ),
        case("exp bool", with(json!({"exp": true})), Err(InvalidClaim)),
        case("exp negative", with(json!({"exp": -1})), Err(InvalidClaim)),
        case("exp 1e300", with(json!({"exp": 1e300})), Err(InvalidClaim)),
        case(
            "exp 1.8e19",
            with(json!({"exp": 18_000_000_000_000_000_000u64})),
            Err(InvalidClaim),
        ),
        case(
            "exp array",
            with(json!({"exp": [NOW + 100]})),
            Err(InvalidClaim),
        ),
        case("nbf at the edge", with(json!({"nbf": NOW + LEEWAY})), ok),
        case(
            "nbf in the future",
            with(json!({"nbf": NOW + LEEWAY + 1})),
            Err(NotYetValid),
        ),
        case(
            "nbf fractional rounds up",
            with(json!({"nbf": (NOW + LEEWAY) as f64 + 0.1})),
            Err(NotYetValid),
        ),
        case("nbf string", with(json!({"nbf": "0"})), Err(InvalidClaim)),
        case("iat at the edge", with(json!({"iat": NOW + LEEWAY})), ok),
        case(
            "iat in the future",
            with(json!({"iat": NOW + LEEWAY + 1})),
            Err(IssuedInFuture),
        ),
        case("iat object", with(json!({"iat": {}})), Err(InvalidClaim)),
        // 6. audience
        case(
            "aud array with ours",
            with(json!({"aud": ["https://other.test", AUDIENCE]})),
            ok,
        ),
        case(
            "second configured aud",
            with(json!({"aud": "https://second.example.test"})),
            ok,
        ),
        case(
            "aud of another service",
            with(json!({"aud": "https://other.test"})),
            Err(InvalidAudience),
        ),
        case(
            "aud with trailing slash",
            with(json!({"aud": format!("{AUDIENCE}/")})),
            Err(InvalidAudience),
        ),
        case(
            "aud missing",
            with(json!({"aud": null})),
            Err(InvalidAudience),
        ),
        case(
            "aud empty array",
            with(json!({"aud": []})),
            Err(InvalidAudience),
        ),
        case("aud number", with(json!({"aud": 1})), Err(InvalidClaim)),
        case(
            "aud object",
            with(json!({"aud": {"a": AUDIENCE}})),
            Err(InvalidClaim),
        ),
        case(
            "aud array of numbers",
            with(json!({"aud": [1, 2]})),
            Err(InvalidClaim),
        ),
        // 7. subject
        case(
            "sub of 150 chars",
            with(json!({"sub": "u".repeat(150)})),
            ok,
        ),
        case(
            "sub with spaces inside",
            with(json!({"sub": "Jane Doe <jane@x.test>"})),
            ok,
        ),
        case(
            "sub of 151 chars",
            with(json!({"sub": "u".repeat(151)})),
            Err(InvalidSubject),
        ),
        case("sub star", with(json!({"sub": "*"})), Err(InvalidSubject)),
        case("sub empty", with(json!({"sub": ""})), Err(InvalidSubject)),
        case(
            "sub missing",
            with(json!({"sub": null})),
            Err(InvalidSubject),
        ),
        case("sub number", with(json!({"sub": 42})), Err(InvalidSubject)),
        case(
            "sub CRLF",
            with(json!({"sub": "a\r\nX-Admin: 1"})),
            Err(InvalidSubject),
        ),
        case(
            "sub NUL",
            with(json!({"sub": "a\u{0}"})),
            Err(InvalidSubject),
        ),
        case(
            "sub non-ascii",
            with(json!({"sub": "jos\u{e9}"})),
            Err(InvalidSubject),
        ),
        case(
            "sub RLO",
            with(json!({"sub": "a\u{202e}b"})),
            Err(InvalidSubject),
        ),
        case(
            "sub leading space",
            with(json!({"sub": " alice"})),
            Err(InvalidSubject),
        ),
        // 8. permissions
        case(
            "permissions as a string",
            with(json!({"permissions": "agent:read agent:write"})),
            ok,
        ),
        case("permissions absent", with(json!({"permissions": null})), ok),
        case(
            "permissions number",
            with(json!({"permissions": 1})),
            Err(InvalidPermissions),
        ),
        case(
            "permissions array of numbers",
            with(json!({"permissions": [1]})),
            Err(InvalidPermissions),
        ),
        case("jti number", with(json!({"jti": 1})), Err(InvalidClaim)),
    ];
    header["typ"] = json!("at+jwt");
    cases.push(case(
        "other typ accepted",
        key.sign_with_header(&header, &claims_at(NOW)),
        Ok(()),
    ));
    for c in &mut cases {
        c.name = format!("{a} {}", c.name);
    }
    cases
}

#[tokio::test]
async fn every_rule_for_every_algorithm() {
    let keys = TestKey::all();
    let attacker = TestKey::all();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let verifier = verifier_for(&refs);
    for (key, other) in keys.iter().zip(attacker.iter()) {
        // Another key of the same type (so signatures fail) and of another type (so alg mismatches).
        run_table(&verifier, cases_for(key, other)).await;
    }
}

#[tokio::test]
async fn header_alg_must_match_the_keys_type() {
    let ed = TestKey::ed25519("ed-1");
    let ec = TestKey::es256("ec-1");
    let verifier = verifier_for(&[&ed, &ec]);
    // An Ed25519 kid with alg ES256, signed with the EC key: refused before any signature check.
    let token = ec.sign_with_header(&json!({"alg": "ES256", "kid": "ed-1"}), &claims_at(NOW));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::AlgorithmMismatch
    );
    let token = ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "ec-1"}), &claims_at(NOW));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::AlgorithmMismatch
    );
}

#[tokio::test]
async fn rfc_9864_ed25519_header_is_eddsa_with_an_ed25519_key_only() {
    let ed = TestKey::ed25519("ed-1");
    let ec = TestKey::es256("ec-1");
    let verifier = verifier_for(&[&ed, &ec]);
    let header = |kid: &str| json!({"alg": "Ed25519", "kid": kid});
    let token = ed.sign_with_header(&header("ed-1"), &claims_at(NOW));
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.algorithm(), Algorithm::EdDSA);
    // Named for an EC key: refused before any signature check.
    let token = ed.sign_with_header(&header("ec-1"), &claims_at(NOW));
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmMismatch);
    // Not allowed where EdDSA is not.
    let es_only = verifier_allowing(&[&ed, &ec], [Algorithm::ES256]);
    let token = ed.sign_with_header(&header("ed-1"), &claims_at(NOW));
    let err = es_only.verify(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // Exact and case-sensitive, like every other name.
    for name in ["ed25519", "ED25519", "Ed25519 "] {
        let token = ed.sign_with_header(&json!({"alg": name, "kid": "ed-1"}), &claims_at(NOW));
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed, "{name}");
    }
}

#[tokio::test]
async fn allow_list_narrows_the_algorithms() {
    let ed = TestKey::ed25519("ed-1");
    let rsa = TestKey::rs256("rsa-1");
    let verifier = verifier_allowing(&[&ed, &rsa], [Algorithm::EdDSA]);
    assert!(verifier.verify(&ed.sign(&claims_at(NOW))).await.is_ok());
    let err = verifier
        .verify(&rsa.sign(&claims_at(NOW)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

#[tokio::test]
async fn issuer_rules_when_configured() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .issuer(ISSUER)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let kind = |changes: Value| {
        let token = key.sign(&claims_with(changes));
        let v = verifier.clone();
        async move {
            v.verify(&token)
                .await
                .map(|t| t.issuer().map(str::to_owned))
                .map_err(|e| e.kind())
        }
    };
    assert_eq!(kind(json!({})).await, Ok(Some(ISSUER.to_owned())));
    assert_eq!(
        kind(json!({"iss": "https://evil.test"})).await,
        Err(ErrorKind::InvalidIssuer)
    );
    assert_eq!(
        kind(json!({"iss": null})).await,
        Err(ErrorKind::InvalidIssuer)
    );
    assert_eq!(
        kind(json!({"iss": [ISSUER]})).await,
        Err(ErrorKind::InvalidIssuer)
    );
    // Without configured issuers any string passes, but a non-string is still refused.
    let open = verifier_for(&[&key]);
    assert!(open
        .verify(&key.sign(&claims_with(json!({"iss": "https://anyone.test"}))))
        .await
        .is_ok());
    let err = open
        .verify(&key.sign(&claims_with(json!({"iss": [ISSUER]}))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidClaim);
}

#[tokio::test]
async fn verified_token_exposes_the_claims() {
    let key = TestKey::es256("ec-1");
    let verifier = verifier_for(&[&key]);
    let token = key.sign(&claims_with(
        json!({"jti": "t-1", "nbf": NOW - 5, "org": "acme"}),
    ));
    let v = verifier.verify(&token).await.unwrap();
    assert_eq!(v.subject(), "user-42");
    assert_eq!(v.on_behalf_of().as_str(), "user-42");
    assert_eq!(v.audiences().collect::<Vec<_>>(), vec![AUDIENCE]);
    assert_eq!(v.issuer(), Some(ISSUER));
    assert_eq!(v.expires_at(), NOW + 3600);
    assert_eq!(v.issued_at(), Some(NOW));
    assert_eq!(v.not_before(), Some(NOW - 5));
    assert_eq!(v.jti(), Some("t-1"));
    assert_eq!(v.algorithm(), Algorithm::ES256);
    assert_eq!(
        v.permissions().iter().collect::<Vec<_>>(),
        vec!["agent:read", "agent:write"]
    );
    assert!(v.has_permission("agent:write"));
    assert!(!v.has_permission("agent:admin"));
    #[derive(serde::Deserialize)]
    struct Extra {
        org: String,
    }
    assert_eq!(v.claims::<Extra>().unwrap().org, "acme");
    let raw: Value = serde_json::from_str(v.raw_claims()).unwrap();
    assert_eq!(raw["org"], "acme");
}

#[tokio::test]
async fn permissions_claim_is_configurable() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .permissions_claim("scope")
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let v = verifier
        .verify(&key.sign(&claims_with(
            json!({"scope": "read  write", "permissions": ["ignored"]}),
        )))
        .await
        .unwrap();
    assert_eq!(
        v.permissions().iter().collect::<Vec<_>>(),
        vec!["read", "write"]
    );
}

#[tokio::test]
async fn size_cap_is_checked_before_parsing() {
    let key = TestKey::ed25519("ed-1");
    let token = key.sign(&claims_at(NOW));
    let build = |max: usize| {
        Verifier::builder()
            .jwks(jwks(&[&key]))
            .audience(AUDIENCE)
            .max_token_bytes(max)
            .clock(ManualClock::at_unix(NOW))
            .build()
            .unwrap()
    };
    assert!(build(token.len()).verify(&token).await.is_ok());
    assert_eq!(
        build(token.len() - 1)
            .verify(&token)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::TokenTooLarge
    );
    // Garbage over the default cap is refused as too large, not parsed.
    let big = "a".repeat(8 * 1024 + 1);
    assert_eq!(
        verifier_for(&[&key]).verify(&big).await.unwrap_err().kind(),
        ErrorKind::TokenTooLarge
    );
}

#[tokio::test]
async fn leeway_and_lifetime_are_configurable() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .leeway(Duration::ZERO)
        .max_lifetime(Duration::from_secs(3600))
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let kind = |exp: u64| {
        let token = key.sign(&claims_with(json!({"exp": exp})));
        let v = verifier.clone();
        async move { v.verify(&token).await.map(|_| ()).map_err(|e| e.kind()) }
    };
    assert_eq!(kind(NOW).await, Err(ErrorKind::Expired));
    assert_eq!(kind(NOW + 1).await, Ok(()));
    assert_eq!(kind(NOW + 3600).await, Ok(()));
    assert_eq!(kind(NOW + 3601).await, Err(ErrorKind::LifetimeTooLong));
}

#[tokio::test]
async fn cached_tokens_still_expire_with_the_clock() {
    let key = TestKey::rs256("rsa-1");
    let clock = ManualClock::at_unix(NOW);
    let verifier = verifier_with_clock(&[&key], &clock);
    let token = key.sign(&claims_with(json!({"exp": NOW + 300, "nbf": NOW})));
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok());
    clock.advance(Duration::from_secs(300 + LEEWAY));
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::Expired
    );
    // And with the cache off the same holds.
    let uncached = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience(AUDIENCE)
        .token_cache_capacity(0)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        uncached.verify(&token).await.unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[tokio::test]
async fn a_cached_token_with_a_bad_twin_is_not_confused() {
    let key = TestKey::ed25519("ed-1");
    let verifier = verifier_for(&[&key]);
    let token = key.sign(&claims_at(NOW));
    assert!(verifier.verify(&token).await.is_ok());
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        verifier.verify(&tampered).await.unwrap_err().kind(),
        ErrorKind::InvalidSignature
    );
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn errors_never_echo_the_token() {
    let key = TestKey::ed25519("ed-1");
    let verifier = verifier_for(&[&key]);
    let token = key.sign(&claims_with(json!({"sub": "*"})));
    let err = verifier.verify(&token).await.unwrap_err();
    for part in token.split('.') {
        assert!(!err.to_string().contains(part));
        assert!(!format!("{err:?}").contains(part));
    }
    assert_eq!(err.to_string(), err.to_string().to_lowercase());
}

#[test]
fn key_sets_skip_what_cannot_be_trusted() {
    let good = TestKey::ed25519("good");
    let ec = TestKey::es256("ec");
    let weak = TestKey::rsa("weak", aws_lc_rs::rsa::KeySize::Rsa2048);
    let mut weak_jwk = weak.jwk();
    // Cut the modulus to 1024 bits: an RSA key that is too small.
    let n = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        weak_jwk["n"].as_str().unwrap(),
    )
    .unwrap();
    weak_jwk["n"] = json!(b64(&n[..128]));
    let mut ec_wrong_curve = ec.jwk();
    ec_wrong_curve["kid"] = json!("ec-wrong-curve");
    ec_wrong_curve["crv"] = json!("P-384");
    let mut ec_wrong_alg = ec.jwk();
    ec_wrong_alg["kid"] = json!("ec-wrong-alg");
    ec_wrong_alg["alg"] = json!("ES384");
    let mut enc = good.jwk();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let mut unknown_alg = good.jwk();
    unknown_alg["kid"] = json!("unknown-alg");
    unknown_alg["alg"] = json!("Ed448");
    let mut dup_a = ec.jwk();
    dup_a["kid"] = json!("dup");
    let mut dup_b = good.jwk();
    dup_b["kid"] = json!("dup");
    let mut no_kid = good.jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut bad_point = ec.jwk();
    bad_point["kid"] = json!("bad-point");
    bad_point["y"] = bad_point["x"].clone();
    let doc = json!({"keys": [
        good.jwk(),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
        {"kty": "XYZ", "kid": "weird"},
        weak_jwk, ec_wrong_curve, ec_wrong_alg, enc, unknown_alg, dup_a, dup_b, no_kid, bad_point,
        "not an object",
    ]});
    let set = KeySet::from_json(&doc.to_string()).unwrap();
    assert_eq!(set.kids().collect::<Vec<_>>(), vec!["good"]);
    let reasons: Vec<SkipReason> = set.skipped().iter().map(|s| s.reason.clone()).collect();
    for expected in [
        SkipReason::SymmetricKey,
        SkipReason::UnsupportedKeyType,
        SkipReason::WeakRsaKey,
        SkipReason::CurveMismatch,
        SkipReason::NotForSignatures,
        SkipReason::UnsupportedAlgorithm,
        SkipReason::DuplicateKid,
        SkipReason::MissingKid,
        SkipReason::InvalidKeyMaterial,
        SkipReason::NotAnObject,
    ] {
        assert!(
            reasons.contains(&expected),
            "no {expected:?} in {reasons:?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == SkipReason::DuplicateKid)
            .count(),
        2
    );
    assert_eq!(set.skipped().len(), 12, "{:?}", set.skipped());
}

#[test]
fn a_key_set_with_no_usable_key_is_a_config_error() {
    let err = Verifier::builder()
        .jwks(r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#)
        .audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::NoUsableKeys);
    assert_eq!(err.skipped(), Some(1));
    let err = Verifier::builder()
        .jwks("[]")
        .audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidJwks);
}

#[test]
fn configuration_is_checked_at_build() {
    let key = TestKey::ed25519("ed-1");
    let base = || Verifier::builder().jwks(jwks(&[&key]));
    assert_eq!(
        base().build().unwrap_err().kind(),
        ConfigErrorKind::MissingAudience
    );
    assert_eq!(
        base().audience("").build().unwrap_err().kind(),
        ConfigErrorKind::InvalidSetting
    );
    assert_eq!(
        base()
            .audience(AUDIENCE)
            .algorithms([Algorithm::HS256])
            .build()
            .unwrap_err()
            .kind(),
        ConfigErrorKind::UnsupportedAlgorithm
    );
    assert_eq!(
        base()
            .audience(AUDIENCE)
            .algorithms([])
            .build()
            .unwrap_err()
            .kind(),
        ConfigErrorKind::NoAlgorithms
    );
    let err = base()
        .audience(AUDIENCE)
        .permissions_claim("sub")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
    assert_eq!(err.setting(), Some("permissions_claim"));
    assert_eq!(
        Verifier::builder()
            .audience(AUDIENCE)
            .build()
            .unwrap_err()
            .kind(),
        ConfigErrorKind::MissingKeySource
    );
    assert_eq!(
        base()
            .jwks(jwks(&[&key]))
            .audience(AUDIENCE)
            .build()
            .unwrap_err()
            .kind(),
        ConfigErrorKind::ConflictingKeySources
    );
    // A jsonwebtoken JwkSet works as a static source too.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks(&[&key])).unwrap();
    assert!(Verifier::builder()
        .jwks(set)
        .audience(AUDIENCE)
        .build()
        .is_ok());
}

#[test]
fn debug_output_holds_no_key_material() {
    let key = TestKey::ed25519("ed-1");
    let x = key.jwk()["x"].as_str().unwrap().to_owned();
    let set = KeySet::from_json(&jwks(&[&key]).to_string()).unwrap();
    assert!(!format!("{set:?}").contains(&x));
    assert!(format!("{set:?}").contains("ed-1"));
    let verifier = verifier_for(&[&key]);
    assert!(!format!("{verifier:?}").contains(&x));
}

#[tokio::test]
async fn a_loaded_key_set_is_a_static_source_and_the_allow_list_still_rules() {
    let ed = TestKey::ed25519("ed-1");
    let es = TestKey::es256("es-1");
    let set = KeySet::from_json(&jwks(&[&ed, &es]).to_string()).unwrap();
    assert!(set.skipped().is_empty());
    let verifier = Verifier::builder()
        .key_set(set)
        .audience(AUDIENCE)
        .algorithms([Algorithm::EdDSA])
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    let ok = verifier.verify(&ed.sign(&claims_at(NOW))).await.unwrap();
    assert_eq!(ok.subject(), "user-42");
    let refused = verifier.verify(&es.sign(&claims_at(NOW))).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::AlgorithmNotAllowed);

    // A set with no usable key is refused at build time, as for `.jwks(..)`.
    let empty = KeySet::from_json(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#).unwrap();
    let err = Verifier::builder()
        .key_set(empty)
        .audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::NoUsableKeys);
    assert_eq!(err.skipped(), Some(1));
}

/// `f`'s output, and the log text it added (the log is shared by the test binary, so check
/// only for values unique to the caller).
async fn debug_log_of<F: std::future::Future>(f: F) -> (F::Output, String) {
    let captured = traced();
    let before = captured.text().len();
    let out = f.await;
    (out, captured.text()[before..].to_owned())
}

#[tokio::test]
async fn refusals_say_what_to_change_at_debug_and_never_show_the_token() {
    let key = TestKey::ed25519("ed-1");
    let verifier = Verifier::builder()
        .jwks(jwks(&[&key]))
        .audience("http://127.0.0.1:3000")
        .issuer(ISSUER)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap();
    // The commonest mistake: a token for `localhost` with a trailing slash.
    let token = key.sign(&claims_with(json!({ "aud": "http://localhost:3000/" })));
    let (result, log) = debug_log_of(verifier.verify(&token)).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidAudience);
    assert!(
        err.to_string()
            .contains("must equal one of the configured audiences exactly"),
        "{err}"
    );
    assert!(log.contains("http://localhost:3000/"), "{log}");
    assert!(log.contains("http://127.0.0.1:3000"), "{log}");
    assert!(!log.contains(&token), "{log}");

    let token = key.sign(&claims_with(
        json!({ "aud": "http://127.0.0.1:3000", "iss": "https://staging.example" }),
    ));
    let (result, log) = debug_log_of(verifier.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidIssuer);
    assert!(
        log.contains("https://staging.example") && log.contains(ISSUER),
        "{log}"
    );

    let es = TestKey::es256("ed-1");
    let token = es.sign(&claims_with(json!({ "aud": "http://127.0.0.1:3000" })));
    let (result, log) = debug_log_of(verifier.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::AlgorithmMismatch);
    assert!(log.contains("ES256") && log.contains("ed-1"), "{log}");
}

/// Every value from a token or key set that reaches the log is quoted, escaped and cut: a
/// `\n` in it cannot start a forged line, and a long one costs the log 100 characters.
#[tokio::test]
async fn token_and_key_set_values_cannot_forge_a_log_line() {
    fn assert_no_forged_line(log: &str, marker: &str) {
        assert!(log.contains(&format!("\\n{marker}")), "not logged: {log}");
        assert!(!log.contains(&format!("\n{marker}")), "forged line: {log}");
        assert!(
            log.lines().all(|l| !l.trim_start().starts_with(marker)),
            "{log}"
        );
    }
    let clock = ManualClock::at_unix(NOW);
    let key = TestKey::ed25519("ed-1");

    // With a key source per issuer, `iss` is read (and refused) before any signature check.
    let per_issuer = Verifier::builder()
        .issuer_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let forged_iss = "https://evil.example\nFORGED-ISS level=INFO user=admin";
    let token = key.sign(&claims_with(json!({ "iss": forged_iss })));
    let (result, log) = debug_log_of(per_issuer.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidIssuer);
    assert_no_forged_line(&log, "FORGED-ISS");
    assert!(log.contains("signature_checked=false"), "{log}");

    // A long unverified `iss` is cut at 100 characters.
    let long_iss = format!("https://{}", "i".repeat(1_000));
    let token = key.sign(&claims_with(json!({ "iss": long_iss })));
    let (result, log) = debug_log_of(per_issuer.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidIssuer);
    let shown = format!("\"https://{}\"…", "i".repeat(92));
    assert!(log.contains(&shown), "{log}");
    assert!(!log.contains(&"i".repeat(93)), "not cut");

    // The header's `alg`, refused before any key work.
    let header = json!({ "alg": "EdDSA\nFORGED-ALG level=INFO", "kid": "ed-1" });
    let token = key.sign_with_header(&header, &claims_at(NOW));
    let (result, log) = debug_log_of(per_issuer.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::AlgorithmNotAllowed);
    assert_no_forged_line(&log, "FORGED-ALG");

    // A `kid` from the key set (and the token), on an `alg` that does not fit its key.
    let odd_kid = TestKey::ed25519("k\nFORGED-KID level=INFO");
    let es = TestKey::es256(&odd_kid.kid);
    let verifier = Verifier::builder()
        .jwks(jwks(&[&odd_kid]))
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let (result, log) = debug_log_of(verifier.verify(&es.sign(&claims_at(NOW)))).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::AlgorithmMismatch);
    assert_no_forged_line(&log, "FORGED-KID");

    // `aud`, escaped even though the signature was checked.
    let token = odd_kid.sign(&claims_with(json!({ "aud": ["x\nFORGED-AUD level=INFO"] })));
    let (result, log) = debug_log_of(verifier.verify(&token)).await;
    assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidAudience);
    assert_no_forged_line(&log, "FORGED-AUD");

    // A key set's skipped key, logged with its `kid`.
    let (built, log) = debug_log_of(async {
        let mut set = jwks(&[&key]);
        set["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "kty": "oct", "k": "c2VjcmV0", "kid": "h\nFORGED-SKIP level=INFO" }));
        Verifier::builder().jwks(set).audience(AUDIENCE).build()
    })
    .await;
    built.unwrap();
    assert_no_forged_line(&log, "FORGED-SKIP");
}
