//! Shared harness of the end-to-end tests: a simulated cluster on its own
//! loopback block, replica processes of the real binary, the real kubectl
//! (1.32, or any installed `kubectl.1.NN`). Waiting, reading answers, the
//! scrape log and who leads are `sim`'s ([`sim::wait`], [`sim::answer`],
//! [`sim::scrapes`], [`sim::leader`]), shared with the benchmarks and chaos.

#![allow(dead_code)]

pub mod observe;
pub mod previous;
pub mod raft_cluster;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use sim::addr::Block;
use sim::env::{DevEnv, EnvOptions, ReplicaProcess, kubectl_132};

/// Generous bounds for a loaded 2-core machine.
pub const STARTUP: Duration = Duration::from_secs(90);

/// A simulated cluster with replicas.
pub struct Cluster {
    pub env: DevEnv,
    pub replicas: Vec<ReplicaProcess>,
    pub resolution: String,
    kubectl: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `nodes` × `pods` and one replica at `resolution`, routed by the proxy.
    pub async fn start(nodes: usize, pods: usize, resolution: &str) -> Cluster {
        Self::start_with(nodes, pods, resolution, &[]).await
    }

    /// Like [`Cluster::start`] with extra flags for the replica.
    pub async fn start_with(nodes: usize, pods: usize, resolution: &str, extra: &[&str]) -> Cluster {
        let mut c = Self::start_empty(nodes, pods, resolution).await;
        c.spawn_replica(0, extra);
        c.env.route_metrics_to(&[0]);
        c
    }

    /// The simulated cluster without any replica: start them with
    /// [`Cluster::spawn_replica`] or [`Cluster::spawn_replica_args`] and
    /// route the proxy with `env.route_metrics_to`. The certgen Job has
    /// made the peer CA Secret, as `kubectl apply -k deploy/` does.
    pub async fn start_empty(nodes: usize, pods: usize, resolution: &str) -> Cluster {
        Self::start_empty_with(nodes, pods, resolution, true).await
    }

