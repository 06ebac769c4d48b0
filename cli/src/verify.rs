//! `mka1-auth verify`: the library's [`Verifier`] decides; [`crate::explain`] says why.

use std::time::Duration;

use mka1_auth::jwks::KeySet;
use mka1_auth::{
    Algorithm, ConfigError, ConfigErrorKind, Error, ErrorKind, ManualClock, VerifiedToken, Verifier,
};
use serde_json::{json, Value};

use crate::args::VerifyArgs;
use crate::explain::Refusal;
use crate::keys::{self, KeyFacts, NotLoaded};
use crate::out::{self, quoted};
use crate::unverified::Unverified;
use crate::{input, when, Failure, Outcome};

/// What the verifier is configured with, as the command line said.
pub struct Settings {
    pub audiences: Vec<String>,
    pub issuers: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    /// Required permissions.
    pub permissions: Vec<String>,
    pub leeway: u64,
    /// The moment the token is judged at, in Unix seconds.
    pub now: i64,
}

impl Settings {
    fn of(args: &VerifyArgs) -> Settings {
        Settings {
            audiences: args.audiences.clone(),
            issuers: args.issuers.clone(),
            algorithms: args.algorithms.list(),
            permissions: args.permissions.clone(),
            leeway: args.leeway,
            now: args
                .at
                .map_or_else(when::now, |at| i64::try_from(at).unwrap_or(i64::MAX)),
        }
    }

    /// The library's verifier with these settings, the key set, and a clock stopped at
    /// [`now`](Self::now) (so the explanation speaks of the same moment).
    fn verifier(&self, keys: KeySet) -> Result<Verifier, ConfigError> {
        let mut builder = Verifier::builder()
            .key_set(keys)
            .algorithms(self.algorithms.iter().copied())
            .leeway(Duration::from_secs(self.leeway))
            .clock(ManualClock::at_unix(u64::try_from(self.now).unwrap_or(0)))
            .token_cache_capacity(0);
        for audience in &self.audiences {
            builder = builder.audience(audience);
        }
        for issuer in &self.issuers {
            builder = builder.issuer(issuer);
        }
        builder.build()
    }
}

pub async fn run(args: VerifyArgs) -> Result<Outcome, Failure> {
    let token = input::token(&args.token)?;
    let settings = Settings::of(&args);
    let loaded = match (&args.keys.jwks_url, &args.keys.jwks_file) {
        (Some(url), _) => keys::fetch(url, args.allow_http, &settings.algorithms).await,
        (None, Some(file)) => keys::read(file, &settings.algorithms),
        (None, None) => return Err(Failure::Usage("give --jwks-url or --jwks-file".into())),
    };
    let (facts, verdict) = match loaded {
        Err(NotLoaded::Usage(failure)) => return Err(failure),
        Err(NotLoaded::Unavailable(error)) => {
            let source = args.keys.jwks_url.clone().unwrap_or_default();
            (KeyFacts::of(&source, &KeySet::default()), Err(error))
        }
        Ok(loaded) => {
            let facts = KeyFacts::of(&loaded.source, &loaded.keys);
            (facts, verify(&token, loaded.keys, &settings).await?)
        }
    };
    match verdict {
        Ok(verified) => {
            if args.json {
                out::print_json(&valid_json(&verified, settings.now));
            } else {
                out::print(&valid(&verified, settings.now));
            }
            Ok(Outcome::Success)
        }
        Err(error) => {
            let decoded = Unverified::decode(&token);
            let refusal = Refusal {
                error: &error,
                token_bytes: token.len(),
                token: &decoded,
                settings: &settings,
                keys: &facts,
            };
            if args.json {
                out::print_json(&refusal.json());
            } else {
                out::print(&refusal.human());
            }
            Ok(Outcome::Refused)
        }
    }
}

/// The verdict of the library's verifier, then its permission rule
/// ([`RequirePermissionsLayer`](mka1_auth::RequirePermissionsLayer): every one present).
async fn verify(
    token: &str,
    keys: KeySet,
    settings: &Settings,
) -> Result<Result<VerifiedToken, Error>, Failure> {
    let verifier = match settings.verifier(keys) {
        Ok(verifier) => verifier,
        // A service with this set would not start (a static set) or would count the fetch
        // as failed (a remote one): every token is refused for want of keys.
        Err(err) if err.kind() == ConfigErrorKind::NoUsableKeys => {
            let detail = "the key set holds no usable key";
            return Ok(Err(Error::with_detail(ErrorKind::KeysUnavailable, detail)));
        }
        Err(e) => return Err(Failure::Usage(e.to_string())),
    };
    let verified = match verifier.verify(token).await {
        Ok(verified) => verified,
        Err(error) => return Ok(Err(error)),
    };
    let required = settings.permissions.iter().map(String::as_str);
    if !verified.permissions().contains_all(required) {
        return Ok(Err(Error::new(ErrorKind::InsufficientPermission)));
    }
    Ok(Ok(verified))
}

fn valid(verified: &VerifiedToken, now: i64) -> String {
    let permissions: Vec<_> = verified.permissions().iter().map(quoted).collect();
    let audiences: Vec<_> = verified.audiences().map(quoted).collect();
    let expires = i64::try_from(verified.expires_at()).unwrap_or(i64::MAX);
    let mut text = format!(
        "valid\n  sub          {}\n  permissions  {}\n  expires      {}\n  aud          {}\n",
        quoted(verified.subject()),
        if permissions.is_empty() {
            "none".to_owned()
        } else {
            permissions.join(", ")
        },
        when::describe(expires, now),
        audiences.join(", "),
    );
    if let Some(issuer) = verified.issuer() {
        text.push_str(&format!("  iss          {}\n", quoted(issuer)));
    }
    text.push_str(&format!(
        "  key          {} ({})\n",
        quoted(verified.key_id()),
        verified.algorithm()
    ));
    text
}

fn valid_json(verified: &VerifiedToken, now: i64) -> Value {
    let expires = i64::try_from(verified.expires_at()).unwrap_or(i64::MAX);
    let time = |t: Option<u64>| t.map(|t| when::json(i64::try_from(t).unwrap_or(i64::MAX), now));
    json!({
        "result": "valid",
        "sub": verified.subject(),
        "permissions": verified.permissions().iter().collect::<Vec<_>>(),
        "aud": verified.audiences().collect::<Vec<_>>(),
        "iss": verified.issuer(),
        "exp": when::json(expires, now),
        "iat": time(verified.issued_at()),
        "nbf": time(verified.not_before()),
        "kid": verified.key_id(),
        "alg": verified.algorithm().as_str(),
        "checked_at": when::json(now, now),
    })
}
