//! README's code, compiled and run here: each ```rust block of README.md must be one of the
//! regions marked `// --- README: <what> ---` ... `// --- end ---` in a file under tests/
//! (this one, or `guide.rs` for the testing guide), as written there apart from indentation;
//! the exchange call's curl line is sent as written to a `DevIssuer`.

use std::error::Error;
use std::path::Path;

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use mka1_auth::dev_issuer::{DevIssuer, Mint};
use mka1_auth::Verifier;
use tower::ServiceExt;

type Fallible<T> = Result<T, Box<dyn Error>>;

#[rustfmt::skip] // as README shows it
fn quickstart() -> Fallible<Router> {
    // --- README: axum quickstart ---
    use axum::{routing::get, Router};
    use mka1_auth::{Mka1AuthLayer, OnBehalfOf, RequirePermissionsLayer, Verifier, VerifiedToken};

    let verifier = Verifier::builder()
        .jwks_url("https://your-mka1-jwks.example/jwks")   // MKA1 publishes none: configuration
        .audience("https://api.your-service.example")       // required: your service's URL
        .build()?;                                           // no I/O here

    let app: Router = Router::new()
        .route("/me", get(|user: OnBehalfOf| async move { format!("hello {user}") }))
        .route("/agents", get(|t: VerifiedToken| async move { t.subject().to_owned() })
            .route_layer(RequirePermissionsLayer::new(["agent:read"])))
        .layer(Mka1AuthLayer::new(verifier));
    // --- end ---
    Ok(app)
}

#[rustfmt::skip] // as README shows it
fn routes_only(verifier: Verifier) -> Router {
    use axum::routing::get;
    use mka1_auth::{Mka1AuthLayer, OnBehalfOf};
    // --- README: route_layer ---
    let app: Router = Router::new()
        .route("/me", get(|user: OnBehalfOf| async move { format!("hello {user}") }))
        .route_layer(Mka1AuthLayer::new(verifier)); // unknown paths: 404, no token needed
    // --- end ---
    app
}

#[rustfmt::skip] // as README shows it
fn plain_tower(verifier: Verifier) {
    // --- README: plain tower ---
    use tower::{service_fn, ServiceBuilder};
    let svc = ServiceBuilder::new()
        .layer(mka1_auth::Mka1AuthLayer::new(verifier))
        .service(service_fn(|req: http::Request<hyper::body::Incoming>| async move {
            let user = req.extensions().get::<mka1_auth::OnBehalfOf>().unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(format!("hi {user}")))
        }));
    // --- end ---
    drop(svc);
}

#[allow(dead_code)] // compiled only: it reads MKA1_API_KEY from the environment
#[rustfmt::skip] // as README shows it
fn outbound() -> Fallible<()> {
    // --- README: outbound calls ---
    use mka1_auth::{exchange::ExchangeClient, outbound::{Outbound, ReqwestService}};
    use tower::Layer;
    let exchange = ExchangeClient::builder().api_key(std::env::var("MKA1_API_KEY")?).build()?;
    let tokens = exchange.source("https://other-service.example").permissions(["orders:read"]);
    let client = Outbound::layer(tokens, ["https://other-service.example"])?
        .layer(ReqwestService::new()?);
    // In a handler: mka1_auth::outbound::carry_identity(&parts.extensions, req.extensions_mut());
    // then client.oneshot(req): the call carries a token minted for that user and audience.
    // --- end ---
    drop(client);
    Ok(())
}

#[rustfmt::skip] // as README shows it
fn forwarding(verifier: Verifier) -> Fallible<Router> {
    // --- README: forwarding ---
    use axum::Router;
    use mka1_auth::outbound::{forward::ForwardLayer, ForwardToken, Outbound, ReqwestService};
    use mka1_auth::Mka1AuthLayer;
    use tower::Layer;

    let forward = ForwardLayer::to("https://agents.internal.example/v1")?;   // base URL + prefix
    let client = Outbound::layer(ForwardToken, [forward.origin()])?.layer(ReqwestService::new()?);
    let app = Router::new()
        .nest_service("/proxy", forward.layer(client))   // /proxy/x?y -> .../v1/x?y
        .layer(Mka1AuthLayer::new(verifier));
    // --- end ---
    Ok(app)
}

