//! The Kubernetes-backed implementations: TokenReview and
//! SubjectAccessReview over a `kube::Client`, the watch of the
//! authentication ConfigMap, and [`start`], which wires them into an
//! [`AuthState`] from the settings. Only calls and conversions live here; the
//! decisions are in `authn`/`authz`, the parsing in `trust`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::authz::{AccessReviewer, Attributes, Decision};
use super::token::{ReviewError, TokenOutcome, TokenReviewer};
use super::trust::{
    CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, FLAG_FILE_POLL, SourceUpdate, TrustConfig, TrustSource, TrustStore,
    run_reloader,
};
use super::{AuthState, UserInfo};
use crate::config::AuthSettings;

/// Path of TokenReview.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// Path of SubjectAccessReview.
pub const ACCESS_REVIEW_PATH: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// The auth machinery could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("{flag} {path}: {reason}")]
    Kubeconfig { flag: &'static str, path: PathBuf, reason: String },
    #[error(
        "unable to load configmap based request-header-client-ca-file: reading ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: \
         {reason}. Usually fixed by 'kubectl create rolebinding -n kube-system ROLEBINDING_NAME \
         --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA'; \
         --authentication-tolerate-lookup-failure starts without it, --authentication-skip-lookup never reads it"
    )]
    Lookup { reason: String },
}

/// How long the first read of the authentication ConfigMap may take.
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The first read of the authentication ConfigMap, as the generic
/// apiserver makes it at start: absent is fine (nothing to trust from it),
/// any other failure is an error.
pub async fn lookup(client: &Client) -> Result<(), String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE);
    match tokio::time::timeout(LOOKUP_TIMEOUT, api.get_opt(CONFIGMAP_NAME)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

fn post<T: serde::Serialize>(
    path: &str,
    body: &T,
    review: &'static str,
) -> Result<http::Request<Vec<u8>>, ReviewError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ReviewError::Request { review, reason: e.to_string() })?;
    http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(bytes)
        .map_err(|e| ReviewError::Request { review, reason: e.to_string() })
}

/// TokenReview through kube-apiserver.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: Client,
}

impl KubeTokenReviewer {
    pub fn new(client: Client) -> Self {
        KubeTokenReviewer { client }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>> {
        Box::pin(async move {
            const REVIEW: &str = "TokenReview";
            let body = TokenReview {
                spec: TokenReviewSpec { token: Some(token.to_string()), audiences: None },
                ..TokenReview::default()
            };
            let req = post(TOKEN_REVIEW_PATH, &body, REVIEW)?;
            let answer: TokenReview = self
                .client
                .request(req)
                .await
                .map_err(|e| ReviewError::Request { review: REVIEW, reason: e.to_string() })?;
            let status = answer.status.ok_or(ReviewError::NoStatus { review: REVIEW })?;
            match (status.authenticated, status.user) {
                (Some(true), Some(user)) => Ok(TokenOutcome::Authenticated(UserInfo {
                    name: user.username.unwrap_or_default(),
                    uid: user.uid.unwrap_or_default(),
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default(),
                })),
                _ => Ok(TokenOutcome::Rejected(status.error.unwrap_or_default())),
            }
        })
    }
}

/// SubjectAccessReview through kube-apiserver.
#[derive(Clone)]
pub struct KubeAccessReviewer {
    client: Client,
}

impl KubeAccessReviewer {
    pub fn new(client: Client) -> Self {
        KubeAccessReviewer { client }
    }
}

/// The SubjectAccessReview kube-apiserver is asked.
pub fn access_review(user: &UserInfo, attributes: &Attributes) -> SubjectAccessReview {
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    let (resource_attributes, non_resource_attributes) = match attributes {
        Attributes::Resource { namespace, verb, group, version, resource, subresource, name } => (
            Some(ResourceAttributes {
                namespace: some(namespace),
                verb: some(verb),
                group: some(group),
                version: some(version),
                resource: some(resource),
                subresource: some(subresource),
                name: some(name),
                ..ResourceAttributes::default()
            }),
            None,
        ),
        Attributes::NonResource { path, verb } => {
            (None, Some(NonResourceAttributes { path: some(path), verb: some(verb) }))
        }
    };
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: Some(user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: Some(user.extra.clone()),
            resource_attributes,
            non_resource_attributes,
        },
        ..SubjectAccessReview::default()
    }
}

