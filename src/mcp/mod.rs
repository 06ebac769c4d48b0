//! MCP tool servers behind [`Mka1AuthLayer`](crate::Mka1AuthLayer): sessions bound to the
//! user who opened them ([`McpSessionLayer`]) and RFC 9728 protected resource metadata
//! ([`ProtectedResource`], opt-in), and inside a tool the verified caller ([`caller`]) and a
//! permission check answered as a tool error ([`require`]). All work on HTTP types only, so
//! they need no MCP library; `examples/mcp_server.rs` shows them around an rmcp server.
//!
//! **Sessions.** A Streamable HTTP server in stateful mode answers `initialize` with an
//! `Mcp-Session-Id` header, and the client sends it back on every later request. MCP's
//! security guidance asks servers to bind that id to the user and never to treat it as
//! authentication. [`McpSessionLayer`], inside the authentication layer:
//!
//! - records, for each session id a successful response issues, the (`iss`, `sub`) of the
//!   token on the request that opened it;
//! - answers 404 (as the MCP specification answers an unknown session) to a request whose
//!   session id was opened by another user, or is not a live session it knows, before the
//!   MCP server sees it; the same user, with the same token or a newer one, goes through;
//! - forgets a session when its owner ends it (`DELETE`, answered 2xx), when the server
//!   answers 404 for it, and when the latest token seen on it has expired (its `exp` plus
//!   the [leeway](McpSessionLayer::leeway)), and holds at most
//!   [`max_sessions`](McpSessionLayer::max_sessions) sessions.
//!
//! An expired or otherwise invalid token is answered 401 by the authentication layer in
//! front, like any request. A stateless server issues no session ids, so the layer is not
//! needed there (with it, requests without a session id pass untouched).
//!
//! ```
//! use axum::{routing::post, Router};
//! use mka1_auth::mcp::McpSessionLayer;
//! use mka1_auth::{Mka1AuthLayer, Verifier};
//!
//! # fn demo(verifier: Verifier) {
//! let app = Router::new()
//!     .route("/mcp", post(|| async { "an MCP server goes here" }))
//!     .layer(McpSessionLayer::new())
//!     .layer(Mka1AuthLayer::new(verifier)); // added last: runs first
//! # let _: Router = app;
//! # }
//! ```

mod metadata;
mod session;
mod sessions;
mod tool;

pub use metadata::{
    MetadataService, ProtectedResource, ResourceMetadata, ResourceMetadataLayer,
    ResponseFuture as MetadataResponseFuture,
};
#[cfg(test)]
pub(crate) use session::DEFAULT_MAX_SESSIONS;
pub use session::{McpSession, McpSessionLayer, ResponseFuture};
pub use tool::{caller, require, ToolRefusal};

/// The header carrying a Streamable HTTP session's id: `mcp-session-id`.
pub(crate) const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
