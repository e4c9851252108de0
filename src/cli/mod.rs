//! The command line: the server itself (metrics-server's flags, no
//! subcommand, so existing manifests work), `cluster` (a replica's view of
//! the cluster), [`certgen`] (the Job that makes the peer CA Secret), and,
//! with the `dev` feature, the developer subcommands in
//! [`dev`] (a local cluster with the real kubectl) and [`simulate`]
//! (only the simulated Kubernetes, for benchmarks that measure the server
//! alone).

pub mod certgen;
#[cfg(feature = "dev")]
mod dev;
#[cfg(feature = "dev")]
mod simulate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ServeArgs};

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
    #[cfg(feature = "dev")]
    Dev(dev::DevArgs),
    /// Run only the simulated Kubernetes (kubelets and apiserver) until stopped.
    #[cfg(feature = "dev")]
    Simulate(simulate::SimulateArgs),
    /// Print a replica's view of the cluster: Raft role, term, leader, ring
    /// epoch and every member with its state (asks the peer port).
    Cluster(ClusterArgs),
    /// Make the peer CA Secret the replicas mount (--peer-ca-dir) when it
    /// does not exist, check it when it does, or rotate its CA (--rotate).
    /// Run once by the certgen Job, with its own service account.
    Certgen(certgen::CertgenArgs),
}

/// Options of `cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
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
                init_logging(config.logging.verbosity, config.logging.json);
                runtime.block_on(crate::server::run(config))
            }
            Err(e) => Err(anyhow::anyhow!("invalid flag {e}")),
        },
        #[cfg(feature = "dev")]
        Some(Command::Dev(args)) => {
            init_logging(0, false);
            runtime.block_on(dev::dev(args))
        }
        #[cfg(feature = "dev")]
        Some(Command::Simulate(args)) => {
            init_logging(0, false);
            runtime.block_on(simulate::simulate(args))
        }
        Some(Command::Cluster(args)) => runtime.block_on(cluster(args)),
        Some(Command::Certgen(args)) => {
            init_logging(0, false);
            runtime.block_on(certgen::certgen(args))
        }
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

async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let client = crate::peer::client_config(&args.peer_ca_file, &args.peer_cert_file, &args.peer_key_file)?;
    let view = crate::member::status::fetch(&args.peer, client).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{view}");
    }
    Ok(())
}
