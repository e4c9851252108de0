//! The stand-in kube-apiserver that the dev mode, the tests and the real
//! `kubectl` talk to, since no real kube-apiserver runs here. It serves
//! HTTPS with its own CA: discovery, list/get/watch of Nodes, Pods and
//! ConfigMaps (enough for kube-rs reflectors and kubectl), get, create and
//! update of Secrets, the
//! `extension-apiserver-authentication` ConfigMap, TokenReview and
//! SubjectAccessReview, and an aggregation proxy for `metrics.k8s.io`
//! that behaves like kube-aggregator. Tests change the cluster through the
//! [`StandInApiServer`] handle; every change is a watch event.
//! It must never be used by a server in production.

pub mod authn;
pub mod discovery;
pub mod faults;
mod handle;
pub mod kubeconfig;
pub mod objects;
pub mod proxy;
pub mod resources;
pub mod reviews;
pub mod router;
pub mod secrets;
pub mod selector;
pub mod store;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use authn::UserInfo;
pub use handle::SecretReader;
pub use reviews::{Attributes, Decision, Policy, PolicyRule, Subject};

use super::cluster::ClusterSpec;
use router::Shared;
use store::Store;
use tls::pki::{Ca, CertPair, PkiError, Usage};
use tls::{TlsError, TlsPolicy, TlsSource};

/// The ConfigMap kube-apiserver publishes its client-auth settings in.
pub const AUTH_CONFIGMAP: (&str, &str) = ("kube-system", "extension-apiserver-authentication");
/// The front-proxy client certificate's CN (kubeadm's).
pub const FRONT_PROXY_CN: &str = "front-proxy-client";

/// How to run the stand-in.
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// Where to serve HTTPS (port 0 picks a free port; see [`StandInApiServer::addr`]).
    pub addr: SocketAddr,
    /// How often watches that allow bookmarks get a BOOKMARK event.
    pub bookmark_interval: Duration,
    /// How many events the watch log keeps before older resourceVersions get 410.
    pub event_log_capacity: usize,
    /// The name backends' certificates are verified against once a CA bundle is set.
    pub metrics_server_name: String,
    /// The SubjectAccessReview policy to start with.
    pub policy: Policy,
}

impl ApiServerOptions {
    pub fn new(addr: SocketAddr) -> ApiServerOptions {
        ApiServerOptions {
            addr,
            bookmark_interval: Duration::from_secs(10),
            event_log_capacity: 100_000,
            metrics_server_name: "metrics-server.kube-system.svc".to_string(),
            policy: Policy::standard(),
        }
    }
}

/// Who a kubeconfig authenticates as.
#[derive(Debug, Clone)]
pub enum KubeconfigUser {
    /// A client certificate from the stand-in's client CA (user = CN, groups = O).
    ClientCert { user: String, groups: Vec<String> },
    /// A bearer token, added to the token table for this user and groups.
    Token { token: String, user: String, groups: Vec<String> },
}

impl KubeconfigUser {
    /// kubectl's default dev identity: `dev-user` in group `dev-team` (not `system:masters`).
    pub fn dev_user() -> KubeconfigUser {
        KubeconfigUser::ClientCert { user: "dev-user".into(), groups: vec!["dev-team".into()] }
    }
}

/// Failures of the stand-in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stand-in apiserver certificates: {0}")]
    Pki(#[from] PkiError),
    #[error("stand-in apiserver TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("binding the stand-in apiserver to {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: std::io::Error },
    #[error("{kind} {name:?} does not exist in the stand-in apiserver")]
    NotFound { kind: &'static str, name: String },
}

struct FrontProxy {
    ca: Ca,
    client: CertPair,
    generation: u32,
}

/// A running stand-in kube-apiserver and the handle tests change it through.
pub struct StandInApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    serving_ca: Ca,
    client_ca: Ca,
    front_proxy: Mutex<FrontProxy>,
    /// Injected faults (see [`faults`]).
    faults: Arc<faults::ApiFaults>,
    stop: CancellationToken,
}

impl std::fmt::Debug for StandInApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandInApiServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn new_front_proxy(generation: u32) -> Result<FrontProxy, PkiError> {
    let ca = Ca::new(&format!("stand-in-front-proxy-ca-{generation}"))?;
    let client = ca.issue(&tls::pki::LeafSpec {
        common_name: FRONT_PROXY_CN,
        organizations: &[],
        sans: &[],
        usage: Usage::Client,
    })?;
    Ok(FrontProxy { ca, client, generation })
}

