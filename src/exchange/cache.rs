//! The client's token cache: what a token is kept under, and when it is renewed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ExchangeClient, ExchangeError, ExchangeRequest, ExchangedToken, Scopes};
use crate::clock::SharedClock;
use crate::outbound::{Refusal, RefusalKind};

/// The tokens an [`ExchangeClient`] holds.
pub(super) type TokenCache = moka::future::Cache<CacheKey, Cached>;

/// An empty cache of at most `capacity` tokens, each dropped once expired by `clock`.
pub(super) fn token_cache(capacity: u64, clock: SharedClock) -> TokenCache {
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilRenewal { clock })
        .build()
}

/// What a cached token was asked for. The lifetime is part of it: a token minted for 30
/// days is never handed to a caller that asked for 300 s.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    audience: Box<str>,
    user: Box<str>,
    scopes: Scopes,
    lifetime: u64,
}

#[derive(Clone)]
pub(super) struct Cached {
    pub(super) token: ExchangedToken,
    /// Unix seconds from which the token is renewed rather than reused.
    pub(super) renew_at: u64,
}

/// Lets moka drop an entry once its token has expired (by the client's clock at insertion).
/// Renewal, earlier, is [`ExchangeClient::token`]'s business: until the token expires, the
/// entry is there to fall back on while a renewal fails or MKA1 has exchanges paused.
struct UntilRenewal {
    clock: SharedClock,
}

impl UntilRenewal {
    fn ttl(&self, value: &Cached) -> Option<Duration> {
        Some(Duration::from_secs(
            value.token.expires_at.saturating_sub(self.clock.now_unix()),
        ))
    }
}

impl moka::Expiry<CacheKey, Cached> for UntilRenewal {
    fn expire_after_create(&self, _: &CacheKey, value: &Cached, _: Instant) -> Option<Duration> {
        self.ttl(value)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        value: &Cached,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.ttl(value)
    }
}

impl ExchangeClient {
    /// A token for this request: from the cache while it is fresh, else exchanged.
    ///
    /// Concurrent calls for the same (audience, user, scopes, lifetime) share one exchange,
    /// and exchanges are paced as the [module docs](crate::exchange) tell: at most
    /// [`max_concurrent_exchanges`](super::ExchangeClientBuilder::max_concurrent_exchanges)
    /// in flight, none while MKA1's `Retry-After` holds every exchange back.
    pub async fn token(&self, request: &ExchangeRequest) -> Result<ExchangedToken, Refusal> {
        let lifetime = request.validate().map_err(ExchangeError::into_error)?;
        let key = CacheKey {
            audience: request.audience.as_str().into(),
            user: request.external_user_id.as_str().into(),
            scopes: request.scopes.clone(),
            lifetime,
        };
        let cache = &self.inner.cache;
        let mut stale: Option<Cached> = None;
        // Twice at most: a stale entry found on the first pass is dropped and renewed.
        for _ in 0..2 {
            let ran = AtomicBool::new(false);
            // A caller holding a token still valid uses it rather than wait out a pause.
            let has_fallback = stale
                .as_ref()
                .is_some_and(|s| s.token.expires_at > self.inner.clock.now_unix());
            let init = async {
                ran.store(true, Ordering::Relaxed);
                let exchanged = self.exchange(request, lifetime, has_fallback).await;
                crate::metrics::count(match exchanged {
                    Ok(_) => crate::metrics::Event::ExchangeOk,
                    Err(_) => crate::metrics::Event::ExchangeError,
                });
                exchanged
            };
            let cached = match cache.try_get_with(key.clone(), init).await {
                Ok(cached) => cached,
                Err(error) if error.kind() == RefusalKind::ApiKeyRejected => {
                    self.drop_tokens_of_rejected_key();
                    return Err((*error).clone());
                }
                Err(error) => {
                    // A token that has not expired yet still beats no token; it goes back in
                    // the cache (unless a renewed one is there), so the next caller finds it.
                    let now = self.inner.clock.now_unix();
                    if let Some(old) = stale.filter(|s| s.token.expires_at > now) {
                        tracing::warn!(error = %error, "mka1 token renewal failed; using the current token until it expires");
                        cache.entry(key).or_insert(old.clone()).await;
                        return Ok(old.token);
                    }
                    return Err((*error).clone());
                }
            };
            if ran.load(Ordering::Relaxed) {
                return Ok(cached.token);
            }
            let now = self.inner.clock.now_unix();
            // Due for renewal; but while MKA1 has every exchange paused, a token that is still
            // valid is used as it is, and nobody waits.
            if cached.renew_at > now || (cached.token.expires_at > now && self.is_paused()) {
                crate::metrics::count(crate::metrics::Event::ExchangeCached);
                return Ok(cached.token);
            }
            self.evict(&key, &cached).await;
            stale = Some(cached);
        }
        // Someone else refreshed between our passes with a token already due; use it.
        match stale {
            Some(s) => Ok(s.token),
            None => Err(Refusal::new(RefusalKind::Exchange)),
        }
    }

    fn is_paused(&self) -> bool {
        let inner = &self.inner;
        inner.pacing.paused_until(inner.clock.now()).is_some()
    }

    /// MKA1 no longer accepts the key: forget every token it minted, so none is handed out
    /// again (not even an unexpired one while a renewal fails).
    fn drop_tokens_of_rejected_key(&self) {
        let cached = self.inner.cache.entry_count();
        self.inner.cache.invalidate_all();
        tracing::warn!(
            cached,
            "mka1 rejected the api key; dropped the tokens it minted. check the configured key"
        );
    }

    /// Drop `entry` for `key`, unless another caller already replaced it.
    async fn evict(&self, key: &CacheKey, entry: &Cached) {
        self.inner
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let same = current
                    .is_some_and(|c| Arc::ptr_eq(&c.value().token.token, &entry.token.token));
                std::future::ready(if same {
                    moka::ops::compute::Op::Remove
                } else {
                    moka::ops::compute::Op::Nop
                })
            })
            .await;
    }

    /// When to renew: `exp` (capped at the lifetime asked for) less the margin, the margin
    /// being at most half the lifetime left.
    pub(super) fn schedule(&self, mut token: ExchangedToken, lifetime: u64) -> Cached {
        let now = self.inner.clock.now_unix();
        let asked = now.saturating_add(lifetime);
        let exp = match token.expires_at {
            0 => asked,
            exp => exp.min(asked),
        };
        token.expires_at = exp;
        let left = exp.saturating_sub(now);
        let margin = self.inner.renew_before.as_secs().min(left / 2);
        if left == 0 {
            tracing::warn!("mka1 minted a token that is already expired by this clock");
        }
        Cached {
            token,
            renew_at: exp - margin,
        }
    }
}
