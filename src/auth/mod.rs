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
//! implementations and start-up), [`layer`] (the middleware). Its flags and
//! their validation are `config`'s ([`crate::config::AuthSettings`]).

pub mod authn;
pub mod authz;
pub mod cache;
pub mod kube;
pub mod layer;
pub mod requestheader;
pub mod requestinfo;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
pub mod token;
pub mod trust;
pub mod x509;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::authz::{AccessReviewer, Attributes, Decision};
pub use self::layer::{AuthLayer, AuthService, DecisionRecord, UserRecord, authn_layer, authz_layer, layer};
pub use self::token::{ReviewError, TokenOutcome, TokenReviewer};
pub use self::trust::{SourceUpdate, TrustConfig, TrustSource, TrustStore};
pub use crate::config::{AlwaysAllowPaths, AuthSettings};
pub use tls::serve::PeerCertificates;

/// The authenticated user, put in the request extensions by the layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
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
        settings: &AuthSettings,
    ) -> AuthState {
        let tokens = token::TokenAuthenticator::new(tokens, settings.token_cache_ttl, settings.token_cache_size)
            .with_flood_limits(settings.token_failure_ttl, settings.token_reviews_in_flight);
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
                always_allow: settings.always_allow_paths.clone(),
            }),
        }
    }

    /// The trust store the chain reads.
    pub fn trust(&self) -> &Arc<TrustStore> {
        self.inner.authn.trust()
    }
}
