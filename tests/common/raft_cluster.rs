//! Several replica processes of the real binary forming one Raft cluster
//! over mutual TLS on their peer ports ([`RaftCluster`]), and the ways tests
//! ask them about it: a replica's view, who leads, whether they settled.
//! (Not the hash ring: that is `ha_metrics_server::ownership::Ring`.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ha_metrics_server::member::ClusterStatus;
use ha_metrics_server::member::status::fetch as fetch_view;
use raft::{ClusterView, MemberState};

use sim::scrapes::{Count, Window, reached, unix_ms};

use super::Cluster;

/// How long replicas get to agree on a leader, a ring and their Active members.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Replica processes forming one Raft cluster on a simulated Kubernetes.
pub struct RaftCluster {
    pub c: Cluster,
}

impl RaftCluster {
    /// `n` replicas over 2 nodes × 2 pods at a 2 s resolution.
    pub async fn start(n: usize) -> RaftCluster {
        RaftCluster::start_on(n, 2, 2, "2s", &[]).await
    }

    /// `n` replicas (the declared members) over `nodes` × `pods` at
    /// `resolution`, each with `extra` flags.
    pub async fn start_on(n: usize, nodes: usize, pods: usize, resolution: &str, extra: &[&str]) -> RaftCluster {
        let mut c = Cluster::start_empty(nodes, pods, resolution).await;
        for i in 0..n {
            let mut args = c.env.cluster_args(i, n).unwrap();
            args.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            c.spawn_replica(i, &refs);
        }
        c.env.route_metrics_to(&(0..n).collect::<Vec<_>>());
        c.env.set_replica_count(n);
        RaftCluster { c }
    }

    pub fn client(&self) -> rustls::ClientConfig {
        self.c.env.peer_observer().and_then(|o| o.client_config()).expect("a peer client from the peer CA Secret")
    }

    /// Replica `i`'s Raft view, or `None` when it does not answer within 3 s.
    pub async fn status(&self, i: usize) -> Option<ClusterView> {
        self.full_status(i).await.map(|s| s.raft)
    }

    /// Replica `i`'s cluster status (Raft view, ring, shares), or `None` within 3 s.
    pub async fn full_status(&self, i: usize) -> Option<ClusterStatus> {
        let peer = self.c.env.peer_addr(i).to_string();
        tokio::time::timeout(Duration::from_secs(3), fetch_view(&peer, self.client())).await.ok()?.ok()
    }

    /// The replica leading by the first of `replicas` that knows a leader.
    pub async fn leader(&self, replicas: &[usize]) -> Option<usize> {
        let named = async |i: usize| self.status(i).await?.leader.map(|(_, name)| name);
        sim::leader::named_by_first(replicas.iter().copied(), named).await
    }

    /// Every listed replica's view once they all report the same leader, a
    /// committed ring and `active` Active members (waiting up to [`SETTLE`]);
    /// `None` (with every replica's view and log tail printed) if they never do.
    pub async fn settled(&self, replicas: &[usize], active: usize) -> Option<Vec<ClusterView>> {
        let views = sim::wait::until_some(SETTLE, async || {
            let mut views = Vec::new();
            for &i in replicas {
                // Settled includes the committed ring parameters.
                // Settled includes the committed ring parameters and replication factor.
                let s = self
                    .full_status(i)
                    .await
                    .filter(|s| !s.ring.starts_with("none") && s.raft.replication.is_some())?;
                views.push(s.raft);
            }
            sim::leader::agreed(views.iter().map(|v| v.leader.as_ref()))?;
            views.iter().all(|v| v.count(MemberState::Active) == active).then_some(views)
        })
        .await;
        if views.is_none() {
            for &i in replicas {
                eprintln!("--- replica {i}: {:?}\n{}", self.status(i).await, self.c.log_tail(i));
            }
        }
        views
    }

    /// Checks exactly-once over `periods` resolutions of `resolution` from
    /// now: each node by one replica, `periods` ± 1 times, never twice
    /// within R/2; returns who scraped each node (by source address).
    pub async fn exactly_once(&self, periods: u32, resolution: Duration) -> BTreeMap<String, BTreeSet<Option<IpAddr>>> {
        let from = SystemTime::now() + resolution;
        let to = from + resolution * periods;
        sim::wait::expect("the window to pass", resolution * (periods + 4), async || SystemTime::now() > to).await;
        let window =
            Window { from_ms: unix_ms(from), to_ms: unix_ms(to), resolution_ms: resolution.as_millis() as u64 };
        let log = self.c.env.fleet.scrapes_since(from);
        let nodes = self.c.env.spec.nodes.iter().map(|n| n.name.as_str());
        let v = sim::scrapes::exactly_once(reached(&log), nodes, window, Count::WithinOne);
        assert!(v.violations.is_empty(), "not exactly once over {periods} resolutions: {:?}", v.violations);
        v.scrapers
    }

    /// The value of one series (`name` or `name{labels}` exactly as exposed)
    /// in replica `i`'s `/metrics`, read with `admin`.
    pub async fn gauge(&self, i: usize, admin: &tls::pki::CertPair, series: &str) -> Option<f64> {
        let (code, text) = sim::client::direct_get(self.c.env.replica_addr(i), "/metrics", Some(admin), &[]).await;
        if code != 200 {
            return None;
        }
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
    }
}
