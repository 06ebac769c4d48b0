//! Call a downstream service on an end user's behalf with a token MKA1 mints for it.
//!
//! ```text
//! MKA1_SERVER_URL=https://apigw.mka1.com MKA1_API_KEY=mk_... \
//! TARGET_URL=http://127.0.0.1:3000 TARGET_AUDIENCE=http://127.0.0.1:3000 END_USER=user-42 \
//!     cargo run --example call_downstream
//! ```
//!
//! It exchanges the API key for a token for `END_USER` and `TARGET_AUDIENCE`, then calls
//! `TARGET_URL/whoami` through the outbound layer (which takes the token from the exchange
//! client's cache and adds `X-On-Behalf-Of`), and prints the answer. `TARGET_AUDIENCE`
//! defaults to `TARGET_URL`, and `MKA1_SERVER_URL` to `https://apigw.mka1.com`. The target
//! can be the `protected_api` example.
//!
//! The token carries only [`PERMISSIONS`], what the target's routes need: ask for what you
//! use, never for all of the key's scopes by default.
//!
//! With `LISTEN_ADDR` set it instead serves [`onward_router`]: the shape of an axum handler
//! that calls onward with the user its own request was verified for.

use std::error::Error;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use http::Request;
use http_body_util::BodyExt;
use mka1_auth::exchange::{ExchangeClient, ExchangeRequest, ExchangeSource, ExchangedToken};
use mka1_auth::outbound::{Outbound, OutboundLayer, ReqwestService};
use mka1_auth::OnBehalfOf;
use tower::{Layer, ServiceExt};

/// The outbound client: reqwest, with credentials for the target's origin only.
type Client = Outbound<ReqwestService, ExchangeSource>;

/// The permissions the tokens carry: `protected_api`'s `/whoami` and `/agents` need no more.
pub const PERMISSIONS: [&str; 1] = ["agent:read"];

/// Tokens for `audience`, one per end user, carrying only [`PERMISSIONS`].
fn source(exchange: &ExchangeClient, audience: &str) -> ExchangeSource {
    exchange.source(audience).permissions(PERMISSIONS)
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the example's docs)"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Result<String, Box<dyn Error>> {
    let uri: http::Uri = url.parse()?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{url} is not an absolute url").into());
    };
    Ok(format!("{scheme}://{authority}"))
}

/// `valid until <HTTP date> (<minutes> min <seconds> s from now)`, or that it has expired.
fn validity(expires_at: u64, now: std::time::SystemTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_at);
    let date = httpdate::fmt_http_date(at);
    match at.duration_since(now) {
        Ok(left) => format!(
            "valid until {date} ({} min {} s from now)",
            left.as_secs() / 60,
            left.as_secs() % 60
        ),
        Err(_) => format!("expired at {date}"),
    }
}

/// Log to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    init_logging();
    let exchange = ExchangeClient::builder()
        .base_url_from_env() // MKA1_SERVER_URL, else https://apigw.mka1.com
        .api_key(env("MKA1_API_KEY")?)
        .build()?;
    let target = env("TARGET_URL")?.trim_end_matches('/').to_owned();
    let audience = env("TARGET_AUDIENCE").unwrap_or_else(|_| target.clone());

    if let Ok(addr) = env("LISTEN_ADDR") {
        let client = OutboundLayer::builder(source(&exchange, &audience))
            .allow_origin(origin_of(&target)?)
            .build()?
            .layer(ReqwestService::new()?);
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("calling {target} onward from http://{addr}/onward");
        axum::serve(listener, onward_router(client, target)).await?;
        return Ok(());
    }

    let end_user = env("END_USER")?;
    let (token, status, body) = whoami(&exchange, &target, &audience, &end_user).await?;
    println!(
        "exchanged a token for {end_user} (audience {audience}), {}",
        validity(token.expires_at(), std::time::SystemTime::now())
    );
    println!("{status}: {body}");
    Ok(())
}

/// Exchange a token for `end_user`, then call `target/whoami` with it through the outbound
/// layer: the token, and the answer's status and body.
pub async fn whoami(
    exchange: &ExchangeClient,
    target: &str,
    audience: &str,
    end_user: &str,
) -> Result<(ExchangedToken, StatusCode, String), Box<dyn Error>> {
    // Exchanging directly shows what was minted; the layer below reuses the cached token,
    // as it asks for the same permissions and lifetime.
    let request = ExchangeRequest::new(audience, end_user).permissions(PERMISSIONS);
    let token = exchange.token(&request).await?;

    let user = end_user.to_owned();
    let client = OutboundLayer::builder(source(exchange, audience))
        .allow_origin(origin_of(target)?)
        .end_user_from(move |_| Some(user.clone()))
        .build()?
        .layer(ReqwestService::new()?);
    let req = Request::get(format!("{target}/whoami")).body(String::new())?;
    let res = client.oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((token, status, String::from_utf8_lossy(&body).into_owned()))
}

/// An axum app whose handler calls onward for the user it received.
///
/// Put the inbound authentication layer in front of it (see the `protected_api` example): it
/// verifies the caller's token and leaves the [`OnBehalfOf`] in the request extensions, which
/// the handler hands to the outgoing request. A client cannot forge it: a spoofed
/// `X-On-Behalf-Of` header is never what the upstream sees.
fn onward_router(client: Client, target: String) -> Router {
    async fn onward(
        State((client, target)): State<(Client, String)>,
        Extension(user): Extension<OnBehalfOf>,
    ) -> Result<String, (StatusCode, String)> {
        let mut req = Request::get(format!("{target}/whoami"))
            .body(String::new())
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        req.extensions_mut().insert(user);
        let res = client
            .oneshot(req)
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    }
    Router::new()
        .route("/onward", get(onward))
        .with_state((client, target))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn validity_reads_as_a_date_and_a_duration() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            super::validity(1_800_003_599, now),
            "valid until Fri, 15 Jan 2027 08:59:59 GMT (59 min 59 s from now)"
        );
        assert_eq!(
            super::validity(1_799_999_999, now),
            "expired at Fri, 15 Jan 2027 07:59:59 GMT"
        );
    }
}
