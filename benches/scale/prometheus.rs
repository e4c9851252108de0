//! The peer a user would pick instead: a cluster that serves the resource
//! metrics API from Prometheus (prometheus-adapter) first pays for a
//! Prometheus server scraping every kubelet. This mode runs the real one
//! (Debian's package) against the same simulated kubelets' `/metrics/resource`
//! at the same interval, verifying their certificates against the kubelet
//! CA and sending the kubelets' token, exactly as the replicas do, and
//! measures it as the other modes measure the replicas: its CPU, its memory,
//! the kubelet scrapes per node per resolution. It answers no metrics API,
//! so it has no latencies (prometheus-adapter's own cost is not counted).
//!
//! The simulator writes the configuration (`prometheus-config`: the file_sd
//! targets and the scrape job, see src/cli/simulate.rs); Prometheus listens
//! on the benchmark block's first auxiliary loopback address, keeps its
//! storage in the simulator's work folder, and is stopped by its pid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chaos::observe_prometheus::PromClient;
use sim::addr::Block;

use crate::measure;
use crate::run::{Mode, Plan, Result};
use crate::simulator::Simulator;

/// Prometheus' usual port, on an address of its own.
const PORT: u16 = 9090;
/// How long Prometheus may take to stop after SIGTERM before it is SIGKILLed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// A Prometheus server we started, stopped by its pid on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(binary: &Path, config: &Path, storage: &Path, listen: SocketAddr, log: &Path) -> anyhow::Result<Server> {
        let out = std::fs::File::create(log).with_context(|| log.display().to_string())?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Server { child, log: log.to_path_buf() })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The last lines of its log, for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_DEADLINE`].
    async fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        sim::wait::until(STOP_DEADLINE, async || self.exited()).await;
        // Drop kills it if it is still there, and reaps it.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Targets that are up, from `count(up == 1)` (0 when none is).
async fn targets_up(prom: &PromClient) -> Option<usize> {
    let samples = prom.query("count(up == 1)", None).await.ok()?;
    Some(samples.first().map_or(0, |s| s.value as usize))
}

/// Why targets are not up: how many are down and the first scrape error.
async fn why_not_up(prom: &PromClient) -> String {
    let Ok(targets) = prom.targets().await else { return "its targets API did not answer".into() };
    let active = targets["activeTargets"].as_array().cloned().unwrap_or_default();
    let down: Vec<_> = active.iter().filter(|t| t["health"] != "up").collect();
    let first = down.first().map_or("-", |t| t["lastError"].as_str().unwrap_or("-"));
    format!("{} of {} targets not up; first error: {first}", down.len(), active.len())
}

pub async fn run(sim: &mut Simulator, nodes: usize, pods: usize, plan: &Plan) -> anyhow::Result<Result> {
    let binary =
        sim::tools::prometheus("the scale benchmark compares the replicas with Prometheus scraping the kubelets")?;
    let dir = sim.work_dir.join("prometheus");
    let answer = sim.ask(&format!("prometheus-config {} {}ms", dir.display(), plan.resolution.as_millis()))?;
    let config = answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("config="))
        .with_context(|| format!("simulator said {answer}"))?;
    let listen = SocketAddr::new(Block::fixed(sim.block).aux(0).into(), PORT);
    let storage = dir.join("data");
    let started = Instant::now();
    let mut server = Server::start(&binary, Path::new(config), &storage, listen, &sim.work_dir.join("prometheus.log"))?;
    let prom = PromClient::new(&format!("http://{listen}"))?;
    let mut exited = false;
    let up = sim::wait::until_some_every(Duration::from_millis(500), plan.start_deadline, async || {
        exited = server.exited();
        (exited || targets_up(&prom).await == Some(nodes)).then_some(())
    })
    .await;
    anyhow::ensure!(!exited, "Prometheus exited: {}", server.log_tail());
    if up.is_none() {
        let why = why_not_up(&prom).await;
        server.stop().await;
        anyhow::bail!("Prometheus did not scrape all {nodes} kubelets within {:?}: {why}", plan.start_deadline);
    }
    let all_up = started.elapsed().as_secs_f64();
    eprintln!("  Prometheus at {nodes} nodes: every kubelet target up after {all_up:.1} s");
    // Not synchronisation: one resolution of settling, then the window, as
    // for the replicas.
    tokio::time::sleep(plan.resolution).await;
    let pids = [server.pid()];
    let (s0, _) = sim.scrapes()?;
    let (c0, sc0, t0) = (measure::total_cpu(&pids), measure::total_cpu(&sim.pids), Instant::now());
    tokio::time::sleep(plan.window).await;
    let (c1, sc1, dt) = (measure::total_cpu(&pids), measure::total_cpu(&sim.pids), t0.elapsed().as_secs_f64());
    let (s1, _) = sim.scrapes()?;
    let steady_rss_mib = measure::total_mib(&pids, "VmRSS:");
    let peak_rss_mib = measure::total_mib(&pids, "VmHWM:");
    let simulator_rss_mib = measure::total_mib(&sim.pids, "VmRSS:");
    let still_up = targets_up(&prom).await;
    let samples = prom.query("sum(scrape_samples_scraped)", None).await.ok().and_then(|s| Some(s.first()?.value));
    anyhow::ensure!(!server.exited(), "Prometheus exited during the window: {}", server.log_tail());
    server.stop().await;
    std::fs::remove_dir_all(&storage).with_context(|| storage.display().to_string())?;
    eprintln!(
        "  Prometheus: {still_up:?} of {nodes} targets up at the end of the window, {samples:?} samples a round of scrapes"
    );
    let cpu_s_per_s = (c1 - c0) / dt;
    Ok(Result {
        mode: Mode::Prometheus,
        replication: None,
        nodes,
        pods: nodes * pods,
        replicas: 1,
        all_served_s: Some(all_up),
        cpu_s_per_s,
        mcpu_per_node: cpu_s_per_s * 1e3 / nodes as f64,
        peak_rss_mib,
        steady_rss_mib,
        mib_per_node: steady_rss_mib / nodes as f64,
        scrapes_per_node_per_r: (s1 - s0) as f64 / nodes as f64 / (dt / plan.resolution.as_secs_f64()),
        peer_kib_per_s: None,
        simulator_cpu_s_per_s: (sc1 - sc0) / dt,
        simulator_rss_mib,
        latency: Vec::new(),
        rolling_restart: None,
        owner_killed: Vec::new(),
        window_s: dt,
    })
}
