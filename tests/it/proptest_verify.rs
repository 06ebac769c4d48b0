//! Property tests: arbitrary input and mutated valid tokens never make the verifier panic,
//! and never get a mutated token accepted.
//!
//! A "mutation" is judged by what it decodes to: a changed token is only allowed through if
//! its three segments decode (strictly) to exactly the original's bytes, which strict
//! base64url makes impossible for a changed string. So any accepted change is a forgery.
//!
//! Runs in a few seconds; raise `PROPTEST_CASES` for a longer run, or use the `cargo fuzz`
//! target in `fuzz/`.

use crate::common;

use std::convert::Infallible;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use mka1_auth::{BearerToken, Error, ManualClock, Mka1AuthLayer, Verifier};
use proptest::prelude::*;
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

struct Fixture {
    verifier: Verifier,
    /// The same verifier with its token cache off: the reference the cache must agree with.
    uncached: Verifier,
    runtime: tokio::runtime::Runtime,
    /// Valid tokens: each key, a few claim sets.
    tokens: Vec<String>,
    /// A key the verifier does not know, for re-signing mutated headers and payloads.
    attacker: TestKey,
    /// The trusted keys themselves, for tokens whose header and payload are arbitrary but
    /// whose signature is genuine.
    keys: Vec<TestKey>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = TestKey::all();
        let refs: Vec<&TestKey> = keys.iter().collect();
        let verifier = |cache| {
            Verifier::builder()
                .jwks(jwks(&refs))
                .audience(AUDIENCE)
                .issuer(ISSUER)
                .clock(ManualClock::at_unix(NOW))
                .token_cache_capacity(cache)
                .build()
                .unwrap()
        };
        let mut tokens = Vec::new();
        for key in &keys {
            tokens.push(key.sign(&claims_at(NOW)));
            tokens.push(key.sign(&claims_with(json!({"sub": "u", "permissions": "a b"}))));
            tokens.push(key.sign(&claims_with(json!({"aud": [AUDIENCE, "x"], "iat": null}))));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fixture = Fixture {
            verifier: verifier(10_000),
            uncached: verifier(0),
            runtime,
            tokens,
            attacker: TestKey::ed25519("ed-1"),
            keys,
        };
        for token in &fixture.tokens {
            assert!(fixture.verify(token).is_ok(), "fixture token refused");
        }
        fixture
    })
}

impl Fixture {
    fn verify(&self, token: &str) -> Result<mka1_auth::VerifiedToken, mka1_auth::Error> {
        self.runtime.block_on(self.verifier.verify(token))
    }

    /// Send one `Authorization` value through the layer; the protected service answers
    /// with the bearer token it was handed.
    fn through_layer(&self, authorization: HeaderValue) -> Response<String> {
        let service = service_fn(|req: Request<String>| async move {
            let token = BearerToken::from_extensions(req.extensions())
                .unwrap()
                .expose()
                .to_owned();
            Ok::<_, Infallible>(Response::new(token))
        });
        let req = Request::builder()
            .uri("/")
            .header(AUTHORIZATION, authorization)
            .body(String::new())
            .unwrap();
        let layer = Mka1AuthLayer::new(self.verifier.clone());
        self.runtime
            .block_on(layer.layer(service).oneshot(req))
            .unwrap()
    }
}

/// The layer's answer to one `Authorization` value: refused with a clean 400 or 401, or
/// passed on with a token the trusted keys really signed.
fn check_layer(authorization: &[u8]) -> Result<(), TestCaseError> {
    let Ok(value) = HeaderValue::from_bytes(authorization) else {
        return Ok(()); // Not something HTTP can carry.
    };
    let f = fixture();
    let response = f.through_layer(value);
    match response.status().as_u16() {
        200 => prop_assert!(
            f.tokens.iter().any(|t| t == response.body()),
            "the layer passed on a token nobody signed: {}",
            response.body()
        ),
        400 | 401 => prop_assert!(response.extensions().get::<Error>().is_some()),
        other => prop_assert!(false, "unexpected status {other}"),
    }
    Ok(())
}

/// The strictly decoded segments of a token, when it has exactly three that decode.
fn decoded(token: &str) -> Option<[Vec<u8>; 3]> {
    let mut parts = token.split('.');
    let out = [parts.next()?, parts.next()?, parts.next()?].map(|p| URL_SAFE_NO_PAD.decode(p).ok());
    if parts.next().is_some() {
        return None;
    }
    let [a, b, c] = out;
    Some([a?, b?, c?])
}

