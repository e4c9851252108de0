//! `simulate` (feature `dev`): only the simulated Kubernetes, for benchmarks
//! that measure the server alone. The stand-in apiserver runs in this
//! process; with `--kubelet-processes N` the kubelets run in N child
//! processes of this binary (a process may hold 20,000 open files, and
//! 10,000 listeners plus three replicas' pooled connections do not fit in
//! one), each serving a contiguous slice of the nodes.
//!
//! It is driven over stdin/stdout, one line per command, so a benchmark can
//! run several replica layouts against one cluster:
//! - `route 0,1,2`: the aggregation proxy sends metrics.k8s.io to these
//!   replicas (round-robin); answers `ok`;
//! - `replicas N`: the replicas' StatefulSet has N replicas; answers `ok`;
//! - `replica-args I R`, `cluster-args I N`: the flags replica `I` needs
//!   (resolution `R`; member of an `N`-replica cluster); answers `args <json>`;
//! - `stats`: answers `stats scrapes=<total> scraped=<nodes scraped at least once>`;
//! - `reset`: sets every scrape counter to 0; answers `ok`;
//! - `self-metrics I PREFIX`: the sum of replica `I`'s `/metrics` series
//!   starting with `PREFIX`; answers `sum <value>`;
//! - `items I PATH`: GETs `PATH` from replica `I` directly (not through the
//!   aggregation proxy, so it can be asked while the proxy spreads a load
//!   over every replica), as a cluster admin; answers `items <n>`, the
//!   length of the answer's `items` list;
//! - `ready I`: GETs replica `I`'s `/readyz` directly, as a kubelet's
//!   readiness probe does; answers `ready <status>` (`ready 0` when it does
//!   not answer within a second);
//! - `prometheus-config DIR R`: writes `DIR/kubelets.json`, every kubelet as
//!   a Prometheus file_sd target labelled with its node, and
//!   `DIR/prometheus.yml`, one job scraping them every `R` the way the
//!   replicas do (HTTPS, `/metrics/resource`, verified against the kubelet
//!   CA, the kubelets' bearer token); answers `prometheus config=<path> targets=<n>`.
//!
//! End of input stops it, as does SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sim::addr::Block;
use sim::cluster::{GenerateOptions, generate};
use sim::env::{DevEnv, EnvOptions};
use sim::kubelet::{FleetOptions, KubeletFleet};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_util::sync::CancellationToken;

/// Options of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address block (see chaos/sim/src/addr.rs): 0 puts kubelets on 127.1.x.y.
    #[arg(long, default_value_t = 0)]
    pub block: u8,
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 30)]
    pub pods_per_node: usize,
    #[arg(long, default_value = ".simulate")]
    pub work_dir: PathBuf,
    /// Child processes the kubelets are spread over; 0 runs them in this
    /// process beside the apiserver.
    #[arg(long, default_value_t = 0)]
    pub kubelet_processes: usize,
    /// (internal) Run only the kubelets of slice I of --kubelet-processes.
    #[arg(long, hide = true, requires = "kubelet_token_file")]
    pub kubelet_shard: Option<usize>,
    /// (internal) The token the kubelets of a slice accept.
    #[arg(long, hide = true)]
    pub kubelet_token_file: Option<PathBuf>,
}

/// Nodes `i`'s slice of `nodes` holds when spread over `parts`.
fn slice(nodes: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    i * nodes / parts..(i + 1) * nodes / parts
}

/// Total scrapes and nodes scraped at least once.
fn stats(fleet: &KubeletFleet) -> (u64, usize) {
    let scraped = fleet.node_names().filter(|n| fleet.scrape_count(n) > 0).count();
    (fleet.total_scrapes(), scraped)
}

fn parse_stats(line: &str) -> Option<(u64, usize)> {
    let mut words = line.strip_prefix("stats ")?.split_whitespace();
    let scrapes = words.next()?.strip_prefix("scrapes=")?.parse().ok()?;
    let scraped = words.next()?.strip_prefix("scraped=")?.parse().ok()?;
    Some((scrapes, scraped))
}

