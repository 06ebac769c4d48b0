//! [`KeySetStatus`]: where a verifier's key set stands, for health and readiness endpoints.

use std::time::SystemTime;

/// A snapshot of where a verifier's key set stands, from
/// [`Verifier::key_set_status`](crate::Verifier::key_set_status): for health and readiness
/// endpoints.
///
/// A static key set is always usable and never refreshed. A remote one reports its last
/// fetch outcomes; `usable` turns false only when no key set is held at all, or the last good
/// one has outlived its stale-if-error window.
///
/// A verifier with a key source per issuer reports each in [`per_issuer`](Self::per_issuer)
/// and sums them up in the other fields: `remote`, `stale` and `fetching` when any source
/// is; `usable` when **any** source is (a source fetches on first use, so one that no token
/// has named yet is not usable; check `per_issuer` for each); counts added; the latest
/// `last_success` and `last_error` (prefixed with its issuer); the most
/// `consecutive_failures`; the earliest `next_refresh`.
///
/// ```
/// use mka1_auth::Verifier;
///
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .build()?;
/// let status = verifier.key_set_status();
/// assert!(status.usable && !status.remote);
/// assert_eq!(status.key_count, 1);
/// assert_eq!(status.next_refresh, None);
/// # Ok::<(), mka1_auth::ConfigError>(())
/// ```
///
/// It is `Serialize`, so a readiness endpoint can answer with it; times are whole seconds
/// since the Unix epoch:
///
/// ```
/// # let verifier = mka1_auth::Verifier::builder()
/// #     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
/// #         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
/// #     .audience("https://api.example.com")
/// #     .build()?;
/// let json = serde_json::to_value(verifier.key_set_status())?;
/// assert_eq!(json["usable"], true);
/// assert_eq!(json["key_count"], 1);
/// assert_eq!(json["last_success"], serde_json::Value::Null);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct KeySetStatus {
    /// Whether the keys come from a JWKS URL (false for a static set).
    pub remote: bool,
    /// How many usable keys the held set has (0 before the first successful fetch).
    pub key_count: usize,
    /// How many keys the held set skipped as unusable.
    pub skipped_keys: usize,
    /// Whether verification can use the held set now. False before the first successful
    /// fetch and after the stale-if-error window has run out; tokens then fail with
    /// [`ErrorKind::KeysUnavailable`](crate::ErrorKind::KeysUnavailable).
    pub usable: bool,
    /// Whether the held set is past its max-age and served only because refreshing failed
    /// (or has not run yet).
    pub stale: bool,
    /// Whether a fetch is in flight.
    pub fetching: bool,
    /// When the key set was last fetched successfully.
    #[serde(serialize_with = "unix_seconds")]
    pub last_success: Option<SystemTime>,
    /// Why the most recent failed fetch failed (never contains a key or a secret). Kept after
    /// a later success; compare `last_error_at` with `last_success`.
    pub last_error: Option<String>,
    /// When the most recent failed fetch failed.
    #[serde(serialize_with = "unix_seconds")]
    pub last_error_at: Option<SystemTime>,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// When the next background refresh (or, after a failure, retry) is due.
    #[serde(serialize_with = "unix_seconds")]
    pub next_refresh: Option<SystemTime>,
    /// With a key source per issuer: each issuer and its source's status, in the order they
    /// were configured. Empty for a verifier with one key source.
    pub per_issuer: Vec<(String, KeySetStatus)>,
}

/// A time as whole seconds since the Unix epoch (`null` when absent).
fn unix_seconds<S: serde::Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let secs = time.map(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    serde::Serialize::serialize(&secs, serializer)
}
