//! Arbitrary bytes as a token: never a panic, and nothing verifies except a token the
//! trusted key really signed (which a corpus may hold, but the fuzzer cannot forge).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mka1_auth_fuzz::fixture;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let token = String::from_utf8_lossy(data);
    if f.verify(&token).is_ok() {
        assert!(
            f.genuine.iter().any(|g| *g == token),
            "a token nobody signed was accepted"
        );
    }
});
