//! Failover benchmark: repeated real failovers of three replica processes of
//! the real binary on a simulated cluster (30 nodes, R = 2 s, lease 3 s).
//! kill -9 trials (alternately the leader and a follower) and SIGTERM
//! trials (planned leave); after each the victim is restarted with its data
//! dir and the next trial waits until the cluster is whole again.
//!
//! `cargo bench --bench failover [-- --quick | --kills N --terms N]`
//! (add `--profile dev` to reuse a debug build). Environment:
//! `FAILOVER_KILLS`, `FAILOVER_TERMS` (default 20 each; `--quick`: 3),
//! `FAILOVER_NODES` (30), `FAILOVER_NOTE` (free text for the report),
//! `FAILOVER_VICTIM=i` or `--victim i` (always kill replica i: the same member again soon
//! after it rejoined, the case that once left gaps), `FAILOVER_KEEP=1` (keep
//! the replicas' logs and data dirs; set `RUST_LOG` for more in the logs).
//! `--step-deadline SECS` (60) and `--recovery-deadline SECS` (120) bound
//! each trial's steps; a trial that misses one is reported as failed.
//! Writes `target/failover/failover.{json,md}` (or `--out DIR`).

mod cluster;
mod observer;
mod report;
mod trial;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cluster::{Bench, LEASE, REPLICAS, RESOLUTION};
use report::{Machine, Report, Setup};
use trial::{Kind, Trial};

const PODS_PER_NODE: usize = 2;
/// How long a fresh cluster may take to be whole.
const STARTUP: Duration = Duration::from_secs(180);

