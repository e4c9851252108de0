//! `chaos`: run failover scenarios against real replica processes on the
//! simulated Kubernetes and write a report (`chaos run`), list them
//! (`chaos list`), or observe a real cluster (`chaos observe`).

use std::path::PathBuf;

use anyhow::bail;
use chaos::progress::Progress;
use chaos::runner::{self, RunOptions};
use chaos::scenarios::{CATALOGUE, SOAK};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chaos", about = "The failover suite of ha-metrics-server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and write report.json, report.md and one SVG timeline per scenario to --out.
    Run(RunArgs),
    /// List the scenarios.
    List,
    /// Observe a real cluster through kube-apiserver (coverage and freshness against the Node list), and with
    /// --prometheus also from the SLIs its Prometheus collects.
    Observe(chaos::observe::ObserveArgs),
    /// Draw the timeline of a recording-<scenario>.json again (to an SVG file).
    Plot { recording: PathBuf, svg: PathBuf },
}

#[derive(Args)]
struct RunArgs {
    /// Scenarios to run (see `chaos list`), or --all.
    scenarios: Vec<String>,
    /// Every scenario of the catalogue (and the soak with --long).
    #[arg(long)]
    all: bool,
    /// Short fault windows and a small cluster, for CI (the default).
    #[arg(long, conflicts_with = "long")]
    short: bool,
    /// Long fault windows, a bigger cluster and a longer soak.
    #[arg(long)]
    long: bool,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Simulated nodes (default 12 short, 30 long).
    #[arg(long)]
    nodes: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pods_per_node: usize,
    /// Metric resolution of the replicas (Go duration).
    #[arg(long, default_value = "2s")]
    resolution: String,
    /// With the soak: draw faults until this many minutes have passed
    /// (instead of 2 short, 8 long), sample each replica's resident memory
    /// and judge that it stays flat once warm.
    #[arg(long)]
    soak_minutes: Option<u64>,
    /// Seed of every random choice (simulated cluster, targets, soak mix).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// The ha-metrics-server binary (default: beside this executable, built if missing).
    #[arg(long)]
    binary: Option<PathBuf>,
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let resolution = apimachinery::parse_go_duration(&args.resolution)
        .map_err(|e| anyhow::anyhow!("--resolution {}: {e}", args.resolution))?;
    let mut names: Vec<String> = if args.all {
        let mut all: Vec<String> = CATALOGUE.iter().map(|s| s.name.to_string()).collect();
        all.push(SOAK.to_string());
        all
    } else {
        args.scenarios.clone()
    };
    if names.is_empty() {
        bail!("name scenarios to run (see `chaos list`) or pass --all");
    }
    for n in &names {
        if n != SOAK && chaos::scenarios::find(n).is_none() {
            bail!("no scenario {n}; `chaos list` shows them");
        }
    }
    names.dedup();
    let binary = match args.binary {
        Some(b) => b,
        None => chaos::binary::beside(&std::env::current_exe()?)?,
    };
    let out = args.out.clone();
    let opts = RunOptions {
        replicas: args.replicas,
        nodes: args.nodes.unwrap_or(if args.long { 30 } else { 12 }),
        pods_per_node: args.pods_per_node,
        resolution,
        seed: args.seed,
        long: args.long,
        binary,
        work_dir: out.join("work"),
        extra_args: Vec::new(),
        clustered: true,
        expect_serving: true,
        wrong_kubelet_ca: false,
        soak_for: args.soak_minutes.map(|m| std::time::Duration::from_secs(m * 60)),
    };
    let mut progress = Progress::new(names.len());
    let mut outcomes = Vec::new();
    for n in &names {
        progress.next();
        let o = runner::run(n, &opts, &mut progress).await;
        progress.note(&format!("{n}: {} in {:.0} s", o.verdict, o.seconds));
        outcomes.push(o);
    }
    let form = if args.long { "long" } else { "short" };
    let files = chaos::report::write(&out, &outcomes, args.seed, form)?;
    let md = chaos::report::markdown(&outcomes, args.seed, form);
    // The summary and the table; the failure details are in report.md.
    let summary: Vec<&str> = md.lines().take_while(|l| !l.starts_with("## ")).collect();
    println!("{}", summary.join("\n").trim_end());
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(outcomes.iter().all(|o| o.passed()))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match cli.command {
        Command::List => {
            for s in CATALOGUE {
                println!("{:<26} {}", s.name, s.what);
            }
            println!("{SOAK:<26} a seeded random mix of the above (2 faults short, 8 long)");
            Ok(())
        }
        Command::Run(args) => {
            let all_passed = rt.block_on(run(args))?;
            if !all_passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Plot { recording, svg } => {
            let text = std::fs::read_to_string(&recording)?;
            let rec: chaos::record::Recording = serde_json::from_str(&text)?;
            let title = recording.file_stem().and_then(|s| s.to_str()).unwrap_or("timeline").to_string();
            chaos::plot::draw(&rec, &title, &svg).map_err(anyhow::Error::msg)?;
            Ok(())
        }
        Command::Observe(args) => {
            let ok = rt.block_on(chaos::observe::run(args))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
