//! The [`Verifier`]: decides whether a raw JWT was issued by MKA1 for this service and one
//! valid end user, and turns it into a [`VerifiedToken`].
//!
//! A token seen for the first time goes through five stages, each a function of its own
//! ([`VerifierState::verify_uncached`] calls them in turn); each failure has its own
//! [`ErrorKind`]:
//!
//! 1. [`Compact::parse`] (in `jws`): size cap first (in [`Verifier::verify_presented`], before any
//!    parsing); exactly three segments; strict base64url; the header a JSON object without
//!    repeated members; `crit` absent;
//! 2. [`select_key`] (in `key`): `alg` in the allow-list, `kid` present, the key it names
//!    held, and `alg` agreeing with that key (`jku`, `jwk`, `x5u` and `x5c` are never used
//!    to find a key);
//! 3. [`check_signature`] (in `key`): the signature, against the already-parsed key;
//! 4. [`parse_claims`] (in `payload`): the payload is a JSON object without repeated claim
//!    names;
//! 5. [`ClaimRules::validate`] (in `validate`): `exp` required and a NumericDate, not
//!    expired, not further ahead than the maximum lifetime; `nbf` and `iat`, when present,
//!    NumericDates not in the future; `aud` a string or an array of strings naming a
//!    configured audience; `iss`, when issuers are configured, a string equal to one of
//!    them; `sub` a valid end-user id ([`validate_end_user_id`](crate::claims::validate_end_user_id));
//!    permissions an array of strings or one space-separated string, or absent.
//!
//! Around the five stages: a required `typ` is checked with the shape (stage 1); with a
//! key source per issuer, the payload is read right after the shape, so that its `iss`
//! picks the source before any key work (stage 4 moves up, and an unknown issuer is
//! refused without a fetch); the service's own claim checks ([`Checks`], in `checks`) run
//! after stage 5, before the token enters the cache.
//!
//! A token answered from the verified-token cache goes through
//! [`VerifierState::recheck_hit`] instead: the key that verified it still held (in its
//! issuer's source), and its times against the clock. Uncached checks run on every answer,
//! from the cache or not.

pub(crate) mod builder;
mod checks;
mod jws;
mod key;
mod payload;
#[cfg(feature = "remote")]
mod remote;
mod validate;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::jwks::Algorithm;

pub use builder::VerifierBuilder;
pub use checks::ClaimRefusal;

use crate::claims::{BearerToken, VerifiedToken};
use crate::clock::SharedClock;
use crate::error::{Error, ErrorKind};
use crate::jwks::{KeySetStatus, KeySources, SourceId};
use crate::token_cache::{Hit, Probe, TokenCache};
use checks::Checks;
use jws::Compact;
use key::{check_signature, select_key};
use payload::parse_claims;
use validate::ClaimRules;

/// Verifies MKA1 tokens. Cheap to clone; clones share keys and the verified-token cache.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mka1_auth::{ErrorKind, Verifier};
///
/// let verifier = Verifier::builder()
///     .jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
///         "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)
///     .audience("https://api.example.com")
///     .build()?;
///
/// let err = verifier.verify("not-a-jwt").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Malformed);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierState>,
}

/// Everything a verifier and its clones share.
struct VerifierState {
    rules: ClaimRules,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    permissions_claim: Box<str>,
    /// The header `typ` every token must have, when one is required.
    required_typ: Option<Box<str>>,
    clock: SharedClock,
    keys: KeySources,
    /// Run once per token, before it enters the cache.
    checks: Checks,
    /// Run on every answer, from the cache or not.
    uncached_checks: Checks,
    cache: Option<TokenCache>,
    /// The revocation rules checked on every answer, when configured.
    revocations: Option<crate::revocation::Revocations>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("audiences", &self.inner.rules.audiences)
            .field("issuers", &self.inner.rules.issuers)
            .field("key_source_per_issuer", &self.inner.keys.by_issuer())
            .field("algorithms", &self.inner.algorithms)
            .field("leeway", &self.inner.rules.leeway)
            .field("required_typ", &self.inner.required_typ)
            .field("checks", &self.inner.checks.len())
            .field("uncached_checks", &self.inner.uncached_checks.len())
            .field("token_cache", &self.inner.cache.is_some())
            .field("revocations", &self.inner.revocations.is_some())
            .finish_non_exhaustive()
    }
}

