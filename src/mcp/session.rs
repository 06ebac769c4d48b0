//! [`McpSessionLayer`]: every MCP session belongs to the user who opened it.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::sessions::{Seen, Sessions};
use super::MCP_SESSION_ID;
use crate::claims::VerifiedToken;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind};
use crate::guard::{like_the_layer, required_or, NoLayer};
use crate::rejection::{Pending, Rejection};

/// What the session layer logs when no authentication layer ran before it.
const NO_LAYER_BEFORE: NoLayer = NoLayer {
    reader: "`McpSessionLayer`",
    advice: "the authentication layer is missing, or in the wrong order: it must wrap the \
             session layer",
};

/// A [`Layer`] that binds each `Mcp-Session-Id` the inner MCP server issues to the
/// (`iss`, `sub`) of the token that opened the session, and refuses that session to every
/// other user. See the [module docs](super).
///
/// It goes inside (after) [`Mka1AuthLayer`](crate::Mka1AuthLayer). Clones share one table;
/// each setting method starts a new, empty one, so configure the layer before using it.
///
/// ```
/// use mka1_auth::mcp::McpSessionLayer;
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
///
/// let sessions = McpSessionLayer::new()
///     .max_sessions(NonZeroUsize::new(50_000).unwrap())
///     .leeway(Duration::from_secs(60));
/// assert_eq!(sessions.len(), 0);
/// ```
#[derive(Clone)]
pub struct McpSessionLayer {
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for McpSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSessionLayer")
            .field("sessions", &self.sessions)
            .finish()
    }
}

impl Default for McpSessionLayer {
    fn default() -> Self {
        McpSessionLayer::new()
    }
}

/// Settings kept while building, so that each method can rebuild the table.
struct Settings {
    cap: usize,
    leeway: u64,
    clock: Arc<dyn Clock>,
}

/// Default cap on the sessions held at once.
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 10_000;

impl McpSessionLayer {
    /// A layer with an empty table, a cap of 10 000 sessions held at once, the verifier's
    /// default leeway (60 s) and the system clock.
    pub fn new() -> Self {
        McpSessionLayer::with(Settings {
            cap: DEFAULT_MAX_SESSIONS,
            leeway: crate::VerifierBuilder::DEFAULT_LEEWAY.as_secs(),
            clock: Arc::new(SystemClock),
        })
    }

    fn with(settings: Settings) -> Self {
        McpSessionLayer {
            sessions: Arc::new(Sessions::new(settings.cap, settings.leeway, settings.clock)),
        }
    }

    fn settings(&self) -> Settings {
        self.sessions.settings()
    }

    /// The most sessions held at once. When a new session would exceed it, expired entries
    /// leave first, then the session closest to expiring; a dropped session is refused
    /// (404) from then on, never given to anyone else. Default 10,000; at least one, which
    /// the type says (a table of none would refuse every session).
    #[must_use]
    pub fn max_sessions(self, max: NonZeroUsize) -> Self {
        McpSessionLayer::with(Settings {
            cap: max.get(),
            ..self.settings()
        })
    }

    /// How long after the `exp` of the latest token seen on a session it is kept: set it to
    /// the verifier's [`leeway`](crate::VerifierBuilder::leeway). Default 60 s.
    #[must_use]
    pub fn leeway(self, leeway: Duration) -> Self {
        McpSessionLayer::with(Settings {
            leeway: leeway.as_secs(),
            ..self.settings()
        })
    }

    /// The clock that says when a session's tokens have all expired (default: the system
    /// clock; tests pass a [`ManualClock`](crate::ManualClock)).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        McpSessionLayer::with(Settings {
            clock: Arc::new(clock),
            ..self.settings()
        })
    }

    /// How many sessions the table holds now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the table holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sessions {
    fn settings(&self) -> Settings {
        let (cap, leeway, clock) = self.parts();
        Settings { cap, leeway, clock }
    }
}

impl<S> Layer<S> for McpSessionLayer {
    type Service = McpSession<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpSession {
            inner,
            sessions: Arc::clone(&self.sessions),
        }
    }
}

/// The service [`McpSessionLayer`] wraps around an MCP server.
///
/// ```
/// use mka1_auth::mcp::{McpSession, McpSessionLayer};
/// use tower::Layer;
///
/// let svc: McpSession<&str> = McpSessionLayer::new().layer("inner");
/// # let _ = svc;
/// ```
pub struct McpSession<S> {
    inner: S,
    sessions: Arc<Sessions>,
}

