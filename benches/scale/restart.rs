//! The rolling restart of the sharded replicas, as `kubectl rollout restart`
//! does it to the StatefulSet: one replica at a time gets SIGTERM, exits,
//! and comes back with the same flags and the same data folder (so it
//! rejoins the Raft cluster as the member it was); the next one goes only
//! when the restarted one serves every node again (asked directly).
//!
//! The aggregation proxy is routed as a Service's endpoints are: a replica
//! leaves them when it is sent SIGTERM (a terminating pod is not ready) and
//! comes back once its `/readyz` answers 200 (its readiness probe, polled
//! every 500 ms). Throughout, the proxy spreads over the routed replicas
//! the HPA load of the steady-state measurement (open loop), each answer
//! held to the item count its path had just before, plus a node list every
//! 500 ms held to list every node; what every answer lacks is counted.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sim::env::ReplicaProcess;
use tokio_util::sync::CancellationToken;

use crate::measure::{self, Checked};
use crate::run::Plan;
use crate::simulator::Simulator;

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";
/// How long a replica may take from SIGTERM to its exit before it is
/// SIGKILLed (its handover of 10,000 nodes took up to 24 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(120);
/// How often the node lists are asked for, and the restarted replica.
const EVERY: Duration = Duration::from_millis(500);

/// One replica's restart.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub replica: usize,
    /// When it got SIGTERM, in seconds since the Unix epoch (to set beside
    /// the replicas' logs and the short answers' times).
    pub term_unix_s: f64,
    /// Seconds from SIGTERM to its exit; `None`: it had not exited after
    /// [`EXIT_DEADLINE`] and was SIGKILLed.
    pub exit_s: Option<f64>,
    /// Seconds from SIGTERM until the new process was ready (and routed
    /// to again); `None`: not within the start-up deadline.
    pub ready_s: Option<f64>,
    /// Seconds from SIGTERM until the new process served every node;
    /// `None`: not within the start-up deadline.
    pub served_s: Option<f64>,
}

/// What the rolling restart cost its clients.
#[derive(Debug, Clone, Serialize)]
pub struct RollingRestart {
    /// Seconds from the first SIGTERM until the last replica served every node again.
    pub total_s: f64,
    pub steps: Vec<Step>,
    /// The same HPA load, routed the same way, for the HPA duration just
    /// before the restart: the steady state it is compared with.
    pub steady_hpa: Checked,
    /// The HPA load during the restart.
    pub hpa: Checked,
    /// The node lists during the restart.
    pub node_lists: Checked,
}

/// Where a restarted replica writes its log: beside the first one's.
fn restart_log(first: &Path) -> std::path::PathBuf {
    first.with_extension("restarted.log")
}

/// Restarts `procs` one at a time (each respawned with `args[i]`), while
/// the proxy is routed to all of them, and measures what clients saw.
pub async fn run(
    sim: &mut Simulator,
    client: &kube::Client,
    (binary, args): (&Path, &[Vec<String>]),
    procs: &mut [ReplicaProcess],
    nodes: usize,
    plan: &Plan,
    hpa: &[String],
) -> anyhow::Result<RollingRestart> {
    let mut load = Vec::with_capacity(hpa.len());
    for path in hpa {
        let items = measure::item_count(client, path).await;
        let items = items.ok_or_else(|| anyhow::anyhow!("steady state: {path} gave no metrics list"))?;
        load.push((path.clone(), items));
    }
    let steady_hpa =
        measure::open_loop_checked(client, &load, plan.hpa_rate, tokio::time::sleep(plan.hpa_duration)).await;
    let stop = CancellationToken::new();
    let hpa_task = {
        let (client, load, rate, stop) = (client.clone(), load.clone(), plan.hpa_rate, stop.clone());
        tokio::spawn(async move { measure::open_loop_checked(&client, &load, rate, stop.cancelled_owned()).await })
    };
    let lists_task = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move { measure::node_lists(&client, nodes, EVERY, stop.cancelled_owned()).await })
    };
    let started = Instant::now();
    let mut steps = Vec::new();
    let all: Vec<usize> = (0..procs.len()).collect();
    for (i, proc) in procs.iter_mut().enumerate() {
        let step = restart_one(sim, (i, &all), proc, (binary, &args[i]), nodes, plan).await;
        let step = match step {
            Ok(s) => s,
            Err(e) => {
                stop.cancel();
                return Err(e);
            }
        };
        eprintln!(
            "  rolling restart: replica {i} exited after {:?} s, ready after {:?} s, served every node after {:?} s",
            step.exit_s, step.ready_s, step.served_s
        );
        let served = step.served_s.is_some();
        steps.push(step);
        if !served {
            // As `kubectl rollout` would, stop at a replica that does not come back.
            break;
        }
    }
    let total_s = started.elapsed().as_secs_f64();
    stop.cancel();
    let hpa = hpa_task.await?;
    let node_lists = lists_task.await?;
    let (h, l) = (&hpa.latency, &node_lists.latency);
    eprintln!(
        "  rolling restart: {total_s:.1} s; HPA p50 {:.1} ms p99 {:.1} ms (steady p99 {:.1} ms), {} answers, \
         {} incomplete (at most {} pods lacking), {} errors; {} node lists, {} incomplete (at most {} nodes \
         lacking), {} errors",
        h.p50_ms,
        h.p99_ms,
        steady_hpa.latency.p99_ms,
        hpa.answers,
        hpa.incomplete,
        hpa.most_missing,
        h.errors,
        node_lists.answers,
        node_lists.incomplete,
        node_lists.most_missing,
        l.errors
    );
    for (what, checked) in [("HPA answers", &hpa), ("node lists", &node_lists)] {
        for line in why_short(&checked.short, steps.first().map_or(0.0, |s| s.term_unix_s)) {
            eprintln!("  rolling restart: short {what}: {line}");
        }
    }
    Ok(RollingRestart { total_s, steps, steady_hpa, hpa, node_lists })
}