const DEMO_AUDIENCE: &str = "http://127.0.0.1:3000";

async fn issuer_and_verifier() -> (DevIssuer, Verifier) {
    let issuer = DevIssuer::start().await.unwrap();
    let verifier = Verifier::builder()
        .jwks(issuer.jwks_json())
        .issuer(issuer.issuer())
        .audience(DEMO_AUDIENCE)
        .build()
        .unwrap();
    (issuer, verifier)
}

async fn status(app: &Router, path: &str, token: Option<&str>) -> StatusCode {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_quickstart_refuses_a_request_without_a_token() {
    let app = quickstart().unwrap();
    assert_eq!(status(&app, "/me", None).await, StatusCode::UNAUTHORIZED);
    // `.layer` guards the fallback too.
    assert_eq!(
        status(&app, "/nowhere", None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn route_layer_answers_404_for_unknown_paths_and_still_guards_the_routes() {
    let (issuer, verifier) = issuer_and_verifier().await;
    let app = routes_only(verifier);
    let token = issuer.mint(Mint::new(DEMO_AUDIENCE, "user-42"));
    assert_eq!(status(&app, "/nowhere", None).await, StatusCode::NOT_FOUND);
    assert_eq!(status(&app, "/me", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&app, "/me", Some(&token)).await, StatusCode::OK);
}

#[tokio::test]
async fn the_tower_and_forwarding_snippets_build() {
    let (_issuer, verifier) = issuer_and_verifier().await;
    plain_tower(verifier.clone());
    let app = forwarding(verifier).unwrap();
    assert_eq!(
        status(&app, "/proxy/x", None).await,
        StatusCode::UNAUTHORIZED
    );
}

/// The README's exchange call, sent as its curl line says: path, headers and body.
#[tokio::test]
async fn the_readme_exchange_call_gets_a_token_the_demo_accepts() {
    let readme = readme();
    let start = readme.find("curl -s -X POST \"$MKA1_SERVER_URL").unwrap();
    let call = &readme[start..start + readme[start..].find("\n```").unwrap()];
    let path = between(call, "$MKA1_SERVER_URL", "\"");
    let body = between(call, "-d '", "'");
    assert!(
        call.contains("-H \"Authorization: Bearer $MKA1_API_KEY\""),
        "{call}"
    );
    assert!(
        call.contains("-H 'Content-Type: application/json'"),
        "{call}"
    );

    let (issuer, verifier) = issuer_and_verifier().await;
    let response = reqwest::Client::new()
        .post(format!("{}{path}", issuer.base_url()))
        .bearer_auth(issuer.api_key())
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let token = answer["token"].as_str().unwrap();
    let verified = verifier.verify(token).await.unwrap();
    assert_eq!(verified.subject(), "user-42");
    // Only what the demo's routes need, though the key holds more.
    assert_eq!(
        verified.permissions().iter().collect::<Vec<_>>(),
        ["agent:read"]
    );
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_here_or_in_the_guide() {
    let readme = readme();
    let mut regions = Vec::new();
    // Every file under tests/ (the `it` binary's modules are in tests/it/).
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                regions.extend(marked_regions(&std::fs::read_to_string(path).unwrap()));
            }
        }
    }
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for block in blocks {
        assert!(
            regions.contains(&block),
            "this README block is not compiled by any test (mark it in tests/):\n{block}"
        );
    }
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

fn between<'a>(text: &'a str, after: &str, until: &str) -> &'a str {
    let start = text.find(after).unwrap() + after.len();
    &text[start..start + text[start..].find(until).unwrap()]
}

fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == "```rust" => current = Some(Vec::new()),
            Some(lines) if line.trim_end() == "```" => {
                blocks.push(lines.join("\n").trim_end().to_owned());
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    blocks
}

/// The text between each `// --- README: ... ---` and the next `// --- end ---`, with the
/// indentation the lines share removed.
fn marked_regions(source: &str) -> Vec<String> {
    let mut regions = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in source.lines() {
        let marker = line.trim_start();
        match current.as_mut() {
            None if marker.starts_with("// --- README: ") => current = Some(Vec::new()),
            Some(lines) if marker == "// --- end ---" => {
                regions.push(dedent(lines));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    regions
}

fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let out: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect();
    out.join("\n").trim_end().to_owned()
}