impl<S: Clone> Clone for McpSession<S> {
    fn clone(&self) -> Self {
        McpSession {
            inner: self.inner.clone(),
            sessions: Arc::clone(&self.sessions),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for McpSession<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("inner", &self.inner)
            .field("sessions", &self.sessions)
            .finish()
    }
}

impl<S> McpSession<S> {
    /// The wrapped service.
    ///
    /// ```
    /// use mka1_auth::mcp::McpSessionLayer;
    /// use tower::Layer;
    ///
    /// let mut svc = McpSessionLayer::new().layer(String::from("inner"));
    /// assert_eq!(svc.get_ref(), "inner");
    /// svc.get_mut().push('!');
    /// assert_eq!(svc.into_inner(), "inner!");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What to do with the inner service's response.
enum After {
    /// A request without a session id: bind the session id the response issues, if any.
    Bind(VerifiedToken),
    /// A request on the owner's session `id`; `delete`: it asked to end the session.
    Continue { id: Box<str>, delete: bool },
}

/// Why a request does not reach the MCP server.
enum Refusal {
    /// Not authenticated (anonymous, or no authentication layer), or a malformed header.
    Auth(Rejection),
    /// A session this token's user did not open (or no live session): 404, as the MCP
    /// specification answers an unknown session.
    NotTheirs,
}

/// The first look at a request: let it through (and what to do after) or refuse it.
fn admit<B>(sessions: &Sessions, req: &Request<B>) -> Result<After, Refusal> {
    let token: &VerifiedToken =
        required_or(req.extensions(), &NO_LAYER_BEFORE).map_err(Refusal::Auth)?;
    let mut ids = req.headers().get_all(MCP_SESSION_ID).iter();
    let Some(id) = ids.next() else {
        return Ok(After::Bind(token.clone()));
    };
    if ids.next().is_some() {
        return Err(Refusal::Auth(like_the_layer(
            Rejection::new(Error::with_detail(
                ErrorKind::InvalidRequest,
                "more than one mcp-session-id header",
            )),
            req.extensions(),
        )));
    }
    // An id that is not visible ASCII was never issued: unknown, like any other.
    let id = id.to_str().unwrap_or("");
    match sessions.check(id, token) {
        Seen::Owner => Ok(After::Continue {
            id: id.into(),
            delete: req.method() == Method::DELETE,
        }),
        seen => {
            tracing::debug!(
                other_user = seen == Seen::Stranger,
                status = 404,
                "mka1-auth refused an mcp session the token's user did not open"
            );
            Err(Refusal::NotTheirs)
        }
    }
}

impl Refusal {
    /// The answer, with an empty body: an MCP server's body type (rmcp's is a boxed body)
    /// need not be made from text. The authentication layer in front renders an `Auth`
    /// refusal again, body included, through its own `Reject`.
    fn into_response<B: Default>(self) -> Response<B> {
        match self {
            Refusal::Auth(rejection) => {
                rejection.trace();
                let pending = Pending(rejection.clone());
                let mut response = rejection.into_status_response(B::default());
                response.extensions_mut().insert(pending);
                response
            }
            Refusal::NotTheirs => {
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for McpSession<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let kind = match admit(&self.sessions, &req) {
            Ok(after) => Kind::Calling {
                future: self.inner.call(req),
                after: Some((after, Arc::clone(&self.sessions))),
            },
            Err(refusal) => Kind::Refused {
                response: Some(refusal.into_response()),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// The response future of [`McpSession`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Calling { #[pin] future: F, after: Option<(After, Arc<Sessions>)> },
        Refused { response: Option<Response<B>> },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refused = matches!(self.kind, Kind::Refused { .. });
        f.debug_struct("ResponseFuture")
            .field("refused", &refused)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Calling { future, after } => {
                let response = ready!(future.poll(cx))?;
                if let Some((after, sessions)) = after.take() {
                    record(&sessions, after, &response);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

/// Update the table from the MCP server's answer.
fn record<B>(sessions: &Sessions, after: After, response: &Response<B>) {
    let status = response.status();
    match after {
        After::Bind(token) => {
            if !status.is_success() {
                return;
            }
            if let Some(id) = response.headers().get(MCP_SESSION_ID) {
                match id.to_str() {
                    Ok(id) if !id.is_empty() => sessions.bind(id, &token),
                    _ => tracing::warn!(
                        "mka1-auth: the mcp server issued a session id that is not visible ascii; \
                         it is not bound and will be refused"
                    ),
                }
            }
        }
        // The server ended the session, or no longer knows it.
        After::Continue { id, delete } => {
            if (delete && status.is_success()) || status == StatusCode::NOT_FOUND {
                sessions.end(&id);
            }
        }
    }
}