    /// [`Cluster::start_empty`], with the certgen Job run at start or not
    /// (then `env.run_certgen(&binary(), ..)` runs it).
    pub async fn start_empty_with(nodes: usize, pods: usize, resolution: &str, certgen: bool) -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = EnvOptions::new(dir.path());
        opts.nodes = nodes;
        opts.pods_per_node = pods;
        opts.binary = certgen.then(binary);
        let env =
            DevEnv::start(Block::acquire().expect("a free address block"), opts).await.expect("simulated cluster");
        Cluster {
            env,
            replicas: Vec::new(),
            resolution: resolution.to_string(),
            kubectl: kubectl_132().expect("kubectl.1.32 beside the kubectl dispatcher"),
            _dir: dir,
        }
    }

    /// Starts replica `i` with the cluster's flags plus `extra`.
    pub fn spawn_replica(&mut self, i: usize, extra: &[&str]) {
        let mut args = self.env.replica_args(i, &self.resolution);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn_replica_args(i, args);
    }

    /// Starts replica `i` with exactly `args` (start from
    /// `env.replica_args` to replace a flag rather than repeat it).
    pub fn spawn_replica_args(&mut self, i: usize, args: Vec<String>) {
        let log = self.env.work_dir.join(format!("replica-{i}.log"));
        let p = ReplicaProcess::spawn(&binary(), &args, &log).expect("spawn replica");
        self.replicas.push(p);
    }

    /// Runs kubectl 1.32 with the dev user's kubeconfig; killed after 30 s.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_bin(&self.kubectl, args).await
    }

    /// Runs the given kubectl binary (e.g. from [`kubectl_version`]) with
    /// the dev user's kubeconfig; killed after 30 s.
    pub async fn kubectl_bin(&self, kubectl: &Path, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(kubectl);
        cmd.arg("--kubeconfig").arg(&self.env.files.user_kubeconfig).args(args).kill_on_drop(true);
        cmd.env("HOME", self.env.work_dir.as_os_str());
        match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => panic!("running kubectl {args:?}: {e}"),
            Err(_) => panic!("kubectl {args:?} did not finish in 30s"),
        }
    }

    /// Runs kubectl and returns stdout, panicking with stderr and the replica log on failure.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_bin_ok(&self.kubectl, args).await
    }

    /// [`Cluster::kubectl_ok`] with the given kubectl binary.
    pub async fn kubectl_bin_ok(&self, kubectl: &Path, args: &[&str]) -> String {
        let out = self.kubectl_bin(kubectl, args).await;
        if !out.status.success() {
            panic!(
                "{} {args:?} failed: {}\n--- replica log tail ---\n{}",
                kubectl.display(),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(0)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of replica `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let text = self.replicas.get(i).map(|r| r.log_text()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `kubectl top node` succeeds and lists every node with numbers.
    pub async fn wait_for_metrics(&self) {
        let nodes = self.env.spec.nodes.len();
        let ok = sim::wait::until(STARTUP, async || {
            let out = self.kubectl(&["top", "node", "--no-headers"]).await;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            out.status.success() && text.lines().filter(|l| !l.contains("<unknown>")).count() == nodes
        })
        .await
        .is_some();
        assert!(ok, "metrics never became available; replica log:\n{}", self.log_tail(0));
    }
}

/// The real kubectl of a minor version (`"1.27"`): the `kubectl.1.27`
/// binary beside the gcloud `kubectl` dispatcher on PATH, as
/// `kubectl_132` finds 1.32, or installed on first use by
/// `sim::tools::kubectl`. `Err` says why it is missing.
pub fn kubectl_version(version: &str) -> Result<PathBuf, String> {
    sim::tools::kubectl(version, "the kubectl matrix runs every kubectl from 1.27 to 1.33").map_err(|e| e.to_string())
}

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ha-metrics-server"))
}

/// What kubectl prints for a CPU rate: millicores rounded up.
pub fn kubectl_cpu(nanocores: u64) -> String {
    format!("{}m", nanocores.div_ceil(1_000_000))
}

/// What kubectl prints for memory: whole MiB rounded down.
pub fn kubectl_mem(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// kubectl's CPU(%) and MEMORY(%) cells: `int64(used / allocatable * 100)`
/// in float64, CPU in (rounded-up) millicores, memory in bytes.
pub fn kubectl_percents(node: &sim::cluster::NodeSpec, cpu_nanocores: u64, memory_bytes: u64) -> (String, String) {
    let cpu_ms = cpu_nanocores.div_ceil(1_000_000) as f64;
    let cpu = (cpu_ms / node.allocatable_millicores as f64 * 100.0) as i64;
    let mem = (memory_bytes as f64 / node.allocatable_memory_bytes as f64 * 100.0) as i64;
    (format!("{cpu}%"), format!("{mem}%"))
}

/// A CPU quantity as the API or kubectl writes it (`123n`, `5u`, `7m`, `2`)
/// in nanocores, read with apimachinery's quantity parser.
pub fn cpu_nanos(q: &str) -> f64 {
    sim::answer::nanocores(q).unwrap_or_else(|e| panic!("not a CPU quantity: {e}")) as f64
}

/// A memory quantity as the API or kubectl writes it (`4620Ki`, `12Mi`, `12533761`) in bytes.
pub fn memory_bytes(q: &str) -> u64 {
    sim::answer::bytes(q).unwrap_or_else(|e| panic!("not a memory quantity: {e}"))
}

/// Splits kubectl's table output into rows of columns.
pub fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect()
}

impl Cluster {
    /// GETs a metrics.k8s.io path through the aggregation proxy with kubectl
    /// and returns the JSON, or `None` when kubectl fails (e.g. 404).
    pub async fn get_raw(&self, path: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", "--raw", path]).await;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The items of the NodeMetricsList (name, sample time, usage).
    pub async fn served_nodes(&self) -> Vec<sim::answer::Item> {
        self.get_raw(sim::answer::NODES).await.map(|v| sim::answer::items(&v)).unwrap_or_default()
    }

    /// `namespace/name` of every pod in the PodMetricsList.
    pub async fn served_pods(&self) -> Vec<String> {
        let list = self.get_raw(sim::answer::PODS).await;
        list.map(|v| sim::answer::items(&v).into_iter().map(|i| i.key).collect()).unwrap_or_default()
    }

    /// `namespace/name` of the pods the spec puts on `node`.
    pub fn pods_of(&self, node: &str) -> Vec<String> {
        self.env
            .spec
            .nodes
            .iter()
            .filter(|n| n.name == node)
            .flat_map(|n| n.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)))
            .collect()
    }
}
