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

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, LoggingSettings, ServeArgs};

/// A sharded, highly available drop-in replacement for Kubernetes metrics-server.
///
/// Without a subcommand it runs the server, with every flag of metrics-server
/// 0.9 in its sections (Go syntax: `--flag`, `--flag=false`, durations like
/// `1m30s`, lists as `a,b` or repeated flags; a repeated flag's last value
/// wins, a repeated list appends), then the flags of ours.
#[derive(Debug, Parser)]
#[command(
    name = "ha-metrics-server",
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    disable_version_flag = true,
    disable_help_flag = true
)]
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

/// Parses `argv` as the binary does, recording in `serve.given` the long
/// names of the flags given on the command line.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    cli.serve.given = given_flags(&matches);
    Ok(cli)
}

/// The long names of the flags set on the command line.
fn given_flags(matches: &ArgMatches) -> std::collections::BTreeSet<String> {
    let command = Cli::command();
    command
        .get_arguments()
        .filter(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// Parses the command line and runs it.
pub fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.command.is_none() && cli.serve.help {
        // Go's bool forms: -h, --help, --help=true (cobra's flag is a bool).
        let _ = Cli::command().print_help();
        return std::process::ExitCode::SUCCESS;
    }
    if cli.command.is_none() && cli.serve.main.version {
        // As metrics-server: the version, before any other flag is checked.
        println!("v{}", env!("CARGO_PKG_VERSION"));
        return std::process::ExitCode::SUCCESS;
    }
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
                init_logging(&config.logging);
                runtime.block_on(crate::server::run(config))
            }
            Err(e) => Err(anyhow::anyhow!("invalid flag {e}")),
        },
        #[cfg(feature = "dev")]
        Some(Command::Dev(args)) => {
            init_logging(&quiet());
            runtime.block_on(dev::dev(args))
        }
        #[cfg(feature = "dev")]
        Some(Command::Simulate(args)) => {
            init_logging(&quiet());
            runtime.block_on(simulate::simulate(args))
        }
        Some(Command::Cluster(args)) => runtime.block_on(cluster(args)),
        Some(Command::Certgen(args)) => {
            init_logging(&quiet());
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

/// Logging of the developer subcommands.
#[cfg(feature = "dev")]
fn quiet() -> LoggingSettings {
    LoggingSettings {
        verbosity: 0,
        json: false,
        vmodule: Vec::new(),
        flush_frequency: std::time::Duration::from_secs(5),
    }
}

/// The `tracing` level a klog verbosity stands for.
fn level_of(verbosity: u32) -> tracing::Level {
    match verbosity {
        0..=3 => tracing::Level::INFO,
        4..=5 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Logs to stderr, unbuffered (so `--log-flush-frequency` always holds),
/// at `-v` (or `RUST_LOG`), with `--vmodule` raising the level of the
/// source files it names, as text or JSON.
fn init_logging(settings: &LoggingSettings) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match settings.verbosity {
        0..=3 => "info,openraft=error,openraft::replication=off,kube=warn,hyper=warn,rustls=warn",
        4..=5 => "debug,openraft=warn,kube=info,hyper=info,h2=info,rustls=info",
        _ => "trace",
    };
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let rules = settings.vmodule.clone();
    let most = rules.iter().map(|r| level_of(r.level)).max();
    let vmodule = tracing_subscriber::filter::filter_fn(move |meta| {
        let Some(file) = meta.file() else { return false };
        rules.iter().find(|r| r.matches(file)).is_some_and(|r| *meta.level() <= level_of(r.level))
    })
    .with_max_level_hint(most.map_or(tracing::level_filters::LevelFilter::OFF, Into::into));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && !settings.json;
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let layer = if settings.json { fmt.json().boxed() } else { fmt.boxed() };
    let _ = tracing_subscriber::registry().with(layer.with_filter(env.or(vmodule))).try_init();
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
