//! A whole simulated cluster on loopback, ready for replicas: the stand-in
//! kube-apiserver, the simulated kubelets, the credentials and kubeconfigs
//! that tie them together, and replica processes of the real binary. The
//! peer CA comes the way `kubectl apply -k deploy/` makes it: the binary's
//! `certgen` Job, with its own service account, creates the Secret on the
//! stand-in (whose Secret access is that of the shipped RBAC: the replicas'
//! service account has none), and each replica reads it from a directory
//! written as the kubelet mounts a secret volume ([`crate::volume`]). The
//! dev mode, the end-to-end tests, chaos and the benchmarks all start
//! clusters through here, so they exercise the same wiring.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::addr::Block;
use super::apiserver::secrets::{Access, AccessRule};
use super::apiserver::{ApiServerOptions, KubeconfigUser, StandInApiServer};
use super::cluster::{ClusterSpec, GenerateOptions, generate};
use super::kubelet::{FleetOptions, KubeletFleet};
use super::volume::SecretVolumes;

/// The namespace the replicas and their Secret live in.
pub const NAMESPACE: &str = "kube-system";
/// The peer CA Secret, as deploy/ names it.
pub const PEER_CA_SECRET: &str = "metrics-server-peer-cluster-ca";
/// The replicas' service account (its token is the one kubelets see).
pub const REPLICA_SERVICE_ACCOUNT: &str = "metrics-server";
/// The certgen Job's service account.
pub const CERTGEN_SERVICE_ACCOUNT: &str = "metrics-server-certgen";

