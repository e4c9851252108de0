//! Delegated authentication and authorization, as a Kubernetes extension
//! apiserver does it: trust from `kube-system/extension-apiserver-authentication`
//! (reloaded), the front-proxy / client-certificate / bearer-token chain,
//! SubjectAccessReview with caches, and the axum layer that applies them to
//! every request. It does not serve TLS (`tls` does, handing us the peer
//! chain) and does not decide what a handler returns.
//!
//! Map: [`requestinfo`] (what a request asks), [`x509`] (chain checks),
//! [`trust`] (what we trust, reloaded), [`requestheader`] (front proxy),
//! [`token`] (TokenReview + cache), [`authn`] (the chain), [`authz`]
//! (SubjectAccessReview + cache, 403 wording), [`kube`] (the Kubernetes
//! implementations and start-up), [`flags`] (the generic apiserver flags),
//! [`layer`] (the middleware).

pub mod authn;
pub mod authz;
pub mod cache;
pub mod flags;
pub mod kube;
pub mod layer;
pub mod requestheader;
pub mod requestinfo;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
pub mod token;
pub mod trust;
pub mod x509;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use self::authz::{AccessReviewer, AlwaysAllowPaths, Attributes, Decision};
pub use self::flags::AuthFlags;
pub use self::layer::{AuthLayer, AuthService, layer};
pub use self::token::{ReviewError, TokenOutcome, TokenReviewer};
pub use self::trust::{SourceUpdate, TrustConfig, TrustSource, TrustStore};
pub use tls::serve::PeerCertificates;

/// The authenticated user, put in the request extensions by the layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Tunables of the chain; defaults are the generic apiserver's.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Paths that need neither authentication nor authorization.
    pub always_allow_paths: AlwaysAllowPaths,
    pub token_cache_ttl: Duration,
    pub token_cache_size: usize,
    pub authorized_ttl: Duration,
    pub unauthorized_ttl: Duration,
    pub decision_cache_size: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            always_allow_paths: AlwaysAllowPaths::defaults(),
            token_cache_ttl: token::DEFAULT_TOKEN_TTL,
            token_cache_size: token::DEFAULT_TOKEN_CACHE_SIZE,
            authorized_ttl: authz::DEFAULT_ALLOWED_TTL,
            unauthorized_ttl: authz::DEFAULT_DENIED_TTL,
            decision_cache_size: authz::DEFAULT_DECISION_CACHE_SIZE,
        }
    }
}

/// Everything the layer needs; cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    inner: Arc<Inner>,
}

struct Inner {
    authn: authn::Authenticator,
    authz: authz::Authorizer,
    always_allow: AlwaysAllowPaths,
}

impl AuthState {
    /// Builds the chain over a trust store and two reviewers.
    pub fn new(
        trust: Arc<TrustStore>,
        tokens: Arc<dyn TokenReviewer>,
        access: Arc<dyn AccessReviewer>,
        settings: AuthSettings,
    ) -> AuthState {
        let tokens = token::TokenAuthenticator::new(tokens, settings.token_cache_ttl, settings.token_cache_size);
        let authz = authz::Authorizer::new(
            access,
            settings.authorized_ttl,
            settings.unauthorized_ttl,
            settings.decision_cache_size,
        );
        AuthState {
            inner: Arc::new(Inner {
                authn: authn::Authenticator::new(trust, tokens),
                authz,
                always_allow: settings.always_allow_paths,
            }),
        }
    }

    /// The trust store the chain reads.
    pub fn trust(&self) -> &Arc<TrustStore> {
        self.inner.authn.trust()
    }
}
