//! The bodies a forward passes along: the request body with a size cap on the way up, and
//! the upstream's body (or the forward's own short answer) on the way back.

use std::fmt;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{ForwardError, ForwardErrorKind};

/// The error type of boxed body errors, as hyper and reqwest use it.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The [`ForwardError`] of kind [`ForwardErrorKind::BodyTooLarge`] among `error` and its
/// causes, if any: what a [`CappedBody`] failed with, passed up by the client.
pub(crate) fn too_large_cause<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e ForwardError> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(forward) = e.downcast_ref::<ForwardError>() {
            if forward.kind() == ForwardErrorKind::BodyTooLarge {
                return Some(forward);
            }
        }
        next = e.source();
    }
    None
}

/// A request body that fails with a [`ForwardError`] of kind
/// [`ForwardErrorKind::BodyTooLarge`] once more than its cap has streamed,
/// and passes on its data but not its trailers: the forward drops request trailers.
///
/// It is `Sync` whenever the body is `Send` (the body sits behind a lock that polling never
/// takes, since polling has the body to itself), so non-`Sync` bodies such as axum's can go
/// to clients that ask for `Sync` bodies, such as reqwest.
pub struct CappedBody<B> {
    inner: Mutex<B>,
    remaining: u64,
    limit: u64,
}

impl<B> CappedBody<B> {
    pub(crate) fn new(inner: B, limit: u64) -> Self {
        CappedBody {
            inner: Mutex::new(inner),
            remaining: limit,
            limit,
        }
    }

    fn with_inner<T>(&self, f: impl FnOnce(&B) -> T) -> T {
        f(&self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<B> fmt::Debug for CappedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CappedBody")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let inner = this.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        let frame = loop {
            match ready!(Pin::new(&mut *inner).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                // Trailers would carry headers past every rule the forward applies to the
                // head (`authorization`, `x-on-behalf-of`, overrides): they stop here.
                Some(Ok(frame)) if frame.is_trailers() => continue,
                Some(Ok(frame)) => break frame,
            }
        };
        if let Some(data) = frame.data_ref() {
            let len = data.remaining() as u64;
            if len > this.remaining {
                this.remaining = 0;
                let error = ForwardError::too_large(this.limit);
                return Poll::Ready(Some(Err(Box::new(error))));
            }
            this.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.with_inner(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.with_inner(|b| b.size_hint())
    }
}

#[cfg(feature = "remote")]
impl<B> From<CappedBody<B>> for reqwest::Body
where
    B: Body + Unpin + Send + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    fn from(body: CappedBody<B>) -> Self {
        reqwest::Body::wrap(body)
    }
}

pin_project! {
    /// The body of a forward's answer: the upstream's body, or the forward's own short text
    /// when it answered itself (400, 404, 413, 502).
    pub struct ForwardBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Upstream { #[pin] body: B },
        Text { text: Option<Bytes> },
    }
}

impl<B> ForwardBody<B> {
    pub(crate) fn upstream(body: B) -> Self {
        ForwardBody {
            kind: Kind::Upstream { body },
        }
    }

    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        ForwardBody {
            kind: Kind::Text {
                text: Some(text.into()),
            },
        }
    }
}

impl<B> fmt::Debug for ForwardBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match self.kind {
            Kind::Upstream { .. } => "upstream",
            Kind::Text { .. } => "forward",
        };
        f.debug_struct("ForwardBody").field("from", &from).finish()
    }
}

impl<B: Body<Data = Bytes>> Body for ForwardBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Upstream { body } => body.poll_frame(cx),
            KindProj::Text { text } => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::Text { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body } => body.size_hint(),
            Kind::Text { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// A body of `chunks`, one frame each.
    struct Chunks(Vec<&'static str>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(Frame::data(Bytes::from(self.0.remove(0)))))
            })
        }
    }

    async fn drain(mut body: CappedBody<Chunks>) -> Result<usize, BoxError> {
        let mut total = 0;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            total += frame?.into_data().map_or(0, |d| d.len());
        }
        Ok(total)
    }

    #[tokio::test]
    async fn the_cap_is_exact() {
        let at_cap = CappedBody::new(Chunks(vec!["abc", "de"]), 5);
        assert_eq!(drain(at_cap).await.unwrap(), 5);
        let over = CappedBody::new(Chunks(vec!["abc", "def"]), 5);
        let err = drain(over).await.unwrap_err();
        assert!(too_large_cause(&*err).is_some(), "{err}");
        assert_eq!(err.to_string(), "the request body exceeds the 5-byte cap");
    }

    /// Data, then trailers naming an identity, then data again (a body that breaks the
    /// order still loses its trailers).
    struct WithTrailers(Vec<Frame<Bytes>>);

    impl Body for WithTrailers {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    #[tokio::test]
    async fn trailers_stop_here() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("authorization", "Bearer x".parse().unwrap());
        trailers.insert("x-on-behalf-of", "admin".parse().unwrap());
        let frames = vec![
            Frame::data(Bytes::from("ab")),
            Frame::trailers(trailers.clone()),
            Frame::data(Bytes::from("c")),
            Frame::trailers(trailers),
        ];
        let mut body = CappedBody::new(WithTrailers(frames), 10);
        let mut seen = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame = frame.unwrap();
            assert!(!frame.is_trailers(), "a trailer passed");
            seen.push(frame.into_data().unwrap());
        }
        assert_eq!(seen, ["ab", "c"]);
    }

    #[test]
    fn too_large_is_found_among_causes() {
        #[derive(Debug)]
        struct Wrapper(BoxError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let wrapped = Wrapper(Box::new(ForwardError::too_large(1)));
        let found = too_large_cause(&wrapped).unwrap();
        assert_eq!(found.to_string(), "the request body exceeds the 1-byte cap");
        let other = Wrapper("io".into());
        assert!(too_large_cause(&other).is_none());
        let refused = Wrapper(Box::new(ForwardError::new(
            ForwardErrorKind::Upstream,
            "the upstream call failed",
        )));
        assert!(too_large_cause(&refused).is_none());
    }
}