impl AccessReviewer for KubeAccessReviewer {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, ReviewError>> {
        Box::pin(async move {
            const REVIEW: &str = "SubjectAccessReview";
            let req = post(ACCESS_REVIEW_PATH, &access_review(user, attributes), REVIEW)?;
            let answer: SubjectAccessReview = self
                .client
                .request(req)
                .await
                .map_err(|e| ReviewError::Request { review: REVIEW, reason: e.to_string() })?;
            let status = answer.status.ok_or(ReviewError::NoStatus { review: REVIEW })?;
            // `denied` only short-circuits other authorizers; without an
            // allow, the request is refused either way.
            let mut reason = status.reason.unwrap_or_default();
            if let Some(e) = status.evaluation_error.filter(|e| !e.is_empty()) {
                tracing::debug!(error = %e, "SubjectAccessReview evaluation error");
                if reason.is_empty() && !status.allowed {
                    reason = e;
                }
            }
            Ok(Decision { allowed: status.allowed, reason })
        })
    }
}

/// Watches ConfigMap `kube-system/extension-apiserver-authentication`;
/// the watcher re-lists with backoff after errors.
pub struct KubeTrustSource {
    events: BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>,
    /// Data seen during a (re-)list, reported when the list is complete.
    listing: Option<Option<BTreeMap<String, String>>>,
}

impl KubeTrustSource {
    pub fn new(client: Client) -> Self {
        let api: Api<ConfigMap> = Api::namespaced(client, CONFIGMAP_NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}"));
        KubeTrustSource { events: watcher(api, config).default_backoff().boxed(), listing: None }
    }
}

impl TrustSource for KubeTrustSource {
    fn next_update(&mut self) -> BoxFuture<'_, Option<SourceUpdate>> {
        Box::pin(async move {
            loop {
                let event = match self.events.try_next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => return None,
                    Err(error) => {
                        tracing::warn!(%error, configmap = CONFIGMAP_NAME, "watching the authentication ConfigMap; retrying");
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => self.listing = Some(None),
                    watcher::Event::InitApply(cm) => self.listing = Some(Some(cm.data.unwrap_or_default())),
                    watcher::Event::InitDone => {
                        return Some(match self.listing.take().flatten() {
                            Some(data) => SourceUpdate::Data(data),
                            None => SourceUpdate::Absent,
                        });
                    }
                    watcher::Event::Apply(cm) => {
                        return Some(SourceUpdate::Data(cm.data.unwrap_or_default()));
                    }
                    watcher::Event::Delete(_) => return Some(SourceUpdate::Absent),
                }
            }
        })
    }
}

/// A client from a kubeconfig file (`--authentication-kubeconfig`, ...).
pub async fn client_from_kubeconfig(flag: &'static str, path: &Path) -> Result<Client, AuthSetupError> {
    let err = |reason: String| AuthSetupError::Kubeconfig { flag, path: path.to_path_buf(), reason };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    crate::kube_client::client(config).map_err(|e| err(e.to_string()))
}

/// Builds the auth state from the settings: reviewers on the
/// `--authentication-kubeconfig`/`--authorization-kubeconfig` clients (else
/// `main`), trust from the ConfigMap (unless both CA flags are set or
/// `--authentication-skip-lookup`; a first read that fails stops the start
/// unless `--authentication-tolerate-lookup-failure`) with flag overrides, reloaded by the returned task until `cancel`. Requests
/// that need a certificate fail until the first load; wait for it with
/// `state.trust().wait_for_generation(1)`.
pub async fn start(
    settings: &AuthSettings,
    main: Client,
    cancel: CancellationToken,
) -> Result<(AuthState, JoinHandle<()>), AuthSetupError> {
    let authn_client = match &settings.authentication_kubeconfig {
        Some(p) => client_from_kubeconfig("--authentication-kubeconfig", p).await?,
        None => main.clone(),
    };
    let authz_client = match &settings.authorization_kubeconfig {
        Some(p) => client_from_kubeconfig("--authorization-kubeconfig", p).await?,
        None => main,
    };
    let overrides = settings.trust.clone();
    let reads_configmap = !settings.skip_lookup && !overrides.skips_lookup();
    if reads_configmap && let Err(reason) = lookup(&authn_client).await {
        if !settings.tolerate_lookup_failure {
            return Err(AuthSetupError::Lookup { reason });
        }
        tracing::warn!(
            configmap = CONFIGMAP_NAME,
            namespace = CONFIGMAP_NAMESPACE,
            %reason,
            "cannot read the authentication ConfigMap; going on without it (--authentication-tolerate-lookup-failure): \
             front-proxy and client-certificate requests are refused until it can be read"
        );
    }
    let source: Option<Box<dyn TrustSource>> =
        if reads_configmap { Some(Box::new(KubeTrustSource::new(authn_client.clone()))) } else { None };
    let store = TrustStore::new(TrustConfig::default());
    let task = tokio::spawn(run_reloader(store.clone(), source, overrides, FLAG_FILE_POLL, cancel));
    let state = AuthState::new(
        store,
        Arc::new(KubeTokenReviewer::new(authn_client)),
        Arc::new(KubeAccessReviewer::new(authz_client)),
        settings,
    );
    Ok((state, task))
}

#[cfg(test)]
mod tests;