/// Lines of stdin, read on a thread of their own; the channel closes at end
/// of input.
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A child process serving one slice of the kubelets.
struct KubeletChild {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl KubeletChild {
    async fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        self.stdout.next_line().await?.context("kubelet process ended")
    }
}

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let work_dir = std::path::absolute(&args.work_dir)?;
    if let Some(shard) = args.kubelet_shard {
        return kubelet_slice(&args, shard, work_dir).await;
    }
    let mut opts = EnvOptions::new(&work_dir);
    opts.nodes = args.nodes;
    opts.pods_per_node = args.pods_per_node;
    if args.kubelet_processes > 0 {
        opts.kubelet_nodes = Some(0..0);
    }
    let binary = std::env::current_exe()?;
    // The peer CA Secret for `cluster-args` replicas, made by the certgen Job.
    opts.binary = Some(binary.clone());
    let env = DevEnv::start(Block::fixed(args.block), opts).await?;
    let mut children = Vec::new();
    let mut cas = String::new();
    for i in 0..args.kubelet_processes {
        let mut child = tokio::process::Command::new(&binary)
            .args(["simulate", "--block", &args.block.to_string(), "--nodes", &args.nodes.to_string()])
            .args(["--pods-per-node", &args.pods_per_node.to_string()])
            .args(["--kubelet-processes", &args.kubelet_processes.to_string(), "--kubelet-shard", &i.to_string()])
            .arg("--work-dir")
            .arg(&work_dir)
            .arg("--kubelet-token-file")
            .arg(&env.files.kubelet_token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a kubelet process")?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let mut child = KubeletChild { child, stdin, stdout };
        let ready = child.stdout.next_line().await?.context("kubelet process ended before it was ready")?;
        let ca = ready.strip_prefix("ready ca=").with_context(|| format!("kubelet process said {ready}"))?;
        cas.push_str(&std::fs::read_to_string(ca).with_context(|| ca.to_string())?);
        children.push(child);
    }
    if !children.is_empty() {
        // One file the replicas trust: every slice has its own CA.
        std::fs::write(&env.files.kubelet_ca, &cas)?;
    }
    let pids: Vec<String> = children.iter().filter_map(|c| c.child.id()).map(|p| p.to_string()).collect();
    println!(
        "ready apiserver={} kubeconfig={} kubelet-ca={} kubelet-token={} kubelet-pids={}",
        env.apiserver.url(),
        env.files.server_kubeconfig.display(),
        env.files.kubelet_ca.display(),
        env.files.kubelet_token.display(),
        if pids.is_empty() { "-".to_string() } else { pids.join(",") }
    );
    let mut input = stdin_lines();
    loop {
        let line = tokio::select! {
            _ = crate::server::wait_for_signal() => break,
            line = input.recv() => match line { Some(l) => l, None => break },
        };
        let answer = match command(&env, &mut children, line.trim()).await {
            Ok(a) => a,
            Err(e) => format!("error {e:#}"),
        };
        // One line per answer, whatever an error message holds.
        println!("{}", answer.replace('\n', " "));
    }
    for mut c in children {
        drop(c.stdin);
        let _ = c.child.kill().await;
    }
    env.shutdown().await;
    Ok(())
}

