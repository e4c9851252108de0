//! A whole simulated cluster on loopback, ready for replicas: the stand-in
//! kube-apiserver, the simulated kubelets, the credentials and kubeconfigs
//! that tie them together, and replica processes of the real binary. The
//! dev mode, the end-to-end tests and the benchmarks all start clusters
//! through here, so they exercise the same wiring.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokio_util::sync::CancellationToken;

use super::addr::Block;
use super::apiserver::{ApiServerOptions, KubeconfigUser, StandInApiServer};
use super::cluster::{ClusterSpec, GenerateOptions, generate};
use super::kubelet::{FleetOptions, KubeletFleet};

/// Errors starting the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("stand-in apiserver: {0}")]
    ApiServer(#[from] super::apiserver::Error),
    #[error("simulated kubelets: {0}")]
    Kubelets(#[from] super::kubelet::FleetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnvError + '_ {
    move |source| EnvError::Io { path: path.to_path_buf(), source }
}

/// How big a cluster to simulate and where to put its files.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub seed: u64,
    /// Folder for kubeconfigs, CAs, tokens and replica data (created).
    pub work_dir: PathBuf,
    /// The stand-in apiserver's port (on the block's apiserver address).
    pub apiserver_port: u16,
    /// Which nodes of the spec this process serves kubelets for (all when
    /// `None`). A simulator that spreads its kubelets over child processes
    /// (20,000 open files per process do not hold 10,000 listeners and
    /// their connections) runs the apiserver here with an empty range.
    pub kubelet_nodes: Option<std::ops::Range<usize>>,
}

impl EnvOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> EnvOptions {
        EnvOptions {
            nodes: 4,
            pods_per_node: 5,
            seed: 7,
            work_dir: work_dir.into(),
            apiserver_port: 6443,
            kubelet_nodes: None,
        }
    }
}

/// Paths of the files a replica and kubectl need.
#[derive(Debug, Clone)]
pub struct EnvFiles {
    /// The metrics server's own kubeconfig (service account kube-system/metrics-server).
    pub server_kubeconfig: PathBuf,
    /// kubectl's kubeconfig: user `dev-user`, group `dev-team`, not `system:masters`.
    pub user_kubeconfig: PathBuf,
    /// CA of the simulated kubelets' serving certificates.
    pub kubelet_ca: PathBuf,
    /// Bearer token the kubelets accept (the service account's).
    pub kubelet_token: PathBuf,
}

/// A running simulated cluster.
pub struct DevEnv {
    pub block: Block,
    pub spec: ClusterSpec,
    pub fleet: KubeletFleet,
    pub apiserver: StandInApiServer,
    pub files: EnvFiles,
    pub work_dir: PathBuf,
    /// The replicas' cluster CA (peer port mutual TLS).
    peer_ca: tls::pki::Ca,
    shutdown: CancellationToken,
}

impl DevEnv {
    /// Starts the stand-in apiserver and the kubelets on `block` and writes
    /// every credential under `opts.work_dir`.
    pub async fn start(block: Block, opts: EnvOptions) -> Result<DevEnv, EnvError> {
        fs::create_dir_all(&opts.work_dir).map_err(io(&opts.work_dir))?;
        let spec = generate(
            &block,
            &GenerateOptions {
                nodes: opts.nodes,
                pods_per_node: opts.pods_per_node,
                seed: opts.seed,
                ..GenerateOptions::default()
            },
        );
        let shutdown = CancellationToken::new();
        let addr = SocketAddr::new(block.apiserver().into(), opts.apiserver_port);
        let apiserver = StandInApiServer::start(ApiServerOptions::new(addr), &spec, shutdown.clone()).await?;
        let server_kubeconfig = opts.work_dir.join("metrics-server.kubeconfig");
        let token = apiserver.write_service_account_kubeconfig(&server_kubeconfig, "kube-system", "metrics-server")?;
        let user_kubeconfig = opts.work_dir.join("kubectl.kubeconfig");
        apiserver.write_kubeconfig(&user_kubeconfig, KubeconfigUser::dev_user())?;
        let served = match &opts.kubelet_nodes {
            Some(range) => ClusterSpec { nodes: spec.nodes.get(range.clone()).unwrap_or_default().to_vec() },
            None => spec.clone(),
        };
        let fleet = KubeletFleet::start(&served, FleetOptions::with_tokens([token.clone()]), shutdown.clone()).await?;
        let kubelet_ca = opts.work_dir.join("kubelet-ca.crt");
        fs::write(&kubelet_ca, fleet.ca_pem()).map_err(io(&kubelet_ca))?;
        let kubelet_token = opts.work_dir.join("kubelet.token");
        fs::write(&kubelet_token, &token).map_err(io(&kubelet_token))?;
        Ok(DevEnv {
            block,
            spec,
            fleet,
            apiserver,
            files: EnvFiles { server_kubeconfig, user_kubeconfig, kubelet_ca, kubelet_token },
            work_dir: opts.work_dir,
            peer_ca: tls::pki::Ca::new("ha-metrics-server-cluster-ca").map_err(|e| EnvError::Io {
                path: PathBuf::from("cluster CA"),
                source: std::io::Error::other(e.to_string()),
            })?,
            shutdown,
        })
    }

