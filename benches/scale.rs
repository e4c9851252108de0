//! Steady-state cost of one replica scraping a large simulated cluster:
//! CPU seconds per second and peak RSS of the server process alone (the
//! simulated kubelets and apiserver run in another process).
//!
//! `cargo bench --bench scale` (release). Environment: `SCALE_NODES`
//! (default 1000), `SCALE_PODS` (30 per node), `SCALE_RESOLUTION` (15s),
//! `SCALE_SECONDS` (measurement window, default 60).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sim::addr::Block;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / ticks
}

/// A field of /proc/pid/status in KiB (VmHWM, VmRSS).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nodes: usize = env_or("SCALE_NODES", "1000").parse().expect("SCALE_NODES");
    let pods: usize = env_or("SCALE_PODS", "30").parse().expect("SCALE_PODS");
    let resolution = env_or("SCALE_RESOLUTION", "15s");
    let window = Duration::from_secs(env_or("SCALE_SECONDS", "60").parse().expect("SCALE_SECONDS"));
    let block = Block::acquire().expect("address block");
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = env!("CARGO_BIN_EXE_ha-metrics-server");

    let mut sim = Command::new(binary)
        .args(["simulate", "--block", &block.index().to_string(), "--nodes", &nodes.to_string()])
        .args(["--pods-per-node", &pods.to_string(), "--work-dir"])
        .arg(dir.path().join("sim"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let stdout = sim.stdout.take().expect("simulator stdout");
    let sim = Killed(sim);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("simulator output");
    assert!(line.starts_with("ready "), "simulator said: {line}");
    let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).expect(k).to_string();
    let addr = std::net::SocketAddr::new(block.replica(0).into(), 10250);
    let server = Command::new(binary)
        .arg(format!("--kubeconfig={}", field("kubeconfig=")))
        .arg(format!("--kubelet-certificate-authority={}", field("kubelet-ca=")))
        .arg(format!("--kubelet-token-file={}", field("kubelet-token=")))
        .arg(format!("--bind-address={}", addr.ip()))
        .arg("--secure-port=10250")
        .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
        .arg(format!("--metric-resolution={resolution}"))
        .arg("--kubelet-use-node-status-port")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server");
    let pid = server.id();
    let _server = Killed(server);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let ready = rt.block_on(async {
        loop {
            if started.elapsed() > Duration::from_secs(300) {
                return false;
            }
            if let Ok(Ok((200, _))) =
                tokio::time::timeout(Duration::from_secs(5), sim::client::try_get(addr, "/readyz", None, &[])).await
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    assert!(ready, "server never became ready");
    let to_ready = started.elapsed();
    // One more full period so every node has been scraped at least twice.
    let period = apimachinery::parse_go_duration(&resolution).expect("resolution");
    std::thread::sleep(period);
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    let (c1, elapsed) = (cpu_seconds(pid), t0.elapsed().as_secs_f64());
    println!("scale: {nodes} nodes x {pods} pods, resolution {resolution}");
    println!("scale: ready after {:.1}s", to_ready.as_secs_f64());
    println!("scale: server CPU {:.4} s/s over {:.0}s", (c1 - c0) / elapsed, elapsed);
    println!(
        "scale: server peak RSS {:.1} MiB, RSS now {:.1} MiB",
        status_kib(pid, "VmHWM:") as f64 / 1024.0,
        status_kib(pid, "VmRSS:") as f64 / 1024.0
    );
    drop(sim);
}
