//! RFC 9728 protected resource metadata, opt-in: [`ProtectedResource`] describes the
//! service, [`ProtectedResource::service`] answers its well-known URL, and
//! [`ResourceMetadataLayer`] points every 401 at it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ConfigError;

/// The well-known path prefix of RFC 9728.
pub(crate) const WELL_KNOWN_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// What a protected resource says about itself (RFC 9728 section 2): its identifier (the
/// audience MKA1 tokens for it carry), who issues those tokens, that they come in the
/// `Authorization` header, and the permissions it checks.
///
/// ```
/// use mka1_auth::mcp::ProtectedResource;
///
/// let resource = ProtectedResource::new("https://tools.example.com/mcp")
///     .unwrap()
///     .authorization_server("https://api.mka1.com")
///     .scopes(["agent:read"]);
/// assert_eq!(resource.well_known_path(), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(
///     resource.metadata_url(),
///     "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
/// );
/// let document = resource.document();
/// assert_eq!(document["resource"], "https://tools.example.com/mcp");
/// assert_eq!(document["authorization_servers"][0], "https://api.mka1.com");
/// assert_eq!(document["bearer_methods_supported"][0], "header");
/// assert_eq!(document["scopes_supported"][0], "agent:read");
/// ```
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    resource: Arc<str>,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    path: Arc<str>,
    url: Arc<str>,
}

fn invalid(reason: &str) -> ConfigError {
    ConfigError::invalid_setting("resource", reason.to_owned())
}

impl ProtectedResource {
    /// Describe the resource `resource`: the audience the service's verifier accepts, an
    /// absolute `https` URL (`http` only for a loopback host) without query or fragment.
    ///
    /// ```
    /// use mka1_auth::mcp::ProtectedResource;
    ///
    /// assert!(ProtectedResource::new("http://127.0.0.1:3001/mcp").is_ok());
    /// assert!(ProtectedResource::new("http://tools.example.com/mcp").is_err());
    /// assert!(ProtectedResource::new("tools").is_err());
    /// ```
    pub fn new(resource: impl Into<String>) -> Result<Self, ConfigError> {
        let resource = resource.into();
        if resource.contains(['"', '\\', '#', '?']) {
            return Err(invalid("must be a url without query, fragment or quotes"));
        }
        let uri: Uri = resource
            .parse()
            .map_err(|_| invalid("must be an absolute url"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid("must be an absolute url"));
        };
        let loopback = matches!(authority.host(), "127.0.0.1" | "[::1]" | "localhost");
        if !(scheme == "https" || (scheme == "http" && loopback)) {
            return Err(invalid("must be https (http only for a loopback host)"));
        }
        let tail = uri.path().trim_end_matches('/');
        let path: Arc<str> = format!("{WELL_KNOWN_PREFIX}{tail}").into();
        let url = format!("{scheme}://{authority}{path}").into();
        Ok(ProtectedResource {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            path,
            url,
        })
    }

    /// Add an issuer of the tokens this resource accepts (the verifier's issuers).
    #[must_use]
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Add permissions the resource checks (`scopes_supported`).
    #[must_use]
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The path to serve the document at: the well-known prefix followed by the resource's
    /// own path (RFC 9728 section 3.1), `/.well-known/oauth-protected-resource` for a
    /// resource at the root.
    pub fn well_known_path(&self) -> &str {
        &self.path
    }

    /// The document's absolute URL, sent as `resource_metadata` in `WWW-Authenticate`.
    pub fn metadata_url(&self) -> &str {
        &self.url
    }

    /// The metadata document.
    pub fn document(&self) -> serde_json::Value {
        let mut document = serde_json::json!({
            "resource": &*self.resource,
            "bearer_methods_supported": ["header"],
        });
        if !self.authorization_servers.is_empty() {
            document["authorization_servers"] = self.authorization_servers.clone().into();
        }
        if !self.scopes.is_empty() {
            document["scopes_supported"] = self.scopes.clone().into();
        }
        document
    }

    /// A tower service answering `GET` (and `HEAD`) with the document as JSON (a
    /// `Response<String>`), for the route
    /// [`well_known_path`](Self::well_known_path) (axum: `route_service`). Serve it outside
    /// the authentication layer: clients read it before they hold a token.
    pub fn service(&self) -> MetadataService {
        MetadataService {
            body: Arc::from(self.document().to_string()),
        }
    }

    /// The layer that adds `resource_metadata="<metadata_url>"` to the `WWW-Authenticate`
    /// challenge of every 401 answer. Put it outside (before)
    /// [`Mka1AuthLayer`](crate::Mka1AuthLayer).
    pub fn challenge_layer(&self) -> ResourceMetadataLayer {
        // Checked in `new`: a url without quotes or backslashes.
        let param = format!(", resource_metadata=\"{}\"", self.url);
        ResourceMetadataLayer {
            param: Arc::from(param),
        }
    }
}

