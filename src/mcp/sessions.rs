//! The table behind [`McpSessionLayer`](super::McpSessionLayer): which user opened each
//! live session, bounded in size and in time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::claims::VerifiedToken;
use crate::clock::Clock;

/// Who opened a session, and until when a token of theirs could still be accepted.
struct Owner {
    issuer: Option<Box<str>>,
    subject: Box<str>,
    /// Unix seconds after which no token this session has seen is valid any more
    /// (`exp` plus the leeway).
    until: u64,
}

impl Owner {
    fn is(&self, token: &VerifiedToken) -> bool {
        self.issuer.as_deref() == token.issuer() && &*self.subject == token.subject()
    }
}

/// What the table says about a request's session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The session is this token's user's (its lifetime now covers this token too).
    Owner,
    /// Another user opened it.
    Stranger,
    /// No live session has this id (never issued, ended, expired or evicted).
    Unknown,
}

/// Session id → owner, behind one lock held only for a map operation.
pub(crate) struct Sessions {
    map: Mutex<HashMap<Box<str>, Owner>>,
    cap: usize,
    leeway: u64,
    clock: Arc<dyn Clock>,
}

impl Sessions {
    pub(crate) fn new(cap: usize, leeway: u64, clock: Arc<dyn Clock>) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            cap,
            leeway,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Owner>> {
        // The map holds no invariant a panic could break half-way.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn until(&self, token: &VerifiedToken) -> u64 {
        token.expires_at().saturating_add(self.leeway)
    }

    /// The settings it was made with.
    pub(crate) fn parts(&self) -> (usize, u64, Arc<dyn Clock>) {
        (self.cap, self.leeway, Arc::clone(&self.clock))
    }

    /// Look `id` up for a request carrying `token`.
    pub(crate) fn check(&self, id: &str, token: &VerifiedToken) -> Seen {
        let now = self.clock.now_unix();
        let mut map = self.lock();
        let Some(owner) = map.get_mut(id) else {
            return Seen::Unknown;
        };
        if owner.until < now {
            map.remove(id);
            return Seen::Unknown;
        }
        if owner.is(token) {
            owner.until = owner.until.max(self.until(token));
            Seen::Owner
        } else {
            Seen::Stranger
        }
    }

    /// Record that `token`'s user opened session `id`. An id already bound keeps its owner.
    /// When the table is full, expired entries leave first, then the one closest to
    /// expiring (that session is refused from then on, never handed to another user).
    pub(crate) fn bind(&self, id: &str, token: &VerifiedToken) {
        let now = self.clock.now_unix();
        let mut map = self.lock();
        if map.contains_key(id) {
            return;
        }
        if map.len() >= self.cap {
            map.retain(|_, owner| owner.until >= now);
        }
        if map.len() >= self.cap {
            let soonest = map
                .iter()
                .min_by_key(|(_, owner)| owner.until)
                .map(|(id, _)| id.clone());
            if let Some(soonest) = soonest {
                map.remove(&soonest);
                tracing::warn!(
                    cap = self.cap,
                    "mka1-auth: MCP session table full; the session closest to expiry was dropped"
                );
            }
        }
        map.insert(
            id.into(),
            Owner {
                issuer: token.issuer().map(Box::from),
                subject: token.subject().into(),
                until: self.until(token),
            },
        );
    }

    /// Forget session `id` (ended by its owner, or unknown to the server).
    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("held", &self.len())
            .field("cap", &self.cap)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}
