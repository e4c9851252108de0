//! Test doubles and fixtures for the auth chain: reviewers that count their
//! calls, and a set of CAs with a trust config over them. Test-only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rustls::pki_types::CertificateDer;

use super::authz::{AccessReviewer, Attributes, Decision};
use super::token::{ReviewError, TokenOutcome, TokenReviewer};
use super::trust::{FlagFiles, TrustConfig, build_config};
use super::x509::chain_from_pem;
use super::{AuthSettings, AuthState, TrustStore, UserInfo};
use crate::config::TrustOverrides;
use tls::pki::Ca;

/// Tokens it knows map to users; counts reviews.
#[derive(Default)]
pub struct FakeTokens {
    pub users: Mutex<BTreeMap<String, UserInfo>>,
    pub calls: AtomicUsize,
}

impl FakeTokens {
    pub fn with(token: &str, name: &str, groups: &[&str]) -> Arc<FakeTokens> {
        let f = FakeTokens::default();
        f.users.lock().unwrap().insert(token.to_string(), user(name, groups));
        Arc::new(f)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenReviewer for FakeTokens {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let out = match self.users.lock().unwrap().get(token) {
            Some(u) => TokenOutcome::Authenticated(u.clone()),
            None => TokenOutcome::Rejected("token not found".into()),
        };
        Box::pin(async move { Ok(out) })
    }
}

/// Allows the listed user names; denies others with a reason; counts calls
/// and records what it was asked. `fail` makes every review an error.
#[derive(Default)]
pub struct FakeAccess {
    pub allowed_users: Mutex<Vec<String>>,
    pub asked: Mutex<Vec<(UserInfo, Attributes)>>,
    pub calls: AtomicUsize,
    pub fail: std::sync::atomic::AtomicBool,
}

impl FakeAccess {
    pub fn allowing(names: &[&str]) -> Arc<FakeAccess> {
        let f = FakeAccess::default();
        *f.allowed_users.lock().unwrap() = names.iter().map(|s| s.to_string()).collect();
        Arc::new(f)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl AccessReviewer for FakeAccess {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, ReviewError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.asked.lock().unwrap().push((user.clone(), attributes.clone()));
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(ReviewError::Request { review: "SubjectAccessReview", reason: "connection refused".into() })
            });
        }
        let allowed = self.allowed_users.lock().unwrap().contains(&user.name);
        let reason = if allowed { String::new() } else { "RBAC: access denied".to_string() };
        Box::pin(async move { Ok(Decision { allowed, reason }) })
    }
}

pub fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..UserInfo::default() }
}

/// A client CA, a front-proxy CA and a CA nobody trusts.
pub struct Cas {
    pub client: Ca,
    pub proxy: Ca,
    pub rogue: Ca,
}

impl Cas {
    pub fn new() -> Cas {
        Cas {
            client: Ca::new("client-ca").unwrap(),
            proxy: Ca::new("front-proxy-ca").unwrap(),
            rogue: Ca::new("rogue").unwrap(),
        }
    }

    /// Trust as kubeadm sets it up: allowed name `front-proxy-client`.
    pub fn trust(&self) -> TrustConfig {
        trust_over(&self.client, &self.proxy)
    }
}

/// Trust with `client` as client CA and `proxy` as front-proxy CA.
pub fn trust_over(client: &Ca, proxy: &Ca) -> TrustConfig {
    let data: BTreeMap<String, String> = [
        ("client-ca-file", client.cert_pem()),
        ("requestheader-client-ca-file", proxy.cert_pem()),
        ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
        ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
        ("requestheader-extra-headers-prefix", r#"["X-Remote-Extra-"]"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    build_config(Some(&data), &TrustOverrides::default(), &FlagFiles::default()).unwrap()
}

/// A client certificate chain issued by `ca`.
pub fn chain(ca: &Ca, cn: &str, orgs: &[&str]) -> Vec<CertificateDer<'static>> {
    chain_from_pem(&ca.issue_client(cn, orgs).unwrap().cert_pem).unwrap()
}

/// An auth state over fixed trust and the doubles.
pub fn state(trust: Arc<TrustStore>, tokens: Arc<FakeTokens>, access: Arc<FakeAccess>) -> AuthState {
    AuthState::new(trust, tokens, access, &AuthSettings::default())
}