/// What a verification attempt that does no I/O came to.
pub(crate) enum Attempt {
    /// Finished, one way or the other.
    Done(Result<Verified, Error>),
    /// The token names a key that is not held; a guarded refetch may find it.
    NeedKey(MissingKey),
}

/// A verified token, and the user's id as a header value shared with this thread's cache
/// entry when it has one: the layer's `X-On-Behalf-Of` without a copy.
pub(crate) struct Verified {
    pub(crate) token: VerifiedToken,
    pub(crate) on_behalf_of: Option<HeaderValue>,
}

/// A key a token names that its source does not hold (yet).
pub(crate) struct MissingKey {
    kid: Box<str>,
    /// The source the token's issuer picked, which a refetch asks.
    source: SourceId,
}

impl Verifier {
    /// Start building a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Verify a raw JWT (without the `Bearer ` prefix).
    ///
    /// Waits on I/O only when the token names a key that is not held and the key source is
    /// remote: then at most one guarded refetch, bounded by the fetch timeout.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, Error> {
        match self.verify_now(token) {
            Attempt::Done(result) => result.map(|v| v.token),
            Attempt::NeedKey(missing) => {
                let source = self.inner.keys.get(missing.source);
                let source = source.ok_or_else(|| Error::new(ErrorKind::UnknownKeyId))?;
                source.resolve_missing(&missing.kid).await?;
                match self.verify_now(token) {
                    Attempt::Done(result) => result.map(|v| v.token),
                    Attempt::NeedKey(_) => Err(Error::new(ErrorKind::UnknownKeyId)),
                }
            }
        }
    }

    /// Verify `token` like [`verify`](Self::verify), and also hand back the token as a
    /// [`BearerToken`] for [`ForwardToken`](crate::outbound::ForwardToken) to send onward.
    ///
    /// For code that verifies tokens itself rather than through the inbound layer.
    ///
    /// ```
    /// # async fn demo(verifier: mka1_auth::Verifier, token: &str) -> Result<(), mka1_auth::Error> {
    /// let (verified, bearer) = verifier.verify_bearer(token).await?;
    /// let mut req = http::Request::get("https://agents.internal.example/").body(()).unwrap();
    /// req.extensions_mut().insert(verified.on_behalf_of().clone());
    /// req.extensions_mut().insert(bearer);
    /// # Ok(()) }
    /// ```
    pub async fn verify_bearer(&self, token: &str) -> Result<(VerifiedToken, BearerToken), Error> {
        let verified = self.verify(token).await?;
        Ok((verified, BearerToken::new(token)))
    }

    /// Where the key set stands: key count, last fetch success and error, next refresh.
    /// For health endpoints; see [`KeySetStatus`]. With a key source per issuer, each
    /// source's status is in [`KeySetStatus::per_issuer`], and the other fields sum them up.
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
    /// assert!(status.usable);
    /// assert_eq!(status.key_count, 1);
    /// # Ok::<(), mka1_auth::ConfigError>(())
    /// ```
    pub fn key_set_status(&self) -> KeySetStatus {
        self.inner.keys.status()
    }

    /// Fetch the key set now, and wait for it: a warm-up, so readiness (a usable
    /// [`key_set_status`](Self::key_set_status)) does not wait for the first token. With
    /// keys from a JWKS URL it starts a fetch, or joins the one in flight, bounded by the
    /// fetch timeout; while a retry backoff after failed fetches runs it fetches nothing and
    /// answers at once. A static key set is ready as it is.
    ///
    /// The status when a key set is usable afterwards; otherwise an
    /// [`ErrorKind::KeysUnavailable`] error saying why, with
    /// [`retry_after`](Error::retry_after). Spawn it at start-up rather than awaiting it
    /// there, so a JWKS endpoint that is down does not hold the service's start.
    ///
    /// With a key source per issuer, each source is fetched in turn, and the answer is the
    /// combined status when any source is usable (see [`KeySetStatus::per_issuer`]).
    ///
    /// ```
    /// # async fn demo(verifier: mka1_auth::Verifier) {
    /// let warm_up = verifier.clone();
    /// tokio::spawn(async move {
    ///     if let Err(e) = warm_up.refresh().await {
    ///         tracing::warn!(error = %e, "no usable key set yet");
    ///     }
    /// });
    /// # }
    /// ```
    pub async fn refresh(&self) -> Result<KeySetStatus, Error> {
        self.inner.keys.refresh().await
    }

    cfg_feature! {
        #![feature = "remote"]

        /// Keep the key set fresh without traffic: a Tokio task that refreshes a JWKS URL's keys
        /// at about 80% of their freshness (70-80%, at random, so replicas do not fetch
        /// together), after a failure when the retry backoff ends, and at once when nothing is
        /// held yet. It joins a fetch already in flight, so there is never more than one. It
        /// stops when the returned handle is dropped, or when every clone of this verifier is.
        ///
        /// Off unless called: no task is spawned behind your back. A static key set needs no
        /// refreshing; its handle runs nothing. With a key source per issuer, each remote
        /// source gets a task, all under the one handle. Fails outside a Tokio runtime. Time comes from
        /// the verifier's [`Clock`](crate::Clock) ([`Clock::sleep_until`](crate::Clock::sleep_until)).
        ///
        /// ```
        /// # async fn demo() -> Result<(), mka1_auth::ConfigError> {
        /// use mka1_auth::Verifier;
        ///
        /// let verifier = Verifier::builder()
        ///     .jwks_url("https://apigw.mka1.com/api/v1/authentication/jwks")
        ///     .audience("https://api.example.com")
        ///     .build()?;
        /// let refresher = verifier.spawn_refresher()?;
        /// // ... serve; keep `refresher` alive as long as the service runs ...
        /// # assert!(refresher.is_running());
        /// # Ok(()) }
        /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
        /// ```
        pub fn spawn_refresher(&self) -> Result<crate::jwks::remote::Refresher, crate::ConfigError> {
            self.inner.keys.spawn_refresher()
        }
    }

    /// Verify with what is held now; never waits.
    pub(crate) fn verify_now(&self, token: &str) -> Attempt {
        self.verify_presented(token.as_bytes(), || Ok(token))
    }

    /// [`verify_now`](Self::verify_now) for a token as a request presents it: `bytes`, which
    /// `text` turns into token text or the error to answer. Bytes equal to a token this
    /// verifier verified are that token, so a token in this thread's front cache is answered
    /// without `text`: a repeated token is read once, by the comparison that finds it.
    pub(crate) fn verify_presented<'t>(
        &self,
        bytes: &'t [u8],
        text: impl FnOnce() -> Result<&'t str, Error>,
    ) -> Attempt {
        let s = &*self.inner;
        // One reading of the clock for every check of this verification.
        let at = s.clock.now();
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let when = When {
            at,
            now_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        };
        let mut probe = s.cache.as_ref().map(|cache| cache.probe(bytes));
        if let Some(probe) = &mut probe {
            if let Some(found) = probe.front() {
                if let Some(answer) = s.answer_hit(probe, found, when) {
                    return answer;
                }
            }
        }
        let token = match text() {
            Ok(token) => token,
            Err(e) => return Attempt::Done(Err(e)),
        };
        // The size cap before any parsing (or hashing); a token in front passed it.
        if token.len() > s.max_token_bytes {
            return Attempt::Done(Err(Error::new(ErrorKind::TokenTooLarge)));
        }
        if let Some(probe) = &mut probe {
            if let Some(found) = probe.shared() {
                if let Some(answer) = s.answer_hit(probe, found, when) {
                    return answer;
                }
            }
            crate::metrics::count(crate::metrics::Event::CacheMiss);
        }
        let answer = match s.verify_uncached(token, at, when.secs()) {
            Ok((verified, key_serial)) => {
                if let Some(probe) = &mut probe {
                    let ttl = verified
                        .expires_at()
                        .saturating_add(s.rules.leeway)
                        .saturating_sub(when.secs());
                    probe.insert(verified.clone(), key_serial, Duration::from_secs(ttl));
                }
                Ok(verified)
            }
            Err(NotVerified::Refused(e)) => Err(e),
            Err(NotVerified::KeyNotHeld(missing)) => return Attempt::NeedKey(missing),
        };
        let answer = answer.and_then(|v| s.check_uncached(v));
        Attempt::Done(answer.map(|token| Verified {
            token,
            on_behalf_of: None,
        }))
    }
}

