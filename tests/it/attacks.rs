//! The attack suite (issue 8): every known trick against a JWT verifier, as one table of
//! cases, each with the exact [`ErrorKind`] and HTTP status it must end in.
//!
//! Each case runs in its own task, so a panic is reported with the case's name instead of
//! taking the table down. Positive controls run beside the attacks, so a broken fixture
//! cannot make the table pass by rejecting everything.

use crate::common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use mka1_auth::grpc::{Call, GrpcReject};
use mka1_auth::layer::CookieName;
use mka1_auth::outbound::forward::ForwardCookies;
use mka1_auth::rejection::StandardReject;
use mka1_auth::{
    Algorithm, Error, ErrorKind, ManualClock, Mka1AuthLayer, RequirePermissionsLayer,
    VerifiedToken, Verifier, X_ON_BEHALF_OF,
};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

/// Which verifier a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Setup {
    /// Every supported algorithm allowed (the widest attack surface), issuer required.
    Strict,
    /// Like `Strict` but with no issuer configured.
    NoIssuer,
    /// Like `Strict` but accepting tokens up to 2 MiB, so size is not what stops a case.
    BigTokens,
    /// Two issuers, each with its own key set: ours ([`ISSUER`], the fixture's keys) and
    /// theirs ([`THEIR_ISSUER`]), which publishes another key under our `ed-1` kid.
    TwoIssuers,
}

/// The second issuer of [`Setup::TwoIssuers`].
const THEIR_ISSUER: &str = "https://staging.mka1.example.test";

/// Every supported algorithm: the widest allow-list a service could configure.
const ALL_ALGORITHMS: [Algorithm; 9] = Algorithm::SUPPORTED;

/// A secret an attacker might publish as an `oct` key in a JWKS.
const OCT_SECRET: &[u8] = b"attacker-chosen-shared-secret-0123456789";

/// The order of the P-256 group.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

struct Fixture {
    ed: TestKey,
    ec: TestKey,
    rsa: TestKey,
    /// A key the verifier has never seen.
    attacker: TestKey,
    /// The other issuer's key under our Ed25519 key's kid (`ed-1`).
    theirs: TestKey,
    /// A key only the other issuer publishes.
    theirs_only: TestKey,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            ed: TestKey::ed25519("ed-1"),
            ec: TestKey::es256("ec-1"),
            rsa: TestKey::rs256("rsa-1"),
            attacker: TestKey::ed25519("attacker"),
            theirs: TestKey::ed25519("ed-1"),
            theirs_only: TestKey::es256("theirs-1"),
        }
    }

    /// The other issuer's key set.
    fn their_jwks(&self) -> Value {
        jwks(&[&self.theirs, &self.theirs_only])
    }

    fn keys(&self) -> [&TestKey; 3] {
        [&self.ed, &self.ec, &self.rsa]
    }

    /// The legitimate keys plus an `oct` key, which the verifier must skip.
    fn jwks(&self) -> Value {
        let mut doc = jwks(&self.keys());
        doc["keys"].as_array_mut().unwrap().push(json!({
            "kty": "oct", "kid": "hmac-1", "alg": "HS256", "k": b64(OCT_SECRET),
        }));
        doc
    }

    fn verifier(&self, setup: Setup) -> Verifier {
        let builder = Verifier::builder()
            .audience(AUDIENCE)
            .algorithms(ALL_ALGORITHMS)
            .clock(ManualClock::at_unix(NOW));
        let mut builder = match setup {
            Setup::TwoIssuers => builder
                .issuer_jwks(ISSUER, self.jwks())
                .issuer_jwks(THEIR_ISSUER, self.their_jwks()),
            Setup::NoIssuer => builder.jwks(self.jwks()),
            Setup::Strict | Setup::BigTokens => builder.jwks(self.jwks()).issuer(ISSUER),
        };
        if setup == Setup::BigTokens {
            builder = builder.max_token_bytes(2 << 20);
        }
        builder.build().unwrap()
    }
}

/// One attack: a token, the verifier it meets, and what must come of it.
struct Case {
    name: String,
    setup: Setup,
    token: String,
    /// `None` for a positive control, which must verify.
    kind: Option<ErrorKind>,
    /// The HTTP status the layer must answer with (200 for a positive control).
    status: u16,
    /// Where the layer's answer differs from the verifier's: HTTP strips or refuses the
    /// whitespace some cases put around or inside the token.
    via_layer: ViaLayer,
}

/// What the layer must make of a case, when that is not what the verifier makes of it.
#[derive(Clone, Copy, Debug)]
enum ViaLayer {
    /// The same kind and status as the verifier.
    Same,
    /// Accepted (200): the layer trims the spaces around a header value, as HTTP does.
    Accept,
    /// Refused with this kind and status.
    Reject(ErrorKind, u16),
    /// The token cannot travel in a header value at all (CR, LF).
    Unsendable,
}

struct Table(Vec<Case>);

impl Table {
    fn reject(&mut self, name: impl Into<String>, token: String, kind: ErrorKind, status: u16) {
        self.reject_on(Setup::Strict, name, token, kind, status);
    }

    fn reject_on(
        &mut self,
        setup: Setup,
        name: impl Into<String>,
        token: String,
        kind: ErrorKind,
        status: u16,
    ) {
        self.0.push(Case {
            name: name.into(),
            setup,
            token,
            kind: Some(kind),
            status,
            via_layer: ViaLayer::Same,
        });
    }

    /// Set what the layer must make of the case added last.
    fn via_layer(&mut self, expect: ViaLayer) {
        self.0.last_mut().expect("a case was added").via_layer = expect;
    }

    fn accept(&mut self, name: impl Into<String>, token: String) {
        self.accept_on(Setup::Strict, name, token);
    }

    fn accept_on(&mut self, setup: Setup, name: impl Into<String>, token: String) {
        self.0.push(Case {
            name: name.into(),
            setup,
            token,
            kind: None,
            status: 200,
            via_layer: ViaLayer::Same,
        });
    }
}

// ---------------------------------------------------------------------------------------
// Token surgery helpers.

/// `header.payload` segments signed exactly as given (for non-canonical base64url).
fn sign_segments(key: &TestKey, header_b64: &str, payload_b64: &str) -> String {
    let message = format!("{header_b64}.{payload_b64}");
    let sig = key.sign_bytes(message.as_bytes());
    format!("{message}.{}", b64(sig))
}

fn segments(token: &str) -> (&str, &str, &str) {
    let mut it = token.splitn(3, '.');
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

/// The token with its signature replaced by `sig` (raw bytes).
fn with_signature(token: &str, sig: &[u8]) -> String {
    let (h, p, _) = segments(token);
    format!("{h}.{p}.{}", b64(sig))
}

fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(segments(token).2).unwrap()
}

/// Claims for `NOW` with `name` set to `value` (a JSON `null` is kept, not removed).
fn claims_set(name: &str, value: Value) -> Value {
    let mut claims = claims_at(NOW);
    claims[name] = value;
    claims
}

/// An unsigned-style token: `alg` set, signed with HMAC-SHA256 under `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        message.as_bytes(),
    );
    format!("{message}.{}", b64(tag.as_ref()))
}

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::new();
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    der(0x02, &content)
}

/// A fixed-width `r || s` ECDSA signature re-encoded as ASN.1 DER.
fn ecdsa_to_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut seq = der_uint(r);
    seq.extend(der_uint(s));
    der(0x30, &seq)
}

