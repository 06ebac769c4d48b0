//! For scale beside issue 30's figure (a): the least an authenticating layer does for a
//! repeated token. It finds the `Authorization: Bearer` token, matches it exactly against
//! the tokens it was given (a table by the token's last eight bytes, as the layer's front
//! is), and leaves one value, the user, for extractors; anything else is refused with a
//! bare 401. No clock or expiry, no `X-On-Behalf-Of`, no metrics, no key or revocation
//! check, no refusal body: what the real layer does beyond this is its contract.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

/// The user a [`Floor`] let through, as extractors would read it.
#[derive(Clone)]
pub struct User(pub Arc<str>);

/// The tokens a [`Floor`] accepts, each with its user, by the token's last eight bytes.
type Known = HashMap<u64, Vec<(Box<[u8]>, User)>>;

/// Layer of [`Floor`].
#[derive(Clone)]
pub struct FloorLayer {
    known: Arc<Known>,
}

impl FloorLayer {
    /// Accept `tokens`, the i-th for user `user-i`.
    pub fn new(tokens: &[String]) -> FloorLayer {
        let mut known = Known::new();
        for (i, token) in tokens.iter().enumerate() {
            let user = User(Arc::from(format!("user-{i}")));
            known
                .entry(tail(token.as_bytes()))
                .or_default()
                .push((Box::from(token.as_bytes()), user));
        }
        FloorLayer {
            known: Arc::new(known),
        }
    }
}

impl<S> Layer<S> for FloorLayer {
    type Service = Floor<S>;

    fn layer(&self, inner: S) -> Floor<S> {
        Floor {
            inner,
            known: Arc::clone(&self.known),
        }
    }
}

/// The floor layer's service.
#[derive(Clone)]
pub struct Floor<S> {
    inner: S,
    known: Arc<Known>,
}

fn tail(token: &[u8]) -> u64 {
    token
        .last_chunk::<8>()
        .map_or(0, |last| u64::from_le_bytes(*last))
}

impl<S> Floor<S> {
    fn user(&self, headers: &http::HeaderMap) -> Option<User> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let token = value.as_bytes().strip_prefix(b"Bearer ")?;
        let held = self.known.get(&tail(token))?;
        held.iter()
            .find(|(text, _)| **text == *token)
            .map(|(_, user)| user.clone())
    }
}

impl<S, B, R: Default> Service<Request<B>> for Floor<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.user(req.headers()) {
            Some(user) => {
                req.extensions_mut().insert(user);
                FloorFuture::Calling {
                    future: self.inner.call(req),
                }
            }
            None => {
                let mut refused = Response::new(R::default());
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                FloorFuture::Refused {
                    response: Some(refused),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, or the floor's 401.
    #[project = FloorProj]
    pub enum FloorFuture<F, R> {
        Calling { #[pin] future: F },
        Refused { response: Option<Response<R>> },
    }
}

impl<F, R, E> Future for FloorFuture<F, R>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FloorProj::Calling { future } => future.poll(cx),
            FloorProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
