//! Key sets, loaded the library's way: a URL through [`JwksProbe`] (the fetch rules of a
//! verifier's remote key set), a file through [`KeySet::from_json_for`]. And what a set
//! holds, for explanations ([`KeyFacts`]).

use std::path::Path;
use std::time::Duration;

use mka1_auth::jwks::remote::JwksProbe;
use mka1_auth::jwks::{IntoJwks, KeySet, KeyType, SkippedKey, VerificationKey};
use mka1_auth::{Algorithm, Error};
use serde_json::{json, Value};

use crate::out::quoted;
use crate::{input, Failure};

/// A key set and where it came from.
pub struct Loaded {
    /// The URL or file, for display.
    pub source: String,
    pub keys: KeySet,
    /// The document's entries as written, in order.
    pub entries: Vec<Value>,
    /// What the response said about freshness (URLs only).
    pub freshness: Option<Freshness>,
}

/// `Cache-Control` as a verifier reads it.
pub struct Freshness {
    pub cache_max_age: Option<Duration>,
    pub fresh_for: Duration,
}

/// Why no key set could be loaded.
pub enum NotLoaded {
    /// The command line or the file is at fault.
    Usage(Failure),
    /// The fetch failed (an [`ErrorKind::KeysUnavailable`](mka1_auth::ErrorKind) error
    /// saying why); a verifier would refuse every token.
    Unavailable(Error),
}

impl From<NotLoaded> for Failure {
    fn from(not_loaded: NotLoaded) -> Failure {
        match not_loaded {
            NotLoaded::Usage(failure) => failure,
            NotLoaded::Unavailable(error) => Failure::Failed(error.to_string()),
        }
    }
}

/// Fetch `url` once, as a verifier with these options would.
pub async fn fetch(
    url: &str,
    allow_http: bool,
    algorithms: &[Algorithm],
) -> Result<Loaded, NotLoaded> {
    let probe = JwksProbe::new(url, allow_http, algorithms)
        .map_err(|e| NotLoaded::Usage(Failure::Usage(e.to_string())))?;
    let probed = probe.fetch().await.map_err(NotLoaded::Unavailable)?;
    let freshness = Freshness {
        cache_max_age: probed.cache_max_age(),
        fresh_for: probed.fresh_for(),
    };
    let entries = probed.entries().to_vec();
    Ok(Loaded {
        source: url.to_owned(),
        keys: probed.into_keys(),
        entries,
        freshness: Some(freshness),
    })
}

/// Read a JWKS document from `path`, as a verifier given it with
/// [`VerifierBuilder::jwks`](mka1_auth::VerifierBuilder::jwks) would load it.
pub fn read(path: &Path, algorithms: &[Algorithm]) -> Result<Loaded, NotLoaded> {
    let text = input::file(path).map_err(NotLoaded::Usage)?;
    let not_jwks = |e: mka1_auth::ConfigError| {
        NotLoaded::Usage(Failure::Usage(format!("{}: {e}", path.display())))
    };
    let entries = text.as_str().into_jwk_entries().map_err(not_jwks)?;
    let keys = KeySet::from_json_for(&text, algorithms).map_err(not_jwks)?;
    Ok(Loaded {
        source: path.display().to_string(),
        keys,
        entries,
        freshness: None,
    })
}

/// `Ed25519`, `EC P-256`, `RSA 2048`.
pub fn type_name(key_type: KeyType) -> String {
    match key_type {
        KeyType::Ed25519 => "Ed25519".into(),
        KeyType::P256 => "EC P-256".into(),
        KeyType::P384 => "EC P-384".into(),
        KeyType::Rsa { bits } => format!("RSA {bits}"),
        other => format!("{other:?}"),
    }
}

/// A usable key as the explanations show it.
#[derive(Debug, Clone)]
pub struct UsableKey {
    pub kid: String,
    pub key_type: String,
    /// The algorithms the key verifies (its type's, narrowed by its JWK `alg` and the
    /// allow-list it was loaded for).
    pub algorithms: Vec<Algorithm>,
}

impl UsableKey {
    pub fn of(key: &VerificationKey) -> UsableKey {
        UsableKey {
            kid: key.kid().to_owned(),
            key_type: type_name(key.key_type()),
            algorithms: Algorithm::SUPPORTED
                .into_iter()
                .filter(|a| key.accepts(*a))
                .collect(),
        }
    }

    /// `Ed25519, verifies EdDSA`.
    pub fn describe(&self) -> String {
        format!("{}, verifies {}", self.key_type, names(&self.algorithms))
    }

    pub fn json(&self) -> Value {
        json!({
            "kid": self.kid,
            "type": self.key_type,
            "algorithms": self.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        })
    }
}

/// `EdDSA, ES256`.
pub fn names(algorithms: &[Algorithm]) -> String {
    let names: Vec<_> = algorithms.iter().map(|a| a.as_str()).collect();
    names.join(", ")
}

/// What a key set holds, taken before the set is handed to a verifier.
pub struct KeyFacts {
    pub source: String,
    /// Sorted by `kid`.
    pub usable: Vec<UsableKey>,
    pub skipped: Vec<SkippedKey>,
}

/// Whether a key set holds a `kid`.
pub enum KidStatus<'a> {
    Held(&'a UsableKey),
    /// Not held: a key with this `kid` was skipped.
    Skipped(&'a SkippedKey),
    Absent,
}

impl KeyFacts {
    pub fn of(source: &str, keys: &KeySet) -> KeyFacts {
        let mut usable: Vec<_> = keys
            .kids()
            .filter_map(|kid| keys.get(kid))
            .map(|key| UsableKey::of(key))
            .collect();
        usable.sort_by(|a, b| a.kid.cmp(&b.kid));
        KeyFacts {
            source: source.to_owned(),
            usable,
            skipped: keys.skipped().to_vec(),
        }
    }

    pub fn find(&self, kid: &str) -> KidStatus<'_> {
        if let Some(key) = self.usable.iter().find(|k| k.kid == kid) {
            return KidStatus::Held(key);
        }
        // Skipped kids are kept cut to 64 characters.
        let cut: String = kid.chars().take(64).collect();
        match self.skipped.iter().find(|s| s.kid.as_deref() == Some(&cut)) {
            Some(skipped) => KidStatus::Skipped(skipped),
            None => KidStatus::Absent,
        }
    }

    /// `1 usable ("k1"); 1 skipped ("h": symmetric (oct) keys are never trusted)`.
    pub fn summary(&self) -> String {
        let usable: Vec<_> = self.usable.iter().map(|k| quoted(&k.kid)).collect();
        let mut text = format!("{} usable", usable.len());
        if !usable.is_empty() {
            text.push_str(&format!(" ({})", usable.join(", ")));
        }
        if !self.skipped.is_empty() {
            let skipped: Vec<_> = self.skipped.iter().map(skipped_text).collect();
            text.push_str(&format!(
                "; {} skipped ({})",
                skipped.len(),
                skipped.join("; ")
            ));
        }
        text
    }

    pub fn json(&self) -> Value {
        json!({
            "source": self.source,
            "usable": self.usable.iter().map(UsableKey::json).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(skipped_json).collect::<Vec<_>>(),
        })
    }
}

/// `"h": symmetric (oct) keys are never trusted`, or `(no kid): ...`.
pub fn skipped_text(skipped: &SkippedKey) -> String {
    let kid = skipped.kid.as_deref().map_or("(no kid)".to_owned(), quoted);
    format!("{kid}: {}", skipped.reason)
}

pub fn skipped_json(skipped: &SkippedKey) -> Value {
    json!({"kid": skipped.kid, "reason": skipped.reason.to_string()})
}
