//! `mka1-auth token`: a token from MKA1's exchange endpoint, through the library's
//! [`ExchangeClient`], printed alone so that `$(mka1-auth token ...)` is the token.

use std::time::Duration;

use mka1_auth::exchange::{ExchangeClient, ExchangeError, ExchangeErrorKind, ExchangeRequest};
use mka1_auth::protocol::DEFAULT_BASE_URL;

use crate::args::TokenArgs;
use crate::{input, out, Failure, Outcome};

/// The API key: `MKA1_API_KEY`, else `MKA1_BEARER_AUTH` (MKA1's own CLI's variable) with or
/// without its `Bearer ` prefix.
fn api_key(var: impl Fn(&str) -> Option<String>) -> Result<String, Failure> {
    let key = var("MKA1_API_KEY")
        .or_else(|| var("MKA1_BEARER_AUTH").map(|v| input::strip_bearer(v.trim()).to_owned()));
    match key.map(|k| k.trim().to_owned()) {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(Failure::Usage(
            "no api key: set MKA1_API_KEY (or MKA1_BEARER_AUTH) to your MKA1 API key".into(),
        )),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub async fn run(args: TokenArgs) -> Result<Outcome, Failure> {
    let key = api_key(env)?;
    let base_url = env("MKA1_SERVER_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let client = ExchangeClient::builder()
        .base_url(base_url.trim())
        .api_key(key)
        .build()
        .map_err(|e| Failure::Usage(format!("MKA1_SERVER_URL or the api key: {e}")))?;
    let request = ExchangeRequest::new(args.audience, args.external_user_id);
    let mut request = match args.permissions {
        // No flag: the widest token the key can get, as MKA1's own CLI asks for it.
        None => request.all_key_scopes(),
        // Exactly these; `--permissions ''` (no name at all) is none, never all.
        Some(names) => request.permissions(names.into_iter().filter(|p| !p.is_empty())),
    };
    if let Some(secs) = args.expires_in {
        request = request.expires_in(Duration::from_secs(secs));
    }
    match client.token(&request).await {
        Ok(token) => {
            // Printed as it is, for `$(mka1-auth token ...)`: the client accepts only a token
            // of visible ASCII characters, so it cannot hold a control or bidi character.
            out::print(&format!("{}\n", token.expose()));
            Ok(Outcome::Success)
        }
        // What was asked breaks MKA1's rules (checked before sending): bad usage.
        Err(refusal) => match ExchangeError::of(&refusal) {
            Some(e) if e.kind() == ExchangeErrorKind::InvalidRequest => {
                Err(Failure::Usage(e.to_string()))
            }
            // A permission the key lacks: most often a `mka1-auth dev-issuer` started
            // without it, so say how to grant it.
            Some(e) if e.kind() == ExchangeErrorKind::Forbidden => Err(Failure::Failed(format!(
                "{e} (hint: the api key must hold every permission asked for; `mka1-auth \
                 dev-issuer` gives its key only agent:read and agent:write unless started with \
                 `--permissions <name>,...`)"
            ))),
            Some(e) => Err(Failure::Failed(e.to_string())),
            None => Err(Failure::Failed(refusal.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_key_comes_from_either_variable() {
        let key = |pairs: &[(&str, &str)]| api_key(vars(pairs)).ok();
        assert_eq!(key(&[("MKA1_API_KEY", "k1")]).as_deref(), Some("k1"));
        assert_eq!(
            key(&[("MKA1_BEARER_AUTH", "Bearer k2")]).as_deref(),
            Some("k2")
        );
        assert_eq!(key(&[("MKA1_BEARER_AUTH", "k3")]).as_deref(), Some("k3"));
        assert_eq!(
            key(&[("MKA1_API_KEY", "k1"), ("MKA1_BEARER_AUTH", "k2")]).as_deref(),
            Some("k1")
        );
        assert_eq!(key(&[("MKA1_BEARER_AUTH", "Bearer ")]), None);
        assert_eq!(key(&[]), None);
    }
}