/// The RSA public key of a JWK as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
fn rsa_public_pem(jwk: &Value) -> String {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let mut rsa_key = der_uint(&field("n"));
    rsa_key.extend(der_uint(&field("e")));
    let rsa_key = der(0x30, &rsa_key);
    let rsa_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let mut algorithm = der(0x06, &rsa_oid);
    algorithm.extend([0x05, 0x00]);
    let mut bit_string = vec![0];
    bit_string.extend(rsa_key);
    let mut spki = der(0x30, &algorithm);
    spki.extend(der(0x03, &bit_string));
    let spki = der(0x30, &spki);
    let body = STANDARD.encode(spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// JSON nested `depth` arrays deep.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

// ---------------------------------------------------------------------------------------
// The table.

fn attack_table(f: &Fixture) -> Table {
    let mut t = Table(Vec::new());
    let claims = claims_at(NOW);
    let ed_header = f.ed.header();

    // Positive controls: one valid token per key type, plus boundary values that must pass.
    for key in f.keys() {
        t.accept(
            format!("control: valid {} token", key.alg),
            key.sign(&claims),
        );
    }
    t.accept(
        "control: sub of exactly 150 characters",
        f.ed.sign(&claims_set("sub", json!("u".repeat(150)))),
    );
    t.accept(
        "control: fractional exp",
        f.ed.sign(&claims_set("exp", json!(NOW as f64 + 300.5))),
    );
    t.accept(
        "control: unknown jku/x5u are ignored, key comes from kid",
        f.ed.sign_with_header(
            &json!({"alg": "EdDSA", "kid": "ed-1", "jku": "http://127.0.0.1:9/jwks.json",
                    "x5u": "http://127.0.0.1:9/cert.pem"}),
            &claims,
        ),
    );

    alg_attacks(&mut t, f, &claims);
    kid_attacks(&mut t, f, &claims);
    key_injection_attacks(&mut t, f, &claims);

    // `crit`, with any value at all, is refused: no extension is understood.
    for crit in [
        json!(["exp"]),
        json!([]),
        json!(["b64"]),
        json!("b64"),
        json!(null),
        json!({}),
        json!(true),
    ] {
        let mut header = ed_header.clone();
        header["crit"] = crit.clone();
        t.reject(
            format!("crit = {crit}"),
            f.ed.sign_with_header(&header, &claims),
            ErrorKind::CriticalHeader,
            401,
        );
    }

    signature_attacks(&mut t, f, &claims);
    malformed_attacks(&mut t, f, &claims);
    nesting_attacks(&mut t, f, &claims);
    claim_type_attacks(&mut t, f);
    cross_issuer_attacks(&mut t, f);
    t
}

/// Against two issuers with a key set each (issue 15): the token's `iss` picks the set, so
/// no key of one issuer, whatever its `kid`, verifies the other's token, and an issuer
/// without a set is refused before any key work.
fn cross_issuer_attacks(t: &mut Table, f: &Fixture) {
    use ErrorKind::*;
    let two = Setup::TwoIssuers;
    let ours = claims_at(NOW);
    let theirs = claims_set("iss", json!(THEIR_ISSUER));
    t.accept_on(two, "two issuers control: ours", f.ed.sign(&ours));
    t.accept_on(two, "two issuers control: theirs", f.theirs.sign(&theirs));
    let name = "two issuers control: theirs, a kid only they publish";
    t.accept_on(two, name, f.theirs_only.sign(&theirs));

    let mut bad = |name: &str, token: String, kind: ErrorKind| {
        t.reject_on(two, format!("cross-issuer: {name}"), token, kind, 401);
    };
    let header = json!({"alg": "EdDSA", "kid": "ed-1", "iss": THEIR_ISSUER});
    let hs = json!({"alg": "HS256", "kid": "hmac-1"});
    for (name, token, kind) in [
        (
            "our iss, their key under the shared kid",
            f.theirs.sign(&ours),
            InvalidSignature,
        ),
        (
            "their iss, our key under the shared kid",
            f.ed.sign(&theirs),
            InvalidSignature,
        ),
        (
            "our iss, a kid only they publish",
            f.theirs_only.sign(&ours),
            UnknownKeyId,
        ),
        ("their iss, our ES256 kid", f.ec.sign(&theirs), UnknownKeyId),
        (
            "their iss, our RS256 kid",
            f.rsa.sign(&theirs),
            UnknownKeyId,
        ),
        (
            "our iss, an attacker's key",
            f.attacker.sign(&ours),
            UnknownKeyId,
        ),
        (
            "their iss in the header, ours in the payload, their key",
            f.theirs.sign_with_header(&header, &ours),
            InvalidSignature,
        ),
        (
            "their iss, HS256 with our oct key",
            hs256(&hs, &theirs, OCT_SECRET),
            AlgorithmNotAllowed,
        ),
    ] {
        bad(name, token, kind);
    }
    // Two `iss` claims: refused as a duplicate before either picks a key set.
    for (first, second, key) in [
        (ISSUER, THEIR_ISSUER, &f.theirs),
        (THEIR_ISSUER, ISSUER, &f.ed),
    ] {
        let payload = format!(
            r#"{{"sub":"user-42","aud":"{AUDIENCE}","exp":{},"iss":"{first}","iss":"{second}"}}"#,
            NOW + 3600
        );
        let name = format!("two iss claims, {first} first");
        bad(
            &name,
            key.sign_raw(key.header().to_string().as_bytes(), payload.as_bytes()),
            InvalidClaim,
        );
    }
    for (what, iss) in [
        ("iss missing", Value::Null),
        ("iss of neither", json!("https://evil.example.test")),
        ("iss an array naming theirs", json!([THEIR_ISSUER])),
        ("iss a number", json!(7)),
        ("iss an object", json!({"iss": THEIR_ISSUER})),
        (
            "iss theirs in upper case",
            json!(THEIR_ISSUER.to_uppercase()),
        ),
        (
            "iss theirs with a trailing slash",
            json!(format!("{THEIR_ISSUER}/")),
        ),
        (
            "iss theirs with a NUL",
            json!(format!("{THEIR_ISSUER}\u{0}")),
        ),
        ("iss theirs with a space", json!(format!(" {THEIR_ISSUER}"))),
        ("iss empty", json!("")),
    ] {
        let claims = claims_with(json!({ "iss": iss }));
        bad(what, f.theirs.sign(&claims), InvalidIssuer);
    }
}

fn alg_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    let valid = f.ed.sign(claims);
    let (_, _, sig) = segments(&valid);
    // `none` in every casing, with the real signature, an empty one, and no kid.
    for alg in ["none", "None", "NONE", "nOnE", "NoNe", "nONE"] {
        for (what, header) in [
            ("kid", json!({"alg": alg, "kid": "ed-1"})),
            ("no kid", json!({"alg": alg})),
        ] {
            let h = b64(header.to_string());
            let p = b64(claims.to_string());
            t.reject(
                format!("alg {alg} ({what}), empty signature"),
                format!("{h}.{p}."),
                AlgorithmNotAllowed,
                401,
            );
            t.reject(
                format!("alg {alg} ({what}), real signature"),
                format!("{h}.{p}.{sig}"),
                AlgorithmNotAllowed,
                401,
            );
        }
    }
    for (what, header) in [
        ("missing alg", json!({"kid": "ed-1"})),
        ("alg null", json!({"alg": null, "kid": "ed-1"})),
        ("alg empty", json!({"alg": "", "kid": "ed-1"})),
        (
            "alg lowercase eddsa",
            json!({"alg": "eddsa", "kid": "ed-1"}),
        ),
        ("alg with a space", json!({"alg": "EdDSA ", "kid": "ed-1"})),
        ("alg ES256K", json!({"alg": "ES256K", "kid": "ec-1"})),
        ("alg ES512", json!({"alg": "ES512", "kid": "ec-1"})),
        ("alg Ed448", json!({"alg": "Ed448", "kid": "ed-1"})),
    ] {
        t.reject(
            what,
            f.ed.sign_with_header(&header, claims),
            AlgorithmNotAllowed,
            401,
        );
    }
    for (what, alg) in [
        ("alg a number", json!(256)),
        ("alg an array", json!(["EdDSA"])),
    ] {
        t.reject(
            what,
            f.ed.sign_with_header(&json!({"alg": alg, "kid": "ed-1"}), claims),
            Malformed,
            401,
        );
    }

    // Algorithm confusion: HMAC keyed with public key material the verifier holds.
    let pem = rsa_public_pem(&f.rsa.jwk());
    let ed_x = URL_SAFE_NO_PAD
        .decode(f.ed.jwk()["x"].as_str().unwrap())
        .unwrap();
    for hs in ["HS256", "HS384", "HS512"] {
        let rsa_header = json!({"alg": hs, "kid": "rsa-1", "typ": "JWT"});
        t.reject(
            format!("{hs} keyed with the rsa public key pem"),
            hs256(&rsa_header, claims, pem.as_bytes()),
            AlgorithmNotAllowed,
            401,
        );
        t.reject(
            format!("{hs} keyed with the rsa pem, no trailing newline"),
            hs256(&rsa_header, claims, pem.trim_end().as_bytes()),
            AlgorithmNotAllowed,
            401,
        );
        t.reject(
            format!("{hs} keyed with the raw ed25519 public key"),
            hs256(&json!({"alg": hs, "kid": "ed-1"}), claims, &ed_x),
            AlgorithmNotAllowed,
            401,
        );
        t.reject(
            format!("{hs} keyed with the jwks oct key, its own kid"),
            hs256(&json!({"alg": hs, "kid": "hmac-1"}), claims, OCT_SECRET),
            AlgorithmNotAllowed,
            401,
        );
    }
    // A token naming the oct key with an asymmetric alg: the oct key was never loaded.
    t.reject(
        "EdDSA naming the jwks oct key",
        f.ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "hmac-1"}), claims),
        UnknownKeyId,
        401,
    );

    // Header `alg` disagreeing with the key's type or curve (signature by the real key).
    for (key, alg) in [
        (&f.ed, "ES256"),
        (&f.ed, "RS256"),
        (&f.ed, "PS256"),
        (&f.ec, "EdDSA"),
        (&f.ec, "ES384"),
        (&f.ec, "RS256"),
        (&f.rsa, "EdDSA"),
        (&f.rsa, "ES256"),
        // The RSA JWK pins `alg: RS256`, so even other RSA algorithms are refused.
        (&f.rsa, "PS256"),
        (&f.rsa, "RS512"),
    ] {
        t.reject(
            format!("alg {alg} on the {} key", key.alg),
            key.sign_with_header(&json!({"alg": alg, "kid": key.kid}), claims),
            AlgorithmMismatch,
            401,
        );
    }
}

fn kid_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    let with_kid = |kid: Value| {
        f.ed.sign_with_header(&json!({"alg": "EdDSA", "kid": kid}), claims)
    };
    for (what, kid, kind) in [
        ("kid unknown", json!("no-such-key"), UnknownKeyId),
        ("kid empty", json!(""), MissingKeyId),
        ("kid a number", json!(1), MissingKeyId),
        ("kid a float", json!(1.5), MissingKeyId),
        ("kid null", json!(null), MissingKeyId),
        ("kid true", json!(true), MissingKeyId),
        ("kid an array", json!(["ed-1"]), MissingKeyId),
        ("kid an object", json!({"kid": "ed-1"}), MissingKeyId),
        ("kid a path", json!("../../dev/null"), UnknownKeyId),
        ("kid an absolute path", json!("/etc/passwd"), UnknownKeyId),
        ("kid sql", json!("' OR '1'='1' --"), UnknownKeyId),
        (
            "kid sql union",
            json!("x' UNION SELECT 'secret"),
            UnknownKeyId,
        ),
        ("kid a url", json!("http://127.0.0.1:9/key"), UnknownKeyId),
        ("kid with NUL", json!("ed-1\u{0}"), UnknownKeyId),
        ("kid with a trailing space", json!("ed-1 "), UnknownKeyId),
        ("kid in upper case", json!("ED-1"), UnknownKeyId),
    ] {
        t.reject(what, with_kid(kid), kind, 401);
    }
    t.reject(
        "no kid",
        f.ed.sign_with_header(&json!({"alg": "EdDSA"}), claims),
        MissingKeyId,
        401,
    );
    let long = "k".repeat(10 * 1024);
    t.reject(
        "kid 10 KB long (default size cap)",
        with_kid(json!(long)),
        TokenTooLarge,
        401,
    );
    t.reject_on(
        Setup::BigTokens,
        "kid 10 KB long (size cap raised)",
        with_kid(json!(long)),
        UnknownKeyId,
        401,
    );
}

fn key_injection_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    let evil_jwk = f.attacker.jwk();
    let evil_url = "http://127.0.0.1:9/evil-jwks.json";
    let evil_x5c = STANDARD.encode(b"not really a certificate, but the attacker's");
    // Injected key material beside the attacker's own kid: the verifier has no such key.
    for (member, value) in [
        ("jwk", evil_jwk.clone()),
        ("jku", json!(evil_url)),
        ("x5u", json!(evil_url)),
        ("x5c", json!([evil_x5c])),
    ] {
        let mut header = json!({"alg": "EdDSA", "kid": "attacker"});
        header[member] = value.clone();
        t.reject(
            format!("{member} injection with the attacker's kid"),
            f.attacker.sign_with_header(&header, claims),
            UnknownKeyId,
            401,
        );
        // The same, under a kid the verifier holds: the real key finds the forgery out.
        let mut header = json!({"alg": "EdDSA", "kid": "ed-1"});
        header[member] = value;
        t.reject(
            format!("{member} injection under a trusted kid"),
            f.attacker.sign_with_header(&header, claims),
            InvalidSignature,
            401,
        );
    }
    t.reject(
        "jwk injection without a kid",
        f.attacker
            .sign_with_header(&json!({"alg": "EdDSA", "jwk": evil_jwk}), claims),
        MissingKeyId,
        401,
    );
}