async fn command(env: &DevEnv, children: &mut [KubeletChild], line: &str) -> anyhow::Result<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let index = |i: usize| -> anyhow::Result<usize> {
        words.get(i).context("missing argument")?.parse().context("not a number")
    };
    match words.first().copied() {
        Some("route") => {
            let replicas = words
                .get(1)
                .map(|w| w.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>())
                .transpose()?
                .unwrap_or_default();
            env.route_metrics_to(&replicas);
            Ok("ok".to_string())
        }
        Some("replicas") => {
            env.set_replica_count(index(1)?);
            Ok("ok".to_string())
        }
        Some("replica-args") => {
            let resolution = words.get(2).context("missing resolution")?;
            Ok(format!("args {}", serde_json::to_string(&env.replica_args(index(1)?, resolution))?))
        }
        Some("cluster-args") => {
            Ok(format!("args {}", serde_json::to_string(&env.cluster_args(index(1)?, index(2)?)?)?))
        }
        Some("stats") => {
            let (mut scrapes, mut scraped) = stats(&env.fleet);
            for c in children.iter_mut() {
                let reply = c.ask("stats").await?;
                let (s, n) = parse_stats(&reply).with_context(|| format!("kubelet process said {reply}"))?;
                scrapes += s;
                scraped += n;
            }
            Ok(format!("stats scrapes={scrapes} scraped={scraped}"))
        }
        Some("self-metrics") => {
            // The sum of every series of replica i's /metrics whose line
            // starts with the prefix (read as a cluster admin).
            let prefix = words.get(2).context("missing series prefix")?;
            let admin = env.apiserver.issue_client_cert("admin", &["system:masters"])?;
            let (code, text) = sim::client::try_get(env.replica_addr(index(1)?), "/metrics", Some(&admin), &[])
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            anyhow::ensure!(code == 200, "/metrics answered {code}");
            Ok(format!("sum {}", sum_series(&text, prefix)))
        }
        Some("items") => {
            let path = words.get(2).context("missing path")?;
            let admin = env.apiserver.issue_client_cert("admin", &["system:masters"])?;
            let (code, text) = sim::client::try_get(env.replica_addr(index(1)?), path, Some(&admin), &[])
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            anyhow::ensure!(code == 200, "{path} answered {code}: {}", text.chars().take(200).collect::<String>());
            let list: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{path}: not JSON"))?;
            let items = list["items"].as_array().with_context(|| format!("{path}: no items list"))?;
            Ok(format!("items {}", items.len()))
        }
        Some("ready") => {
            let probe = sim::client::try_get(env.replica_addr(index(1)?), "/readyz", None, &[]);
            let code = match tokio::time::timeout(Duration::from_secs(1), probe).await {
                Ok(Ok((code, _))) => code,
                _ => 0,
            };
            Ok(format!("ready {code}"))
        }
        Some("prometheus-config") => {
            let dir = PathBuf::from(words.get(1).context("missing folder")?);
            let interval = words.get(2).context("missing scrape interval")?;
            let interval = apimachinery::parse_go_duration(interval).map_err(|e| anyhow::anyhow!("{interval}: {e}"))?;
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            let targets = dir.join("kubelets.json");
            let groups =
                file_sd(env.spec.nodes.iter().map(|n| (n.name.as_str(), SocketAddr::from((n.ip, n.kubelet_port)))));
            std::fs::write(&targets, serde_json::to_string(&groups)?).with_context(|| targets.display().to_string())?;
            let config = dir.join("prometheus.yml");
            let text = prometheus_config(interval, &targets, &env.files.kubelet_ca, &env.files.kubelet_token);
            std::fs::write(&config, serde_json::to_string_pretty(&text)?)
                .with_context(|| config.display().to_string())?;
            Ok(format!("prometheus config={} targets={}", config.display(), env.spec.nodes.len()))
        }
        Some("reset") => {
            env.fleet.reset_scrape_counts();
            for c in children.iter_mut() {
                c.ask("reset").await?;
            }
            Ok("ok".to_string())
        }
        _ => anyhow::bail!("unknown command {line:?}"),
    }
}

/// The sum of the values of every sample line of a Prometheus text
/// exposition that starts with `prefix` (comments never do).
fn sum_series(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Prometheus' file_sd target groups for kubelets (`(node, address)`):
/// one group per node, labelled `node`, as Kubernetes' node discovery with
/// the usual relabelling would label them.
fn file_sd<'a>(kubelets: impl Iterator<Item = (&'a str, SocketAddr)>) -> serde_json::Value {
    kubelets.map(|(node, addr)| serde_json::json!({"targets": [addr.to_string()], "labels": {"node": node}})).collect()
}

/// A duration as Prometheus writes one: whole seconds (`15s`) or milliseconds.
fn prometheus_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// A Prometheus configuration (JSON, which is YAML) with one job scraping
/// the kubelets listed in `targets` every `interval` as metrics-server
/// does: `https://<kubelet>/metrics/resource`, the serving certificates
/// verified against `ca`, the bearer token in `token`. The scrape timeout
/// is Prometheus' default, 10 s, or the interval when that is shorter (it
/// may not exceed it).
fn prometheus_config(interval: Duration, targets: &Path, ca: &Path, token: &Path) -> serde_json::Value {
    let timeout = interval.min(Duration::from_secs(10));
    serde_json::json!({
        "global": {
            "scrape_interval": prometheus_duration(interval),
            "scrape_timeout": prometheus_duration(timeout),
        },
        "scrape_configs": [{
            "job_name": "kubelet-resource",
            "scheme": "https",
            "metrics_path": "/metrics/resource",
            "tls_config": {"ca_file": ca},
            "authorization": {"type": "Bearer", "credentials_file": token},
            "file_sd_configs": [{"files": [targets]}],
        }],
    })
}

