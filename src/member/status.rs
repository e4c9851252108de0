//! [`ClusterStatus`]: what `ha-metrics-server cluster` prints — a replica's
//! Raft view of the cluster plus each member's share of the kubelets at the
//! epoch it acts on (owned, backed up), so an operator sees who scrapes what.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ownership::{Mode, Ownership};

/// The peer route that serves the cluster view as JSON.
pub const VIEW_PATH: &str = "/cluster/view";

/// Fetches a replica's [`ClusterStatus`] from its peer port (`host:port`),
/// as `ha-metrics-server cluster` does.
pub async fn fetch(peer: &str, client: rustls::ClientConfig) -> anyhow::Result<ClusterStatus> {
    let status: Option<ClusterStatus> = crate::peer::get_json(peer, VIEW_PATH, client).await?;
    anyhow::Context::with_context(status, || format!("{peer}: could not compute its status"))
}

/// One member's share of the nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Nodes it owns (scrapes).
    pub owned: usize,
    /// Nodes it holds copies of (a holder other than the owner).
    pub backups: usize,
}

/// A replica's view of the cluster and of the ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The Raft view (role, term, leader, members).
    pub raft: raft::ClusterView,
    /// The epoch this replica scrapes and answers by.
    pub ring_epoch: u64,
    /// The ring in use (`vnodes/hash version`), or why there is none.
    pub ring: String,
    /// Nodes known to this replica.
    pub nodes: usize,
    /// Share per member name (Active members only).
    pub shares: BTreeMap<String, Share>,
}

impl ClusterStatus {
    /// The status from the Raft view, this replica's ownership and the node names it knows.
    pub fn new(raft: raft::ClusterView, ownership: &Ownership, nodes: &[String]) -> ClusterStatus {
        let mut shares: BTreeMap<String, Share> = BTreeMap::new();
        let ring = match &ownership.mode {
            Mode::Ring(r) => {
                for id in ownership.active() {
                    shares.entry(ownership.name_of(id)).or_default();
                }
                for n in nodes {
                    if let Some(o) = r.owner(n) {
                        shares.entry(ownership.name_of(o)).or_default().owned += 1;
                    }
                    for h in ownership.holders(n).copies() {
                        shares.entry(ownership.name_of(*h)).or_default().backups += 1;
                    }
                }
                format!(
                    "{} vnodes, hash v{}, replication factor {}",
                    r.params().vnodes,
                    r.params().hash_version,
                    ownership.replication.min(r.len())
                )
            }
            Mode::NoRing(_) if ownership.joining => "none yet: waiting to join (scraping nothing yet)".to_string(),
            Mode::NoRing(why) => format!("none ({why}): every replica scrapes every node"),
            Mode::Single => "none (single replica)".to_string(),
        };
        ClusterStatus { raft, ring_epoch: ownership.epoch, ring, nodes: nodes.len(), shares }
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raft)?;
        writeln!(f, "ring epoch {}: {}; {} nodes", self.ring_epoch, self.ring, self.nodes)?;
        if !self.shares.is_empty() {
            writeln!(f, "{:<20} {:>7} {:>8}", "MEMBER", "OWNED", "COPIES")?;
            for (name, s) in &self.shares {
                writeln!(f, "{name:<20} {:>7} {:>8}", s.owned, s.backups)?;
            }
        }
        Ok(())
    }
}