/// One reading of the clock, in the forms a cache hit checks against.
#[derive(Clone, Copy)]
struct When {
    at: SystemTime,
    /// `at` in Unix milliseconds.
    now_ms: u64,
}

impl When {
    /// `at` in Unix seconds.
    fn secs(self) -> u64 {
        self.now_ms / 1000
    }
}

/// Why [`VerifierState::verify_uncached`] gave no verified token.
enum NotVerified {
    /// The token is refused.
    Refused(Error),
    /// The token names a key that is not held, which a refetch may find.
    KeyNotHeld(MissingKey),
}

impl NotVerified {
    /// A key not held, in the source with this id.
    fn in_source(self, source: SourceId) -> Self {
        match self {
            NotVerified::KeyNotHeld(missing) => {
                NotVerified::KeyNotHeld(MissingKey { source, ..missing })
            }
            refused => refused,
        }
    }
}

impl From<Error> for NotVerified {
    fn from(e: Error) -> Self {
        NotVerified::Refused(e)
    }
}

impl VerifierState {
    /// The answer for a token found in the cache (see [`recheck_hit`](Self::recheck_hit)),
    /// with the uncached checks; `None` when it must be verified afresh.
    #[inline]
    fn answer_hit(&self, probe: &mut Probe<'_>, mut hit: Hit, when: When) -> Option<Attempt> {
        let on_behalf_of = hit.on_behalf_of.take();
        let rules_checked = hit.rules_checked;
        let answer = self.recheck_hit(probe, hit, when)?;
        crate::metrics::count(crate::metrics::Event::CacheHit);
        let answer = answer.and_then(|v| self.check_uncached_hit(v, probe, rules_checked));
        Some(Attempt::Done(answer.map(|token| Verified {
            token,
            on_behalf_of,
        })))
    }