    /// The API address of replica `i`.
    pub fn replica_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.block.replica(i).into(), 10250)
    }

    /// The flags that run replica `i` against this cluster with the given
    /// resolution (e.g. `"15s"`). Resolutions under 10 s are allowed here
    /// for tests.
    pub fn replica_args(&self, i: usize, resolution: &str) -> Vec<String> {
        let dir = self.work_dir.join(format!("replica-{i}"));
        let addr = self.replica_addr(i);
        // Keep the request timeout inside 90% of short test resolutions.
        let timeout = apimachinery::parse_go_duration(resolution)
            .map(|r| r.mul_f64(0.5).min(std::time::Duration::from_secs(10)))
            .unwrap_or(std::time::Duration::from_secs(10));
        vec![
            format!("--kubelet-request-timeout={}ms", timeout.as_millis().max(1)),
            format!("--kubeconfig={}", self.files.server_kubeconfig.display()),
            format!("--bind-address={}", addr.ip()),
            format!("--secure-port={}", addr.port()),
            format!("--cert-dir={}", dir.join("certs").display()),
            format!("--kubelet-certificate-authority={}", self.files.kubelet_ca.display()),
            format!("--kubelet-token-file={}", self.files.kubelet_token.display()),
            "--kubelet-use-node-status-port".to_string(),
            format!("--metric-resolution={resolution}"),
            "--allow-short-resolution".to_string(),
        ]
    }

    /// The peer address of replica `i`.
    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.block.replica(i).into(), 10251)
    }

    /// Writes replica `i`'s peer certificate (signed by the cluster CA) and
    /// returns the flags that make it a member of a cluster whose declared
    /// initial members are replicas `0..initial`.
    pub fn cluster_args(&self, i: usize, initial: usize) -> Result<Vec<String>, EnvError> {
        self.cluster_args_via(i, initial, &|j| self.peer_addr(j))
    }

    /// Like [`DevEnv::cluster_args`], but replica `j` is reached at
    /// `reached_at(j)` (for example a fault-injecting proxy in front of its
    /// peer port): that address is advertised, listed in `--peers`, and put
    /// in the peer certificate beside the replica's own address. The peer
    /// port still listens on [`DevEnv::peer_addr`].
    pub fn cluster_args_via(
        &self,
        i: usize,
        initial: usize,
        reached_at: &dyn Fn(usize) -> SocketAddr,
    ) -> Result<Vec<String>, EnvError> {
        let dir = self.work_dir.join(format!("replica-{i}"));
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let ca = self.work_dir.join("cluster-ca.crt");
        // Replicas already started read this file: replace it atomically, and
        // only when it does not hold the CA yet.
        if fs::read_to_string(&ca).ok().as_deref() != Some(self.peer_ca.cert_pem()) {
            let tmp = self.work_dir.join(format!("cluster-ca.crt.{i}.tmp"));
            fs::write(&tmp, self.peer_ca.cert_pem()).map_err(io(&tmp))?;
            fs::rename(&tmp, &ca).map_err(io(&ca))?;
        }
        let mut sans = vec![self.block.replica(i).to_string(), format!("replica-{i}")];
        let advertised = reached_at(i);
        if advertised.ip() != self.block.replica(i) {
            sans.push(advertised.ip().to_string());
        }
        let pair = self
            .peer_ca
            .issue(&tls::pki::LeafSpec {
                common_name: &format!("replica-{i}"),
                organizations: &[],
                sans: &sans,
                usage: tls::pki::Usage::ServerAndClient,
            })
            .map_err(|e| EnvError::Io { path: dir.clone(), source: std::io::Error::other(e.to_string()) })?;
        let (cert, key) = (dir.join("peer.crt"), dir.join("peer.key"));
        fs::write(&cert, &pair.cert_pem).map_err(io(&cert))?;
        fs::write(&key, &pair.key_pem).map_err(io(&key))?;
        let peers: Vec<String> = (0..initial).map(|j| format!("replica-{j}={}", reached_at(j))).collect();
        Ok(vec![
            format!("--node-name=replica-{i}"),
            format!("--peers={}", peers.join(",")),
            format!("--peer-port={}", self.peer_addr(i).port()),
            format!("--peer-advertise-address={advertised}"),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--peer-ca-file={}", ca.display()),
            format!("--peer-cert-file={}", cert.display()),
            format!("--peer-key-file={}", key.display()),
            // Replica names are those of a StatefulSet `replica` in kube-system.
            "--statefulset=replica".to_string(),
            "--pod-namespace=kube-system".to_string(),
        ])
    }

    /// Sets the replica count of the StatefulSet the replicas belong to.
    pub fn set_replica_count(&self, replicas: usize) {
        self.apiserver.set_statefulset_replicas("kube-system", "replica", replicas as i32);
    }

    /// Points the aggregation proxy at these replicas.
    pub fn route_metrics_to(&self, replicas: &[usize]) {
        self.apiserver.set_metrics_backends(replicas.iter().map(|i| self.replica_addr(*i)).collect());
    }

    /// Stops the apiserver and the kubelets.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.fleet.shutdown().await;
    }
}

/// A replica process of the real binary. Dropping it kills the process
/// (SIGKILL, by its pid) and reaps it.
pub struct ReplicaProcess {
    child: Child,
    pub log: PathBuf,
}

impl ReplicaProcess {
    /// Starts `binary` with `args`; stdout and stderr go to `log`.
    pub fn spawn(binary: &Path, args: &[String], log: &Path) -> std::io::Result<ReplicaProcess> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent)?;
        }
        let out = fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = Command::new(binary).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn()?;
        Ok(ReplicaProcess { child, log: log.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to this process only.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Whether the process has exited (and its status).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Path of the real kubectl 1.32: the versioned binary beside the gcloud
/// `kubectl` dispatcher on PATH, or installed on first use
/// ([`super::tools::kubectl`]).
pub fn kubectl_132() -> Option<PathBuf> {
    super::tools::kubectl("1.32", "the tests and the dev mode drive the real kubectl 1.32")
        .map_err(|e| eprintln!("{e}"))
        .ok()
}
