//! What one running node is: the Raft handle plus everything the routes and
//! the membership tasks share. Internal to the crate; [`crate::Node`] is the
//! public face. Tables keyed by a sender's own id stay bounded (see
//! [`crate::manager::detector::bound`]); every task is spawned through
//! [`App::spawn`], so none runs without an owner.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RaftConfig;
use crate::fault::{Fault, Faults};
use crate::manager::detector::{self, Liveness, MAX_STRANGERS};
use crate::network::bind::Refusals;
use crate::network::client::PeerClient;
use crate::network::introductions::Introductions;
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
    /// The protocol version each peer was last heard speaking, and when.
    pub versions: Mutex<BTreeMap<NodeId, (u32, Instant)>>,
    /// Kubelets this replica owns and fails to scrape (sent in heartbeats).
    pub failing: Mutex<Vec<String>>,
    /// Why this node can no longer take part in Raft, once it cannot.
    pub faults: Faults,
    /// Every task of this node; the node waits for them when it stops.
    pub tasks: TaskTracker,
    /// Peer requests refused for who sent them (see [`crate::network::bind`]).
    pub refusals: Refusals,
    /// Ids this node knows only because members introduced them.
    pub introductions: Introductions,
}

/// How often a supervised task may panic within [`RESTART_WINDOW`] before
/// it is given up on and the node reports a fault.
const MAX_RESTARTS: usize = 3;
/// See [`MAX_RESTARTS`].
const RESTART_WINDOW: Duration = Duration::from_secs(60);

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

    /// This node, the members of the cluster state and the Raft nodes
    /// (taken before any table's lock, never under one).
    pub fn known_ids(&self) -> BTreeSet<NodeId> {
        let mut ids: BTreeSet<NodeId> = self.state.borrow().members.keys().copied().collect();
        ids.extend(self.raft.metrics().borrow().membership_config.membership().nodes().map(|(id, _)| *id));
        ids.insert(self.id);
        ids
    }

    pub fn record_heartbeat(&self, from: NodeId, hb: &Heartbeat) {
        let now = Instant::now();
        let grew = {
            let mut live = self.liveness();
            let new = !live.seen.contains_key(&from);
            live.record_heartbeat(from, now, hb);
            new && live.seen.len() > MAX_STRANGERS
        };
        if grew {
            let known = self.known_ids();
            self.liveness().prune(|id| known.contains(&id), now);
        }
    }

    /// Drops what is remembered of senders that are not (or no longer)
    /// members once they fall silent (each heartbeat round).
    pub fn prune_tables(&self) {
        let now = Instant::now();
        let known = self.known_ids();
        let members: BTreeSet<NodeId> = self.state.borrow().members.keys().copied().collect();
        self.liveness().prune(|id| known.contains(&id), now);
        self.flaps.lock().unwrap_or_else(|p| p.into_inner()).prune(|id| members.contains(&id), now);
        detector::bound(
            &mut self.versions.lock().unwrap_or_else(|p| p.into_inner()),
            |id| known.contains(&id),
            |v| v.1,
            now,
        );
    }

    /// Whether this node can still take part in Raft (no fault recorded).
    pub fn sound(&self) -> bool {
        !self.faults.is_set()
    }

    /// Spawns a one-shot task under this node: a panic is logged (the
    /// caller's next round does the work again).
    pub fn spawn_once(&self, task: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        let id = self.id;
        self.tasks.spawn(async move {
            if let Err(e) = tokio::spawn(fut).await
                && e.is_panic()
            {
                tracing::error!(member = id, task, reason = panic_text(e.into_panic()), "membership task panicked");
            }
        });
    }

    /// Spawns `make()`'s task under this node, supervised (see [`supervise`]).
    pub fn spawn<F, Fut>(&self, task: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(supervise(self.id, task, self.stop.clone(), self.faults.clone(), make));
    }

    pub fn ready_to_own(&self) -> Option<u64> {
        match self.ready_to_own.load(Ordering::Relaxed) {
            0 => None,
            u64::MAX => Some(crate::network::wire::Readiness::ANY_EPOCH),
            e => Some(e - 1),
        }
    }

    /// What heartbeats say: scraping is healthy and the node has no fault.
    pub fn healthy(&self) -> bool {
        self.scrape_healthy.load(Ordering::Relaxed) && self.sound()
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

    /// Who sender `id` is, for binding its request to its certificate:
    /// [`App::member_info`], else whom members introduced under that id.
    pub fn sender_info(&self, id: NodeId) -> Option<MemberInfo> {
        self.member_info(id).or_else(|| self.introductions.get(id))
    }

    /// Records the protocol version `from` speaks.
    pub fn record_version(&self, from: NodeId, version: u32) {
        if from == ANY_NODE {
            return;
        }
        let now = Instant::now();
        let grew = {
            let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
            versions.insert(from, (version, now)).is_none() && versions.len() > MAX_STRANGERS
        };
        if grew {
            let known = self.known_ids();
            detector::bound(
                &mut self.versions.lock().unwrap_or_else(|p| p.into_inner()),
                |id| known.contains(&id),
                |v| v.1,
                now,
            );
        }
    }

    /// The protocol version `id` was last heard speaking (this node's own for itself).
    pub fn version_of(&self, id: NodeId) -> Option<u32> {
        if id == self.id {
            return Some(PROTOCOL_VERSION);
        }
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(&id).map(|v| v.0)
    }

    pub fn rpc_timeout(&self) -> Duration {
        self.config.rpc_timeout
    }
}

/// Runs `make()`'s task until it returns: a panic is logged and the task
/// started again, unless it panicked more than [`MAX_RESTARTS`] times within
/// [`RESTART_WINDOW`]: then [`Fault::TaskDied`] is recorded (the node
/// reports itself unhealthy and the server takes the replica down).
pub(crate) async fn supervise<F, Fut>(
    member: NodeId,
    task: &'static str,
    stop: CancellationToken,
    faults: Faults,
    make: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut panics: Vec<Instant> = Vec::new();
    loop {
        let reason = match tokio::spawn(make()).await {
            Ok(()) => return,
            Err(e) if e.is_cancelled() => return,
            Err(e) => panic_text(e.into_panic()),
        };
        if stop.is_cancelled() {
            return;
        }
        let now = Instant::now();
        panics.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        panics.push(now);
        if panics.len() > MAX_RESTARTS {
            faults.record(Fault::TaskDied { task, reason });
            return;
        }
        tracing::error!(member, task, reason, restarts = panics.len(), "membership task panicked; restarting it");
    }
}

/// Clears a flag when dropped, so a task that panics does not leave it set.
pub(crate) struct ClearOnDrop<'a>(pub &'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The message of a task's panic.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map_or_else(|| "a panic without a message".into(), |s| (*s).to_string()),
    }
}

#[cfg(test)]
mod tests;