    /// Re-check a cached entry for this token at `when`: the key that verified it must
    /// still be held, and its times must pass. The answer, or `None` when the key is gone
    /// (the entry is dropped, and the token must be verified afresh). An expired entry is
    /// dropped too, and answers [`ErrorKind::Expired`]; an entry not yet valid is kept for
    /// when it is.
    ///
    /// The key is looked up only when the hit's stamp of its last look-up on this thread
    /// has lapsed (a key set changed since, or its time ran out); a look-up that finds it
    /// stamps the entry again.
    #[inline]
    fn recheck_hit(
        &self,
        probe: &mut Probe<'_>,
        hit: Hit,
        when: When,
    ) -> Option<Result<VerifiedToken, Error>> {
        let t = &hit.token;
        if !hit.held.holds(when.now_ms) {
            let found = self
                .keys
                .confirm(t.issuer(), t.key_id(), hit.key_serial, when.at);
            match found {
                Some(held) => probe.stamp(held),
                None => {
                    probe.remove();
                    return None;
                }
            }
        }
        let checked =
            self.rules
                .check_times(when.secs(), t.expires_at(), t.not_before(), t.issued_at());
        if checked
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::Expired)
        {
            // Moka drops it at `exp` too; this thread's front would keep it.
            probe.remove();
        }
        Some(checked.map(|()| hit.token))
    }

    /// Verify a token not found in the cache, through the five stages. Also returns the
    /// serial of the key that verified it, for the cache.
    fn verify_uncached(
        &self,
        token: &str,
        at: SystemTime,
        now: u64,
    ) -> Result<(VerifiedToken, u64), NotVerified> {
        let mut header_json = Vec::new();
        let jws = Compact::parse(token, &mut header_json)?;
        if let Some(typ) = &self.required_typ {
            jws.header.check_typ(typ)?;
        }
        let (source_id, source, early) = match &self.keys {
            KeySources::One(source) => (0, source, None),
            KeySources::ByIssuer(_) => {
                // The issuer picks the key source: the payload is read before any key work.
                let (payload, claims) = parse_claims(jws.payload_b64, &self.permissions_claim)?;
                let issuer = self.rules.check_issuer(claims.iss.as_ref(), false)?;
                let (id, source) = self.keys.for_issuer(issuer).ok_or_else(|| {
                    Error::with_detail(ErrorKind::InvalidIssuer, "no key source for this `iss`")
                })?;
                (id, source, Some((payload, claims)))
            }
        };
        let selected = select_key(&jws.header, &self.algorithms, source, at)
            .map_err(|e| e.in_source(source_id))?;
        check_signature(&jws, &selected)?;
        let (payload, claims) = match early {
            Some(read) => read,
            None => parse_claims(jws.payload_b64, &self.permissions_claim)?,
        };
        let claims = self.rules.validate(claims, now)?;
        let verified = claims.into_token(payload, selected.key.kid(), selected.alg)?;
        self.checks.run(&verified)?;
        Ok((verified, selected.key.serial()))
    }

    /// [`check_uncached`](Self::check_uncached) for a cache hit: the revocation rules are
    /// skipped when this thread found the token not revoked by the same rules
    /// (`rules_checked` is the rules epoch it did so in; a rule set is never changed in
    /// place, and the epoch moves after every new one). A token found not revoked is stamped.
    #[inline]
    fn check_uncached_hit(
        &self,
        verified: VerifiedToken,
        probe: &mut Probe<'_>,
        rules_checked: u64,
    ) -> Result<VerifiedToken, Error> {
        if let Some(revocations) = &self.revocations {
            // Read before the check: rules published during it make the stamp stale at once.
            let epoch = crate::revocation::RULES_EPOCH.current();
            if rules_checked != epoch {
                revocations.check(&verified)?;
                probe.stamp_rules(epoch);
            }
        }
        self.uncached_checks.run(&verified)?;
        Ok(verified)
    }

    /// The uncached checks, on an answer about to be given (from the cache or not).
    #[inline]
    fn check_uncached(&self, verified: VerifiedToken) -> Result<VerifiedToken, Error> {
        if let Some(revocations) = &self.revocations {
            revocations.check(&verified)?;
        }
        self.uncached_checks.run(&verified)?;
        Ok(verified)
    }
}

