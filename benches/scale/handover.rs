//! The SIGTERM handover at scale: two sharded replicas with replication
//! factor 1 (so no copy exists beforehand and every point of the leaving
//! replica's nodes travels in the handover, in bounded chunks), each owning
//! about half the nodes; replica 1 gets SIGTERM. Measured: how many nodes it
//! handed over (its own log), how long from SIGTERM to its exit, and what a
//! client of the survivor saw meanwhile: node lists through the aggregation
//! proxy every 500 ms until two resolutions after the exit, counting those
//! that lack a node and the oldest sample served.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sim::env::ReplicaProcess;

use crate::measure;
use crate::run::Plan;
use crate::simulator::Simulator;

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

#[derive(Debug, Clone, Serialize)]
pub struct Handover {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Nodes the leaving replica handed over (from its log).
    pub moved: Option<usize>,
    /// Seconds from SIGTERM until the process exited.
    pub exit_s: Option<f64>,
    /// Node lists the survivor answered during the watch.
    pub answers: usize,
    /// Of those, lists lacking at least one node, and the most lacked.
    pub lacking: usize,
    pub most_lacked: usize,
    /// Requests that failed.
    pub errors: usize,
    /// The oldest sample in any answer, seconds.
    pub max_age_s: f64,
}

/// The newest `handed every node over` / `handover timed out` line's `moved=`.
fn moved_of(log: &str) -> Option<usize> {
    log.lines()
        .rev()
        .filter(|l| l.contains("handed every node over") || l.contains("handover timed out"))
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("moved=")).and_then(|v| v.parse().ok()))
}

/// Runs the handover on `sim`; the replicas' logs are copied into `out`.
pub async fn run(
    sim: &mut Simulator,
    binary: &Path,
    (nodes, pods): (usize, usize),
    plan: &Plan,
    out: &Path,
) -> anyhow::Result<Handover> {
    let resolution = format!("{}s", plan.resolution.as_secs());
    let client = sim.kube_client().await?;
    sim.ask("replicas 2")?;
    let mut procs = Vec::new();
    for i in 0..2 {
        let mut args = sim.args(&format!("replica-args {i} {resolution}"))?;
        args.extend(sim.args(&format!("cluster-args {i} 2"))?);
        args.push("--replication-factor=1".into());
        let log = sim.work_dir.join(format!("handover-replica-{i}.log"));
        procs.push(ReplicaProcess::spawn(binary, &args, &log)?);
    }
    sim.ask("route 0")?;
    let served = sim::wait::until_some_every(Duration::from_millis(500), plan.start_deadline, async || {
        (measure::item_count(&client, NODES).await == Some(nodes)).then_some(())
    })
    .await;
    anyhow::ensure!(served.is_some(), "the two replicas did not serve all {nodes} nodes in time");
    // Not synchronisation: two resolutions of steady state, so each owner
    // holds two points of each of its nodes when the handover starts.
    tokio::time::sleep(plan.resolution * 2).await;
    let started = Instant::now();
    procs[1].signal(libc::SIGTERM);
    let (mut answers, mut lacking, mut most_lacked, mut errors, mut max_age) = (0, 0, 0, 0, 0f64);
    let mut exited: Option<Duration> = None;
    let grace = Duration::from_secs(120);
    loop {
        if exited.is_none() && procs[1].try_wait().is_some() {
            exited = Some(started.elapsed());
        }
        let until = exited.map_or(grace, |e| e + plan.resolution * 2);
        if started.elapsed() > until {
            break;
        }
        let tick = Instant::now();
        match measure::get(&client, NODES).await {
            Ok(body) => {
                let now = SystemTime::now();
                let items = sim::answer::items_of(&body);
                answers += 1;
                if items.len() < nodes {
                    lacking += 1;
                    most_lacked = most_lacked.max(nodes - items.len());
                }
                let oldest = items.iter().map(|i| i.age(now).as_secs_f64()).fold(0f64, f64::max);
                max_age = max_age.max(oldest);
            }
            Err(_) => errors += 1,
        }
        if let Some(rest) = Duration::from_millis(500).checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    let moved = moved_of(&procs[1].log_text());
    for (i, p) in procs.iter().enumerate() {
        std::fs::write(out.join(format!("handover-{nodes}-replica-{i}.log")), p.log_text())?;
    }
    let result = Handover {
        nodes,
        pods_per_node: pods,
        moved,
        exit_s: exited.map(|d| d.as_secs_f64()),
        answers,
        lacking,
        most_lacked,
        errors,
        max_age_s: max_age,
    };
    eprintln!("  handover at {nodes} nodes: {result:?}");
    drop(procs);
    Ok(result)
}
