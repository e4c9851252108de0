//! Several replica processes of the real binary forming one Raft cluster
//! over mutual TLS on their peer ports, and the ways tests ask them about it.

use std::time::{Duration, Instant};

use ha_metrics_server::peer::fetch_view;
use raft::{ClusterView, MemberState};

use super::Cluster;

/// Replica processes forming one Raft cluster on a simulated Kubernetes.
pub struct Ring {
    pub c: Cluster,
}

impl Ring {
    /// `n` replicas over 2 nodes × 2 pods at a 2 s resolution.
    pub async fn start(n: usize) -> Ring {
        Ring::start_on(n, 2, 2, "2s", &[]).await
    }

    /// `n` replicas (the declared members) over `nodes` × `pods` at
    /// `resolution`, each with `extra` flags.
    pub async fn start_on(n: usize, nodes: usize, pods: usize, resolution: &str, extra: &[&str]) -> Ring {
        let mut c = Cluster::start_empty(nodes, pods, resolution).await;
        for i in 0..n {
            let mut args = c.env.cluster_args(i, n).unwrap();
            args.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            c.spawn_replica(i, &refs);
        }
        c.env.route_metrics_to(&(0..n).collect::<Vec<_>>());
        c.env.set_replica_count(n);
        Ring { c }
    }

    pub fn client(&self) -> rustls::ClientConfig {
        let dir = self.c.env.work_dir.join("replica-0");
        let ca = std::fs::read(self.c.env.work_dir.join("cluster-ca.crt")).unwrap();
        let ck = tls::CertKey::load(&dir.join("peer.crt"), &dir.join("peer.key")).unwrap();
        tls::mutual_tls_client_config(&ca, ck.chain, ck.key).unwrap()
    }

    pub async fn status(&self, i: usize) -> Option<ClusterView> {
        self.full_status(i).await.map(|s| s.raft)
    }

    pub async fn full_status(&self, i: usize) -> Option<ha_metrics_server::member::ClusterStatus> {
        let peer = self.c.env.peer_addr(i).to_string();
        tokio::time::timeout(Duration::from_secs(3), fetch_view(&peer, self.client())).await.ok()?.ok()
    }

    /// Waits until every listed replica reports one leader and `active` Active members.
    pub async fn settled(&self, replicas: &[usize], active: usize) -> Option<Vec<ClusterView>> {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let mut views = Vec::new();
            for &i in replicas {
                // Settled includes the committed ring parameters.
                if let Some(s) = self.full_status(i).await
                    && !s.ring.starts_with("none")
                {
                    views.push(s.raft);
                }
            }
            if views.len() == replicas.len() {
                let leaders: Vec<_> = views.iter().map(|v| v.leader.clone()).collect();
                let agreed = leaders.iter().all(|l| l.is_some() && *l == leaders[0]);
                if agreed && views.iter().all(|v| v.count(MemberState::Active) == active) {
                    return Some(views);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for &i in replicas {
            eprintln!("--- replica {i}: {:?}\n{}", self.status(i).await, self.c.log_tail(i));
        }
        None
    }
}