/// The verified-token cache's contract, seen through the verifier.
#[cfg(test)]
mod cache_tests {
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::jwks::KeySet;
    use crate::test_support::{claims_at, claims_with, jwks, TestKey, AUDIENCE, NOW};

    fn verifier(key: &TestKey, clock: &ManualClock, capacity: u64) -> Verifier {
        Verifier::builder()
            .jwks(jwks(&[key]))
            .audience(AUDIENCE)
            .clock(clock.clone())
            .token_cache_capacity(capacity)
            .build()
            .unwrap()
    }

    fn check(verifier: &Verifier, token: &str) -> Result<VerifiedToken, Error> {
        match verifier.verify_now(token) {
            Attempt::Done(result) => result.map(|v| v.token),
            Attempt::NeedKey(_) => Err(Error::new(ErrorKind::UnknownKeyId)),
        }
    }

    /// Whether two results share one allocation, i.e. the second came from the cache.
    fn same(a: &VerifiedToken, b: &VerifiedToken) -> bool {
        std::ptr::eq(a.raw_claims(), b.raw_claims())
    }

    fn cache(verifier: &Verifier) -> &TokenCache {
        verifier.inner.cache.as_ref().unwrap()
    }

    #[test]
    fn a_repeated_token_is_answered_from_memory() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        let second = check(&v, &token).unwrap();
        assert!(same(&first, &second));
        assert_eq!(cache(&v).entry_count(), 1);