/// A child: the kubelets of one slice, answering `stats` and `reset`.
async fn kubelet_slice(args: &SimulateArgs, shard: usize, work_dir: PathBuf) -> anyhow::Result<()> {
    let token_file = args.kubelet_token_file.as_ref().context("--kubelet-token-file")?;
    let token = std::fs::read_to_string(token_file).with_context(|| token_file.display().to_string())?;
    let block = Block::fixed(args.block);
    let defaults = EnvOptions::new(&work_dir);
    let mut spec = generate(
        &block,
        &GenerateOptions {
            nodes: args.nodes,
            pods_per_node: args.pods_per_node,
            seed: defaults.seed,
            ..GenerateOptions::default()
        },
    );
    let range = slice(args.nodes, args.kubelet_processes.max(1), shard);
    spec.nodes = spec.nodes.get(range).unwrap_or_default().to_vec();
    let shutdown = CancellationToken::new();
    let fleet =
        KubeletFleet::start(&spec, FleetOptions::with_tokens([token.trim().to_string()]), shutdown.clone()).await?;
    let ca = work_dir.join(format!("kubelet-ca-{shard}.crt"));
    std::fs::write(&ca, fleet.ca_pem())?;
    println!("ready ca={}", ca.display());
    let mut input = stdin_lines();
    while let Some(line) = input.recv().await {
        match line.trim() {
            "stats" => {
                let (scrapes, scraped) = stats(&fleet);
                println!("stats scrapes={scrapes} scraped={scraped}");
            }
            "reset" => {
                fleet.reset_scrape_counts();
                println!("ok");
            }
            other => println!("error unknown command {other:?}"),
        }
    }
    shutdown.cancel();
    fleet.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_node_once() {
        for (nodes, parts) in [(10_000, 4), (7, 3), (1, 2)] {
            let ranges: Vec<_> = (0..parts).map(|i| slice(nodes, parts, i)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, nodes);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    fn stats_lines_round_trip() {
        assert_eq!(parse_stats("stats scrapes=12 scraped=3"), Some((12, 3)));
        assert_eq!(parse_stats("ok"), None);
    }

    #[test]
    fn file_sd_lists_every_kubelet_once_labelled_with_its_node() {
        let kubelets = [("node-0", "127.3.0.1:10250".parse().unwrap()), ("node-1", "127.3.0.2:10250".parse().unwrap())];
        let groups = file_sd(kubelets.into_iter());
        assert_eq!(
            groups,
            serde_json::json!([
                {"targets": ["127.3.0.1:10250"], "labels": {"node": "node-0"}},
                {"targets": ["127.3.0.2:10250"], "labels": {"node": "node-1"}},
            ])
        );
    }

    #[test]
    fn prometheus_scrapes_the_resource_endpoint_over_verified_https_with_the_token() {
        let c = prometheus_config(
            Duration::from_secs(15),
            Path::new("/w/kubelets.json"),
            Path::new("/w/kubelet-ca.crt"),
            Path::new("/w/kubelet.token"),
        );
        assert_eq!(c["global"]["scrape_interval"], "15s");
        assert_eq!(c["global"]["scrape_timeout"], "10s");
        let job = &c["scrape_configs"][0];
        assert_eq!(job["scheme"], "https");
        assert_eq!(job["metrics_path"], "/metrics/resource");
        assert_eq!(job["tls_config"], serde_json::json!({"ca_file": "/w/kubelet-ca.crt"}), "verification stays on");
        assert_eq!(job["authorization"]["credentials_file"], "/w/kubelet.token");
        assert_eq!(job["file_sd_configs"][0]["files"][0], "/w/kubelets.json");
    }

    #[test]
    fn prometheus_timeout_never_exceeds_a_short_interval() {
        let c = prometheus_config(Duration::from_millis(2500), Path::new("t"), Path::new("c"), Path::new("k"));
        assert_eq!(c["global"]["scrape_interval"], "2500ms");
        assert_eq!(c["global"]["scrape_timeout"], "2500ms");
    }

    #[test]
    fn series_sums_take_every_labelled_sample_of_the_prefix_and_nothing_else() {
        let text = "# HELP x_total help\n# TYPE x_total counter\nx_total{route=\"/a\",direction=\"sent\"} 10\n\
                    x_total{route=\"/a\",direction=\"received\"} 2.5\nx_other 7\ny_total 100\n";
        assert_eq!(sum_series(text, "x_total"), 12.5);
        assert_eq!(sum_series(text, "z"), 0.0);
    }
}