/// Errors starting the simulated cluster.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("stand-in apiserver: {0}")]
    ApiServer(#[from] super::apiserver::Error),
    #[error("simulated kubelets: {0}")]
    Kubelets(#[from] super::kubelet::FleetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the certgen Job ({binary}) failed: {why}")]
    Certgen { binary: PathBuf, why: String },
    #[error("the peer CA Secret {NAMESPACE}/{PEER_CA_SECRET}: {0}")]
    PeerCa(String),
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
    /// The server binary. When given, its `certgen` Job makes the peer CA
    /// Secret at start, as `kubectl apply -k deploy/` does; otherwise call
    /// [`DevEnv::run_certgen`] before the replicas can start.
    pub binary: Option<PathBuf>,
    /// How often mounted Secrets are refreshed (the kubelet's sync period,
    /// about a minute in a real cluster).
    pub volume_sync: Duration,
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
            binary: None,
            volume_sync: Duration::from_secs(1),
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
    /// The certgen Job's kubeconfig (its own service account).
    pub certgen_kubeconfig: PathBuf,
}

/// A running simulated cluster.
pub struct DevEnv {
    pub block: Block,
    pub spec: ClusterSpec,
    pub fleet: KubeletFleet,
    pub apiserver: StandInApiServer,
    pub files: EnvFiles,
    pub work_dir: PathBuf,
    /// The replicas' mounts of the peer CA Secret.
    pub volumes: SecretVolumes,
    shutdown: CancellationToken,
}

/// Files of a client of the peer port: a certificate from the peer CA.
#[derive(Debug, Clone)]
pub struct PeerObserver {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PeerObserver {
    /// A client that trusts the CA and presents the certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, EnvError> {
        let fail = |e: tls::TlsError| EnvError::PeerCa(e.to_string());
        let ca = fs::read(&self.ca).map_err(io(&self.ca))?;
        let ck = tls::CertKey::load(&self.cert, &self.key).map_err(fail)?;
        tls::mutual_tls_client_config(&ca, ck.chain, ck.key).map_err(fail)
    }
}

/// The Secret access the shipped RBAC grants (deploy/base): the certgen
/// Job's service account may create Secrets; cluster admins may do
/// anything; the replicas' service account nothing.
pub fn shipped_secret_access() -> Access {
    let certgen = format!("system:serviceaccount:{NAMESPACE}:{CERTGEN_SERVICE_ACCOUNT}");
    Access {
        rules: vec![
            AccessRule { subject: certgen, namespace: NAMESPACE.into(), verbs: vec!["create"], names: vec![] },
            AccessRule {
                subject: "group:system:masters".into(),
                namespace: NAMESPACE.into(),
                verbs: vec!["get", "create", "update"],
                names: vec![],
            },
        ],
    }
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
        let token =
            apiserver.write_service_account_kubeconfig(&server_kubeconfig, NAMESPACE, REPLICA_SERVICE_ACCOUNT)?;
        let certgen_kubeconfig = opts.work_dir.join("certgen.kubeconfig");
        apiserver.write_service_account_kubeconfig(&certgen_kubeconfig, NAMESPACE, CERTGEN_SERVICE_ACCOUNT)?;
        apiserver.set_secret_access(Some(shipped_secret_access()));
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
        let volumes = SecretVolumes::start(apiserver.secret_reader(), opts.volume_sync, shutdown.clone());
        let env = DevEnv {
            block,
            spec,
            fleet,
            apiserver,
            files: EnvFiles { server_kubeconfig, user_kubeconfig, kubelet_ca, kubelet_token, certgen_kubeconfig },
            work_dir: opts.work_dir,
            volumes,
            shutdown,
        };
        if let Some(binary) = &opts.binary {
            let out = env.run_certgen(binary, &[]).await?;
            if !out.status.success() {
                let why = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
                return Err(EnvError::Certgen { binary: binary.clone(), why });
            }
        }
        Ok(env)
    }

    /// Runs `binary certgen` for the peer CA Secret with the certgen Job's
    /// service account, plus `extra` flags (`--rotate`), as the Job does;
    /// returns its output (stderr holds its log).
    pub async fn run_certgen(&self, binary: &Path, extra: &[&str]) -> Result<std::process::Output, EnvError> {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(["certgen", &format!("--secret={NAMESPACE}/{PEER_CA_SECRET}")])
            .arg(format!("--kubeconfig={}", self.files.certgen_kubeconfig.display()))
            .args(extra)
            .env("POD_NAME", "metrics-server-certgen-sim")
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output()).await.map_err(|_| EnvError::Certgen {
            binary: binary.to_path_buf(),
            why: "did not finish within 90 s".into(),
        })?;
        out.map_err(|e| EnvError::Certgen { binary: binary.to_path_buf(), why: e.to_string() })
    }

    /// Where replica `i` has the peer CA Secret mounted.
    pub fn peer_ca_dir(&self, i: usize) -> PathBuf {
        self.work_dir.join(format!("replica-{i}")).join("peer-ca")
    }

    /// Writes a client certificate from the peer CA Secret's CA (as an
    /// operator with access to the Secret could make one) for tests and
    /// the `cluster` subcommand.
    pub fn peer_observer(&self) -> Result<PeerObserver, EnvError> {
        let data = self.apiserver.secret_data(NAMESPACE, PEER_CA_SECRET).ok_or_else(|| {
            EnvError::PeerCa("does not exist yet: the certgen Job has not run (DevEnv::run_certgen)".into())
        })?;
        let text = |k: &str| {
            data.get(k)
                .and_then(|b| String::from_utf8(b.clone()).ok())
                .ok_or_else(|| EnvError::PeerCa(format!("no {k}")))
        };
        let ca = tls::pki::Ca::from_pem("peer CA", &text("ca.crt")?, &text("ca.key")?)
            .map_err(|e| EnvError::PeerCa(e.to_string()))?;
        let dir = self.work_dir.join("observer");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let pair = ca.issue_client("observer", &[]).map_err(|e| EnvError::PeerCa(e.to_string()))?;
        let files = PeerObserver { ca: dir.join("ca.crt"), cert: dir.join("peer.crt"), key: dir.join("peer.key") };
        for (path, contents) in [(&files.ca, ca.cert_pem()), (&files.cert, &pair.cert_pem), (&files.key, &pair.key_pem)]
        {
            fs::write(path, contents).map_err(io(path))?;
        }
        Ok(files)
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

    /// Mounts the peer CA Secret for replica `i` and returns the flags that
    /// make it a member of a cluster whose declared initial members are
    /// replicas `0..initial`. The replica issues its own peer certificate
    /// from the mounted CA; until the Secret exists it waits for it.
    pub fn cluster_args(&self, i: usize, initial: usize) -> Result<Vec<String>, EnvError> {
        self.cluster_args_via(i, initial, &|j| self.peer_addr(j))
    }

    /// Like [`DevEnv::cluster_args`], but replica `j` is reached at
    /// `reached_at(j)` (for example a fault-injecting proxy in front of its
    /// peer port): that address is advertised and listed in `--peers`, so
    /// the replica puts it in its certificate beside its own address. The
    /// peer port still listens on [`DevEnv::peer_addr`].
    pub fn cluster_args_via(
        &self,
        i: usize,
        initial: usize,
        reached_at: &dyn Fn(usize) -> SocketAddr,
    ) -> Result<Vec<String>, EnvError> {
        let dir = self.work_dir.join(format!("replica-{i}"));
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mount = self.peer_ca_dir(i);
        self.volumes.mount(NAMESPACE, PEER_CA_SECRET, &mount).map_err(io(&mount))?;
        let advertised = reached_at(i);
        let peers: Vec<String> = (0..initial).map(|j| format!("replica-{j}={}", reached_at(j))).collect();
        Ok(vec![
            format!("--node-name=replica-{i}"),
            format!("--peers={}", peers.join(",")),
            format!("--peer-port={}", self.peer_addr(i).port()),
            format!("--peer-advertise-address={advertised}"),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--peer-ca-dir={}", mount.display()),
            // Replica names are those of a StatefulSet `replica` in kube-system.
            "--statefulset=replica".to_string(),
            format!("--pod-namespace={NAMESPACE}"),
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