        // Another user's claims under this token's signature.
        let other = key.sign(&claims_with(json!({"sub": "user-43"})));
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (other_signed, _) = other.rsplit_once('.').unwrap();
        assert_ne!(signed, other_signed);
        let forged = format!("{other_signed}.{signature}");
        for _ in 0..2 {
            let err = check(&v, &forged).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSignature);
        }
        assert_eq!(cache(&v).entry_count(), 1, "failures are not cached");
    }

    #[test]
    fn cache_off_verifies_every_time() {
        let key = TestKey::es256("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 0);
        assert!(v.inner.cache.is_none());
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        let second = check(&v, &token).unwrap();
        assert!(!same(&first, &second));
        assert_eq!(second.subject(), "user-42");
    }

    #[test]
    fn an_entry_never_outlives_exp() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let exp = NOW + 3600;
        let token = key.sign(&claims_at(NOW));

        // Verified late in its life: the entry lives only until exp plus leeway.
        clock.set_unix(exp - 100);
        let first = check(&v, &token).unwrap();
        assert_eq!(
            cache(&v).ttl(&token).unwrap(),
            Duration::from_secs(100 + VerifierBuilder::DEFAULT_LEEWAY.as_secs())
        );

        // Every hit re-checks exp with the current clock.
        clock.set_unix(exp + VerifierBuilder::DEFAULT_LEEWAY.as_secs() - 1);
        assert!(same(&first, &check(&v, &token).unwrap()));
        clock.set_unix(exp + VerifierBuilder::DEFAULT_LEEWAY.as_secs());
        let err = check(&v, &token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Expired);
    }

    #[test]
    fn a_hit_rechecks_nbf_and_iat() {
        let key = TestKey::rs256("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let nbf = key.sign(&claims_with(json!({"nbf": NOW + 30})));
        let iat = key.sign(&claims_with(json!({"iat": NOW + 30})));
        let cached_nbf = check(&v, &nbf).unwrap();
        let cached_iat = check(&v, &iat).unwrap();

        // The clock steps back: both are now too early, though cached.
        clock.set_unix(NOW - 31);
        assert_eq!(check(&v, &nbf).unwrap_err().kind(), ErrorKind::NotYetValid);
        assert_eq!(
            check(&v, &iat).unwrap_err().kind(),
            ErrorKind::IssuedInFuture
        );

        // The entries were kept, and answer again once the time is right.
        clock.set_unix(NOW);
        assert!(same(&cached_nbf, &check(&v, &nbf).unwrap()));
        assert!(same(&cached_iat, &check(&v, &iat).unwrap()));
    }

    fn replace_keys(v: &mut Verifier, keys: &[&TestKey]) {
        let set = KeySet::from_json(&jwks(keys).to_string()).unwrap();
        Arc::get_mut(&mut v.inner).unwrap().keys =
            KeySources::One(crate::jwks::KeySource::Static(Arc::new(set)));
    }

    /// Cache `signer`'s token, then swap the key set for `keys` and verify it again.
    fn after_key_change(signer: &TestKey, keys: &[&TestKey]) -> ErrorKind {
        let clock = ManualClock::at_unix(NOW);
        let mut v = verifier(signer, &clock, 16);
        let token = signer.sign(&claims_at(NOW));
        check(&v, &token).unwrap();
        assert_eq!(cache(&v).entry_count(), 1);

        replace_keys(&mut v, keys);
        let kind = check(&v, &token).unwrap_err().kind();
        assert_eq!(cache(&v).entry_count(), 0, "the entry was evicted");
        kind
    }

    #[test]
    fn a_key_leaving_the_set_takes_its_tokens_with_it() {
        let (a, b) = (TestKey::ed25519("a"), TestKey::ed25519("b"));
        assert_eq!(after_key_change(&a, &[&b]), ErrorKind::UnknownKeyId);
    }

    #[test]
    fn a_key_replaced_under_the_same_kid_takes_its_tokens_with_it() {
        let (old, new) = (TestKey::ed25519("k1"), TestKey::ed25519("k1"));
        assert_eq!(after_key_change(&old, &[&new]), ErrorKind::InvalidSignature);
    }

    #[test]
    fn a_front_hit_still_rechecks_times_and_the_key() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let mut v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        assert!(cache(&v).in_front(&token));
        assert!(same(&first, &check(&v, &token).unwrap()));

        // Not yet valid (a clock set back): refused, and still held for when it is.
        clock.set_unix(NOW - VerifierBuilder::DEFAULT_LEEWAY.as_secs() - 1);
        assert_eq!(
            check(&v, &token).unwrap_err().kind(),
            ErrorKind::IssuedInFuture
        );
        assert!(cache(&v).in_front(&token));
        clock.set_unix(NOW);
        assert!(same(&first, &check(&v, &token).unwrap()));

        replace_keys(&mut v, &[&TestKey::ed25519("k2")]);
        assert!(cache(&v).in_front(&token));
        let err = check(&v, &token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownKeyId);
        assert!(!cache(&v).in_front(&token), "the front entry was dropped");
    }

    #[test]
    fn an_expired_hit_drops_the_entry() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 16);
        let token = key.sign(&claims_at(NOW));
        let first = check(&v, &token).unwrap();
        assert!(cache(&v).in_front(&token));
        clock.set_unix(NOW + 3600 + VerifierBuilder::DEFAULT_LEEWAY.as_secs());
        assert!(
            cache(&v).get(&token).is_some(),
            "held until a hit finds it expired"
        );
        assert_eq!(check(&v, &token).unwrap_err().kind(), ErrorKind::Expired);
        assert!(!cache(&v).in_front(&token) && cache(&v).get(&token).is_none());
        // Had the clock been wrong, the token is verified afresh, not answered from memory.
        clock.set_unix(NOW);
        assert!(!same(&first, &check(&v, &token).unwrap()));
    }

    #[test]
    fn verifiers_never_answer_from_each_others_entries() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let ours = verifier(&key, &clock, 16);
        // The same key, but another service: our tokens are not for it.
        let theirs = Verifier::builder()
            .jwks(jwks(&[&key]))
            .audience("https://other.example.test")
            .clock(clock.clone())
            .build()
            .unwrap();
        let token = key.sign(&claims_at(NOW));
        check(&ours, &token).unwrap();
        assert!(cache(&ours).in_front(&token));
        for _ in 0..2 {
            let err = check(&theirs, &token).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidAudience);
        }
        // A clone shares the cache.
        assert!(same(
            &check(&ours, &token).unwrap(),
            &check(&ours.clone(), &token).unwrap()
        ));
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let key = TestKey::ed25519("k1");
        let clock = ManualClock::at_unix(NOW);
        let v = verifier(&key, &clock, 4);
        for i in 0..20 {
            let token = key.sign(&claims_with(json!({"sub": format!("user-{i}")})));
            assert_eq!(check(&v, &token).unwrap().subject(), format!("user-{i}"));
        }
        let count = cache(&v).entry_count();
        assert!((1..=4).contains(&count), "{count} entries held");
    }
}