/// The short answers grouped by the warnings they came with: how many, the
/// most they lacked, and when (seconds after `from`, the first SIGTERM).
fn why_short(short: &[measure::Short], from: f64) -> Vec<String> {
    let mut by: std::collections::BTreeMap<String, (usize, usize, f64, f64)> = Default::default();
    for s in short {
        let key = if s.warnings.is_empty() { "(no warning)".to_owned() } else { s.warnings.join(" | ") };
        let t = s.at_unix_s - from;
        let e = by.entry(key).or_insert((0, 0, t, t));
        e.0 += 1;
        e.1 = e.1.max(s.lacked);
        e.2 = e.2.min(t);
        e.3 = e.3.max(t);
    }
    by.into_iter()
        .map(|(w, (n, most, first, last))| format!("{n} lacking up to {most}, {first:.1}–{last:.1} s: {w}"))
        .collect()
}

/// SIGTERM (replica `i` leaves the proxy's routes), the exit, the respawn,
/// the wait until it is ready (routed to `all` again) and until it serves
/// every node.
async fn restart_one(
    sim: &mut Simulator,
    (i, all): (usize, &[usize]),
    proc: &mut ReplicaProcess,
    (binary, args): (&Path, &[String]),
    nodes: usize,
    plan: &Plan,
) -> anyhow::Result<Step> {
    let others: Vec<usize> = all.iter().copied().filter(|r| *r != i).collect();
    sim.route(&others)?;
    let term = Instant::now();
    let term_unix_s = measure::unix_now();
    proc.signal(libc::SIGTERM);
    let exit_s = sim::wait::until(EXIT_DEADLINE, async || proc.try_wait().is_some()).await.map(|d| d.as_secs_f64());
    let log = restart_log(&proc.log);
    // Dropping the old process SIGKILLs it if it is still there, and reaps it.
    *proc = ReplicaProcess::spawn(binary, args, &log)?;
    let ready = answers(sim, (i, proc, &log), &format!("ready {i}"), "ready 200", plan.start_deadline).await?;
    let ready_s = ready.map(|()| term.elapsed().as_secs_f64());
    if ready_s.is_some() {
        sim.route(all)?;
    }
    let served =
        answers(sim, (i, proc, &log), &format!("items {i} {NODES}"), &format!("items {nodes}"), plan.start_deadline)
            .await?;
    Ok(Step { replica: i, term_unix_s, exit_s, ready_s, served_s: served.map(|()| term.elapsed().as_secs_f64()) })
}

/// Asks the simulator `command` every [`EVERY`] until it answers `want`
/// (`Some`) or `deadline` passes (`None`); an error once replica `i`
/// (`proc`, logging to `log`) has exited.
async fn answers(
    sim: &mut Simulator,
    (i, proc, log): (usize, &mut ReplicaProcess, &Path),
    command: &str,
    want: &str,
    deadline: Duration,
) -> anyhow::Result<Option<()>> {
    let mut exited = false;
    let got = sim::wait::until_some_every(EVERY, deadline, async || {
        // The simulator's pipe is a blocking read: keep the load's tasks
        // running on the other worker meanwhile.
        match tokio::task::block_in_place(|| sim.ask(command)) {
            Ok(line) if line == want => Some(()),
            // Not listening yet, or not ready to answer; or gone.
            _ => {
                exited = proc.try_wait().is_some();
                exited.then_some(())
            }
        }
    })
    .await;
    anyhow::ensure!(!exited, "replica {i} exited after its restart (log {})", log.display());
    Ok(got)
}
