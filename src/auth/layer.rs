//! The axum/tower middleware: every request is authenticated and
//! authorized before it reaches a handler, which then finds the
//! [`UserInfo`] and [`RequestInfo`] in its extensions. Failures are answered
//! here with Status bodies: 401 `Unauthorized`, 403 with the generic
//! apiserver's wording, 500 when a SubjectAccessReview cannot be made.
//! Always-allowed paths skip both steps. It must not touch response bodies
//! of requests it lets through.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::Request;
use tower::{Layer, Service};

use super::requestinfo::{self, RequestInfo};
use super::{AuthState, PeerCertificates, UserInfo, authz, requestheader};
use apimachinery::status::Status;

/// Wraps a router (or any service) with authentication and authorization:
/// `Router::new().route(..).layer(auth::layer(state))`.
pub fn layer(state: AuthState) -> AuthLayer {
    AuthLayer { state }
}

/// The layer [`layer`] returns.
#[derive(Clone)]
pub struct AuthLayer {
    state: AuthState,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, state: self.state.clone() }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    state: AuthState,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone is ready only if polled; keep the polled one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            match state.check(&mut req).await {
                Ok(()) => inner.call(req).await,
                Err(status) => Ok(status.into_response()),
            }
        })
    }
}

impl AuthState {
    /// Authenticates and authorizes `req`, adding [`UserInfo`] and
    /// [`RequestInfo`] to its extensions, or says which Status to answer.
    pub async fn check<B>(&self, req: &mut Request<B>) -> Result<(), Status> {
        let path = req.uri().path().to_string();
        if self.inner.always_allow.matches(&path) {
            let trust = self.trust().load();
            requestheader::strip_identity_headers(trust.request_header.as_ref(), req.headers_mut());
            return Ok(());
        }
        let chain = req.extensions().get::<PeerCertificates>().map(|p| p.0.clone());
        let chain = chain.as_deref().map(Vec::as_slice).unwrap_or(&[]);
        let user = match self.inner.authn.authenticate(chain, req.headers_mut()).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                tracing::debug!(path = %path, "anonymous request refused");
                return Err(Status::unauthorized("Unauthorized"));
            }
            Err(error) => {
                tracing::debug!(path = %path, %error, "authentication failed");
                return Err(Status::unauthorized("Unauthorized"));
            }
        };
        let info = requestinfo::parse(req.method(), &path, req.uri().query());
        match self.inner.authz.authorize(&user, &info).await {
            Ok(decision) if decision.allowed => {}
            Ok(decision) => {
                tracing::debug!(user = %user.name, verb = %info.verb, path = %path, reason = %decision.reason, "forbidden");
                return Err(authz::forbidden(&user, &info, &decision.reason));
            }
            Err(error) => {
                tracing::warn!(user = %user.name, path = %path, %error, "authorization failed");
                let uri = req.uri().to_string();
                return Err(Status::internal(format!("Internal Server Error: {uri:?}: {error}")));
            }
        }
        let ext = req.extensions_mut();
        ext.insert::<UserInfo>(user);
        ext.insert::<RequestInfo>(info);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
