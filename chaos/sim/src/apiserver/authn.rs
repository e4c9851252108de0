//! Who is calling the stand-in: x509 client certificates signed by its
//! client CA (user = CN, groups = O) and bearer tokens from its token table,
//! as kube-apiserver's own authenticators do. Every authenticated user also
//! gets `system:authenticated`. It decides identity only; what a user may do
//! is `reviews`' policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use serde::Serialize;

use super::router::AppState;
use apimachinery::status::Status;
use tls::{PeerCertificates, TlsError};

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated identity (`user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with groups, no uid, no extra.
    pub fn new(username: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: username.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn with_authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_string());
        }
        self
    }
}

/// The client CA verifier and the token table.
pub struct Authenticator {
    client_verifier: Arc<dyn ClientCertVerifier>,
    tokens: RwLock<HashMap<String, UserInfo>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Trusts client certificates signed by `client_ca_pem`.
    pub fn new(client_ca_pem: &str) -> Result<Authenticator, TlsError> {
        let roots = tls::pem::roots_from_pem(client_ca_pem.as_bytes(), "the stand-in client CA")?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|source| TlsError::Verifier { what: "the stand-in client CA".into(), source })?;
        Ok(Authenticator { client_verifier: verifier, tokens: RwLock::new(HashMap::new()) })
    }

    /// Adds (or replaces) a bearer token.
    pub fn add_token(&self, token: &str, user: UserInfo) {
        self.tokens.write().unwrap_or_else(|p| p.into_inner()).insert(token.to_string(), user);
    }

    /// The user a token stands for, without `system:authenticated`.
    pub fn lookup_token(&self, token: &str) -> Option<UserInfo> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }

    /// The user of a client certificate chain signed by the client CA.
    pub fn from_chain(&self, chain: &[CertificateDer<'static>]) -> Option<UserInfo> {
        let (leaf, intermediates) = chain.split_first()?;
        self.client_verifier.verify_client_cert(leaf, intermediates, UnixTime::now()).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let subject = cert.subject();
        let username = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
        Some(UserInfo { username, groups, ..UserInfo::default() })
    }

    /// Authenticates a request: certificate first, then bearer token.
    pub fn authenticate(&self, headers: &http::HeaderMap, chain: Option<&PeerCertificates>) -> Option<UserInfo> {
        if let Some(user) = chain.and_then(|c| self.from_chain(&c.0)) {
            return Some(user.with_authenticated());
        }
        let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = auth.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.lookup_token(token.trim()).map(UserInfo::with_authenticated)
    }
}

/// Middleware: puts the caller's [`UserInfo`] into the request or answers 401.
pub async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let user = state.authn.authenticate(req.headers(), req.extensions().get::<PeerCertificates>());
    match user {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => Status::unauthorized("Unauthorized").into_response(),
    }
}
