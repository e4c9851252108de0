//! The scale benchmark: for each cluster size, one simulated cluster
//! (`ha-metrics-server simulate`, its kubelets spread over child processes)
//! and, one after the other on it, three sharded replicas, three independent
//! replicas without `--peers` (metrics-server's HA), one replica
//! (metrics-server's default) and the real Prometheus scraping every
//! kubelet (what prometheus-adapter needs first). It measures those
//! processes only (CPU from /proc, peak and steady RSS), kubelet scrapes per
//! node per resolution from the simulator's counters, the time until every
//! replica serves every node, `top pod -A` and HPA latencies from each
//! replica through the aggregation proxy, and, for the sharded replicas, a
//! rolling restart of all three under the HPA load and the latencies with
//! one owner SIGKILLed. Writes target/scale/{table.txt,scale.json,cost.svg}.
//!
//! `cargo bench --bench scale` (all sizes), `cargo bench --bench scale -- --quick`
//! (200 nodes, short windows). Environment: `SCALE_SIZES` (e.g.
//! `1000,10000`), `SCALE_MODES` (`sharded,independent,single,prometheus`), `SCALE_PODS`
//! (30), `SCALE_RESOLUTION` (seconds, 15), `SCALE_SECONDS` (window, 60),
//! `SCALE_TOP_REQUESTS` (`top pod -A` requests per replica, 10), `SCALE_OUT`
//! (output folder), `SCALE_RF` (the sharded replicas' replication factor,
//! default 3). `SCALE_MODES=handover` runs the SIGTERM handover at
//! scale instead (two replicas, replication factor 1; see `handover.rs`),
//! writing `handover.json`.

mod handover;
mod measure;
mod prometheus;
mod report;
mod restart;
mod run;
mod simulator;

use std::path::PathBuf;
use std::time::Duration;

use run::{Mode, Plan};
use sim::addr::Block;
use simulator::Simulator;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn modes(list: &str) -> anyhow::Result<Vec<Mode>> {
    list.split(',')
        .map(|m| match m.trim() {
            "sharded" => Ok(Mode::Sharded3),
            "independent" => Ok(Mode::Independent3),
            "single" => Ok(Mode::Single),
            "prometheus" => Ok(Mode::Prometheus),
            other => anyhow::bail!("unknown mode {other:?} (sharded, independent, single, prometheus)"),
        })
        .collect()
}

/// Copies the replica logs of `from` (`<mode>-replica-<i>.log`, and
/// `….restarted.log` after the rolling restart) and Prometheus' to `to`.
fn keep_logs(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if (name.contains("-replica-") || name.starts_with("prometheus")) && name.ends_with(".log") {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}

/// The machine the figures come from: cores, memory, CPU model, date, load.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let mem = read("/proc/meminfo").lines().next().unwrap_or_default().to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    format!(
        "machine: {cores} cores, {}, CPU {}, {}, load average at the end {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" ") + " RAM",
        model.unwrap_or("unknown"),
        date.unwrap_or_default(),
        read("/proc/loadavg").trim()
    ) + "\n"
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: Vec<usize> = env_or("SCALE_SIZES", if quick { "200" } else { "1000,5000,10000" })
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let handover = env_or("SCALE_MODES", "") == "handover";
    let modes =
        if handover { Vec::new() } else { modes(&env_or("SCALE_MODES", "sharded,independent,single,prometheus"))? };
    let pods: usize = env_or("SCALE_PODS", "30").parse()?;
    let resolution = Duration::from_secs(env_or("SCALE_RESOLUTION", if quick { "10" } else { "15" }).parse()?);
    let plan = Plan {
        resolution,
        window: Duration::from_secs(env_or("SCALE_SECONDS", if quick { "20" } else { "60" }).parse()?),
        top_requests: env_or("SCALE_TOP_REQUESTS", if quick { "5" } else { "10" }).parse()?,
        hpa_rate: 500.0,
        hpa_duration: Duration::from_secs(if quick { 3 } else { 10 }),
        start_deadline: Duration::from_secs(if quick { 120 } else { 600 }),
        replication: std::env::var("SCALE_RF").ok().map(|v| v.parse()).transpose()?,
    };
    let out = PathBuf::from(env_or("SCALE_OUT", concat!(env!("CARGO_MANIFEST_DIR"), "/target/scale")));
    std::fs::create_dir_all(&out)?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ha-metrics-server"));
    let rt = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    if handover {
        let mut handovers = Vec::new();
        for &nodes in &sizes {
            let block = Block::acquire()?;
            let dir = tempfile::tempdir()?;
            eprintln!("handover: {nodes} nodes x {pods} pods, resolution {}s", resolution.as_secs());
            let mut sim = Simulator::start(&binary, block.index(), nodes, pods, dir.path())?;
            handovers.push(rt.block_on(handover::run(&mut sim, &binary, (nodes, pods), &plan, &out))?);
            std::fs::write(out.join("handover.json"), serde_json::to_string_pretty(&handovers)?)?;
        }
        print!("{}{}", serde_json::to_string_pretty(&handovers)?, machine());
        return Ok(());
    }
    for &nodes in &sizes {
        let block = Block::acquire()?;
        let dir = tempfile::tempdir()?;
        eprintln!("scale: {nodes} nodes x {pods} pods, resolution {}s", resolution.as_secs());
        let mut sim = Simulator::start(&binary, block.index(), nodes, pods, dir.path())?;
        for &mode in &modes {
            let result = rt.block_on(run::run(&mut sim, &binary, mode, nodes, pods, &plan));
            // The replicas' logs outlive the simulator's temporary folder.
            keep_logs(dir.path(), &out.join("logs").join(nodes.to_string()))?;
            results.push(result?);
            // Partial results survive a later failure.
            std::fs::write(out.join("scale.json"), serde_json::to_string_pretty(&results)?)?;
        }
        drop(sim);
    }
    let mut table = report::table(&results);
    table.push_str(&machine());
    print!("{table}");
    std::fs::write(out.join("table.txt"), &table)?;
    report::plot(&results, &out.join("cost.svg"))?;
    eprintln!("scale: wrote {}", out.display());
    Ok(())
}