struct Options {
    kills: usize,
    terms: usize,
    nodes: usize,
    out: PathBuf,
    note: String,
    /// Always this replica (`FAILOVER_VICTIM`, `--victim`), else leader and follower in turn.
    victim: Option<usize>,
    deadlines: trial::Deadlines,
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

fn seconds(v: &str) -> anyhow::Result<Duration> {
    let s: f64 = v.parse().with_context(|| format!("{v} is not a number of seconds"))?;
    Duration::try_from_secs_f64(s).with_context(|| format!("{v} is not a number of seconds"))
}

fn options() -> anyhow::Result<Options> {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let mut o = Options {
        kills: env_usize("FAILOVER_KILLS", 20)?,
        terms: env_usize("FAILOVER_TERMS", 20)?,
        nodes: env_usize("FAILOVER_NODES", 30)?,
        out: PathBuf::from(target).join("failover"),
        note: std::env::var("FAILOVER_NOTE").unwrap_or_default(),
        victim: std::env::var("FAILOVER_VICTIM")
            .ok()
            .map(|v| v.parse().with_context(|| format!("FAILOVER_VICTIM={v} is not a replica index")))
            .transpose()?,
        deadlines: trial::Deadlines::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value"));
        match a.as_str() {
            // cargo bench passes --bench to harness-less benches.
            "--bench" => {}
            "--quick" => (o.kills, o.terms) = (3, 3),
            "--kills" => o.kills = value("--kills")?.parse().context("--kills")?,
            "--terms" => o.terms = value("--terms")?.parse().context("--terms")?,
            "--nodes" => o.nodes = value("--nodes")?.parse().context("--nodes")?,
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--note" => o.note = value("--note")?,
            "--victim" => o.victim = Some(value("--victim")?.parse().context("--victim")?),
            // Short deadlines make trials fail on purpose (to see that a
            // failed trial is reported and the run goes on).
            "--step-deadline" => o.deadlines.step = seconds(&value("--step-deadline")?)?,
            "--recovery-deadline" => o.deadlines.recovery = seconds(&value("--recovery-deadline")?)?,
            other => anyhow::bail!(
                "unknown argument {other} (--quick, --kills N, --terms N, --nodes N, --out DIR, --note TEXT, --victim I, --step-deadline SECS, --recovery-deadline SECS)"
            ),
        }
    }
    if let Some(v) = o.victim.filter(|v| *v >= REPLICAS) {
        anyhow::bail!("victim replica-{v} does not exist (0 to {})", REPLICAS - 1);
    }
    Ok(o)
}

async fn fresh_cluster(nodes: usize) -> anyhow::Result<Bench> {
    let bench = Bench::start(PathBuf::from(env!("CARGO_BIN_EXE_ha-metrics-server")), nodes, PODS_PER_NODE).await?;
    match bench.wait_healthy(STARTUP).await {
        Ok(took) => {
            println!("failover: cluster whole after {:.1}s", took.as_secs_f64());
            Ok(bench)
        }
        Err(why) => {
            let tails: Vec<String> =
                (0..REPLICAS).map(|i| format!("--- replica-{i}\n{}", bench.log_tail(i, 20))).collect();
            anyhow::bail!("the cluster was not whole within {STARTUP:?}: {why}\n{}", tails.join("\n"))
        }
    }
}

fn progress(t: &Trial) {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}s"));
    println!(
        "failover: {} #{} replica-{} ({}): marked {} re-scraped {} exited {} max age {:.2}s missing {}{} extra {} recovery {} {}",
        t.kind.label(),
        t.index,
        t.victim,
        if t.victim_was_leader { "leader" } else { "follower" },
        f(t.marked_s),
        f(t.rescraped_s),
        f(t.exited_s),
        t.seen.max_age_s,
        t.seen.missing_answers,
        match (t.missing_from_s, t.missing_to_s) {
            (Some(a), Some(b)) => format!(" ({a:.1}..{b:.1}s)"),
            _ => String::new(),
        },
        t.max_extra_scrapes,
        f(t.recovery_s),
        if t.ok { "ok".to_string() } else { format!("FAILED: {}", t.failures.join("; ")) }
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let o = options()?;
    let mut machine = Machine::probe(o.note.clone());
    println!(
        "failover: {} kill -9 and {} SIGTERM trials, {} nodes, R {RESOLUTION:?}, lease {LEASE:?}",
        o.kills, o.terms, o.nodes
    );
    let mut bench = fresh_cluster(o.nodes).await?;
    let plan: Vec<(Kind, usize)> =
        (0..o.kills).map(|i| (Kind::Kill9, i)).chain((0..o.terms).map(|i| (Kind::Sigterm, i))).collect();
    let mut trials = Vec::new();
    for (kind, i) in plan {
        let t = trial::run(&mut bench, kind, i, i % 2 == 0, o.victim, o.deadlines).await;
        progress(&t);
        let whole = t.recovered();
        if !whole {
            let tails: Vec<String> =
                (0..REPLICAS).map(|i| format!("--- replica-{i}\n{}", bench.log_tail(i, 15))).collect();
            println!("failover: cluster not whole after the trial; starting a new one\n{}", tails.join("\n"));
        }
        trials.push(t);
        if !whole {
            bench.shutdown().await;
            bench = fresh_cluster(o.nodes).await?;
        }
    }
    bench.shutdown().await;
    machine.finished = report::now_utc();
    let summaries = vec![report::summarise(Kind::Kill9, &trials), report::summarise(Kind::Sigterm, &trials)];
    let r = Report {
        machine,
        setup: Setup {
            replicas: REPLICAS,
            nodes: o.nodes,
            pods_per_node: PODS_PER_NODE,
            resolution_s: RESOLUTION.as_secs_f64(),
            lease_s: LEASE.as_secs_f64(),
            observer_poll_ms: observer::POLL.as_millis() as u64,
            binary_profile: if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
        },
        summaries,
        trials,
    };
    println!("\n{}", report::summary_table(&r.summaries));
    std::fs::create_dir_all(&o.out).with_context(|| format!("create {}", o.out.display()))?;
    let json = o.out.join("failover.json");
    std::fs::write(&json, serde_json::to_string_pretty(&r)?).with_context(|| format!("write {}", json.display()))?;
    let md = o.out.join("failover.md");
    std::fs::write(&md, report::markdown(&r)).with_context(|| format!("write {}", md.display()))?;
    println!("failover: wrote {} and {}", json.display(), md.display());
    Ok(())
}
