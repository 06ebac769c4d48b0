//! The core verifier's contract: every rule, both sides of each boundary, for EdDSA, ES256
//! and RS256 tokens minted in the test.

mod common;

use common::*;
use mka1_auth::{ErrorKind, ManualClock, Verifier};

fn verifier_for(keys: &[&TestKey]) -> Verifier {
    Verifier::builder()
        .jwks(jwks(keys))
        .audience(AUDIENCE)
        .clock(ManualClock::at_unix(NOW))
        .build()
        .unwrap()
}

#[tokio::test]
async fn accepts_a_valid_token_for_each_algorithm() {
    let keys = TestKey::all();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let verifier = verifier_for(&refs);
    for key in &keys {
        let token = key.sign(&claims_at(NOW));
        let verified = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg));
        assert_eq!(verified.subject(), "user-42");
        assert!(verified.has_permission("agent:read"));
        assert_eq!(verified.key_id(), key.kid);
        let err = verifier
            .verify(&token[..token.len() - 4])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{}", key.alg);
    }
}
