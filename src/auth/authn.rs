//! The authentication chain of a delegating apiserver, in its order:
//! front proxy (request-header CA + allowed CN + identity headers), client
//! certificate (client CA: user = CN, groups = O), bearer token
//! (TokenReview), else anonymous. Every authenticated user gains
//! `system:authenticated`. Identity headers are removed from every request,
//! and a consumed `Authorization` header too. It must not authorize.

use std::sync::Arc;

use http::{HeaderMap, header};
use rustls::pki_types::CertificateDer;

use super::UserInfo;
use super::requestheader::{self, FrontProxy};
use super::token::{ReviewError, TokenAuthenticator, TokenOutcome, bearer_token};
use super::trust::TrustStore;
use super::x509::ChainError;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Why a request could not be authenticated (answered with a 401).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthnError {
    #[error("front proxy: {0}")]
    FrontProxy(String),
    #[error("client certificate: {0}")]
    ClientCert(ChainError),
    #[error("bearer token rejected: {0}")]
    TokenRejected(String),
    #[error("bearer token: {0}")]
    TokenReview(ReviewError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<AuthnError>),
}

/// Runs the chain.
pub struct Authenticator {
    trust: Arc<TrustStore>,
    tokens: TokenAuthenticator,
}

impl Authenticator {
    pub fn new(trust: Arc<TrustStore>, tokens: TokenAuthenticator) -> Self {
        Authenticator { trust, tokens }
    }

    /// The trust in force.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// Who sent the request: `Ok(Some(user))`, `Ok(None)` for anonymous, or
    /// an error when a credential was presented and failed. `chain` is the
    /// client's certificate chain (leaf first; empty if none). Identity
    /// headers are removed from `headers` in every case.
    pub async fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        headers: &mut HeaderMap,
    ) -> Result<Option<UserInfo>, AuthnError> {
        let trust = self.trust.load();
        let front = requestheader::authenticate(trust.request_header.as_ref(), chain, headers);
        requestheader::strip_identity_headers(trust.request_header.as_ref(), headers);
        let mut errors = Vec::new();
        match front {
            FrontProxy::User(user) => return Ok(Some(with_authenticated_group(user))),
            FrontProxy::Rejected(reason) => return Err(AuthnError::FrontProxy(reason)),
            FrontProxy::NoUser | FrontProxy::NotApplicable => {}
        }

        if let (Some(ca), false) = (&trust.client_ca, chain.is_empty()) {
            match ca.verify(chain) {
                Ok(subject) if !subject.common_name.is_empty() => {
                    return Ok(Some(with_authenticated_group(UserInfo {
                        name: subject.common_name,
                        uid: String::new(),
                        groups: subject.organizations,
                        extra: Default::default(),
                    })));
                }
                Ok(_) => {}
                Err(e) => errors.push(AuthnError::ClientCert(e)),
            }
        }

        let token = headers.get(header::AUTHORIZATION).and_then(|v| bearer_token(v.as_bytes())).map(str::to_string);
        if let Some(token) = token {
            match self.tokens.authenticate(&token).await {
                Ok(TokenOutcome::Authenticated(user)) => {
                    headers.remove(header::AUTHORIZATION);
                    return Ok(Some(with_authenticated_group(user)));
                }
                Ok(TokenOutcome::Rejected(reason)) => errors.push(AuthnError::TokenRejected(reason)),
                Err(e) => errors.push(AuthnError::TokenReview(e)),
            }
        }

        match errors.len() {
            0 => Ok(None),
            1 => Err(errors.remove(0)),
            _ => Err(AuthnError::Several(errors)),
        }
    }
}

/// Adds `system:authenticated` unless present (or the user is anonymous).
fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    let skip = user.name == "system:anonymous"
        || user.groups.iter().any(|g| g == AUTHENTICATED_GROUP || g == "system:unauthenticated");
    if !skip {
        user.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    user
}

#[cfg(test)]
mod tests;
