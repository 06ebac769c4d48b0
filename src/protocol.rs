//! What MKA1's API fixes, in one place: the gateway, the exchange endpoint's paths and the
//! limits on a token's lifetime. The exchange client, the dev issuer and the verifier's
//! defaults all read these. (The scoped API-key endpoints, which this crate never calls, are
//! the dev issuer's: `mka1_auth_dev_issuer::SCOPED_API_KEY_PATH` and its siblings.)
//!
//! ```
//! use mka1_auth::protocol::{EXCHANGE_TOKEN_PATH, MAX_EXPIRES_IN};
//!
//! assert_eq!(EXCHANGE_TOKEN_PATH, "/api/v1/authentication/api-keys/exchange-token");
//! assert_eq!(MAX_EXPIRES_IN, 30 * 24 * 3600);
//! ```

/// MKA1's API gateway, the exchange client's default base URL.
pub const DEFAULT_BASE_URL: &str = "https://apigw.mka1.com";

/// The current exchange-token path.
pub const EXCHANGE_TOKEN_PATH: &str = "/api/v1/authentication/api-keys/exchange-token";

/// The older exchange-token path, still served by MKA1 (and the SDKs' deprecated method).
pub const LEGACY_EXCHANGE_TOKEN_PATH: &str = "/api/v1/authentication/api-key/exchange-token";

/// The shortest token lifetime the exchange accepts (`expiresIn`), in seconds.
pub const MIN_EXPIRES_IN: u64 = 300;

/// The longest token lifetime the exchange accepts (`expiresIn`), in seconds (30 days).
pub const MAX_EXPIRES_IN: u64 = 2_592_000;

/// The token lifetime when `expiresIn` is absent, in seconds.
pub const DEFAULT_EXPIRES_IN: u64 = 3600;
