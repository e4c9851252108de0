//! The command line: the server itself (metrics-server's flags, no
//! subcommand, so existing manifests work) and the developer subcommands
//! `dev` (a local cluster with the real kubectl) and `simulate` (only the
//! simulated Kubernetes, for benchmarks that measure the server alone).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ServeArgs};
use crate::dev::addr::Block;
use crate::dev::env::{DevEnv, EnvOptions, ReplicaProcess, kubectl_132};

/// A sharded, highly available drop-in replacement for Kubernetes metrics-server.
///
/// Without a subcommand it runs the server, with metrics-server's flags.
#[derive(Debug, Parser)]
#[command(name = "ha-metrics-server", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local cluster: simulated kubelets, a stand-in kube-apiserver with
    /// its aggregation proxy, and the server; query it with the real kubectl.
    Dev(DevArgs),
    /// Run only the simulated Kubernetes (kubelets and apiserver) until stopped.
    Simulate(SimulateArgs),
    /// Print a replica's view of the cluster: Raft role, term, leader, ring
    /// epoch and every member with its state (asks the peer port).
    Status(StatusArgs),
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A replica's peer address, host:port.
    #[arg(long, default_value = "127.0.0.1:10251")]
    pub peer: String,
    /// The cluster CA.
    #[arg(long)]
    pub peer_ca_file: PathBuf,
    /// A certificate signed by the cluster CA (any replica's will do).
    #[arg(long)]
    pub peer_cert_file: PathBuf,
    /// Its key.
    #[arg(long)]
    pub peer_key_file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 6)]
    pub pods_per_node: usize,
    /// The server's --metric-resolution.
    #[arg(long, default_value = "15s")]
    pub metric_resolution: String,
    /// Replicas. More than one form a Raft cluster over their peer ports
    /// (each still scrapes every node until sharding arrives).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Folder for kubeconfigs, certificates and logs.
    #[arg(long, default_value = ".dev")]
    pub work_dir: PathBuf,
}

/// Options of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address block (see src/dev/addr.rs): 0 puts kubelets on 127.1.x.y.
    #[arg(long, default_value_t = 0)]
    pub block: u8,
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 30)]
    pub pods_per_node: usize,
    #[arg(long, default_value = ".simulate")]
    pub work_dir: PathBuf,
}

/// Parses the command line and runs it.
pub fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => match Config::from_args(&cli.serve) {
            Ok(config) => {
                init_logging(config.verbosity, config.json_logs);
                runtime.block_on(crate::server::run(config))
            }
            Err(e) => Err(anyhow::anyhow!("invalid flag {e}")),
        },
        Some(Command::Dev(args)) => {
            init_logging(0, false);
            runtime.block_on(dev(args))
        }
        Some(Command::Simulate(args)) => {
            init_logging(0, false);
            runtime.block_on(simulate(args))
        }
        Some(Command::Status(args)) => runtime.block_on(status(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbosity: u8, json: bool) {
    let default = match verbosity {
        0..=3 => "info,openraft=error,openraft::replication=off,kube=warn,hyper=warn,rustls=warn",
        4..=5 => "debug,openraft=warn,kube=info,hyper=info,h2=info,rustls=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let kubectl = kubectl_132().ok_or_else(|| anyhow::anyhow!("kubectl.1.32 not found beside the kubectl on PATH"))?;
    let work_dir = std::path::absolute(&args.work_dir)?;
    let mut opts = EnvOptions::new(&work_dir);
    opts.nodes = args.nodes;
    opts.pods_per_node = args.pods_per_node;
    let env = DevEnv::start(Block::dev(), opts).await?;
    anyhow::ensure!((1..=9).contains(&args.replicas), "--replicas must be between 1 and 9");
    let binary = std::env::current_exe()?;
    let mut replicas = Vec::new();
    for i in 0..args.replicas {
        let mut flags = env.replica_args(i, &args.metric_resolution);
        if args.replicas > 1 {
            flags.extend(env.cluster_args(i, args.replicas)?);
        }
        let log = work_dir.join(format!("replica-{i}.log"));
        replicas.push((ReplicaProcess::spawn(&binary, &flags, &log)?, log));
    }
    env.route_metrics_to(&(0..args.replicas).collect::<Vec<_>>());
    env.set_replica_count(args.replicas);
    let pods: usize = env.spec.nodes.iter().map(|n| n.pods.len()).sum();
    println!(
        "Simulated cluster: {} nodes, {pods} pods; stand-in kube-apiserver {}",
        env.spec.nodes.len(),
        env.apiserver.url()
    );
    for (i, (r, log)) in replicas.iter().enumerate() {
        println!(
            "ha-metrics-server replica-{i}: https://{} (pid {}, log {})",
            env.replica_addr(i),
            r.pid(),
            log.display()
        );
    }
    println!("Metrics are served after two scrapes (up to 2 × {}). Then try:", args.metric_resolution);
    let kc = env.files.user_kubeconfig.display();
    println!("  {} --kubeconfig {kc} top nodes", kubectl.display());
    println!("  {} --kubeconfig {kc} top pods -A --containers", kubectl.display());
    println!("  {} --kubeconfig {kc} get nodes.metrics.k8s.io", kubectl.display());
    if args.replicas > 1 {
        let d = work_dir.join("replica-0");
        println!(
            "  {} status --peer {} --peer-ca-file {} --peer-cert-file {} --peer-key-file {}",
            binary.display(),
            env.peer_addr(0),
            work_dir.join("cluster-ca.crt").display(),
            d.join("peer.crt").display(),
            d.join("peer.key").display()
        );
    }
    println!("Ctrl-C stops everything.");
    crate::server::wait_for_signal().await;
    println!("stopping");
    for (r, _) in replicas {
        stop_replica(r).await;
    }
    env.shutdown().await;
    Ok(())
}

async fn stop_replica(mut replica: ReplicaProcess) {
    replica.signal(libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while replica.try_wait().is_none() && tokio::time::Instant::now() < deadline {
        poll.tick().await;
    }
    drop(replica);
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let mut opts = EnvOptions::new(std::path::absolute(&args.work_dir)?);
    opts.nodes = args.nodes;
    opts.pods_per_node = args.pods_per_node;
    let env = DevEnv::start(Block::fixed(args.block), opts).await?;
    println!(
        "ready apiserver={} kubeconfig={} kubelet-ca={} kubelet-token={}",
        env.apiserver.url(),
        env.files.server_kubeconfig.display(),
        env.files.kubelet_ca.display(),
        env.files.kubelet_token.display()
    );
    crate::server::wait_for_signal().await;
    env.shutdown().await;
    Ok(())
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let ca = std::fs::read(&args.peer_ca_file)
        .map_err(|e| anyhow::anyhow!("--peer-ca-file {}: {e}", args.peer_ca_file.display()))?;
    let ck = crate::tls::CertKey::load(&args.peer_cert_file, &args.peer_key_file)?;
    let client = crate::tls::mutual_tls_client_config(&ca, ck.chain, ck.key)?;
    let view = crate::membership::fetch_status(&args.peer, client).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{view}");
    }
    Ok(())
}
