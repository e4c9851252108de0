//! The simulated cluster the benchmark measures against: one
//! `ha-metrics-server simulate` process (the stand-in apiserver) with its
//! kubelet child processes, driven over its stdin (see src/cli/simulate.rs),
//! and a kube client holding kubectl's credentials for requests through the
//! aggregation proxy.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::Context as _;

/// Kubelets per child process: 2,500 listeners plus three replicas' pooled
/// connections to each stay well under the 20,000 open files a process may hold.
const KUBELETS_PER_PROCESS: usize = 2500;

pub struct Simulator {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Pids of the apiserver process and the kubelet processes.
    pub pids: Vec<u32>,
    pub work_dir: PathBuf,
    /// The loopback address block it runs on (`sim::addr::Block`).
    pub block: u8,
}

impl Simulator {
    pub fn start(binary: &Path, block: u8, nodes: usize, pods: usize, work_dir: &Path) -> anyhow::Result<Simulator> {
        let processes = nodes.div_ceil(KUBELETS_PER_PROCESS);
        let mut child = Command::new(binary)
            .args(["simulate", "--block", &block.to_string(), "--nodes", &nodes.to_string()])
            .args(["--pods-per-node", &pods.to_string(), "--kubelet-processes", &processes.to_string()])
            .arg("--work-dir")
            .arg(work_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the simulator")?;
        let stdin = child.stdin.take().context("simulator stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("simulator stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        anyhow::ensure!(line.starts_with("ready "), "simulator said: {line}");
        let mut pids = vec![child.id()];
        if let Some(list) = line.split_whitespace().find_map(|w| w.strip_prefix("kubelet-pids=")) {
            pids.extend(list.split(',').filter_map(|p| p.parse::<u32>().ok()));
        }
        Ok(Simulator { child, stdin: Some(stdin), stdout, pids, work_dir: work_dir.to_path_buf(), block })
    }

    /// Sends one command and returns its answer line.
    pub fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        let stdin = self.stdin.as_mut().context("simulator stopped")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let line = line.trim().to_string();
        anyhow::ensure!(!line.starts_with("error") && !line.is_empty(), "simulator: {command}: {line}");
        Ok(line)
    }

    /// Points the aggregation proxy at these replicas.
    pub fn route(&mut self, replicas: &[usize]) -> anyhow::Result<()> {
        let list: Vec<String> = replicas.iter().map(usize::to_string).collect();
        self.ask(&format!("route {}", list.join(",")))?;
        Ok(())
    }

    pub fn args(&mut self, command: &str) -> anyhow::Result<Vec<String>> {
        let line = self.ask(command)?;
        let json = line.strip_prefix("args ").context("no args")?;
        Ok(serde_json::from_str(json)?)
    }

    /// Total kubelet scrapes so far, and nodes scraped at least once.
    pub fn scrapes(&mut self) -> anyhow::Result<(u64, usize)> {
        let line = self.ask("stats")?;
        let mut w = line.split_whitespace().skip(1);
        let mut field = |k: &str| -> anyhow::Result<u64> {
            Ok(w.next().and_then(|v| v.strip_prefix(k)).context("stats line")?.parse()?)
        };
        Ok((field("scrapes=")?, field("scraped=")? as usize))
    }

    /// The sum of replica `i`'s `/metrics` series starting with `prefix`.
    pub fn self_metrics(&mut self, i: usize, prefix: &str) -> anyhow::Result<f64> {
        let line = self.ask(&format!("self-metrics {i} {prefix}"))?;
        Ok(line.strip_prefix("sum ").context("self-metrics line")?.parse()?)
    }

    /// A kube client with kubectl's kubeconfig (user dev-user).
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(self.work_dir.join("kubectl.kubeconfig"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // End of input makes it stop its kubelet processes and exit.
        drop(self.stdin.take());
        let child = &mut self.child;
        sim::wait::until_blocking(std::time::Duration::from_secs(20), || child.try_wait().ok().flatten().is_some());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
