//! The axum/tower middleware: every request is authenticated and
//! authorized before it reaches a handler, which then finds the
//! [`UserInfo`] and [`RequestInfo`] in its extensions. Failures are answered
//! here with Status bodies: 401 `Unauthorized`, 403 with the generic
//! apiserver's wording, 500 when a SubjectAccessReview cannot be made.
//! Always-allowed paths skip both steps. The two steps are separate layers
//! ([`authn_layer`], [`authz_layer`]) so the in-flight limit can sit between
//! them, as in the generic apiserver: a request without valid credentials
//! never holds a slot. [`layer`] is both in one. It must not touch response
//! bodies of requests it lets through.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::Request;
use tower::{Layer, Service};

use super::requestinfo::{self, RequestInfo};
use super::{AuthState, PeerCertificates, UserInfo, authz, requestheader};
use apimachinery::status::Status;

/// Which checks a layer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steps {
    Authenticate,
    Authorize,
    Both,
}

/// Wraps a router (or any service) with authentication and authorization:
/// `Router::new().route(..).layer(auth::layer(state))`.
pub fn layer(state: AuthState) -> AuthLayer {
    AuthLayer { state, steps: Steps::Both }
}

/// Authentication only; [`authz_layer`] must sit inside it.
pub fn authn_layer(state: AuthState) -> AuthLayer {
    AuthLayer { state, steps: Steps::Authenticate }
}

/// Authorization only, of requests [`authn_layer`] has let through.
pub fn authz_layer(state: AuthState) -> AuthLayer {
    AuthLayer { state, steps: Steps::Authorize }
}

/// Marks a request to an always-allowed path (set by authentication).
#[derive(Debug, Clone, Copy)]
struct AlwaysAllowed;

/// Where the authorization decision of a request is recorded for an outer
/// layer (the audit log's `authorization.k8s.io/*` annotations). Put it in
/// the request's extensions before authorization runs.
#[derive(Debug, Clone, Default)]
pub struct DecisionRecord(pub Arc<Mutex<Option<authz::Decision>>>);

impl DecisionRecord {
    /// The decision, once made.
    pub fn get(&self) -> Option<authz::Decision> {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn set(&self, d: &authz::Decision) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(d.clone());
        }
    }
}

/// Where authentication records the user for an outer layer (audit).
#[derive(Debug, Clone, Default)]
pub struct UserRecord(pub Arc<Mutex<Option<UserInfo>>>);

impl UserRecord {
    /// The authenticated user, once known.
    pub fn get(&self) -> Option<UserInfo> {
        self.0.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn set(&self, user: &UserInfo) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(user.clone());
        }
    }
}

/// The layer [`layer`] returns.
#[derive(Clone)]
pub struct AuthLayer {
    state: AuthState,
    steps: Steps,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, state: self.state.clone(), steps: self.steps }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    state: AuthState,
    steps: Steps,
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
        let (state, steps) = (self.state.clone(), self.steps);
        Box::pin(async move {
            let checked = match steps {
                Steps::Authenticate => state.authenticate(&mut req).await,
                Steps::Authorize => state.authorize(&mut req).await,
                Steps::Both => state.check(&mut req).await,
            };
            match checked {
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
        self.authenticate(req).await?;
        self.authorize(req).await
    }

    /// Who sent `req` (added to its extensions as [`UserInfo`]); always-
    /// allowed paths pass without credentials. A 401 Status otherwise.
    pub async fn authenticate<B>(&self, req: &mut Request<B>) -> Result<(), Status> {
        let path = req.uri().path().to_string();
        if self.inner.always_allow.matches(&path) {
            let trust = self.trust().load();
            requestheader::strip_identity_headers(trust.request_header.as_ref(), req.headers_mut());
            req.extensions_mut().insert(AlwaysAllowed);
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
        if let Some(record) = req.extensions().get::<UserRecord>() {
            record.set(&user);
        }
        req.extensions_mut().insert::<UserInfo>(user);
        Ok(())
    }

    /// Whether the user [`AuthState::authenticate`] found may do what `req`
    /// asks ([`RequestInfo`] is added to its extensions); a 403 or 500
    /// Status otherwise.
    pub async fn authorize<B>(&self, req: &mut Request<B>) -> Result<(), Status> {
        if req.extensions().get::<AlwaysAllowed>().is_some() {
            return Ok(());
        }
        let path = req.uri().path().to_string();
        let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
            // Only reachable if the layers are composed wrongly: refuse.
            return Err(Status::unauthorized("Unauthorized"));
        };
        let info = requestinfo::parse(req.method(), &path, req.uri().query());
        let record = req.extensions().get::<DecisionRecord>().cloned();
        match self.inner.authz.authorize(&user, &info).await {
            Ok(decision) if decision.allowed => {
                if let Some(r) = &record {
                    r.set(&decision);
                }
            }
            Ok(decision) => {
                if let Some(r) = &record {
                    r.set(&decision);
                }
                tracing::debug!(user = %user.name, verb = %info.verb, path = %path, reason = %decision.reason, "forbidden");
                return Err(authz::forbidden(&user, &info, &decision.reason));
            }
            Err(error) => {
                tracing::warn!(user = %user.name, path = %path, %error, "authorization failed");
                let uri = req.uri().to_string();
                return Err(Status::internal(format!("Internal Server Error: {uri:?}: {error}")));
            }
        }
        req.extensions_mut().insert::<RequestInfo>(info);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