fn json_array(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

impl StandInApiServer {
    /// Generates its CAs, loads `spec`'s nodes and pods, binds `opts.addr`
    /// and serves until `shutdown` is cancelled or the handle is dropped.
    pub async fn start(
        opts: ApiServerOptions,
        spec: &ClusterSpec,
        shutdown: CancellationToken,
    ) -> Result<StandInApiServer, Error> {
        let serving_ca = Ca::new("stand-in-apiserver-ca")?;
        let client_ca = Ca::new("stand-in-client-ca")?;
        let front_proxy = new_front_proxy(1)?;
        let listener =
            tokio::net::TcpListener::bind(opts.addr).await.map_err(|source| Error::Bind { addr: opts.addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr: opts.addr, source })?;
        let sans: Vec<String> =
            [addr.ip().to_string(), "localhost".into(), "kubernetes".into(), "kubernetes.default.svc".into()].into();
        let serving = serving_ca.issue_server("kube-apiserver", &sans)?;
        let chain = tls::pem::certs_from_pem(serving.cert_pem.as_bytes(), "the stand-in serving certificate")?;
        let key = tls::pem::key_from_pem(serving.key_pem.as_bytes(), "the stand-in serving key")?;
        // Client certificates are requested, not required; `authn` verifies them.
        let tls = tls::api_server_config(chain, key, &TlsPolicy::default())?;
        let stop = shutdown.child_token();
        let shared = Arc::new(Shared {
            store: Store::new(opts.event_log_capacity),
            authn: authn::Authenticator::new(client_ca.cert_pem())?,
            reviews: reviews::Reviews::new(opts.policy.clone()),
            proxy: proxy::Aggregator::new(&opts.metrics_server_name, front_proxy.client.clone())?,
            bookmark_interval: opts.bookmark_interval,
            shutdown: stop.clone(),
            statefulsets: Default::default(),
            secrets: Default::default(),
        });
        let server = StandInApiServer {
            shared: shared.clone(),
            addr,
            serving_ca,
            client_ca,
            front_proxy: Mutex::new(front_proxy),
            faults: Arc::new(faults::ApiFaults::default()),
            stop: stop.clone(),
        };
        server.publish_auth_configmap();
        let created = objects::now_secs() - 3_600;
        for node in &spec.nodes {
            server.put_node(node, created);
        }
        let app =
            router::router(shared).layer(axum::middleware::from_fn_with_state(server.faults.clone(), faults::apply));
        tokio::spawn(async move {
            if let Err(error) = tls::serve(listener, TlsSource::new(tls), app, stop).await {
                tracing::warn!(%addr, %error, "stand-in apiserver stopped serving");
            }
        });
        tracing::info!(%addr, nodes = spec.nodes.len(), "stand-in apiserver serving");
        Ok(server)
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA that signed the serving certificate (kubeconfig `certificate-authority-data`).
    pub fn ca_pem(&self) -> String {
        self.serving_ca.cert_pem().to_string()
    }

    /// The CA its clients' certificates are signed by (`client-ca-file`).
    pub fn client_ca_pem(&self) -> String {
        self.client_ca.cert_pem().to_string()
    }

    /// The current front-proxy CA (`requestheader-client-ca-file`).
    pub fn front_proxy_ca_pem(&self) -> String {
        self.lock_front_proxy().ca.cert_pem().to_string()
    }

    /// The current front-proxy client certificate the proxy presents.
    pub fn front_proxy_client(&self) -> CertPair {
        self.lock_front_proxy().client.clone()
    }

    /// A client certificate from the current front-proxy CA with another
    /// common name (one `requestheader-allowed-names` does not list), for
    /// testing that servers check the name and not only the CA.
    pub fn issue_front_proxy_cert(&self, common_name: &str) -> Result<CertPair, Error> {
        Ok(self.lock_front_proxy().ca.issue_client(common_name, &[])?)
    }

    /// A client certificate the stand-in accepts: user `user`, groups `groups`.
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> Result<CertPair, Error> {
        Ok(self.client_ca.issue_client(user, groups)?)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    fn lock_front_proxy(&self) -> std::sync::MutexGuard<'_, FrontProxy> {
        self.front_proxy.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_auth_configmap(&self) {
        let fp = self.lock_front_proxy().ca.cert_pem().to_string();
        let data: BTreeMap<String, String> = [
            ("client-ca-file", self.client_ca.cert_pem().to_string()),
            ("requestheader-client-ca-file", fp),
            ("requestheader-allowed-names", json_array(&[FRONT_PROXY_CN])),
            ("requestheader-username-headers", json_array(&["X-Remote-User"])),
            ("requestheader-group-headers", json_array(&["X-Remote-Group"])),
            ("requestheader-extra-headers-prefix", json_array(&["X-Remote-Extra-"])),
            ("requestheader-uid-headers", json_array(&[])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.set_configmap(AUTH_CONFIGMAP.0, AUTH_CONFIGMAP.1, data);
    }

    /// Makes a new front-proxy CA and client certificate, presents the new
    /// certificate from now on, and rewrites the ConfigMap (a MODIFIED event).
    /// The old CA is dropped from the ConfigMap, not kept beside the new one.
    pub fn rotate_front_proxy_ca(&self) -> Result<(), Error> {
        let generation = self.lock_front_proxy().generation + 1;
        let next = new_front_proxy(generation)?;
        self.shared.proxy.set_client_cert(next.client.clone())?;
        *self.lock_front_proxy() = next;
        self.publish_auth_configmap();
        Ok(())
    }
}

impl Drop for StandInApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