/// Verify a changed token: it must be refused, unless it decodes to the bytes of a token a
/// trusted key really signed (splicing payload and signature from another genuine token
/// gives back that token, which is no forgery).
fn assert_refused_unless_genuine(
    genuine: &[String],
    original: &str,
    mutated: &str,
) -> Result<(), TestCaseError> {
    if mutated == original {
        return Ok(());
    }
    if let Ok(v) = fixture().verify(mutated) {
        let bytes = decoded(mutated);
        let known = bytes.is_some() && genuine.iter().any(|g| decoded(g) == bytes);
        prop_assert!(
            known,
            "mutated token accepted (sub {:?}):\noriginal {original}\nmutated  {mutated}",
            v.subject()
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip one bit of one byte of the token text.
    FlipBit { at: usize, bit: u8 },
    /// Set one byte of the token text.
    SetByte { at: usize, byte: u8 },
    /// Insert bytes.
    Insert { at: usize, bytes: Vec<u8> },
    /// Remove a range.
    Remove { at: usize, len: usize },
    /// Cut the token short.
    Truncate { at: usize },
    /// Swap two segments.
    SwapSegments { a: usize, b: usize },
    /// Replace one segment with the same segment of another valid token.
    Splice { segment: usize, from: usize },
    /// Flip a bit inside a segment's decoded bytes and re-encode it (valid base64url).
    FlipDecoded { segment: usize, at: usize, bit: u8 },
    /// Append to a segment's decoded bytes and re-encode it.
    ExtendDecoded { segment: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapSegments { a, b }),
        (0usize..3, any::<usize>()).prop_map(|(segment, from)| Mutation::Splice { segment, from }),
        (0usize..3, any::<usize>(), 0u8..8).prop_map(|(segment, at, bit)| Mutation::FlipDecoded {
            segment,
            at,
            bit
        }),
        (0usize..3, prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(segment, bytes)| Mutation::ExtendDecoded { segment, bytes }),
    ]
}

fn apply(token: &str, m: &Mutation) -> String {
    let f = fixture();
    let mut bytes = token.as_bytes().to_vec();
    let len = bytes.len().max(1);
    let mut segs: Vec<String> = token.split('.').map(str::to_owned).collect();
    let seg = |i: usize| i % segs.len();
    match m {
        Mutation::FlipBit { at, bit } => {
            if !bytes.is_empty() {
                bytes[at % len] ^= 1 << bit;
            }
        }
        Mutation::SetByte { at, byte } => {
            if !bytes.is_empty() {
                bytes[at % len] = *byte;
            }
        }
        Mutation::Insert { at, bytes: extra } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Remove { at, len: n } => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Truncate { at } => bytes.truncate(at % len),
        Mutation::SwapSegments { a, b } => {
            let (a, b) = (seg(*a), seg(*b));
            segs.swap(a, b);
            return segs.join(".");
        }
        Mutation::Splice { segment, from } => {
            let donor = &f.tokens[from % f.tokens.len()];
            let i = seg(*segment);
            if let Some(part) = donor.split('.').nth(i) {
                segs[i] = part.to_owned();
            }
            return segs.join(".");
        }
        Mutation::FlipDecoded { segment, at, bit } => {
            let i = seg(*segment);
            if let Ok(mut raw) = URL_SAFE_NO_PAD.decode(&segs[i]) {
                if !raw.is_empty() {
                    let n = raw.len();
                    raw[at % n] ^= 1 << bit;
                }
                segs[i] = URL_SAFE_NO_PAD.encode(raw);
            }
            return segs.join(".");
        }
        Mutation::ExtendDecoded {
            segment,
            bytes: extra,
        } => {
            let i = seg(*segment);
            if let Ok(mut raw) = URL_SAFE_NO_PAD.decode(&segs[i]) {
                raw.extend(extra);
                segs[i] = URL_SAFE_NO_PAD.encode(raw);
            }
            return segs.join(".");
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 512 by default; `PROPTEST_CASES=100000` for a longer run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        // Failures are reported with their input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes (made text) are refused, never panic.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(fixture().verify(&text).is_err());
    }

    /// Arbitrary text over the token alphabet reaches the decoders more often.
    #[test]
    fn arbitrary_token_shaped_text_is_refused(text in "[A-Za-z0-9_\\-]{0,200}(\\.[A-Za-z0-9_\\-=+/ ]{0,300}){0,4}") {
        prop_assert!(fixture().verify(&text).is_err());
    }

    /// Three segments of arbitrary bytes, well-encoded: the parsers get garbage.
    #[test]
    fn arbitrary_segments_are_refused(
        h in prop::collection::vec(any::<u8>(), 0..300),
        p in prop::collection::vec(any::<u8>(), 0..600),
        s in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!("{}.{}.{}", b64(&h), b64(&p), b64(&s));
        prop_assert!(fixture().verify(&token).is_err());
    }

    /// Arbitrary header and payload JSON-ish text signed by the attacker under a trusted kid.
    #[test]
    fn attacker_signed_tokens_are_refused(
        alg in prop::sample::select(vec!["EdDSA", "ES256", "RS256", "none", "HS256", "eddsa", ""]),
        kid in prop::sample::select(vec!["ed-1", "ec-1", "rsa-1", "", "x"]),
        extra in "[ -~]{0,40}",
        payload in prop::collection::vec(any::<u8>(), 0..400),
        claims_ok in any::<bool>(),
    ) {
        let f = fixture();
        let header = format!(r#"{{"alg":"{alg}","kid":"{kid}","x":"{}"}}"#,
            extra.replace(['"', '\\'], ""));
        let payload = if claims_ok { claims_at(NOW).to_string().into_bytes() } else { payload };
        let token = f.attacker.sign_raw(header.as_bytes(), &payload);
        prop_assert!(f.verify(&token).is_err());
    }

    /// Genuinely signed arbitrary payloads never panic; if one is accepted, the verified
    /// token reflects exactly what was signed.
    #[test]
    fn genuinely_signed_arbitrary_payloads_never_panic(
        key in 0usize..3,
        payload in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let f = fixture();
        let key = &f.keys[key];
        let token = key.sign_raw(key.header().to_string().as_bytes(), &payload);
        if let Ok(v) = f.verify(&token) {
            prop_assert_eq!(v.raw_claims().as_bytes(), &payload[..]);
        }
    }

    /// Mutations of valid tokens, one or several in a row, are never accepted.
    #[test]
    fn mutated_tokens_are_never_accepted(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let f = fixture();
        let original = &f.tokens[which % f.tokens.len()];
        let mut token = original.clone();
        for m in &mutations {
            token = apply(&token, m);
        }
        assert_refused_unless_genuine(&f.tokens, original, &token)?;
    }

    /// The cache never changes an answer: runs of valid and mutated tokens (many sharing a
    /// valid token's last bytes, so its front set and tail) verify through the caching
    /// verifier exactly as through one without a cache.
    #[test]
    fn the_cache_answers_as_a_fresh_verification_would(
        picks in prop::collection::vec((any::<usize>(), prop::option::of(mutation())), 1..12),
    ) {
        let f = fixture();
        for (which, mutation) in &picks {
            let original = &f.tokens[which % f.tokens.len()];
            let token = match mutation {
                Some(m) => apply(original, m),
                None => original.clone(),
            };
            let cached = f.verify(&token);
            let fresh = f.runtime.block_on(f.uncached.verify(&token));
            match (cached, fresh) {
                (Ok(c), Ok(u)) => prop_assert_eq!(c.raw_claims(), u.raw_claims()),
                (Err(c), Err(u)) => prop_assert_eq!(c.kind(), u.kind()),
                (c, u) => prop_assert!(false, "cached {:?} but fresh {:?}", c.is_ok(), u.is_ok()),
            }
        }
    }

    /// Arbitrary `Authorization` values through the layer.
    #[test]
    fn arbitrary_authorization_headers_through_the_layer(
        value in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        check_layer(&value)?;
    }

    /// `Bearer ` plus a mutated valid token, through the layer.
    #[test]
    fn mutated_tokens_through_the_layer(
        which in any::<usize>(),
        scheme in prop::sample::select(vec!["Bearer ", "bearer ", "BEARER  ", "Basic ", "", "Bearer"]),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let f = fixture();
        let mut token = f.tokens[which % f.tokens.len()].clone();
        for m in &mutations {
            token = apply(&token, m);
        }
        check_layer(format!("{scheme}{token}").as_bytes())?;
    }
}

#[test]
fn the_mutation_check_can_fail() {
    // The oracle must see an accepted change as a forgery: a valid token it was not told is
    // genuine stands in for one. Told it is genuine, or unchanged, it passes.
    let f = fixture();
    let (a, b) = (&f.tokens[0], &f.tokens[1]);
    let only_a = [a.clone()];
    assert!(assert_refused_unless_genuine(&only_a, a, b).is_err());
    assert!(assert_refused_unless_genuine(&f.tokens, a, b).is_ok());
    assert!(assert_refused_unless_genuine(&only_a, a, a).is_ok());
}