fn signature_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    for key in f.keys() {
        let token = key.sign(claims);
        let sig = signature_of(&token);
        let bits = sig.len() * 8;
        for bit in [0, 7, bits / 2, bits - 1] {
            t.reject(
                format!("{}: signature bit {bit} flipped", key.alg),
                with_signature(&token, &flip_bit(&sig, bit)),
                InvalidSignature,
                401,
            );
        }
        t.reject(
            format!("{}: signature truncated by one byte", key.alg),
            with_signature(&token, &sig[..sig.len() - 1]),
            InvalidSignature,
            401,
        );
        t.reject(
            format!("{}: signature cut in half", key.alg),
            with_signature(&token, &sig[..sig.len() / 2]),
            InvalidSignature,
            401,
        );
        t.reject(
            format!("{}: empty signature", key.alg),
            with_signature(&token, &[]),
            InvalidSignature,
            401,
        );
        t.reject(
            format!("{}: all-zero signature", key.alg),
            with_signature(&token, &vec![0; sig.len()]),
            InvalidSignature,
            401,
        );
        let mut long = sig.clone();
        long.push(0);
        t.reject(
            format!("{}: signature one byte too long", key.alg),
            with_signature(&token, &long),
            InvalidSignature,
            401,
        );
        let mut doubled = sig.clone();
        doubled.extend(&sig);
        t.reject(
            format!("{}: signature repeated twice", key.alg),
            with_signature(&token, &doubled),
            InvalidSignature,
            401,
        );
        let (h, p, s) = segments(&token);
        t.reject(
            format!("{}: signature with base64 padding", key.alg),
            format!("{h}.{p}.{s}=="),
            InvalidSignature,
            401,
        );
        let std_sig = STANDARD.encode(&sig);
        // Only when the alphabets differ here; otherwise this would be the valid token.
        if std_sig.contains(['+', '/', '=']) {
            t.reject(
                format!("{}: signature in standard base64", key.alg),
                format!("{h}.{p}.{std_sig}"),
                InvalidSignature,
                401,
            );
        }
        // The signature over another token's header and payload.
        let other = key.sign(&claims_set("sub", json!("someone-else")));
        let (oh, op, _) = segments(&other);
        t.reject(
            format!("{}: signature spliced onto other claims", key.alg),
            format!("{oh}.{op}.{s}"),
            InvalidSignature,
            401,
        );
    }

    // ECDSA specials (CVE-2022-21449 and friends) and DER instead of JWS's r || s.
    let token = f.ec.sign(claims);
    let sig = signature_of(&token);
    let n_n = [P256_N, P256_N].concat();
    let mut n_plus = P256_N;
    n_plus[31] += 1;
    for (what, bad) in [
        ("r = s = 0", vec![0u8; 64]),
        ("r = s = n", n_n.clone()),
        ("r = s = n + 1", [n_plus, n_plus].concat()),
        ("r = 0, s real", [&[0u8; 32][..], &sig[32..]].concat()),
        ("r real, s = 0", [&sig[..32], &[0u8; 32][..]].concat()),
        ("r real, s = n", [&sig[..32], &P256_N[..]].concat()),
        ("r = 1, s = 1", {
            let mut v = vec![0u8; 64];
            v[31] = 1;
            v[63] = 1;
            v
        }),
        ("r = s = all ones", vec![0xff; 64]),
        ("der-encoded", ecdsa_to_der(&sig)),
        ("der-encoded r = s = 0", ecdsa_to_der(&[0u8; 64])),
        ("r and s swapped", [&sig[32..], &sig[..32]].concat()),
    ] {
        t.reject(
            format!("ES256: {what}"),
            with_signature(&token, &bad),
            InvalidSignature,
            401,
        );
    }
}

