//! End-to-end tests of the stand-in over real HTTPS: kube-rs clients and
//! reflectors, the real kubectl 1.32, the reviews and the aggregation proxy.

mod backend;
mod kube_clients;
mod kubectl;
mod proxy;
mod reviews;
mod secrets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ApiServerOptions, KubeconfigUser, StandInApiServer};
use crate::addr::Block;
use crate::cluster::{ClusterSpec, GenerateOptions, generate};

/// A running stand-in with its address block and a scratch directory.
pub struct Harness {
    pub server: StandInApiServer,
    pub spec: ClusterSpec,
    pub block: Block,
    pub dir: tempfile::TempDir,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Harness {
    /// A stand-in on the block's apiserver address with a small generated cluster.
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut ApiServerOptions)) -> Harness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let block = Block::acquire().expect("a free loopback block");
        let spec = generate(&block, &GenerateOptions { nodes: 3, pods_per_node: 3, ..GenerateOptions::default() });
        let mut opts = ApiServerOptions::new(SocketAddr::new(block.apiserver().into(), 6443));
        opts.bookmark_interval = Duration::from_millis(200);
        tune(&mut opts);
        let shutdown = CancellationToken::new();
        let server = StandInApiServer::start(opts, &spec, shutdown.clone()).await.expect("stand-in starts");
        Harness { server, spec, block, dir: tempfile::tempdir().expect("tempdir"), _shutdown: shutdown.drop_guard() }
    }

    /// Writes a kubeconfig for `user` and returns its path.
    pub fn kubeconfig(&self, file: &str, user: KubeconfigUser) -> PathBuf {
        let path = self.dir.path().join(file);
        self.server.write_kubeconfig(&path, user).expect("kubeconfig written");
        path
    }

    /// A kube client authenticated as `user`.
    pub async fn client(&self, user: KubeconfigUser) -> kube::Client {
        let path = self.kubeconfig(&format!("kc-{}", rand_suffix()), user);
        client_from(&path).await
    }

    /// A kube client as `admin` in `system:masters`.
    pub async fn admin(&self) -> kube::Client {
        self.client(KubeconfigUser::ClientCert { user: "admin".into(), groups: vec!["system:masters".into()] }).await
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig parses");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig loads");
    // kube retries 503s with backoff; the tests want to see them.
    config.default_retry = false;
    kube::Client::try_from(config).expect("client builds")
}

/// Raw GET returning status and body text.
pub async fn get_raw(client: &kube::Client, uri: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = http::Request::get(uri);
    if let Some(a) = accept {
        req = req.header(http::header::ACCEPT, a);
    }
    let resp = client.send(req.body(Vec::new()).expect("request").map(kube::client::Body::from)).await.expect("sent");
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
