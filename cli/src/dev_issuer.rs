//! `mka1-auth dev-issuer`: the [`DevIssuer`] of `mka1-auth-dev-issuer` in the foreground, for services in any
//! language to be tested against.

use std::future::Future;
use std::io;

use mka1_auth_dev_issuer::{DevIssuer, SigningAlgorithm};

use crate::args::DevIssuerArgs;
use crate::{out, Failure, Outcome};

fn algorithm(name: &str) -> Result<SigningAlgorithm, Failure> {
    match name {
        "EdDSA" => Ok(SigningAlgorithm::EdDSA),
        "ES256" => Ok(SigningAlgorithm::ES256),
        "RS256" => Ok(SigningAlgorithm::RS256),
        other => Err(Failure::Usage(format!(
            "the dev issuer cannot sign with {other}"
        ))),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed before this returns,
/// so a signal that arrives once the start-up lines are out is never the default (deadly) one.
#[cfg(unix)]
fn interrupted() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn interrupted() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

pub async fn run(args: DevIssuerArgs) -> Result<Outcome, Failure> {
    let mut builder = DevIssuer::builder()
        .bind(args.bind)
        .algorithm(algorithm(&args.alg)?);
    if let Some(issuer) = args.issuer {
        builder = builder.issuer(issuer);
    }
    if let Some(key) = args.api_key {
        builder = builder.api_key(key);
    }
    if !args.permissions.is_empty() {
        builder = builder.permissions(args.permissions);
    }
    let stop =
        interrupted().map_err(|e| Failure::Failed(format!("could not listen for Ctrl-C: {e}")))?;
    let issuer = builder.start().await.map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput => Failure::Usage(e.to_string()),
        _ => Failure::Failed(format!(
            "the dev issuer could not listen on {}: {e}",
            args.bind
        )),
    })?;
    out::print(&format!(
        "MKA1_SERVER_URL={}\nMKA1_API_KEY={}\nMKA1_JWKS_URL={}\n",
        issuer.base_url(),
        issuer.api_key(),
        issuer.jwks_url()
    ));
    eprintln!(
        "dev issuer: {} tokens from {} as iss {} with permissions {}; Ctrl-C stops it",
        issuer.algorithm().name(),
        issuer.local_addr(),
        out::quoted(issuer.issuer()),
        issuer.permissions().join(", ")
    );
    stop.await;
    issuer.shutdown().await;
    eprintln!("dev issuer: stopped");
    Ok(Outcome::Success)
}
