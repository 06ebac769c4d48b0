//! `mka1-auth`: the command-line companion of the mka1-auth library.
//!
//! - `verify` checks a token with the library's own [`Verifier`](mka1_auth::Verifier) and,
//!   when it is refused, explains why in terms a person can act on;
//! - `inspect` decodes a token's header and claims without verifying anything;
//! - `token` mints a token through the library's exchange client;
//! - `jwks` fetches a key set with the library's fetch rules and lists every key;
//! - `dev-issuer` runs the local MKA1 stand-in (`mka1-auth-dev-issuer`) in the foreground;
//! - `revoke` stores a revocation rule in Redis, `revocations` lists them.
//!
//! Exit status: 0 for success, 1 for a refusal or a failed call, 2 for bad usage.
#![forbid(unsafe_code)]

mod args;
mod dev_issuer;
mod explain;
mod input;
mod inspect;
mod jwks;
mod keys;
mod out;
mod revoke;
mod token;
mod unverified;
mod verify;
mod when;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what was asked (exit 0).
    Success,
    /// The token was refused, or what was fetched is unusable; the output says why (exit 1).
    Refused,
}

/// Why a command stopped early. Its message goes to standard error.
#[derive(Debug)]
pub enum Failure {
    /// The command line, a file or the environment is unusable (exit 2).
    Usage(String),
    /// A call failed: a fetch, an exchange, a socket (exit 1).
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::from(1),
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Failed(m) => m,
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Failure> {
    match cli.command {
        Command::Verify(args) => verify::run(args).await,
        Command::Inspect(args) => inspect::run(args),
        Command::Token(args) => token::run(args).await,
        Command::Jwks(args) => jwks::run(args).await,
        Command::DevIssuer(args) => dev_issuer::run(args).await,
        Command::Revoke(args) => revoke::revoke(args).await,
        Command::Revocations(args) => revoke::list(args).await,
    }
}

fn main() -> ExitCode {
    // Bad usage and `--help` end here: clap exits 2 and 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mka1-auth: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(failure) => {
            out::error(failure.message());
            failure.exit_code()
        }
    }
}
