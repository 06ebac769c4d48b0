//! The command line: subcommands, their flags and their help texts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mka1_auth::{Algorithm, VerifierBuilder};

/// The latest `--at` a verifier's clock can hold (nanoseconds since the epoch in a `u64`:
/// the year 2554).
const LATEST_AT: u64 = u64::MAX / 1_000_000_000;

const EXIT_STATUS: &str =
    "Exit status: 0 for success, 1 for a refusal or a failed call, 2 for bad usage.";

/// Verify, inspect and mint MKA1 tokens; list a JWKS; run a local MKA1 stand-in.
#[derive(Debug, Parser)]
#[command(name = "mka1-auth", version, after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a token with the library's rules; on a refusal, explain why.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Decode a token's header and claims WITHOUT verifying anything.
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Mint a token through MKA1's exchange endpoint and print only the token.
    #[command(after_help = TOKEN_HELP)]
    Token(TokenArgs),
    /// Fetch (or read) a JWKS with the library's rules and list each key.
    #[command(after_help = EXIT_STATUS)]
    Jwks(JwksArgs),
    /// Run a local MKA1 stand-in (JWKS and exchange endpoints) until Ctrl-C.
    #[command(after_help = DEV_ISSUER_HELP)]
    DevIssuer(DevIssuerArgs),
    /// Store a revocation rule in Redis, for every replica; prints what it stored.
    #[command(after_help = REVOKE_HELP)]
    Revoke(RevokeArgs),
    /// List the revocation rules stored in Redis, one JSON value a line.
    #[command(after_help = EXIT_STATUS)]
    Revocations(RevocationsArgs),
}

const REVOKE_HELP: &str = "\
Refuses, on every replica following the same Redis: tokens of one end user (--user, \
optionally of one --issuer), every token (--all), or one token id (--jti), issued before \
--before (Unix seconds; default now). The rule expires from Redis --retain seconds after \
its time (default: 30 days and a minute, MKA1's longest token lifetime plus the default \
leeway). Leaked API key: `mka1-auth revoke --redis-url URL --all`, then rotate the key at \
MKA1 and check /readyz. See the revocation guide.

Exit status: 0 when stored, 1 when Redis cannot be reached, 2 for bad usage.";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["user", "all", "jti"])))]
pub struct RevokeArgs {
    /// Redis to store the rule in, e.g. redis://127.0.0.1:6379/.
    #[arg(long, value_name = "URL")]
    pub redis_url: String,
    /// Revoke this end user's tokens (their `sub`).
    #[arg(long, value_name = "SUB")]
    pub user: Option<String>,
    /// With --user: only tokens from this issuer (`iss`).
    #[arg(long, value_name = "ISS", requires = "user")]
    pub issuer: Option<String>,
    /// Revoke every token issued before --before (a leaked key).
    #[arg(long)]
    pub all: bool,
    /// Revoke the token with this id (`jti`).
    #[arg(long, value_name = "ID")]
    pub jti: Option<String>,
    /// Tokens issued before this time (Unix seconds) are refused. Default: now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub before: Option<u64>,
    /// Seconds the rule is kept in Redis after its time: the verifiers' longest token
    /// lifetime plus leeway.
    #[arg(long, value_name = "SECONDS", default_value_t = 2_592_060)]
    pub retain: u64,
}

#[derive(Debug, Args)]
pub struct RevocationsArgs {
    /// Redis to read the rules from, e.g. redis://127.0.0.1:6379/.
    #[arg(long, value_name = "URL")]
    pub redis_url: String,
}

const VERIFY_HELP: &str = "\
Prints `valid` with the subject, permissions and expiry, or `refused: <kind>` with the \
token's aud, iss, alg and kid against what was configured, its times as dates and how far \
off they are, whether the key set holds its kid, and why keys were skipped. The token's \
signature is never printed.

Exit status: 0 for valid, 1 for refused (or keys that could not be had), 2 for bad usage.";

const INSPECT_HELP: &str = "\
The output is labelled UNVERIFIED: nothing in it was checked. Times are shown as dates; the \
signature only by its length.

Exit status: 0 when the header and claims decode, 1 when they do not, 2 for bad usage.";

const TOKEN_HELP: &str = "\
Environment:
  MKA1_API_KEY      your MKA1 API key (or MKA1_BEARER_AUTH, with or without `Bearer `)
  MKA1_SERVER_URL   MKA1's base URL (default https://apigw.mka1.com; plain http only on loopback)

Use it as: curl -H \"Authorization: Bearer $(mka1-auth token --audience ... --external-user-id ...)\" ...

Exit status: 0 for success, 1 for a refused or failed exchange, 2 for bad usage.";

const DEV_ISSUER_HELP: &str = "\
Prints MKA1_SERVER_URL=, MKA1_API_KEY= and MKA1_JWKS_URL= lines on standard output, then \
serves until interrupted. Any MKA1 client (the official SDKs, `mka1-auth token`) exchanges \
the key there; services verify against the JWKS URL. Tokens are signed with a key generated \
at start-up.

