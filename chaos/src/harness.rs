//! The cluster under test: the simulated Kubernetes ([`DevEnv`]), replica
//! processes of the real binary, each advertised to its peers through a
//! fault-injecting proxy ([`crate::netfault`]), and the aggregation proxy
//! routed to the replicas a load balancer would use (running, not paused).
//! The faults themselves are in [`crate::faults`]; this module owns
//! starting, restarting and stopping replicas.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sim::addr::Block;
use sim::env::{DevEnv, EnvOptions};
use tls::pki::CertPair;
use tokio_util::sync::CancellationToken;

use crate::netfault::{Partitions, PeerProxy};
use crate::peerview::PeerViews;
use crate::process::Replica;
use crate::record::{View, now_ms};

/// Errors building or driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("simulated cluster: {0}")]
    Env(#[from] sim::env::EnvError),
    #[error(transparent)]
    Proxy(#[from] crate::netfault::ProxyError),
    #[error("starting replica-{replica} ({binary}): {source}")]
    Spawn { replica: usize, binary: PathBuf, source: std::io::Error },
    #[error("{what}: {reason}")]
    Setup { what: &'static str, reason: String },
    #[error("timed out after {within:?} waiting for {what}")]
    Timeout { what: String, within: Duration },
}

/// How to build the cluster.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    pub replicas: usize,
    pub nodes: usize,
    pub pods_per_node: usize,
    pub resolution: Duration,
    pub seed: u64,
    pub binary: PathBuf,
    pub work_dir: PathBuf,
    /// Extra flags for every replica.
    pub extra_args: Vec<String>,
    /// Start the replicas as one Raft cluster (false: each alone, without `--peers`).
    pub clustered: bool,
    /// Give the replicas a CA that did not sign the kubelets' certificates.
    pub wrong_kubelet_ca: bool,
    /// libfaketime: when set, every replica runs under it with a wall clock
    /// read from its own timestamp file (`+0` at first), so a fault can step
    /// one replica's clock while it runs ([`Harness::set_clock`]).
    pub faketime: Option<PathBuf>,
}

use crate::record::MemorySample;

/// A running cluster.
pub struct Harness {
    pub env: DevEnv,
    pub opts: HarnessOptions,
    /// Replica slots; `None` once killed or stopped.
    pub replicas: Vec<Option<Replica>>,
    /// Replicas declared as initial members.
    pub declared: usize,
    pub partitions: Arc<Partitions>,
    pub admin: CertPair,
    pub views: PeerViews,
    /// Extra environment per replica (clock skew).
    pub env_of: Vec<Vec<(String, String)>>,
    /// Replicas routed to whatever their `/readyz` says, until the instant
    /// (a load balancer that has not noticed yet).
    pinned: std::sync::Mutex<std::collections::BTreeMap<usize, std::time::Instant>>,
    /// Replicas whose `/readyz` said 200 at the last look (the Endpoints).
    ready: std::sync::Mutex<std::collections::BTreeSet<usize>>,
    /// Each live replica's resident memory, sampled every
    /// [`MEMORY_EVERY`] while the runner waits (see [`Harness::route_ready`]).
    memory: std::sync::Mutex<(Option<std::time::Instant>, Vec<MemorySample>)>,
    shutdown: CancellationToken,
}

/// How often the replicas' resident memory is sampled.
pub const MEMORY_EVERY: Duration = Duration::from_secs(10);

/// A process's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

fn setup(what: &'static str) -> impl FnOnce(String) -> HarnessError {
    move |reason| HarnessError::Setup { what, reason }
}

impl Harness {
    /// Starts the simulated cluster and `opts.replicas` replicas.
    pub async fn start(opts: HarnessOptions) -> Result<Harness, HarnessError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let block = Block::acquire().map_err(|e| setup("a loopback address block")(e.to_string()))?;
        let mut env_opts = EnvOptions::new(&opts.work_dir);
        env_opts.nodes = opts.nodes;
        env_opts.pods_per_node = opts.pods_per_node;
        env_opts.seed = opts.seed;
        // The certgen Job makes the peer CA Secret, as `kubectl apply -k deploy/` does.
        env_opts.binary = Some(opts.binary.clone());
        let env = DevEnv::start(block, env_opts).await?;
        if opts.wrong_kubelet_ca {
            std::fs::write(&env.files.kubelet_ca, env.fleet.untrusted_ca_pem())
                .map_err(|e| setup("the wrong kubelet CA")(e.to_string()))?;
        }
        let admin = env
            .apiserver
            .issue_client_cert("chaos-admin", &["system:masters"])
            .map_err(|e| setup("admin certificate")(e.to_string()))?;
        let partitions = Arc::new(Partitions::default());
        let shutdown = CancellationToken::new();
        let max = opts.replicas.max(5);
        for j in 0..max {
            PeerProxy::start(proxy_addr(&env, j), env.peer_addr(j), partitions.clone(), shutdown.clone()).await?;
        }
        // A client certificate from the peer CA Secret for the observer.
        let client = env.peer_observer()?.client_config()?;
        let mut h = Harness {
            env,
            declared: opts.replicas,
            replicas: Vec::new(),
            partitions,
            admin,
            views: PeerViews::new(client),
            env_of: vec![Vec::new(); max],
            pinned: Default::default(),
            ready: Default::default(),
            memory: Default::default(),
            opts,
            shutdown,
        };
        for i in 0..max {
            h.env_of[i] = h.base_env(i);
            if h.opts.faketime.is_some() {
                h.set_clock(i, 0)?;
            }
        }
        for i in 0..h.opts.replicas {
            h.spawn(i)?;
        }
        h.env.set_replica_count(h.opts.replicas);
        h.reroute();
        Ok(h)
    }

    /// The flags of replica `i`.
    pub fn args(&self, i: usize) -> Result<Vec<String>, HarnessError> {
        let r = format!("{}ms", self.opts.resolution.as_millis());
        let mut args = self.env.replica_args(i, &r);
        if self.opts.clustered {
            args.extend(self.env.cluster_args_via(i, self.declared, &|j| proxy_addr(&self.env, j))?);
        }
        args.extend(self.opts.extra_args.iter().cloned());
        Ok(args)
    }

    /// Starts (or restarts, with its data dir) replica `i`.
    pub fn spawn(&mut self, i: usize) -> Result<(), HarnessError> {
        let args = self.args(i)?;
        let log = self.env.work_dir.join(format!("replica-{i}.log"));
        let p = Replica::spawn(&self.opts.binary, &args, &self.env_of[i], &log)
            .map_err(|source| HarnessError::Spawn { replica: i, binary: self.opts.binary.clone(), source })?;
        while self.replicas.len() <= i {
            self.replicas.push(None);
        }
        self.replicas[i] = Some(p);
        // Not an endpoint until its /readyz says so (see route_ready).
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).remove(&i);
        self.reroute();
        Ok(())
    }

    /// The running, unpaused replicas.
    pub fn live(&self) -> Vec<usize> {
        (0..self.replicas.len()).filter(|i| self.replicas[*i].as_ref().is_some_and(|r| !r.paused)).collect()
    }

    /// Points the aggregation proxy at the live replicas that were ready at
    /// the last look, or are pinned, as a Service's Endpoints would.
    pub fn reroute(&self) {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = std::time::Instant::now();
        let pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let routed: Vec<usize> = self
            .live()
            .into_iter()
            .filter(|i| ready.contains(i) || pinned.get(i).is_some_and(|until| *until > now))
            .collect();
        self.env.route_metrics_to(&routed);
    }

    /// Keeps routing to replica `i` for `for_` whatever its `/readyz` says
    /// (`None`: by `/readyz` again), as kube-apiserver keeps an endpoint
    /// until the readiness probe has failed `failureThreshold` times.
    pub fn pin_route(&self, i: usize, for_: Option<Duration>) {
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        match for_ {
            Some(d) => pinned.insert(i, std::time::Instant::now() + d),
            None => pinned.remove(&i),
        };
        drop(pinned);
        self.reroute();
    }

    /// The environment replica `i` starts with: libfaketime reading its
    /// timestamp file when the harness runs under it, else nothing.
    pub fn base_env(&self, i: usize) -> Vec<(String, String)> {
        let Some(lib) = &self.opts.faketime else { return Vec::new() };
        vec![
            ("LD_PRELOAD".into(), lib.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE".into(), self.clock_file(i).display().to_string()),
            // Re-read the file every second (the default is ten).
            ("FAKETIME_CACHE_DURATION".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]
    }

    /// Whether [`Harness::set_clock`] can step a running replica's clock.
    pub fn clock_steppable(&self) -> bool {
        self.opts.faketime.is_some()
    }

    fn clock_file(&self, i: usize) -> PathBuf {
        self.env.work_dir.join(format!("replica-{i}.faketime"))
    }

    /// Sets replica `i`'s wall clock `secs` off the true one (it reads the
    /// change within a second).
    pub fn set_clock(&self, i: usize, secs: i64) -> Result<(), HarnessError> {
        std::fs::write(self.clock_file(i), format!("{secs:+}s\n"))
            .map_err(|e| setup("a libfaketime timestamp file")(e.to_string()))
    }

    /// Samples every running replica's resident memory (paused ones too:
    /// a stopped process keeps its pages) if [`MEMORY_EVERY`] has passed.
    fn sample_memory(&self) {
        let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if m.0.is_some_and(|at| at.elapsed() < MEMORY_EVERY) {
            return;
        }
        m.0 = Some(std::time::Instant::now());
        let at_ms = crate::record::now_ms();
        for (i, r) in self.replicas.iter().enumerate() {
            let Some(r) = r else { continue };
            if let Some(rss_kib) = rss_kib(r.pid()) {
                m.1.push(MemorySample { at_ms, replica: i, pid: r.pid(), rss_kib });
            }
        }
    }

    /// Every memory sample taken so far.
    pub fn memory(&self) -> Vec<MemorySample> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Looks at every live replica's `/readyz` and routes to the ready ones.
    pub async fn route_ready(&self) {
        self.sample_memory();
        let mut ready = std::collections::BTreeSet::new();
        for i in self.live() {
            let probe = sim::client::fetch(self.env.replica_addr(i), "/readyz", None, &[]);
            if tokio::time::timeout(Duration::from_secs(1), probe).await.is_ok_and(|r| r.is_ok_and(|r| r.status == 200))
            {
                ready.insert(i);
            }
        }
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = ready;
        self.reroute();
    }

    /// Lets `d` pass, keeping the routing to ready replicas up to date. Not
    /// synchronisation: the runner holds a fault (or records a stretch) for
    /// its duration, and the observer judges what happened meanwhile.
    pub async fn pass_time(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        sim::wait::until(d + Duration::from_secs(5), async || {
            self.route_ready().await;
            std::time::Instant::now() >= end
        })
        .await;
    }

    /// Replica `i`'s own address (the source of its scrapes and peer connections).
    pub fn ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.env.block.replica(i))
    }

    /// The replica whose address is `ip`.
    pub fn replica_of(&self, ip: IpAddr) -> Option<usize> {
        (0..self.opts.replicas.max(5)).find(|i| self.ip(*i) == ip)
    }

    /// Replica `i`'s view now.
    pub async fn view(&self, i: usize) -> Option<View> {
        self.views.fetch(i, self.env.peer_addr(i), now_ms()).await
    }

    /// The current Raft leader, as the first live replica that knows one says.
    pub async fn leader(&self) -> Option<usize> {
        sim::leader::named_by_first(self.live(), async |i| self.view(i).await?.leader).await
    }

    /// Waits until every replica in `which` reports one leader, a ring, and `active` Active members.
    pub async fn settled(&self, which: &[usize], active: usize, within: Duration) -> Result<Duration, HarnessError> {
        let took = sim::wait::until(within, async || {
            self.route_ready().await;
            let mut leaders = Vec::new();
            for &i in which {
                let Some(v) = self.view(i).await else { return false };
                let n = v.members.iter().filter(|m| m.ends_with("=Active")).count();
                if n != active || v.ring_epoch == 0 {
                    return false;
                }
                leaders.push(v.leader);
            }
            sim::leader::agreed(leaders).is_some()
        })
        .await;
        took.ok_or_else(|| HarnessError::Timeout {
            what: format!("replicas {which:?} to settle with {active} Active"),
            within,
        })
    }

    /// Waits until every replica in `which` reports one ring epoch and no
    /// replica's epoch has changed for `quiet` (cluster formation commits a
    /// few epochs in a row: the members, the ring parameters, the
    /// replication factor; faults are meant to hit a cluster past them).
    pub async fn steady(&self, which: &[usize], quiet: Duration, within: Duration) -> Result<Duration, HarnessError> {
        let mut since: Option<(u64, std::time::Instant)> = None;
        let took = sim::wait::until(within, async || {
            self.route_ready().await;
            let mut epochs = std::collections::BTreeSet::new();
            for &i in which {
                match self.view(i).await {
                    Some(v) => epochs.insert(v.ring_epoch),
                    None => return false,
                };
            }
            let one = (epochs.len() == 1).then(|| epochs.first().copied()).flatten();
            match (one, since) {
                (Some(e), Some((was, at))) if e == was => at.elapsed() >= quiet,
                (Some(e), _) => {
                    since = Some((e, std::time::Instant::now()));
                    false
                }
                (None, _) => {
                    since = None;
                    false
                }
            }
        })
        .await;
        took.ok_or_else(|| HarnessError::Timeout {
            what: format!("replicas {which:?} to keep one ring epoch for {quiet:?}"),
            within,
        })
    }

    /// Waits until every replica in `which` serves every node.
    pub async fn serving(&self, which: &[usize], within: Duration) -> Result<Duration, HarnessError> {
        let nodes = self.env.spec.nodes.len();
        let took = sim::wait::until(within, async || {
            self.route_ready().await;
            for &i in which {
                let addr = self.env.replica_addr(i);
                let r = sim::answer::fetch(addr, sim::answer::NODES, &self.admin, Duration::from_secs(5)).await;
                if !r.is_ok_and(|a| a.status == 200 && a.items.len() == nodes) {
                    return false;
                }
            }
            true
        })
        .await;
        took.ok_or_else(|| HarnessError::Timeout {
            what: format!("replicas {which:?} to serve all {nodes} nodes"),
            within,
        })
    }

    /// The last lines of replica `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        self.replicas.get(i).and_then(Option::as_ref).map(|r| r.log_tail(30)).unwrap_or_default()
    }

    /// Data directory of replica `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.env.work_dir.join(format!("replica-{i}")).join("data")
    }

    /// Kills every replica and stops the simulator.
    pub async fn shutdown(mut self) {
        self.replicas.clear();
        self.shutdown.cancel();
        self.env.shutdown().await;
    }
}

/// Where peers reach replica `j`: its proxy.
pub fn proxy_addr(env: &DevEnv, j: usize) -> SocketAddr {
    SocketAddr::new(env.block.aux(j).into(), 10251)
}
