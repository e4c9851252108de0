//! One mode on one simulated cluster: start the replicas, wait until every
//! node is served by every replica, measure the steady state (CPU, memory,
//! kubelet scrapes), the latencies from each replica, and, for the sharded
//! mode, a rolling restart of all replicas (`restart.rs`) and the latencies
//! again with one owner killed. The Prometheus mode is `prometheus.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sim::env::ReplicaProcess;

use crate::measure::{self, Latency};
use crate::restart::RollingRestart;
use crate::simulator::Simulator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Three replicas forming one Raft cluster (`--peers`): each kubelet scraped once.
    Sharded3,
    /// Three replicas without `--peers`: metrics-server's HA, each scrapes everything.
    Independent3,
    /// One replica: metrics-server's default.
    Single,
    /// No replica: the real Prometheus scraping every kubelet's
    /// `/metrics/resource`, what a cluster serving the resource metrics API
    /// through prometheus-adapter pays for first.
    Prometheus,
}

impl Mode {
    pub fn replicas(self) -> usize {
        match self {
            Mode::Sharded3 | Mode::Independent3 => 3,
            Mode::Single | Mode::Prometheus => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sharded3 => "3 sharded",
            Mode::Independent3 => "3 independent",
            Mode::Single => "1 replica",
            Mode::Prometheus => "Prometheus",
        }
    }
}

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub resolution: Duration,
    pub window: Duration,
    pub top_requests: usize,
    pub hpa_rate: f64,
    pub hpa_duration: Duration,
    pub start_deadline: Duration,
    /// `--replication-factor` of the sharded replicas (`None`: the default, 3).
    pub replication: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaLatency {
    pub replica: usize,
    pub top_pod_all: Latency,
    pub hpa: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Result {
    pub mode: Mode,
    /// The sharded replicas' replication factor when not the default.
    pub replication: Option<u32>,
    pub nodes: usize,
    pub pods: usize,
    /// Processes measured: replicas, or the one Prometheus server.
    pub replicas: usize,
    /// Seconds from spawning the replicas until every replica served every
    /// node (Prometheus: until every kubelet target was up).
    pub all_served_s: Option<f64>,
    pub cpu_s_per_s: f64,
    pub mcpu_per_node: f64,
    pub peak_rss_mib: f64,
    pub steady_rss_mib: f64,
    pub mib_per_node: f64,
    pub scrapes_per_node_per_r: f64,
    /// Sharded mode: body bytes per second of all replicas' peer calls
    /// over the window (`ha_metrics_server_peer_bytes_total`), in KiB/s.
    pub peer_kib_per_s: Option<f64>,
    pub simulator_cpu_s_per_s: f64,
    pub simulator_rss_mib: f64,
    pub latency: Vec<ReplicaLatency>,
    /// Sharded mode only: every replica restarted in turn, under load.
    pub rolling_restart: Option<RollingRestart>,
    /// Sharded mode only: replica 2 SIGKILLed, measured from the survivors.
    pub owner_killed: Vec<ReplicaLatency>,
    pub window_s: f64,
}

/// HPA-shaped queries: one Deployment's pods in one namespace.
pub fn hpa_paths(nodes: usize) -> Vec<String> {
    let groups = nodes.div_ceil(10).min(50);
    (0..groups)
        .flat_map(|g| {
            ["web", "api"].into_iter().map(move |app| {
                format!("/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods?labelSelector=deployment%3D{app}-{g}")
            })
        })
        .collect()
}

/// Every replica's peer call bytes, both directions, every route.
const PEER_BYTES: &str = "ha_metrics_server_peer_bytes_total";
const TOP_POD_ALL: &str = "/apis/metrics.k8s.io/v1beta1/pods";
const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

async fn latencies(
    sim: &mut Simulator,
    client: &kube::Client,
    replicas: &[usize],
    plan: &Plan,
    hpa: &[String],
) -> anyhow::Result<Vec<ReplicaLatency>> {
    let mut out = Vec::new();
    for &r in replicas {
        sim.ask(&format!("route {r}"))?;
        let top_pod_all = measure::sequential(client, TOP_POD_ALL, plan.top_requests).await;
        let hpa = measure::open_loop(client, hpa, plan.hpa_rate, plan.hpa_duration).await;
        eprintln!(
            "  replica {r}: top pod -A p50 {:.0} ms p99 {:.0} ms ({} errors); HPA p50 {:.1} ms p99 {:.1} ms ({} errors)",
            top_pod_all.p50_ms, top_pod_all.p99_ms, top_pod_all.errors, hpa.p50_ms, hpa.p99_ms, hpa.errors
        );
        out.push(ReplicaLatency { replica: r, top_pod_all, hpa });
    }
    Ok(out)
}

pub async fn run(
    sim: &mut Simulator,
    binary: &Path,
    mode: Mode,
    nodes: usize,
    pods: usize,
    plan: &Plan,
) -> anyhow::Result<Result> {
    if mode == Mode::Prometheus {
        return crate::prometheus::run(sim, nodes, pods, plan).await;
    }
    let n = mode.replicas();
    let resolution = format!("{}s", plan.resolution.as_secs());
    let client = sim.kube_client().await?;
    sim.ask(&format!("replicas {n}"))?;
    let mut procs = Vec::new();
    // Each replica's flags, kept for its restart.
    let mut flags = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let mut args = sim.args(&format!("replica-args {i} {resolution}"))?;
        if mode == Mode::Sharded3 {
            args.extend(sim.args(&format!("cluster-args {i} {n}"))?);
            args.extend(plan.replication.map(|rf| format!("--replication-factor={rf}")));
        }
        let log = sim.work_dir.join(format!("{}-replica-{i}.log", mode.name().replace(' ', "-")));
        procs.push(ReplicaProcess::spawn(binary, &args, &log)?);
        flags.push(args);
    }
    let pids: Vec<u32> = procs.iter().map(ReplicaProcess::pid).collect();
    let all: Vec<usize> = (0..n).collect();
    // Every replica serves every node (asked one at a time through the
    // proxy, every 500 ms: a whole node list is not free to ask for while
    // the start-up is being timed).
    let mut pending: Vec<usize> = all.clone();
    let mut failed = None;
    let served = sim::wait::until_some_every(Duration::from_millis(500), plan.start_deadline, async || {
        while let Some(&r) = pending.first() {
            if let Err(e) = sim.ask(&format!("route {r}")) {
                failed = Some(e);
                return Some(());
            }
            if measure::item_count(&client, NODES).await != Some(nodes) {
                return None;
            }
            pending.remove(0);
        }
        Some(())
    })
    .await;
    if let Some(e) = failed {
        return Err(e);
    }
    let all_served = served.map(|()| started.elapsed().as_secs_f64());
    eprintln!("  {} at {nodes} nodes: every node served after {all_served:?} s", mode.name());
    sim.route(&all)?;
    // Not synchronisation: the measurement plan warms up for one resolution
    // after the start-up (so the window opens in the steady state), then
    // measures for the whole window.
    tokio::time::sleep(plan.resolution).await;
    let peer_bytes = |sim: &mut Simulator| -> anyhow::Result<Option<f64>> {
        if mode != Mode::Sharded3 {
            return Ok(None);
        }
        let mut sum = 0.0;
        for i in 0..n {
            sum += sim.self_metrics(i, PEER_BYTES)?;
        }
        Ok(Some(sum))
    };
    let (s0, _) = sim.scrapes()?;
    let b0 = peer_bytes(sim)?;
    let (c0, sc0, t0) = (measure::total_cpu(&pids), measure::total_cpu(&sim.pids), Instant::now());
    tokio::time::sleep(plan.window).await;
    let (c1, sc1, dt) = (measure::total_cpu(&pids), measure::total_cpu(&sim.pids), t0.elapsed().as_secs_f64());
    let b1 = peer_bytes(sim)?;
    let (s1, _) = sim.scrapes()?;
    let peer_kib_per_s = b0.zip(b1).map(|(b0, b1)| (b1 - b0) / 1024.0 / dt);
    let steady_rss_mib = measure::total_mib(&pids, "VmRSS:");
    let simulator_rss_mib = measure::total_mib(&sim.pids, "VmRSS:");
    let cpu_s_per_s = (c1 - c0) / dt;
    let periods = dt / plan.resolution.as_secs_f64();
    let scrapes_per_node_per_r = (s1 - s0) as f64 / nodes as f64 / periods;
    let hpa = hpa_paths(nodes);
    let latency = latencies(sim, &client, &all, plan, &hpa).await?;
    let peak_rss_mib = measure::total_mib(&pids, "VmHWM:");
    let mut owner_killed = Vec::new();
    let mut rolling_restart = None;
    if mode == Mode::Sharded3 {
        // The latencies left the proxy on the last replica alone.
        sim.route(&all)?;
        rolling_restart =
            Some(crate::restart::run(sim, &client, (binary, &flags), &mut procs, nodes, plan, &hpa).await?);
        procs[2].signal(libc::SIGKILL);
        sim.route(&[0, 1])?;
        owner_killed = latencies(sim, &client, &[0, 1], plan, &hpa).await?;
    }
    drop(procs);
    Ok(Result {
        mode,
        replication: plan.replication.filter(|_| mode == Mode::Sharded3),
        nodes,
        pods: nodes * pods,
        replicas: n,
        all_served_s: all_served,
        cpu_s_per_s,
        mcpu_per_node: cpu_s_per_s * 1e3 / nodes as f64,
        peak_rss_mib,
        steady_rss_mib,
        mib_per_node: steady_rss_mib / nodes as f64,
        scrapes_per_node_per_r,
        peer_kib_per_s,
        simulator_cpu_s_per_s: (sc1 - sc0) / dt,
        simulator_rss_mib,
        latency,
        rolling_restart,
        owner_killed,
        window_s: dt,
    })
}
