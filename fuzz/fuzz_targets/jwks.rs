//! Arbitrary JWKS documents: loading never panics, skips what it cannot trust, and no
//! loaded key accepts an all-zero signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mka1_auth::jwks::{KeySet, SUPPORTED_ALGORITHMS};
use mka1_auth::Algorithm;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(set) = KeySet::from_json(&text) else {
        return;
    };
    for kid in set.kids() {
        let key = set.get(kid).expect("listed kid");
        for alg in SUPPORTED_ALGORITHMS {
            for len in [0, 64, 96, 256, 512] {
                assert!(!key.verify(alg, b"message", &vec![0u8; len]));
            }
        }
        assert!(!key.accepts(Algorithm::HS256));
    }
});
