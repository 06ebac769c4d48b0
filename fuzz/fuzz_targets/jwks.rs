//! Arbitrary JWKS documents: loading never panics, skips what it cannot trust, and no
//! loaded key accepts an all-zero signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mka1_auth::jwks::KeySet;
use mka1_auth::Algorithm;

const ALGORITHMS: [Algorithm; 9] = [
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

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(set) = KeySet::from_json(&text) else {
        return;
    };
    for kid in set.kids() {
        let key = set.get(kid).expect("listed kid");
        for alg in ALGORITHMS {
            for len in [0, 64, 96, 256, 512] {
                assert!(!key.verify(alg, b"message", &vec![0u8; len]));
            }
        }
        assert!(!key.accepts(Algorithm::HS256));
    }
});