fn malformed_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    let token = f.ed.sign(claims);
    let (h, p, s) = segments(&token);
    let header_text = f.ed.header().to_string();
    let claims_text = claims.to_string();
    let sign_raw = |header: &[u8], payload: &[u8]| f.ed.sign_raw(header, payload);

    for (what, bad) in [
        ("empty token", String::new()),
        ("one dot", ".".into()),
        ("two dots", "..".into()),
        ("three dots", "...".into()),
        ("2 segments", format!("{h}.{p}")),
        ("2 segments, trailing dot kept off", format!("{h}.{p}{s}")),
        ("4 segments", format!("{token}.{s}")),
        ("4 segments, empty last", format!("{token}.")),
        ("5 segments (jwe shape)", format!("{h}.{p}.{s}.{s}.{s}")),
        ("leading dot", format!(".{token}")),
        ("header padded", format!("{h}==.{p}.{s}")),
        ("header in standard base64", {
            let std =
                STANDARD.encode(b"{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"x\":\"\xfb\xff\xbf\"}");
            assert!(std.contains(['+', '/']));
            format!("{std}.{p}.{s}")
        }),
        ("leading space", format!(" {token}")),
        (
            "space inside the header",
            format!("{} {}.{p}.{s}", &h[..4], &h[4..]),
        ),
        ("header is not base64 at all", format!("!!!.{p}.{s}")),
        ("header empty", format!(".{p}.{s}")),
        ("non-canonical trailing bits in header", {
            // "e30" is `{}`; "e31" decodes to the same byte but with stray low bits.
            format!("e31.{p}.{s}")
        }),
        ("1 MB token", format!("{h}.{}.{s}", "A".repeat(1 << 20))),
        ("1 MB of dots", ".".repeat(1 << 20)),
    ] {
        let kind = if bad.len() > mka1_auth::VerifierBuilder::DEFAULT_MAX_TOKEN_BYTES {
            TokenTooLarge
        } else {
            Malformed
        };
        t.reject(what, bad, kind, 401);
        match what {
            "empty token" | "space inside the header" => {
                t.via_layer(ViaLayer::Reject(InvalidRequest, 400))
            }
            "leading space" => t.via_layer(ViaLayer::Accept),
            _ => {}
        }
    }
    // Whitespace the signer never wrote. The signature segment is compared as bytes and
    // the signature covers the header and payload text exactly, so these are refused as bad
    // signatures (the payload is not even decoded).
    let whitespace_in_token = ViaLayer::Reject(InvalidRequest, 400);
    for (what, bad, via_layer) in [
        ("trailing space", format!("{token} "), ViaLayer::Accept),
        (
            "trailing newline",
            format!("{token}\n"),
            ViaLayer::Unsendable,
        ),
        (
            "trailing crlf",
            format!("{token}\r\n"),
            ViaLayer::Unsendable,
        ),
        (
            "tab inside the payload",
            format!("{h}.{}\t{}.{s}", &p[..4], &p[4..]),
            whitespace_in_token,
        ),
        (
            "space inside the signature",
            format!("{h}.{p}.{} {}", &s[..4], &s[4..]),
            whitespace_in_token,
        ),
    ] {
        t.reject(what, bad, InvalidSignature, 401);
        t.via_layer(via_layer);
    }

    // Broken headers (signed, although the header is refused before the signature).
    for (what, header) in [
        (
            "header invalid utf-8",
            b"{\"alg\":\"EdDSA\",\"kid\":\"ed-\xff\"}".to_vec(),
        ),
        (
            "header kid with a lone surrogate",
            br#"{"alg":"EdDSA","kid":"\ud800"}"#.to_vec(),
        ),
        (
            "header with a bom",
            [b"\xef\xbb\xbf", header_text.as_bytes()].concat(),
        ),
        (
            "header an array",
            br#"[{"alg":"EdDSA","kid":"ed-1"}]"#.to_vec(),
        ),
        ("header a string", br#""EdDSA""#.to_vec()),
        ("header null", b"null".to_vec()),
        ("header empty object text", b"".to_vec()),
        (
            "header truncated json",
            br#"{"alg":"EdDSA","kid":"ed-1""#.to_vec(),
        ),
        (
            "header with trailing garbage",
            [header_text.as_bytes(), b"x"].concat(),
        ),
        (
            "header with two objects",
            [header_text.as_bytes(), header_text.as_bytes()].concat(),
        ),
        (
            "header duplicate alg (EdDSA then none)",
            br#"{"alg":"EdDSA","alg":"none","kid":"ed-1"}"#.to_vec(),
        ),
        (
            "header duplicate kid",
            br#"{"alg":"EdDSA","kid":"other","kid":"ed-1"}"#.to_vec(),
        ),
    ] {
        t.reject(
            what,
            sign_raw(&header, claims_text.as_bytes()),
            Malformed,
            401,
        );
    }

    // Broken payloads, correctly signed, so they reach the claims parser.
    for (what, payload) in [
        (
            "payload invalid utf-8",
            [
                &claims_text.as_bytes()[..claims_text.len() - 1],
                b",\"x\":\"\xc3\x28\"}",
            ]
            .concat(),
        ),
        (
            "payload cesu-8 surrogate bytes",
            [
                &claims_text.as_bytes()[..claims_text.len() - 1],
                b",\"x\":\"\xed\xa0\x80\"}",
            ]
            .concat(),
        ),
        (
            "sub with an escaped lone surrogate",
            claims_set("sub", json!("PLACEHOLDER"))
                .to_string()
                .replace("PLACEHOLDER", r"user\ud800")
                .into_bytes(),
        ),
        (
            "payload with a bom",
            [b"\xef\xbb\xbf", claims_text.as_bytes()].concat(),
        ),
        ("payload an array", format!("[{claims_text}]").into_bytes()),
        ("payload a number", b"1800000000".to_vec()),
        ("payload a string", br#""user-42""#.to_vec()),
        ("payload null", b"null".to_vec()),
        ("payload empty", b"".to_vec()),
        (
            "payload with trailing garbage",
            format!("{claims_text}garbage").into_bytes(),
        ),
        (
            "payload with two objects",
            format!("{claims_text}{claims_text}").into_bytes(),
        ),
    ] {
        t.reject(
            what,
            sign_raw(header_text.as_bytes(), &payload),
            Malformed,
            401,
        );
    }

    // Non-canonical base64url in a payload that is then signed as written.
    // Trailing JSON whitespace changes the length until base64 needs padding.
    let payload_b64 = (0..3)
        .map(|n| b64(format!("{claims_text}{}", " ".repeat(n))))
        .find(|b| b.len() % 4 != 0)
        .unwrap();
    let pad = "=".repeat(4 - payload_b64.len() % 4);
    t.reject(
        "payload padded, signed as padded",
        sign_segments(&f.ed, h, &format!("{payload_b64}{pad}")),
        Malformed,
        401,
    );
    let std_payload = STANDARD.encode(claims_text.as_bytes());
    let std_payload = std_payload.trim_end_matches('=').to_owned();
    if std_payload.contains(['+', '/']) {
        t.reject(
            "payload in standard base64, signed as written",
            sign_segments(&f.ed, h, &std_payload),
            Malformed,
            401,
        );
    }
    t.reject(
        "payload with a space, signed as written",
        sign_segments(&f.ed, h, &format!("{} {}", &p[..8], &p[8..])),
        Malformed,
        401,
    );
    t.via_layer(ViaLayer::Reject(InvalidRequest, 400));

    // Duplicate claim names: the first and the last value must not be told apart.
    for name in ["sub", "exp", "aud", "iss", "permissions", "iat"] {
        let value = &claims_at(NOW)[name];
        let dup = format!(
            "{},\"{name}\":{}}}",
            &claims_text[..claims_text.len() - 1],
            value
        );
        t.reject(
            format!("duplicate `{name}` claim"),
            sign_raw(header_text.as_bytes(), dup.as_bytes()),
            InvalidClaim,
            401,
        );
    }
    let escaped_dup = format!(
        "{},\"s\\u0075b\":\"admin\"}}",
        &claims_text[..claims_text.len() - 1]
    );
    t.reject(
        "duplicate `sub` spelled with an escape",
        sign_raw(header_text.as_bytes(), escaped_dup.as_bytes()),
        InvalidClaim,
        401,
    );
    let big_claims = claims_set("pad", json!("x".repeat(1 << 20)));
    t.reject(
        "1 MB signed token",
        f.ed.sign(&big_claims),
        TokenTooLarge,
        401,
    );
}

/// Deeply nested JSON. serde_json skips members nobody reads without recursing (its ignore
/// path keeps an explicit stack), and stops at 128 levels in the members the verifier reads,
/// so neither can exhaust the stack; the tests below show both, in the unauthenticated
/// header and in a signed payload.
fn nesting_attacks(t: &mut Table, f: &Fixture, claims: &Value) {
    use ErrorKind::*;
    let claims_text = claims.to_string();
    let with_member = |member: &str, json: &str| {
        format!(
            "{},\"{member}\":{json}}}",
            &claims_text[..claims_text.len() - 1]
        )
    };
    let deep_objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let header_with = |json: &str| format!(r#"{{"alg":"EdDSA","kid":"KID","x":{json}}}"#);

    // Unauthenticated header, 500 and ~350,000 levels: parsed without harm, then the key
    // decides (unknown kid, or the trusted kid with the attacker's signature).
    for (what, depth, setup) in [
        ("500", 500, Setup::Strict),
        ("350,000", 350_000, Setup::BigTokens),
    ] {
        for (kid, kind) in [("attacker", UnknownKeyId), ("ed-1", InvalidSignature)] {
            let header = header_with(&nested_arrays(depth)).replace("KID", kid);
            t.reject_on(
                setup,
                format!("header with arrays nested {what} deep, kid {kid}"),
                f.attacker
                    .sign_raw(header.as_bytes(), claims_text.as_bytes()),
                kind,
                401,
            );
        }
    }
    let header = header_with(&deep_objects(400)).replace("KID", "attacker");
    t.reject(
        "header with objects nested 400 deep",
        f.attacker
            .sign_raw(header.as_bytes(), claims_text.as_bytes()),
        UnknownKeyId,
        401,
    );

    // Signed payloads: nesting in a claim the verifier reads hits serde_json's limit.
    let header_text = f.ed.header().to_string();
    let signed = |payload: String| f.ed.sign_raw(header_text.as_bytes(), payload.as_bytes());
    for (what, member, json) in [
        ("permissions", "permissions", nested_arrays(300)),
        ("aud", "aud", nested_arrays(1000)),
        ("exp", "exp", deep_objects(200)),
        ("sub", "sub", nested_arrays(129)),
    ] {
        let claims: Value = serde_json::from_str(&claims_text).unwrap();
        let mut map = claims.as_object().unwrap().clone();
        map.remove(member);
        let rest = Value::Object(map).to_string();
        let payload = format!("{},\"{member}\":{json}}}", &rest[..rest.len() - 1]);
        t.reject(
            format!("`{what}` nested too deep"),
            signed(payload),
            Malformed,
            401,
        );
    }
    // Within the limit, the type check answers instead.
    t.reject(
        "`aud` nested 100 deep",
        signed(with_member("x", "0").replace(
            &format!("\"aud\":\"{AUDIENCE}\""),
            &format!("\"aud\":{}", nested_arrays(100)),
        )),
        InvalidClaim,
        401,
    );
    // In a member nobody reads, deep nesting in a signed token is just data.
    t.accept(
        "control: signed payload with arrays nested 1000 deep in an unread claim",
        signed(with_member("x", &nested_arrays(1000))),
    );
    t.accept(
        "control: signed payload with objects nested 400 deep in an unread claim",
        signed(with_member("x", &deep_objects(400))),
    );
}

fn claim_type_attacks(t: &mut Table, f: &Fixture) {
    use ErrorKind::*;
    let mut bad = |what: String, claims: Value, kind: ErrorKind| {
        t.reject(what, f.ed.sign(&claims), kind, 401);
    };
    for name in ["exp", "nbf", "iat"] {
        for (what, value) in [
            ("a string", json!((NOW + 60).to_string())),
            ("an empty string", json!("")),
            ("true", json!(true)),
            ("false", json!(false)),
            ("null", json!(null)),
            ("negative", json!(-1)),
            ("negative float", json!(-0.5)),
            ("1e300", json!(1e300)),
            ("1.8e19", json!(1.8e19)),
            ("u64 max", json!(u64::MAX)),
            ("i64 min", json!(i64::MIN)),
            ("past year 9999", json!(253_402_300_800u64)),
            ("an array", json!([NOW])),
            ("an object", json!({"$date": NOW})),
        ] {
            bad(
                format!("`{name}` {what}"),
                claims_set(name, value),
                InvalidClaim,
            );
        }
    }
    // Raw JSON numbers serde_json would not produce from a Rust value.
    let header = f.ed.header().to_string();
    for (what, number, kind) in [
        // serde_json refuses a number it cannot represent: the payload is not valid json.
        ("exp 1e999 (overflows f64)", "1e999", Malformed),
        // Negative zero is zero: long expired.
        ("exp -0", "-0", Expired),
        ("exp -0.0", "-0.0", Expired),
        (
            "exp 1.8e19 written out",
            "18000000000000000000",
            InvalidClaim,
        ),
        ("exp past u64", "18446744073709551616", InvalidClaim),
        ("exp with a huge exponent", "1E+300", InvalidClaim),
    ] {
        let text = claims_at(NOW).to_string().replace(
            &format!("\"exp\":{}", NOW + 3600),
            &format!("\"exp\":{number}"),
        );
        assert!(text.contains(number));
        t.reject(
            what,
            f.ed.sign_raw(header.as_bytes(), text.as_bytes()),
            kind,
            401,
        );
    }
    let mut bad = |what: &str, claims: Value, kind: ErrorKind| {
        t.reject(what, f.ed.sign(&claims), kind, 401);
    };
    bad(
        "`exp` missing",
        claims_with(json!({"exp": null})),
        MissingExpiry,
    );
    bad("`exp` 0", claims_set("exp", json!(0)), Expired);
    bad("expired", claims_set("exp", json!(NOW - 3600)), Expired);
    bad(
        "`nbf` in the future",
        claims_set("nbf", json!(NOW + 3600)),
        NotYetValid,
    );
    bad(
        "`iat` in the future",
        claims_set("iat", json!(NOW + 3600)),
        IssuedInFuture,
    );
    bad(
        "`exp` a year ahead",
        claims_set("exp", json!(NOW + 365 * 86_400)),
        LifetimeTooLong,
    );

    for (what, aud, kind) in [
        ("`aud` a number", json!(1), InvalidClaim),
        ("`aud` an object", json!({"aud": AUDIENCE}), InvalidClaim),
        ("`aud` an array of numbers", json!([1, 2]), InvalidClaim),
        (
            "`aud` an array with a number",
            json!([AUDIENCE, 2]),
            InvalidClaim,
        ),
        ("`aud` nested array", json!([[AUDIENCE]]), InvalidClaim),
        ("`aud` true", json!(true), InvalidClaim),
        ("`aud` null", json!(null), InvalidClaim),
        ("`aud` empty array", json!([]), InvalidAudience),
        (
            "`aud` another service",
            json!("https://other.example.test"),
            InvalidAudience,
        ),
        (
            "`aud` a prefix",
            json!("https://api.example"),
            InvalidAudience,
        ),
        (
            "`aud` with a trailing slash",
            json!(format!("{AUDIENCE}/")),
            InvalidAudience,
        ),
        (
            "`aud` in upper case",
            json!(AUDIENCE.to_uppercase()),
            InvalidAudience,
        ),
        ("`aud` wildcard", json!("*"), InvalidAudience),
    ] {
        bad(what, claims_set("aud", aud), kind);
    }
    bad(
        "`aud` missing",
        claims_with(json!({"aud": null})),
        InvalidAudience,
    );

    for (what, iss) in [
        ("`iss` an array", json!([ISSUER])),
        ("`iss` a number", json!(1)),
        ("`iss` null", json!(null)),
        ("`iss` another issuer", json!("https://evil.example.test")),
    ] {
        bad(what, claims_set("iss", iss), InvalidIssuer);
    }
    bad(
        "`iss` missing",
        claims_with(json!({"iss": null})),
        InvalidIssuer,
    );
    t.reject_on(
        Setup::NoIssuer,
        "`iss` an array, no issuer configured",
        f.ed.sign(&claims_set("iss", json!([ISSUER]))),
        InvalidClaim,
        401,
    );
    let mut bad = |what: &str, claims: Value, kind: ErrorKind| {
        t.reject(what, f.ed.sign(&claims), kind, 401);
    };

    for (what, sub) in [
        (
            "`sub` with CR/LF",
            json!("user-42\r\nX-On-Behalf-Of: admin"),
        ),
        ("`sub` with LF", json!("user-42\nadmin")),
        ("`sub` with NUL", json!("user-42\u{0}admin")),
        ("`sub` with U+202E", json!("user-\u{202e}24")),
        ("`sub` non-ascii", json!("jos\u{e9}")),
        ("`sub` with DEL", json!("user\u{7f}")),
        ("`sub` with a tab", json!("user\t42")),
        ("`sub` empty", json!("")),
        ("`sub` 151 characters", json!("u".repeat(151))),
        ("`sub` *", json!("*")),
        ("`sub` leading space", json!(" user-42")),
        ("`sub` a number", json!(42)),
        ("`sub` an array", json!(["user-42"])),
        ("`sub` null", json!(null)),
    ] {
        bad(what, claims_set("sub", sub), InvalidSubject);
    }
    bad(
        "`sub` missing",
        claims_with(json!({"sub": null})),
        InvalidSubject,
    );

    bad("`jti` a number", claims_set("jti", json!(7)), InvalidClaim);
    for (what, perms) in [
        ("permissions a number", json!(1)),
        ("permissions an object", json!({"agent:read": true})),
        ("permissions an array of numbers", json!([1])),
        ("permissions nested arrays", json!([["agent:read"]])),
    ] {
        bad(what, claims_set("permissions", perms), InvalidPermissions);
    }
}

// ---------------------------------------------------------------------------------------
// Running it.

/// Whether an error's text repeats any sizable piece of the token.
fn echoes_token(text: &str, token: &str) -> bool {
    token
        .split(['.', ' ', '\n', '\t'])
        .filter(|part| part.len() >= 12)
        .any(|part| text.contains(part))
}

#[tokio::test]
async fn attack_table_through_verify() {
    let fixture = Fixture::new();
    let table = attack_table(&fixture);
    let mut names = HashSet::new();
    for case in &table.0 {
        assert!(
            names.insert(case.name.as_str()),
            "duplicate case name {:?}",
            case.name
        );
    }

    let mut failures = Vec::new();
    let mut tasks = Vec::new();
    for case in table.0 {
        let verifier = fixture.verifier(case.setup);
        let token = case.token.clone();
        let task = tokio::spawn(async move { verifier.verify(&token).await });
        tasks.push((case, task));
    }
    let total = tasks.len();
    for (case, task) in tasks {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                failures.push(format!("{}: PANIC {e}", case.name));
                continue;
            }
        };
        match (case.kind, outcome) {
            (None, Ok(_)) => {}
            (None, Err(e)) => failures.push(format!("{}: control refused: {e}", case.name)),
            (Some(kind), Ok(v)) => failures.push(format!(
                "{}: ACCEPTED (expected {kind:?}), sub {:?}",
                case.name,
                v.subject()
            )),
            (Some(kind), Err(e)) => {
                if e.kind() != kind {
                    failures.push(format!(
                        "{}: expected {kind:?}, got {:?} ({e})",
                        case.name,
                        e.kind()
                    ));
                }
                if case.status == 401 && !e.kind().is_invalid_token() {
                    failures.push(format!("{}: a 401 case must be invalid_token", case.name));
                }
                if echoes_token(&e.to_string(), &case.token)
                    || echoes_token(&format!("{e:?}"), &case.token)
                {
                    failures.push(format!("{}: error echoes the token: {e:?}", case.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total > 250, "the table shrank to {total} cases");
    println!("{total} cases through Verifier::verify");
}

#[test]
fn jwks_oct_key_is_skipped_not_loaded() {
    let fixture = Fixture::new();
    let set = mka1_auth::jwks::KeySet::from_json(&fixture.jwks().to_string()).unwrap();
    assert!(set.get("hmac-1").is_none());
    assert_eq!(set.len(), 3);
    assert_eq!(
        set.skipped()[0].reason,
        mka1_auth::jwks::SkipReason::SymmetricKey
    );
}

#[test]
fn rsa_pem_helper_matches_the_jwk() {
    // The confusion cases are only meaningful if the PEM is the real key: check its shape.
    let fixture = Fixture::new();
    let pem = rsa_public_pem(&fixture.rsa.jwk());
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    );
    assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
}

// ---------------------------------------------------------------------------------------
// Through the layer.

type Reply = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

/// The protected service: answers with the verified subject.
fn protected(req: Request<String>) -> Reply {
    let subject = VerifiedToken::from_extensions(req.extensions()).map(|t| t.subject().to_owned());
    let header = req.headers().get(X_ON_BEHALF_OF).cloned();
    Box::pin(async move {
        let subject = subject.expect("the layer let an unverified request through");
        assert_eq!(header.unwrap(), subject.as_str());
        Ok(Response::new(subject))
    })
}

/// What a refusal from the layer says, checked: status, kind, and no echo of the token.
fn refusal_problems(
    response: &Response<String>,
    token: &str,
    kind: ErrorKind,
    status: u16,
) -> Vec<String> {
    let mut problems = Vec::new();
    if response.status().as_u16() != status {
        problems.push(format!("status {} (expected {status})", response.status()));
    }
    match response.extensions().get::<Error>() {
        Some(e) if e.kind() == kind => {}
        Some(e) => problems.push(format!("kind {:?} (expected {kind:?})", e.kind())),
        None => problems.push("no error in the response extensions".into()),
    }
    let headers: Vec<String> = response
        .headers()
        .values()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if echoes_token(response.body(), token) || headers.iter().any(|h| echoes_token(h, token)) {
        problems.push("the response echoes the token".into());
    }
    problems
}

async fn send(layer: &Mka1AuthLayer, req: Request<String>) -> Response<String> {
    layer
        .layer(service_fn(protected))
        .oneshot(req)
        .await
        .expect("auth failures are responses, not service errors")
}

#[tokio::test]
async fn attack_table_through_the_layer() {
    let fixture = Fixture::new();
    let table = attack_table(&fixture);
    let layer_for = |setup| Mka1AuthLayer::new(fixture.verifier(setup));
    let layers = [
        Setup::Strict,
        Setup::NoIssuer,
        Setup::BigTokens,
        Setup::TwoIssuers,
    ]
    .map(|s| (s, layer_for(s)));

    let mut failures = Vec::new();
    let mut tasks = Vec::new();
    let total = table.0.len();
    for case in table.0 {
        let expect_unsendable = matches!(case.via_layer, ViaLayer::Unsendable);
        let value = match HeaderValue::from_str(&format!("Bearer {}", case.token)) {
            Ok(_) if expect_unsendable => {
                failures.push(format!("{}: expected to be unsendable", case.name));
                continue;
            }
            Ok(value) => value,
            Err(_) if expect_unsendable => continue,
            Err(e) => {
                failures.push(format!("{}: cannot build the header: {e}", case.name));
                continue;
            }
        };
        let layer = layers
            .iter()
            .find(|(s, _)| *s == case.setup)
            .unwrap()
            .1
            .clone();
        let req = Request::builder()
            .uri("/orders")
            .header(AUTHORIZATION, value)
            .body(String::new())
            .unwrap();
        let task = tokio::spawn(async move { send(&layer, req).await });
        tasks.push((case, task));
    }
    assert!(tasks.len() > 250, "only {} cases were sent", tasks.len());
    println!("{} of {total} cases sent through the layer", tasks.len());
    for (case, task) in tasks {
        let response = match task.await {
            Ok(response) => response,
            Err(e) => {
                failures.push(format!("{}: PANIC {e}", case.name));
                continue;
            }
        };
        let expected = match (case.via_layer, case.kind) {
            (ViaLayer::Accept, _) | (ViaLayer::Same, None) => None,
            (ViaLayer::Reject(kind, status), _) => Some((kind, status)),
            (ViaLayer::Same, Some(kind)) => Some((kind, case.status)),
            (ViaLayer::Unsendable, _) => unreachable!(),
        };
        match expected {
            None if response.status() == 200 && !response.body().is_empty() => {}
            None => failures.push(format!(
                "{}: expected 200, got {} {:?}",
                case.name,
                response.status(),
                response.extensions().get::<Error>()
            )),
            Some((kind, status)) => {
                for problem in refusal_problems(&response, &case.token, kind, status) {
                    failures.push(format!("{}: {problem}", case.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed through the layer:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Tricks with the request rather than the token.
#[tokio::test]
async fn header_tricks_through_the_layer() {
    let fixture = Fixture::new();
    let layer = Mka1AuthLayer::new(fixture.verifier(Setup::Strict));
    let token = fixture.ed.sign(&claims_at(NOW));
    let other = fixture.ec.sign(&claims_set("sub", json!("someone-else")));
    let get = |uri: &str| Request::builder().uri(uri);
    let bearer = format!("Bearer {token}");

    use ErrorKind::*;
    /// A request and what must come of it (`None`: passed on with the token's user).
    type Trick<'a> = (&'a str, http::request::Builder, Option<(ErrorKind, u16)>);
    let cases: Vec<Trick> = vec![
        (
            "control: one bearer header",
            get("/").header(AUTHORIZATION, &bearer),
            None,
        ),
        (
            "control: scheme in lower case",
            get("/").header(AUTHORIZATION, format!("bearer {token}")),
            None,
        ),
        (
            "two authorization headers, same token",
            get("/")
                .header(AUTHORIZATION, &bearer)
                .header(AUTHORIZATION, &bearer),
            Some((InvalidRequest, 400)),
        ),
        (
            "two authorization headers, two users",
            get("/")
                .header(AUTHORIZATION, &bearer)
                .header(AUTHORIZATION, format!("Bearer {other}")),
            Some((InvalidRequest, 400)),
        ),
        (
            "two authorization headers, basic then bearer",
            get("/")
                .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .header(AUTHORIZATION, &bearer),
            Some((InvalidRequest, 400)),
        ),
        (
            "two tokens in one header, comma-joined",
            get("/").header(AUTHORIZATION, format!("{bearer}, Bearer {other}")),
            Some((InvalidRequest, 400)),
        ),
        (
            "basic credentials",
            get("/").header(AUTHORIZATION, "Basic dXNlcjpwYXNz"),
            Some((MissingCredentials, 401)),
        ),
        (
            "the token under the basic scheme",
            get("/").header(AUTHORIZATION, format!("Basic {token}")),
            Some((MissingCredentials, 401)),
        ),
        (
            "the token without a scheme",
            get("/").header(AUTHORIZATION, token.as_str()),
            Some((InvalidRequest, 400)),
        ),
        (
            "scheme `Bearer:`",
            get("/").header(AUTHORIZATION, format!("Bearer: {token}")),
            Some((InvalidRequest, 400)),
        ),
        (
            "scheme `JWT`",
            get("/").header(AUTHORIZATION, format!("JWT {token}")),
            Some((MissingCredentials, 401)),
        ),
        (
            "bare `Bearer`",
            get("/").header(AUTHORIZATION, "Bearer"),
            Some((InvalidRequest, 400)),
        ),
        (
            "`Bearer` and spaces",
            get("/").header(AUTHORIZATION, "Bearer    "),
            Some((InvalidRequest, 400)),
        ),
        (
            "empty authorization",
            get("/").header(AUTHORIZATION, ""),
            Some((InvalidRequest, 400)),
        ),
        (
            "bearer token and trailing words",
            get("/").header(AUTHORIZATION, format!("{bearer} admin")),
            Some((InvalidRequest, 400)),
        ),
        (
            "non-ascii in the header",
            get("/").header(
                AUTHORIZATION,
                HeaderValue::from_bytes(format!("Bearer {token}\u{e9}").as_bytes()).unwrap(),
            ),
            Some((InvalidRequest, 400)),
        ),
        (
            "token in the query string only (ignored)",
            get(&format!("/?access_token={token}")),
            Some((MissingCredentials, 401)),
        ),
        (
            "token in the query string under other names (ignored)",
            get(&format!(
                "/?token={token}&jwt={token}&authorization=Bearer%20{token}"
            )),
            Some((MissingCredentials, 401)),
        ),
        (
            "token in a cookie, no cookie configured (ignored)",
            get("/").header(COOKIE, format!("token={token}; mka1_token={token}")),
            Some((MissingCredentials, 401)),
        ),
        (
            "token in proxy-authorization (ignored)",
            get("/").header("proxy-authorization", &bearer),
            Some((MissingCredentials, 401)),
        ),
        (
            "token in x-access-token (ignored)",
            get("/").header("x-access-token", token.as_str()),
            Some((MissingCredentials, 401)),
        ),
        (
            "query token beside a bad header: the header decides",
            get(&format!("/?access_token={token}")).header(AUTHORIZATION, "Bearer a.b.c"),
            Some((Malformed, 401)),
        ),
        (
            "x-on-behalf-of naming another user",
            get("/")
                .header(AUTHORIZATION, &bearer)
                .header(X_ON_BEHALF_OF, "admin"),
            Some((OnBehalfOfMismatch, 403)),
        ),
    ];

    let mut failures = Vec::new();
    for (name, req, expected) in cases {
        let response = send(&layer, req.body(String::new()).unwrap()).await;
        match expected {
            None if response.status() == 200 && response.body() == "user-42" => {}
            None => failures.push(format!("{name}: expected 200, got {}", response.status())),
            Some((kind, status)) => {
                for problem in refusal_problems(&response, &token, kind, status) {
                    failures.push(format!("{name}: {problem}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// gRPC spellings (issue 25): a refusal answered with HTTP 200 is a grant to a forward-auth
// gateway, so only a real gRPC call to a layer that opted in gets one.

/// Which calls the auth layer answers the gRPC way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GrpcOptIn {
    None,
    Grpc,
    Web,
    Both,
}

impl GrpcOptIn {
    fn layer(self, verifier: Verifier) -> Mka1AuthLayer {
        let (grpc, web) = match self {
            GrpcOptIn::None => (false, false),
            GrpcOptIn::Grpc => (true, false),
            GrpcOptIn::Web => (false, true),
            GrpcOptIn::Both => (true, true),
        };
        Mka1AuthLayer::new(verifier)
            .grpc_answers(grpc)
            .grpc_web_answers(web)
    }

    fn answers(self, call: Call) -> bool {
        match call {
            Call::Grpc => matches!(self, GrpcOptIn::Grpc | GrpcOptIn::Both),
            _ => matches!(self, GrpcOptIn::Web | GrpcOptIn::Both),
        }
    }
}

/// How the answer is rendered: the auth layer's `Reject`, and the permission layer's own
/// (`None`: it leaves its answers to the auth layer).
#[derive(Clone, Copy, Debug)]
enum Render {
    Standard,
    GrpcRejectOnAuth,
    GrpcRejectOnPermissions,
    StandardOnPermissions,
}

/// A request spelling and the gRPC call it really is, if any.
struct Spelling {
    name: &'static str,
    method: http::Method,
    version: http::Version,
    content_type: Option<&'static str>,
    call: Option<Call>,
}

fn grpc_spellings() -> Vec<Spelling> {
    use http::{Method, Version};
    let spelling = |name, method, version, content_type, call| Spelling {
        name,
        method,
        version,
        content_type,
        call,
    };
    let h2 = Version::HTTP_2;
    let h11 = Version::HTTP_11;
    let ct = Some;
    vec![
        spelling(
            "grpc",
            Method::POST,
            h2,
            ct("application/grpc"),
            Some(Call::Grpc),
        ),
        spelling(
            "grpc+proto",
            Method::POST,
            h2,
            ct("application/grpc+proto"),
            Some(Call::Grpc),
        ),
        spelling(
            "grpc;charset",
            Method::POST,
            h2,
            ct("application/grpc;charset=utf-8"),
            Some(Call::Grpc),
        ),
        spelling(
            "GRPC in capitals",
            Method::POST,
            h2,
            ct("APPLICATION/GRPC"),
            Some(Call::Grpc),
        ),
        spelling(
            "grpc, GET over HTTP/2",
            Method::GET,
            h2,
            ct("application/grpc"),
            None,
        ),
        spelling(
            "grpc, POST over HTTP/1.1",
            Method::POST,
            h11,
            ct("application/grpc"),
            None,
        ),
        spelling(
            "grpc, GET over HTTP/1.1 (curl)",
            Method::GET,
            h11,
            ct("application/grpc"),
            None,
        ),
        spelling("grpcX", Method::POST, h2, ct("application/grpcX"), None),
        spelling("grpc-", Method::POST, h2, ct("application/grpc-"), None),
        spelling(
            "grpc, space before ;",
            Method::POST,
            h2,
            ct("application/grpc ;a=b"),
            None,
        ),
        spelling("no content-type", Method::POST, h2, None, None),
        spelling("json", Method::POST, h2, ct("application/json"), None),
        spelling(
            "grpc-web over HTTP/1.1",
            Method::POST,
            h11,
            ct("application/grpc-web"),
            Some(Call::GrpcWeb),
        ),
        spelling(
            "grpc-web+proto over HTTP/2",
            Method::POST,
            h2,
            ct("application/grpc-web+proto"),
            Some(Call::GrpcWeb),
        ),
        spelling(
            "grpc-web-text",
            Method::POST,
            h11,
            ct("application/grpc-web-text"),
            Some(Call::GrpcWebText),
        ),
        spelling(
            "grpc-web-text;charset",
            Method::POST,
            h11,
            ct("application/grpc-web-text;charset=utf-8"),
            Some(Call::GrpcWebText),
        ),
        spelling(
            "grpc-web, GET",
            Method::GET,
            h11,
            ct("application/grpc-web"),
            None,
        ),
        spelling(
            "grpc-web over HTTP/1.0",
            Method::POST,
            http::Version::HTTP_10,
            ct("application/grpc-web"),
            None,
        ),
        spelling(
            "grpc-webX",
            Method::POST,
            h11,
            ct("application/grpc-webX"),
            None,
        ),
    ]
}

impl Spelling {
    fn request(&self, authorization: Option<&str>) -> Request<String> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .version(self.version)
            .uri("/demo.Greeter/Hello");
        if let Some(content_type) = self.content_type {
            req = req.header(CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        req.body(String::new()).unwrap()
    }
}

/// What is wrong with `response` to a refusal of `kind` (RFC 6750 `status`, gRPC code
/// `code`), answered the gRPC way as `grpc` or, when `None`, the RFC 6750 way.
fn grpc_refusal_problems(
    response: &Response<String>,
    kind: ErrorKind,
    status: u16,
    code: &str,
    grpc: Option<Call>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let headers = response.headers();
    match response.extensions().get::<Error>() {
        Some(e) if e.kind() == kind => {}
        other => problems.push(format!(
            "kind {:?} (expected {kind:?})",
            other.map(Error::kind)
        )),
    }
    match grpc {
        Some(call) => {
            if response.status() != 200 {
                problems.push(format!(
                    "status {} (expected the gRPC 200)",
                    response.status()
                ));
            }
            if headers.get("grpc-status").is_none_or(|v| v != code) {
                problems.push(format!(
                    "grpc-status {:?} (expected {code})",
                    headers.get("grpc-status")
                ));
            }
            if headers
                .get(CONTENT_TYPE)
                .is_none_or(|v| v != call.content_type())
            {
                problems.push(format!("content-type {:?}", headers.get(CONTENT_TYPE)));
            }
            if !response.body().is_empty() {
                problems.push("a body on a trailers-only answer".into());
            }
        }
        None => {
            if response.status() != status {
                problems.push(format!("status {} (expected {status})", response.status()));
            }
            if response.status().is_success() {
                problems.push("A REFUSAL ANSWERED WITH A 2XX".into());
            }
            if headers.contains_key("grpc-status") || headers.contains_key("grpc-message") {
                problems.push("a grpc-status on an RFC 6750 answer".into());
            }
            match headers.get(WWW_AUTHENTICATE) {
                Some(v) if v.as_bytes().starts_with(b"Bearer realm=") => {}
                other => problems.push(format!("www-authenticate {other:?}")),
            }
        }
    }
    problems
}

#[tokio::test]
async fn grpc_spellings_through_the_auth_and_permission_layers() {
    let fixture = Fixture::new();
    let verifier = fixture.verifier(Setup::Strict);
    let token = fixture.ed.sign(&claims_at(NOW));
    let forged = with_signature(&token, &flip_bit(&signature_of(&token), 3));
    let valid = format!("Bearer {token}");
    let forged = format!("Bearer {forged}");
    use ErrorKind::*;
    // The token has `agent:read` and `agent:write`; the route needs `agent:admin`.
    let refusals = [
        ("no token", None, MissingCredentials, 401, "16"),
        (
            "forged token",
            Some(forged.as_str()),
            InvalidSignature,
            401,
            "16",
        ),
        (
            "missing permission",
            Some(valid.as_str()),
            InsufficientPermission,
            403,
            "7",
        ),
    ];
    let opt_ins = [
        GrpcOptIn::None,
        GrpcOptIn::Grpc,
        GrpcOptIn::Web,
        GrpcOptIn::Both,
    ];
    let renders = [
        Render::Standard,
        Render::GrpcRejectOnAuth,
        Render::GrpcRejectOnPermissions,
        Render::StandardOnPermissions,
    ];

    let mut failures = Vec::new();
    let mut cases = 0;
    for opt_in in opt_ins {
        for render in renders {
            let auth = opt_in.layer(verifier.clone());
            let permissions = RequirePermissionsLayer::new(["agent:admin"]);
            let svc = match render {
                Render::Standard => auth
                    .layer(permissions.layer(service_fn(protected)))
                    .boxed_clone(),
                Render::GrpcRejectOnAuth => auth
                    .reject_with(GrpcReject)
                    .layer(permissions.layer(service_fn(protected)))
                    .boxed_clone(),
                Render::GrpcRejectOnPermissions => auth
                    .layer(
                        permissions
                            .reject_with(GrpcReject)
                            .layer(service_fn(protected)),
                    )
                    .boxed_clone(),
                Render::StandardOnPermissions => auth
                    .layer(
                        permissions
                            .reject_with(StandardReject)
                            .layer(service_fn(protected)),
                    )
                    .boxed_clone(),
            };
            for spelling in grpc_spellings() {
                for (refusal, authorization, kind, status, code) in refusals {
                    cases += 1;
                    let response = svc
                        .clone()
                        .oneshot(spelling.request(authorization))
                        .await
                        .unwrap();
                    let grpc = spelling.call.filter(|call| opt_in.answers(*call));
                    for problem in grpc_refusal_problems(&response, kind, status, code, grpc) {
                        failures.push(format!(
                            "{opt_in:?} opt-in, {render:?}, {}, {refusal}: {problem}",
                            spelling.name
                        ));
                    }
                }
            }
        }
    }
    assert!(cases > 800, "{cases}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A permission layer with no authentication layer in front (a wiring bug, 500) never
/// answers the gRPC way, whatever the request says and whatever renders the answer.
#[tokio::test]
async fn a_permission_layer_alone_never_answers_grpc() {
    let standard = RequirePermissionsLayer::new(["agent:read"]).layer(service_fn(protected));
    let grpc = RequirePermissionsLayer::new(["agent:read"])
        .reject_with(GrpcReject)
        .layer(service_fn(protected));
    let mut failures = Vec::new();
    for spelling in grpc_spellings() {
        for (name, response) in [
            (
                "standard",
                standard.clone().oneshot(spelling.request(None)).await,
            ),
            (
                "GrpcReject",
                grpc.clone().oneshot(spelling.request(None)).await,
            ),
        ] {
            let response = response.unwrap();
            let kind = response.extensions().get::<Error>().map(Error::kind);
            if response.status() != 500
                || kind != Some(ErrorKind::MissingLayer)
                || response.headers().contains_key("grpc-status")
            {
                failures.push(format!(
                    "{name}, {}: {} {kind:?} {:?}",
                    spelling.name,
                    response.status(),
                    response.headers().get("grpc-status")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Tricks against a forward (issue 25): what a caller adds to undo the upstream's
// containment (path and method overrides, trailers, the token's cookie) must stop at the
// forward, in every spelling.

/// A request body of the given frames: data, and trailers where a case puts them.
struct Frames(std::collections::VecDeque<http_body::Frame<bytes::Bytes>>);

impl http_body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// What the forward sent onward: method, URI, header and trailer lines (`name: value`).
#[derive(Debug, Default, Clone)]
struct Onward {
    method: String,
    uri: String,
    lines: Vec<(String, String)>,
}

/// One trick: a forward setting, a request, and the lines the upstream must not get (any
/// line whose name folds to `name` and whose value holds `value`).
struct ForwardTrick {
    name: &'static str,
    cookies: ForwardCookies,
    /// An inner layer without a cookie behind the one that reads `mka1_token`.
    two_layers: bool,
    request: http::request::Builder,
    trailers: Vec<(&'static str, String)>,
    banned: Vec<(&'static str, String)>,
}

#[tokio::test]
async fn forward_tricks_through_the_layer() {
    use mka1_auth::outbound::forward::{CappedBody, ForwardLayer};
    use std::sync::{Arc, Mutex};

    let fixture = Fixture::new();
    let token = fixture.ed.sign(&claims_at(NOW));
    let bearer = format!("Bearer {token}");
    let get = || Request::builder().uri("/orders").header("x-app", "control");
    let with_bearer = || get().header(AUTHORIZATION, &bearer);
    let ban = |name: &'static str, value: &str| vec![(name, value.to_owned())];
    let header_trick =
        |name: &'static str, header: &'static str, value: &'static str| ForwardTrick {
            name,
            cookies: ForwardCookies::Drop,
            two_layers: false,
            request: with_bearer().header(header, value),
            trailers: vec![],
            banned: ban(header, value),
        };
    let trailer_trick = |name: &'static str, trailer: &'static str, value: String| ForwardTrick {
        name,
        cookies: ForwardCookies::Drop,
        two_layers: false,
        request: with_bearer().header("te", "trailers"),
        trailers: vec![(trailer, value.clone())],
        banned: vec![(trailer, value)],
    };
    let token_cookie = format!("theme=dark; mka1_token={token}; lang=en");
    let cookie_trick = |name, cookies, two_layers, request: http::request::Builder| ForwardTrick {
        name,
        cookies,
        two_layers,
        request: request.header(COOKIE, &token_cookie),
        trailers: vec![],
        banned: ban("cookie", "mka1_token"),
    };
    let cases = vec![
        header_trick("path override X-Original-URL", "X-Original-URL", "/admin"),
        header_trick("path override x_original_url", "x_original_url", "/admin"),
        header_trick("path override X-Original-URI", "X-Original-URI", "/admin"),
        header_trick("path override X-Rewrite-URL", "X-Rewrite-URL", "/admin"),
        header_trick("path override X_REWRITE_URL", "X_REWRITE_URL", "/admin"),
        header_trick(
            "method override X-HTTP-Method-Override",
            "X-HTTP-Method-Override",
            "DELETE",
        ),
        header_trick(
            "method override x_http_method_override",
            "x_http_method_override",
            "DELETE",
        ),
        header_trick("method override X-HTTP-Method", "X-HTTP-Method", "DELETE"),
        header_trick(
            "method override X-Method-Override",
            "X-Method-Override",
            "PUT",
        ),
        header_trick(
            "method override X_Method_Override",
            "X_Method_Override",
            "PUT",
        ),
        header_trick(
            "method override X-Original-Method",
            "X-Original-Method",
            "PUT",
        ),
        trailer_trick(
            "trailer authorization",
            "authorization",
            "Bearer forged".into(),
        ),
        trailer_trick("trailer x-on-behalf-of", "x-on-behalf-of", "admin".into()),
        trailer_trick("trailer x_on_behalf_of", "x_on_behalf_of", "admin".into()),
        trailer_trick(
            "trailer method override",
            "x-http-method-override",
            "DELETE".into(),
        ),
        trailer_trick("trailer path override", "x-original-url", "/admin".into()),
        trailer_trick(
            "trailer cookie with the token",
            "cookie",
            format!("mka1_token={token}"),
        ),
        cookie_trick(
            "the token's cookie, cookies dropped",
            ForwardCookies::Drop,
            false,
            get(),
        ),
        cookie_trick(
            "the token's cookie, cookies kept",
            ForwardCookies::Keep,
            false,
            get(),
        ),
        cookie_trick(
            "the token's cookie beside authorization, cookies kept",
            ForwardCookies::Keep,
            false,
            with_bearer(),
        ),
        cookie_trick(
            "the outer layer's token cookie, an inner layer reads none, cookies kept",
            ForwardCookies::Keep,
            true,
            with_bearer(),
        ),
        ForwardTrick {
            name: "the token's cookie in upper case, cookies kept",
            cookies: ForwardCookies::Keep,
            two_layers: false,
            request: with_bearer().header(COOKIE, format!("MKA1_TOKEN={token}")),
            trailers: vec![],
            banned: ban("cookie", "MKA1_TOKEN"),
        },
    ];

    let fold = |name: &str| name.to_ascii_lowercase().replace('_', "-");
    let mut failures = Vec::new();
    let total = cases.len();
    for case in cases {
        let seen: Arc<Mutex<Vec<Onward>>> = Arc::default();
        let log = Arc::clone(&seen);
        let upstream = service_fn(move |req: Request<CappedBody<Frames>>| {
            let log = Arc::clone(&log);
            async move {
                use http_body_util::BodyExt;
                let (parts, mut body) = req.into_parts();
                let line = |(n, v): (&http::HeaderName, &HeaderValue)| {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_owned(), v)
                };
                let mut onward = Onward {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    lines: parts.headers.iter().map(line).collect(),
                };
                while let Some(frame) = body.frame().await {
                    if let Ok(trailers) = frame.unwrap().into_trailers() {
                        onward.lines.extend(trailers.iter().map(line));
                    }
                }
                log.lock().unwrap().push(onward);
                Ok::<_, Infallible>(Response::new(String::from("ok")))
            }
        });
        let forward = ForwardLayer::builder("http://127.0.0.1:9/base")
            .cookies(case.cookies)
            .build()
            .unwrap()
            .layer(upstream)
            .map_response(|r| r.map(axum::body::Body::new));
        let verifier = fixture.verifier(Setup::Strict);
        let outer =
            Mka1AuthLayer::new(verifier.clone()).cookie(CookieName::new("mka1_token").unwrap());
        let mut frames =
            std::collections::VecDeque::from([http_body::Frame::data(bytes::Bytes::from("body"))]);
        if !case.trailers.is_empty() {
            let mut trailers = http::HeaderMap::new();
            for (name, value) in &case.trailers {
                trailers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            frames.push_back(http_body::Frame::trailers(trailers));
        }
        let req = case.request.body(Frames(frames)).unwrap();
        let response = if case.two_layers {
            let inner = Mka1AuthLayer::new(verifier).layer(forward);
            outer.layer(inner).oneshot(req).await
        } else {
            outer.layer(forward).oneshot(req).await
        }
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        let [onward] = &seen[..] else {
            failures.push(format!(
                "{}: {} onward requests, status {}",
                case.name,
                seen.len(),
                response.status()
            ));
            continue;
        };
        if response.status() != 200 {
            failures.push(format!("{}: status {}", case.name, response.status()));
        }
        // Positive controls: the request itself and an ordinary header arrive as sent.
        if (onward.method.as_str(), onward.uri.as_str())
            != ("GET", "http://127.0.0.1:9/base/orders")
        {
            failures.push(format!(
                "{}: sent {} {}",
                case.name, onward.method, onward.uri
            ));
        }
        if !onward.lines.contains(&("x-app".into(), "control".into())) {
            failures.push(format!("{}: the control header did not arrive", case.name));
        }
        for (name, value) in &onward.lines {
            // Failures name the line, never the whole token.
            let value_cut: String = value.chars().take(40).collect();
            if case
                .banned
                .iter()
                .any(|(b, v)| fold(b) == fold(name) && value.contains(v.as_str()))
            {
                failures.push(format!(
                    "{}: the upstream got `{name}: {value_cut}`",
                    case.name
                ));
            }
            if value.contains(&token) {
                failures.push(format!(
                    "{}: the upstream got the token in `{name}`",
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures in {total} forward cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Against a remote JWKS on 127.0.0.1: what a flood of made-up kids costs, and whether a
// token can make the verifier contact an address it names.

#[cfg(feature = "remote")]
mod remote {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    use super::*;

    /// A JWKS endpoint on 127.0.0.1 that counts the requests it answers.
    pub struct JwksServer {
        pub url: String,
        requests: Arc<AtomicUsize>,
    }

    impl JwksServer {
        pub async fn start(document: Value) -> JwksServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks", listener.local_addr().unwrap());
            let requests = Arc::new(AtomicUsize::new(0));
            let count = Arc::clone(&requests);
            let body = Bytes::from(document.to_string());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (count, body) = (Arc::clone(&count), body.clone());
                    let service = hyper::service::service_fn(move |_req| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let response = Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body.clone()))
                            .unwrap();
                        async move { Ok::<_, Infallible>(response) }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            JwksServer { url, requests }
        }

        pub fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// An address an attacker controls: a listener that never accepts, so any connection
    /// attempt, however brief, waits in its backlog to be counted.
    pub struct Attacker {
        listener: std::net::TcpListener,
        pub base: String,
    }

    impl Attacker {
        pub fn start() -> Attacker {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            Attacker { listener, base }
        }

        /// How many connections reached the attacker (drains the backlog).
        pub fn connections(&self) -> usize {
            std::iter::from_fn(|| self.listener.accept().ok()).count()
        }
    }

    fn remote_verifier(url: &str, max_token_bytes: usize) -> Verifier {
        Verifier::builder()
            .jwks_url(url)
            .audience(AUDIENCE)
            .issuer(ISSUER)
            .algorithms(ALL_ALGORITHMS)
            .max_token_bytes(max_token_bytes)
            .clock(ManualClock::at_unix(NOW))
            .build()
            .unwrap()
    }

    fn bearer_request(token: &str) -> Request<String> {
        Request::builder()
            .uri("/")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .unwrap()
    }

    /// Send every token at once; return each response's status and error kind.
    async fn flood(layer: &Mka1AuthLayer, tokens: &[String]) -> Vec<(u16, Option<ErrorKind>)> {
        let tasks: Vec<_> = tokens
            .iter()
            .map(|t| {
                let (layer, req) = (layer.clone(), bearer_request(t));
                tokio::spawn(async move { send(&layer, req).await })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            let response = task.await.expect("no panic");
            let kind = response.extensions().get::<Error>().map(Error::kind);
            out.push((response.status().as_u16(), kind));
        }
        out
    }

    /// Tokens under kids nobody published, in every shape the table tries, each unique.
    fn made_up_kid_tokens(f: &Fixture, n: usize) -> Vec<String> {
        let claims = claims_at(NOW);
        let shapes = [
            "no-such-key-{i}".to_owned(),
            "../../dev/null/{i}".to_owned(),
            "' OR '1'='1' -- {i}".to_owned(),
            "http://127.0.0.1:9/{i}".to_owned(),
            "ed-1\u{0}{i}".to_owned(),
            format!("{}{{i}}", "k".repeat(5 * 1024)),
        ];
        (0..n)
            .map(|i| {
                let kid = shapes[i % shapes.len()].replace("{i}", &i.to_string());
                f.attacker
                    .sign_with_header(&json!({"alg": "EdDSA", "kid": kid}), &claims)
            })
            .collect()
    }

    #[tokio::test]
    async fn kid_flood_on_a_cold_verifier_costs_one_fetch() {
        let f = Fixture::new();
        let server = JwksServer::start(f.jwks()).await;
        let layer = Mka1AuthLayer::new(remote_verifier(&server.url, 16 * 1024));
        let tokens = made_up_kid_tokens(&f, 60);
        let answers = flood(&layer, &tokens).await;
        assert!(
            answers
                .iter()
                .all(|a| *a == (401, Some(ErrorKind::UnknownKeyId))),
            "{answers:?}"
        );
        assert_eq!(server.requests(), 1, "one shared fetch for the whole flood");
        // The keys that one fetch brought are in use: a genuine token passes, no refetch.
        let ok = flood(&layer, &[f.ed.sign(&claims_at(NOW))]).await;
        assert_eq!(ok, vec![(200, None)]);
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test]
    async fn kid_flood_on_a_warm_verifier_costs_at_most_one_refetch() {
        let f = Fixture::new();
        let server = JwksServer::start(f.jwks()).await;
        let layer = Mka1AuthLayer::new(remote_verifier(&server.url, 16 * 1024));
        let warm = flood(&layer, &[f.rsa.sign(&claims_at(NOW))]).await;
        assert_eq!(warm, vec![(200, None)]);
        assert_eq!(server.requests(), 1);

        for round in 0..3 {
            let answers = flood(&layer, &made_up_kid_tokens(&f, 40)).await;
            assert!(
                answers
                    .iter()
                    .all(|a| *a == (401, Some(ErrorKind::UnknownKeyId))),
                "round {round}: {answers:?}"
            );
        }
        assert!(
            server.requests() <= 2,
            "{} fetches: a kid flood must cost at most one refetch per cooldown",
            server.requests()
        );
        // Kids that are not strings, or empty, never even ask.
        let before = server.requests();
        let claims = claims_at(NOW);
        let no_kid: Vec<String> = [json!(""), json!(7), json!(null), json!(["ed-1"])]
            .into_iter()
            .map(|kid| {
                f.attacker
                    .sign_with_header(&json!({"alg": "EdDSA", "kid": kid}), &claims)
            })
            .collect();
        let answers = flood(&layer, &no_kid).await;
        assert!(answers
            .iter()
            .all(|a| *a == (401, Some(ErrorKind::MissingKeyId))));
        assert_eq!(server.requests(), before);
        // Genuine tokens still pass, whatever the flood did.
        let ok = flood(&layer, &[f.ec.sign(&claims_at(NOW))]).await;
        assert_eq!(ok, vec![(200, None)]);
    }

    #[tokio::test]
    async fn an_unknown_issuer_costs_no_fetch_and_each_issuer_fetches_its_own_keys() {
        let f = Fixture::new();
        let (our_server, their_server) = (
            JwksServer::start(f.jwks()).await,
            JwksServer::start(f.their_jwks()).await,
        );
        let verifier = Verifier::builder()
            .issuer_jwks_url(ISSUER, &our_server.url)
            .issuer_jwks_url(THEIR_ISSUER, &their_server.url)
            .audience(AUDIENCE)
            .clock(ManualClock::at_unix(NOW))
            .build()
            .unwrap();
        let status = verifier.key_set_status();
        assert!(!status.usable && status.remote && status.per_issuer.len() == 2);
        let layer = Mka1AuthLayer::new(verifier.clone());
        let fetches = || (our_server.requests(), their_server.requests());

        // Issuers without a key set, under kids both sets hold or neither does: no fetch.
        let mut strangers = Vec::new();
        for iss in [
            json!("https://evil.example.test"),
            json!(null),
            json!([ISSUER]),
            json!(ISSUER.to_uppercase()),
            json!(format!("{THEIR_ISSUER}/")),
        ] {
            let claims = claims_with(json!({ "iss": iss }));
            strangers.push(f.ed.sign(&claims));
            strangers.push(f.attacker.sign(&claims));
        }
        let answers = flood(&layer, &strangers).await;
        assert!(
            answers
                .iter()
                .all(|a| *a == (401, Some(ErrorKind::InvalidIssuer))),
            "{answers:?}"
        );
        assert_eq!(fetches(), (0, 0), "an unknown issuer caused a fetch");

        // Their token under a kid only we publish: only their set is asked, and it has no
        // such key.
        let theirs = claims_set("iss", json!(THEIR_ISSUER));
        let answers = flood(&layer, &[f.ec.sign(&theirs)]).await;
        assert_eq!(answers, vec![(401, Some(ErrorKind::UnknownKeyId))]);
        assert_eq!(fetches(), (0, 1));
        // Our key under the kid both publish, on their token: their key, a bad signature.
        let answers = flood(&layer, &[f.ed.sign(&theirs)]).await;
        assert_eq!(answers, vec![(401, Some(ErrorKind::InvalidSignature))]);
        assert_eq!(fetches(), (0, 1));
        // Genuine tokens of each issuer pass; ours fetched our set, once.
        let genuine = [f.ed.sign(&claims_at(NOW)), f.theirs.sign(&theirs)];
        assert_eq!(
            flood(&layer, &genuine).await,
            vec![(200, None), (200, None)]
        );
        assert_eq!(fetches(), (1, 1));

        let status = verifier.key_set_status();
        assert!(status.usable);
        let per_issuer: Vec<_> = status
            .per_issuer
            .iter()
            .map(|(issuer, s)| (issuer.as_str(), s.key_count, s.usable, s.remote))
            .collect();
        assert_eq!(
            per_issuer,
            [(ISSUER, 3, true, true), (THEIR_ISSUER, 2, true, true)]
        );
        assert_eq!(status.key_count, 5);
    }

    #[tokio::test]
    async fn injected_key_locations_are_never_contacted() {
        let f = Fixture::new();
        let server = JwksServer::start(f.jwks()).await;
        let attacker = Attacker::start();
        let evil_jwks = format!("{}/.well-known/jwks.json", attacker.base);
        let claims = claims_at(NOW);
        let mut tokens = Vec::new();
        for kid in ["attacker", "ed-1", evil_jwks.as_str()] {
            for (member, value) in [
                ("jku", json!(evil_jwks)),
                ("x5u", json!(format!("{}/cert.pem", attacker.base))),
                ("jwk", {
                    let mut jwk = f.attacker.jwk();
                    jwk["kid"] = json!(kid);
                    jwk
                }),
                ("x5c", json!([STANDARD.encode(b"attacker certificate")])),
            ] {
                let mut header = json!({"alg": "EdDSA", "kid": kid});
                header[member] = value;
                tokens.push(f.attacker.sign_with_header(&header, &claims));
            }
            let all = json!({"alg": "EdDSA", "kid": kid, "jku": evil_jwks,
                "x5u": format!("{}/c.pem", attacker.base), "jwk": f.attacker.jwk()});
            tokens.push(f.attacker.sign_with_header(&all, &claims));
        }

        for (label, verifier) in [
            ("remote", remote_verifier(&server.url, 16 * 1024)),
            ("static", f.verifier(Setup::Strict)),
        ] {
            let answers = flood(&Mka1AuthLayer::new(verifier), &tokens).await;
            for (token, (status, kind)) in tokens.iter().zip(&answers) {
                assert_eq!(*status, 401, "{label}: {token}");
                assert!(
                    matches!(
                        kind,
                        Some(ErrorKind::UnknownKeyId | ErrorKind::InvalidSignature)
                    ),
                    "{label}: {kind:?}"
                );
            }
        }
        assert_eq!(
            attacker.connections(),
            0,
            "the attacker's address was contacted"
        );
        assert!(
            server.requests() >= 1,
            "the remote verifier never asked its own jwks"
        );
        // The counter works: a connection to the attacker is seen.
        drop(std::net::TcpStream::connect(attacker.base.trim_start_matches("http://")).unwrap());
        assert_eq!(attacker.connections(), 1);
    }
}