Exit status: 0 when interrupted (Ctrl-C, SIGTERM), 1 when it cannot listen, 2 for bad usage.";

/// A token argument: the token, or `-` for standard input.
const TOKEN_ARG: &str = "The token, or `-` to read it from standard input (which keeps it out \
                         of the process list). A `Bearer ` prefix is ignored.";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(help = TOKEN_ARG, value_name = "TOKEN|-")]
    pub token: String,
    /// An audience this service accepts (its URL); repeat for several.
    #[arg(long = "audience", value_name = "AUD", required = true)]
    pub audiences: Vec<String>,
    #[command(flatten)]
    pub keys: KeysArgs,
    /// Allow a plain-http JWKS URL on a host that is not loopback.
    #[arg(long, requires = "jwks_url")]
    pub allow_http: bool,
    /// An issuer to require in `iss`; repeat for several (default: any).
    #[arg(long = "issuer", value_name = "ISS")]
    pub issuers: Vec<String>,
    /// A permission the token must carry; repeat or separate with commas.
    #[arg(long = "permission", value_name = "NAME", value_delimiter = ',')]
    pub permissions: Vec<String>,
    #[command(flatten)]
    pub algorithms: AlgorithmArgs,
    /// Clock skew tolerated on exp, nbf and iat, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = VerifierBuilder::DEFAULT_LEEWAY.as_secs())]
    pub leeway: u64,
    /// Judge the token's times as of this moment (Unix seconds) instead of now, e.g. the
    /// time of a logged refusal.
    #[arg(long, value_name = "UNIX_SECONDS",
          value_parser = clap::value_parser!(u64).range(..=LATEST_AT))]
    pub at: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where `verify` takes its keys from: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KeysArgs {
    /// Fetch the key set from this JWKS URL (https, or http on loopback).
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// Read the key set from this JWKS file.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
}

/// The algorithm allow-list, as a verifier is configured with it.
#[derive(Debug, Args)]
pub struct AlgorithmArgs {
    /// An allowed signature algorithm; repeat for several (default EdDSA, ES256, RS256).
    #[arg(long = "alg", value_name = "ALG", value_parser = parse_algorithm)]
    pub algorithms: Vec<Algorithm>,
}

impl AlgorithmArgs {
    /// The allow-list given, or the library's default.
    pub fn list(&self) -> Vec<Algorithm> {
        if self.algorithms.is_empty() {
            mka1_auth::VerifierBuilder::DEFAULT_ALGORITHMS.to_vec()
        } else {
            self.algorithms.clone()
        }
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let names = || {
        Algorithm::SUPPORTED
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name.parse::<Algorithm>() {
        Ok(alg) if Algorithm::SUPPORTED.contains(&alg) => Ok(alg),
        Ok(_) => Err(format!(
            "symmetric algorithms are never accepted; use one of {}",
            names()
        )),
        Err(_) => Err(format!("not an algorithm name; use one of {}", names())),
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(help = TOKEN_ARG, value_name = "TOKEN|-")]
    pub token: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The audience of the service the token is for (its URL).
    #[arg(long, value_name = "AUD")]
    pub audience: String,
    /// The end user the token acts for (MKA1's externalUserId).
    #[arg(long, value_name = "ID")]
    pub external_user_id: String,
    /// Exactly the permissions to embed; repeat or separate with commas. `--permissions ''`
    /// asks for none. Without the flag: all of the key's scopes, as MKA1's own CLI asks.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub permissions: Option<Vec<String>>,
    /// The token's lifetime in seconds, 300 to 2592000 (default 3600).
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Args)]
pub struct JwksArgs {
    /// A JWKS URL (http:// or https://) or a file holding a JWKS document.
    #[arg(value_name = "URL|FILE")]
    pub source: String,
    #[command(flatten)]
    pub algorithms: AlgorithmArgs,
    /// Allow a plain-http URL on a host that is not loopback.
    #[arg(long)]
    pub allow_http: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DevIssuerArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// The signing algorithm.
    #[arg(long, value_name = "ALG", default_value = "EdDSA",
          value_parser = ["EdDSA", "ES256", "RS256"])]
    pub alg: String,
    /// The `iss` of the tokens (default: the server's URL).
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// The API key the exchange accepts (default: a random `mka1_dev_...` key).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// The key's permissions; repeat or separate with commas (default agent:read, agent:write).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub permissions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn algorithms_are_checked_when_parsed() {
        assert_eq!(parse_algorithm("ES256"), Ok(Algorithm::ES256));
        assert!(parse_algorithm("HS256").unwrap_err().contains("symmetric"));
        assert!(parse_algorithm("none").unwrap_err().contains("EdDSA"));
    }
}
