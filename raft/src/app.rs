//! What one running node is: the Raft handle plus everything the routes and
//! the membership tasks share. Internal to the crate; [`crate::Node`] is the
//! public face.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RaftConfig;
use crate::manager::detector::Liveness;
use crate::network::client::PeerClient;
use crate::network::wire::{ANY_NODE, BASE_VERSION, Envelope, Heartbeat, PROTOCOL_VERSION};
use crate::state::{ClusterState, MemberInfo, NodeId};
use crate::types::Raft;

/// Shared by the routes and the membership tasks of one node.
pub(crate) struct App {
    pub raft: Raft,
    pub id: NodeId,
    pub info: MemberInfo,
    pub config: RaftConfig,
    pub client: PeerClient,
    pub state: watch::Receiver<ClusterState>,
    pub liveness: Mutex<Liveness>,
    pub scrape_healthy: AtomicBool,
    pub leaving: AtomicBool,
    /// The epoch (+1) at which this member holds the last points of the
    /// nodes it would own if Active; 0: not ready; `u64::MAX`: any epoch.
    pub ready_to_own: std::sync::atomic::AtomicU64,
    /// Down commits per member (leader's flap damping).
    pub flaps: Mutex<crate::manager::detector::Flaps>,
    /// A detector commit is in flight (the next round does not wait for it).
    pub detector_busy: AtomicBool,
    /// This node has applied everything the leader had applied when asked
    /// after start: until then its cluster state is a guess.
    pub synced: AtomicBool,
    /// When this node started (for "never heard from a leader").
    pub started: Instant,
    /// Cancelled when the node stops; handlers then refuse everything.
    pub stop: CancellationToken,
    /// Why joining failed for good (e.g. this incarnation was retired).
    pub join_error: Mutex<Option<String>>,
    /// The protocol version each peer was last heard speaking.
    pub versions: Mutex<BTreeMap<NodeId, u32>>,
    /// Kubelets this replica owns and fails to scrape (sent in heartbeats).
    pub failing: Mutex<Vec<String>>,
}

impl App {
    /// An envelope for `to`, as [`BASE_VERSION`]: every message but the
    /// heartbeat has the same shape in every version accepted.
    pub fn envelope<T>(&self, to: NodeId, body: T) -> Envelope<T> {
        Envelope { protocol_version: BASE_VERSION, cluster_id: self.config.cluster_id.clone(), from: self.id, to, body }
    }

    /// An envelope for whoever listens at an address.
    pub fn envelope_any<T>(&self, body: T) -> Envelope<T> {
        self.envelope(ANY_NODE, body)
    }

    pub fn liveness(&self) -> MutexGuard<'_, Liveness> {
        self.liveness.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record_heartbeat(&self, from: NodeId, hb: &Heartbeat) {
        self.liveness().record_heartbeat(from, Instant::now(), hb);
    }

    /// The heartbeat this node sends (and records for itself).
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            name: self.info.name.clone(),
            scrape_healthy: self.healthy(),
            leaving: self.is_leaving(),
            ready_to_own: self.ready_to_own(),
            replication: Some(self.config.replication),
            failing: self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    pub fn ready_to_own(&self) -> Option<u64> {
        match self.ready_to_own.load(Ordering::Relaxed) {
            0 => None,
            u64::MAX => Some(crate::network::wire::Readiness::ANY_EPOCH),
            e => Some(e - 1),
        }
    }

    pub fn healthy(&self) -> bool {
        self.scrape_healthy.load(Ordering::Relaxed)
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// Name and address of member `id`, from the cluster state or, for a
    /// Raft node not (or no longer) in it, from the Raft membership.
    pub fn member_info(&self, id: NodeId) -> Option<MemberInfo> {
        if id == self.id {
            return Some(self.info.clone());
        }
        if let Some(m) = self.state.borrow().members.get(&id) {
            return Some(m.info.clone());
        }
        self.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned()
    }

    /// Records the protocol version `from` speaks.
    pub fn record_version(&self, from: NodeId, version: u32) {
        if from != ANY_NODE {
            self.versions.lock().unwrap_or_else(|p| p.into_inner()).insert(from, version);
        }
    }

    /// The protocol version `id` was last heard speaking (this node's own for itself).
    pub fn version_of(&self, id: NodeId) -> Option<u32> {
        if id == self.id {
            return Some(PROTOCOL_VERSION);
        }
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(&id).copied()
    }

    pub fn rpc_timeout(&self) -> Duration {
        self.config.rpc_timeout
    }
}