/// The service [`ProtectedResource::service`] returns.
///
/// ```
/// use mka1_auth::mcp::ProtectedResource;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let resource = ProtectedResource::new("https://tools.example.com/mcp").unwrap();
/// let request = http::Request::get(resource.well_known_path()).body(()).unwrap();
/// let response: http::Response<String> = resource.service().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert!(response.body().contains(r#""resource":"https://tools.example.com/mcp""#));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MetadataService {
    body: Arc<str>,
}

impl<ReqBody> Service<Request<ReqBody>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut response = if matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut response = Response::new(self.body.to_string());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
            response
        } else {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        };
        if req.method() == Method::HEAD {
            *response.body_mut() = String::new();
        }
        std::future::ready(Ok(response))
    }
}

/// A [`Layer`] adding `resource_metadata="<url>"` to the Bearer challenge of 401 answers
/// (RFC 9728 section 5.1). Made by [`ProtectedResource::challenge_layer`].
///
/// ```
/// use mka1_auth::mcp::ProtectedResource;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let resource = ProtectedResource::new("https://tools.example.com/mcp").unwrap();
/// let svc = resource.challenge_layer().layer(service_fn(|_: http::Request<()>| async {
///     let mut response = http::Response::new(());
///     *response.status_mut() = http::StatusCode::UNAUTHORIZED;
///     response.headers_mut().insert("www-authenticate", r#"Bearer realm="mka1""#.parse().unwrap());
///     Ok::<_, std::convert::Infallible>(response)
/// }));
/// let response = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"Bearer realm="mka1", resource_metadata="https://tools.example.com/.well-known/oauth-protected-resource/mcp""#,
/// );
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResourceMetadataLayer {
    param: Arc<str>,
}

impl<S> Layer<S> for ResourceMetadataLayer {
    type Service = ResourceMetadata<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResourceMetadata {
            inner,
            param: Arc::clone(&self.param),
        }
    }
}

/// The service [`ResourceMetadataLayer`] wraps around another.
///
/// ```
/// use mka1_auth::mcp::{ProtectedResource, ResourceMetadata};
/// use tower::{service_fn, Layer};
///
/// let resource = ProtectedResource::new("https://tools.example.com/mcp").unwrap();
/// let svc: ResourceMetadata<_> = resource
///     .challenge_layer()
///     .layer(service_fn(|_: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     }));
/// let _inner = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct ResourceMetadata<S> {
    inner: S,
    param: Arc<str>,
}

impl<S> ResourceMetadata<S> {
    /// The wrapped service.
    ///
    /// ```
    /// use mka1_auth::mcp::ProtectedResource;
    /// use tower::Layer;
    ///
    /// let resource = ProtectedResource::new("https://tools.example.com/mcp")?;
    /// let mut svc = resource.challenge_layer().layer(String::from("inner"));
    /// assert_eq!(svc.get_ref(), "inner");
    /// svc.get_mut().push('!');
    /// assert_eq!(svc.into_inner(), "inner!");
    /// # Ok::<(), mka1_auth::ConfigError>(())
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResourceMetadata<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            future: self.inner.call(req),
            param: Arc::clone(&self.param),
        }
    }
}

pin_project! {
    /// The response future of [`ResourceMetadata`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        param: Arc<str>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            point_at_metadata(&mut response, this.param);
        }
        Poll::Ready(Ok(response))
    }
}

/// Append `param` to each Bearer challenge of `response` that does not name metadata yet.
fn point_at_metadata<B>(response: &mut Response<B>, param: &str) {
    let headers = response.headers_mut();
    let challenges: Vec<HeaderValue> = headers.get_all(WWW_AUTHENTICATE).iter().cloned().collect();
    if challenges.is_empty() {
        return;
    }
    headers.remove(WWW_AUTHENTICATE);
    for challenge in challenges {
        let bytes = challenge.as_bytes();
        let bearer = bytes.len() >= 6 && bytes[..6].eq_ignore_ascii_case(b"bearer");
        let named = bytes
            .windows(b"resource_metadata=".len())
            .any(|w| w.eq_ignore_ascii_case(b"resource_metadata="));
        let value = if bearer && !named {
            let mut joined = bytes.to_vec();
            if bytes.len() == 6 {
                // A bare `Bearer` challenge: parameters follow a space, not a comma.
                joined.extend_from_slice(param.trim_start_matches(", ").as_bytes());
                joined.insert(6, b' ');
            } else {
                joined.extend_from_slice(param.as_bytes());
            }
            HeaderValue::from_bytes(&joined).unwrap_or(challenge)
        } else {
            challenge
        };
        headers.append(WWW_AUTHENTICATE, value);
    }
}
