//! The benchmark's cluster: a simulated Kubernetes (sim::env::DevEnv) and
//! three replica processes of the real binary forming one Raft cluster,
//! and the questions the trials ask of it — who leads, what each survivor's
//! cluster view says, whether every replica serves every node fresh — and
//! the restart of a replica with its data dir. It injects nothing itself.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ha_metrics_server::member::ClusterStatus;
use ha_metrics_server::member::status::fetch as fetch_view;
use raft::MemberState;
use sim::addr::Block;
use sim::env::{DevEnv, EnvOptions, ReplicaProcess};
use tls::pki::CertPair;

use crate::observer::node_list;

/// Declared members of the cluster.
pub const REPLICAS: usize = 3;
/// Metric resolution of the replicas.
pub const RESOLUTION: Duration = Duration::from_secs(2);
/// The resolution as the flag spells it.
const RESOLUTION_FLAG: &str = "2s";
/// The default lease (the replicas' failure-detector timeout).
pub const LEASE: Duration = Duration::from_secs(3);
/// A sample counts as fresh when it is at most this old (R + 2 s; served
/// timestamps are whole seconds, truncated).
pub const FRESH: Duration = Duration::from_secs(4);

/// The simulated cluster and its replicas.
pub struct Bench {
    pub env: DevEnv,
    pub nodes: usize,
    pub admin: CertPair,
    replicas: Vec<ReplicaProcess>,
    /// Restarts per replica, so each incarnation keeps its own log.
    starts: Vec<usize>,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Starts the simulated cluster (`nodes` × `pods`) and the three replicas.
    pub async fn start(binary: PathBuf, nodes: usize, pods: usize) -> anyhow::Result<Bench> {
        // FAILOVER_KEEP=1 keeps the cluster's files (replica logs, data dirs) for a post-mortem.
        let keep = std::env::var_os("FAILOVER_KEEP").is_some();
        let dir = tempfile::Builder::new().disable_cleanup(keep).tempdir().context("temp dir")?;
        if keep {
            eprintln!("keeping the cluster's files in {}", dir.path().display());
        }
        let mut opts = EnvOptions::new(dir.path());
        opts.nodes = nodes;
        opts.pods_per_node = pods;
        // The certgen Job makes the peer CA Secret, as `kubectl apply -k deploy/` does.
        opts.binary = Some(binary.clone());
        let block = Block::acquire().context("a free loopback address block")?;
        let env = DevEnv::start(block, opts).await.context("simulated cluster")?;
        let admin = env.apiserver.issue_client_cert("admin", &["system:masters"]).context("admin client cert")?;
        let mut bench = Bench { env, nodes, admin, replicas: Vec::new(), starts: vec![0; REPLICAS], binary, _dir: dir };
        for i in 0..REPLICAS {
            let p = bench.spawn(i)?;
            bench.replicas.push(p);
        }
        bench.env.route_metrics_to(&(0..REPLICAS).collect::<Vec<_>>());
        bench.env.set_replica_count(REPLICAS);
        Ok(bench)
    }

    /// Starts replica `i` with its flags and data dir (the same dir every time).
    fn spawn(&mut self, i: usize) -> anyhow::Result<ReplicaProcess> {
        let mut args = self.env.replica_args(i, RESOLUTION_FLAG);
        args.extend(self.env.cluster_args(i, REPLICAS).context("cluster flags")?);
        self.starts[i] += 1;
        let log = self.env.work_dir.join(format!("replica-{i}.{}.log", self.starts[i]));
        ReplicaProcess::spawn(&self.binary, &args, &log).with_context(|| format!("spawn replica-{i}"))
    }

    /// Restarts replica `i` with its data dir; the old process, if still
    /// running, is killed by its pid first.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let p = self.spawn(i)?;
        // Dropping the old handle kills (by pid) and reaps it.
        self.replicas[i] = p;
        Ok(())
    }

    /// Sends `signal` to replica `i`'s process.
    pub fn signal(&self, i: usize, signal: i32) {
        self.replicas[i].signal(signal);
    }

    /// Whether replica `i`'s process has exited.
    pub fn exited(&mut self, i: usize) -> bool {
        self.replicas[i].try_wait().is_some()
    }

    /// The source address replica `i` scrapes from.
    pub fn source_ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.env.block.replica(i))
    }

    /// The last lines of replica `i`'s current log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = self.replicas[i].log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn peer_client(&self) -> anyhow::Result<rustls::ClientConfig> {
        self.env.peer_observer().context("peer observer")?.client_config().context("peer client config")
    }

    /// Replica `i`'s view of the cluster, or `None` within 3 s.
    pub async fn status(&self, i: usize) -> Option<ClusterStatus> {
        let client = self.peer_client().ok()?;
        let peer = self.env.peer_addr(i).to_string();
        tokio::time::timeout(Duration::from_secs(3), fetch_view(&peer, client)).await.ok()?.ok()
    }

    /// The replica holding the Raft leadership, as the first replica that answers names it.
    pub async fn leader(&self) -> Option<usize> {
        sim::leader::named_by_first(0..REPLICAS, async |i| self.status(i).await?.raft.leader.map(|(_, n)| n)).await
    }

    /// Replica `victim`'s state in `from`'s view (`None`: not listed or no answer).
    pub async fn state_of(&self, from: usize, victim: usize) -> Option<Option<MemberState>> {
        let s = self.status(from).await?;
        let name = format!("replica-{victim}");
        Some(s.raft.members.iter().find(|m| m.name == name).map(|m| m.state))
    }

    /// `Ok` when all replicas agree on one leader, list every member Active
    /// with a committed ring, and each serves every node fresh; else what is
    /// not yet so.
    pub async fn healthy(&self) -> Result<(), String> {
        let mut leaders = Vec::new();
        for i in 0..REPLICAS {
            let s = self.status(i).await.ok_or(format!("replica-{i}: no cluster view"))?;
            if s.ring.starts_with("none") {
                return Err(format!("replica-{i}: no committed ring ({})", s.ring));
            }
            let active = s.raft.count(MemberState::Active);
            if active != REPLICAS {
                return Err(format!("replica-{i}: {active} of {REPLICAS} members Active"));
            }
            leaders.push(s.raft.leader.map(|(_, n)| n));
        }
        if sim::leader::agreed(leaders.iter().map(Option::as_ref)).is_none() {
            return Err(format!("no agreed leader: {leaders:?}"));
        }
        for i in 0..REPLICAS {
            let list =
                node_list(self.env.replica_addr(i), &self.admin).await.map_err(|e| format!("replica-{i}: {e}"))?;
            let fresh = list.iter().filter(|(_, age)| *age <= FRESH).count();
            if fresh != self.nodes {
                return Err(format!("replica-{i}: {fresh} of {} nodes served fresh", self.nodes));
            }
        }
        Ok(())
    }

    /// Waits up to `within` for [`Bench::healthy`]; `Err` is the last reason.
    pub async fn wait_healthy(&self, within: Duration) -> Result<Duration, String> {
        let mut last = String::from("never checked");
        let took = sim::wait::until(within, async || match self.healthy().await {
            Ok(()) => true,
            Err(why) => {
                last = why;
                false
            }
        })
        .await;
        took.ok_or(last)
    }

    /// Stops the replicas (by pid) and the simulated cluster.
    pub async fn shutdown(self) {
        drop(self.replicas);
        self.env.shutdown().await;
    }
}
