//! Arbitrary header and payload bytes with a genuine signature: this drives the header and
//! claims parsers past the signature check. Never a panic; whatever is accepted must be
//! exactly what was signed and obey the end-user id rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mka1_auth::claims::validate_end_user_id;
use mka1_auth_fuzz::{fixture, AUDIENCE, KID, NOW};

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // First byte: whether to use the standard header or take one from the input.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let standard = format!(r#"{{"alg":"EdDSA","kid":"{KID}"}}"#);
    let (header, payload) = if mode & 1 == 0 {
        (standard.as_bytes(), rest)
    } else {
        let split = usize::from(mode >> 1).min(rest.len());
        rest.split_at(split)
    };
    let token = f.sign(header, payload);
    if let Ok(verified) = f.verify(&token) {
        assert_eq!(verified.raw_claims().as_bytes(), payload);
        assert!(validate_end_user_id(verified.subject()).is_ok());
        assert!(verified.audiences().any(|a| a == AUDIENCE));
        assert!(verified.expires_at() + 60 > NOW);
        assert_eq!(verified.key_id(), KID);
    }
});
