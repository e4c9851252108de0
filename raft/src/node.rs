//! [`Node`]: one replica's membership node, the crate's public face. Opens
//! the data dir, starts Raft and the membership tasks, and offers the routes,
//! the committed state, a status view, the node's [`Fault`] (a failed store,
//! Raft stopped, a task that keeps dying), and graceful leave and shutdown.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::RaftConfig;
use crate::fault::{Fault, Faults, StorageFault};
use crate::manager::detector::Liveness;
use crate::manager::{bootstrap, heartbeat, leader};
use crate::network::client::PeerClient;
use crate::network::raft::Network;
use crate::network::server;
use crate::network::wire::{HelloReply, LeaveMode, Manage, ManageReply, path};
use crate::state::{ClusterState, MemberInfo, MemberState, NodeId};
use crate::store;
use crate::types::Raft;
use crate::view::{ClusterView, MemberView, Role};

/// Errors of the membership node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration knob is wrong.
    #[error("raft config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// openraft refused the timers derived from the config.
    #[error("openraft config: {0}")]
    Openraft(String),
    /// The data dir cannot be used.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// openraft refused to start or stop.
    #[error("raft node {name}: {reason}")]
    Raft {
        /// Replica name.
        name: String,
        /// Cause.
        reason: String,
    },
    /// A membership change could not be committed in time.
    #[error("replica {name}: {what} not committed: {reason}")]
    Membership {
        /// Replica name.
        name: String,
        /// What was attempted.
        what: &'static str,
        /// Cause.
        reason: String,
    },
}

/// One replica's membership node. Dropping it stops its tasks and Raft
/// (without waiting; call [`Node::shutdown`] to wait).
pub struct Node {
    app: Arc<App>,
    tasks: TaskTracker,
    fresh: bool,
    /// Closed when the node stops, so no late snapshot write reaches the data dir.
    snapshot_gate: crate::store::state_machine::SnapshotGate,
}

impl Node {
    /// Opens the data dir, starts Raft and the membership tasks. The node
    /// stops when `shutdown` is cancelled or [`Node::shutdown`] is called.
    pub async fn start(config: RaftConfig, client: PeerClient, shutdown: CancellationToken) -> Result<Node, Error> {
        Node::start_with(config, client, shutdown, store::Disk::default()).await
    }

    /// [`Node::start`] with the store reaching its files through `disk`
    /// (tests inject storage faults there).
    pub async fn start_with(
        config: RaftConfig,
        client: PeerClient,
        shutdown: CancellationToken,
        disk: store::Disk,
    ) -> Result<Node, Error> {
        config.validate()?;
        let raft_config = config.openraft().map_err(|e| Error::Openraft(e.to_string()))?;
        let (tx, rx) = watch::channel(ClusterState::default());
        let faults = Faults::default();
        let opened = {
            let (dir, name, cluster, f) =
                (config.data_dir.clone(), config.name.clone(), config.cluster_id.clone(), faults.clone());
            tokio::task::spawn_blocking(move || store::open(&dir, &name, &cluster, tx, disk, f)).await.map_err(
                |e| Error::Raft { name: config.name.clone(), reason: format!("opening the data dir: {e}") },
            )??
        };
        let id = opened.identity.node_id;
        let snapshot_gate = opened.state_machine.gate();
        let info = MemberInfo {
            name: config.name.clone(),
            api_addr: config.api_addr.clone(),
            peer_addr: config.peer_addr.clone(),
        };
        let network = Network { client: client.clone(), cluster_id: config.cluster_id.clone(), me: id };
        let raft = Raft::new(id, Arc::new(raft_config), network, opened.log, opened.state_machine)
            .await
            .map_err(|e| Error::Raft { name: config.name.clone(), reason: e.to_string() })?;
        tracing::info!(member = id, name = %config.name, fresh = opened.fresh, "raft node started");
        let liveness = Liveness::new(Instant::now(), config.lease / 2);
        let app = Arc::new(App {
            raft,
            id,
            info,
            client,
            state: rx,
            liveness: Mutex::new(liveness),
            scrape_healthy: true.into(),
            leaving: false.into(),
            ready_to_own: (if config.ready_at_start { u64::MAX } else { 0 }).into(),
            flaps: Mutex::new(Default::default()),
            detector_busy: false.into(),
            synced: false.into(),
            started: Instant::now(),
            stop: shutdown.child_token(),
            join_error: Mutex::new(None),
            versions: Mutex::new(Default::default()),
            failing: Mutex::new(Vec::new()),
            faults,
            tasks: TaskTracker::new(),
            refusals: Default::default(),
            introductions: Default::default(),
            config,
        });
        let iv = app.config.liveness_interval;
        let a = app.clone();
        app.spawn("bootstrap", move || bootstrap::run(a.clone()));
        let a = app.clone();
        app.spawn("heartbeats", move || leader::every(a.clone(), iv, heartbeat::round));
        let a = app.clone();
        app.spawn("failure detector", move || {
            leader::every(a.clone(), iv / 2, |a| async move { leader::detect(&a).await })
        });
        let a = app.clone();
        app.spawn("reconcile", move || leader::every(a.clone(), iv, |a| async move { leader::reconcile(&a).await }));
        let a = app.clone();
        app.spawn("catch up", move || crate::manager::sync::run(a.clone()));
        let a = app.clone();
        app.spawn("raft watch", move || watch_raft(a.clone()));
        let a = app.clone();
        app.spawn("introductions", move || crate::network::introductions::run(a.clone()));
        let a = app.clone();
        app.spawn("raft shutdown", move || {
            let a = a.clone();
            async move {
                a.stop.cancelled().await;
                if let Err(e) = a.raft.shutdown().await {
                    tracing::warn!(member = a.id, error = %e, "raft shutdown failed");
                }
            }
        });
        let tasks = app.tasks.clone();
        tasks.close();
        Ok(Node { app, tasks, fresh: opened.fresh, snapshot_gate })
    }

    /// This incarnation's node id.
    pub fn id(&self) -> NodeId {
        self.app.id
    }

    /// True when this start created a new incarnation (empty or damaged data dir).
    pub fn is_new_incarnation(&self) -> bool {
        self.fresh
    }

    /// The peer routes; mount them on the peer listener.
    pub fn routes(&self) -> axum::Router {
        server::routes(self.app.clone())
    }

    /// The committed cluster state, updated as it changes.
    pub fn state(&self) -> watch::Receiver<ClusterState> {
        self.app.state.clone()
    }

    /// Why this node can no longer take part in Raft, if it cannot: its
    /// heartbeats say unhealthy from then on, so the leader commits it Down.
    pub fn fault(&self) -> Option<Fault> {
        self.app.faults.get()
    }

    /// The failed storage operation, if the node's fault is one.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self.app.faults.get() {
            Some(Fault::Storage(s)) => Some(s),
            _ => None,
        }
    }

    /// Resolves once this node has a fault and has said so long enough for
    /// the cluster to act: its heartbeats say unhealthy from the fault on,
    /// and a leader commits a member Down one lease after its last healthy
    /// heartbeat, so this waits two leases after the fault. The caller then
    /// stops the replica (the server exits non-zero: the node cannot recover
    /// in place, openraft having stopped; a restart reopens the data dir).
    pub async fn failed(&self) -> Fault {
        let fault = self.app.faults.wait().await;
        // A grace period for the cluster, not synchronisation.
        tokio::time::sleep(self.app.config.lease * 2).await;
        fault
    }

    /// Says whether this replica's scraping is healthy (sent in heartbeats;
    /// unhealthy for longer than the lease counts as Down).
    pub fn set_scrape_healthy(&self, healthy: bool) {
        self.app.scrape_healthy.store(healthy, Ordering::Relaxed);
    }

    /// Says which kubelets this replica holds and has failed to scrape for
    /// several rounds in a row (sent in every heartbeat, sorted, at most
    /// [`crate::network::wire::MAX_FAILING`]); the leader commits every
    /// member's list into the cluster state, where the ownership view reads
    /// who scrapes a node in its owner's place.
    pub fn set_failing(&self, mut nodes: Vec<String>) {
        nodes.sort_unstable();
        nodes.dedup();
        nodes.truncate(crate::network::wire::MAX_FAILING);
        *self.app.failing.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    /// The kubelets this replica says it fails to scrape (see [`Node::set_failing`]).
    pub fn failing(&self) -> Vec<String> {
        self.app.failing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Says at which committed epoch this replica holds the last points of
    /// every node it would own if made Active (sent in heartbeats; the leader
    /// makes no member Active before it does, at that very epoch).
    pub fn set_ready_to_own(&self, at_epoch: Option<u64>) {
        let v = match at_epoch {
            None => 0,
            Some(e) => e.saturating_add(1).min(u64::MAX - 1),
        };
        self.app.ready_to_own.store(v, Ordering::Relaxed);
    }

    /// What this node knows now.
    pub fn view(&self) -> ClusterView {
        let m = self.app.raft.metrics().borrow().clone();
        let state = self.app.state.borrow().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let role = if self.app.stop.is_cancelled() {
            Role::Stopped
        } else {
            match m.state {
                ServerState::Leader => Role::Leader,
                ServerState::Candidate => Role::Candidate,
                ServerState::Follower => Role::Follower,
                ServerState::Learner => Role::Learner,
                ServerState::Shutdown => Role::Stopped,
            }
        };
        let leader = m.current_leader.map(|l| {
            let name = state
                .members
                .get(&l)
                .map(|mm| mm.info.name.clone())
                .or_else(|| membership.get_node(&l).map(|n| n.name.clone()))
                .unwrap_or_default();
            (l, name)
        });
        let mut members: Vec<MemberView> = state
            .members
            .iter()
            .map(|(id, mm)| MemberView {
                id: *id,
                name: mm.info.name.clone(),
                state: mm.state,
                incarnation: mm.incarnation,
                voter: voters.contains(id),
                peer_addr: mm.info.peer_addr.clone(),
                api_addr: mm.info.api_addr.clone(),
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterView {
            id: self.app.id,
            name: self.app.info.name.clone(),
            role,
            term: m.current_term,
            leader,
            epoch: state.epoch,
            replication: state.replication,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            members,
            join_error: self.app.join_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            fault: self.app.faults.get().map(|f| f.to_string()),
        }
    }

    /// Leaves the ring: commits this member Draining (heartbeats say
    /// "leaving" from now on, so it is not made Active again). Returns the
    /// epoch after the change, once this node has applied it.
    pub async fn drain(&self) -> Result<u64, Error> {
        self.app.leaving.store(true, Ordering::Relaxed);
        let epoch = self.manage(Manage::Drain, "drain").await?;
        let deadline = Instant::now() + self.app.config.write_timeout;
        let mut rx = self.app.state.clone();
        let drained = |s: &ClusterState| s.members.get(&self.app.id).is_none_or(|m| m.state == MemberState::Draining);
        match tokio::time::timeout_at(deadline.into(), rx.wait_for(drained)).await {
            Ok(Ok(_)) => Ok(epoch),
            Ok(Err(_)) => Err(Error::Membership {
                name: self.app.info.name.clone(),
                what: "drain",
                reason: "the node stopped before applying it".into(),
            }),
            Err(_) => Err(Error::Membership {
                name: self.app.info.name.clone(),
                what: "drain",
                reason: format!("committed, but not applied here within {:?}", self.app.config.write_timeout),
            }),
        }
    }

    /// Graceful leave (call on SIGTERM after handing over). `Restart`:
    /// Draining only, this replica stays in Raft and is made Active again
    /// when it comes back with the same data dir. `ScaleDown`: Draining,
    /// then retired and removed from the Raft membership; waits until the
    /// leader no longer lists this node (up to the write timeout).
    pub async fn leave(&self, mode: LeaveMode) -> Result<(), Error> {
        self.drain().await?;
        if mode == LeaveMode::Restart {
            return Ok(());
        }
        self.manage(Manage::Retire, "retire").await?;
        let deadline = Instant::now() + self.app.config.write_timeout;
        while Instant::now() < deadline {
            if !self.leader_lists_me().await.unwrap_or(true) {
                tracing::info!(member = self.app.id, "removed from the raft membership");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Membership {
            name: self.app.info.name.clone(),
            what: "removal from raft",
            reason: format!("still listed after {:?}", self.app.config.write_timeout),
        })
    }

    /// Stops the tasks and Raft. Without a prior [`Node::leave`] this looks to
    /// the others like a crash.
    pub async fn shutdown(&self) {
        self.app.stop.cancel();
        self.tasks.wait().await;
        // openraft's snapshot builder may outlive Raft: keep it from writing
        // under whoever opens this data dir next (closing waits for a write
        // under way, so off the runtime's threads).
        let gate = self.snapshot_gate.clone();
        if tokio::task::spawn_blocking(move || gate.close()).await.is_err() {
            self.snapshot_gate.close();
        }
    }

    /// Opens a request to one of the server's own peer routes: checks the
    /// envelope (protocol version, cluster id, that it is addressed to this
    /// incarnation) and that the client certificate names the sending
    /// member, as the Raft routes do: a sender this node knows no member
    /// for is refused. The error is the response to send.
    #[allow(clippy::result_large_err)] // the refusal is returned as is
    pub fn open<T: serde::de::DeserializeOwned>(
        &self,
        certs: &Option<axum::Extension<tls::PeerCertificates>>,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<(NodeId, T), axum::response::Response> {
        server::open(&self.app, certs, headers, body, false)
    }

    /// Peer requests refused because the sender the envelope names is not
    /// the member the client certificate names (or a joiner's name is not
    /// its own): `(reason label, count)` for every reason, since the start.
    pub fn peer_refusals(&self) -> Vec<(&'static str, u64)> {
        self.app.refusals.snapshot()
    }

    /// Body bytes of this node's peer calls since the start, by route:
    /// `(route, sent, received)` (they only grow).
    pub fn peer_traffic(&self) -> Vec<(String, u64, u64)> {
        self.app.client.traffic()
    }

    /// Calls one of the server's own peer routes on member `to` (by its
    /// committed peer address) with the shared envelope and client.
    pub async fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        to: NodeId,
        path: &str,
        body: Req,
        timeout: Duration,
        size: crate::network::client::ReplySize,
    ) -> Result<Resp, crate::CallError> {
        let Some(info) = self.app.member_info(to) else {
            return Err(crate::CallError::Request { addr: format!("{to:016x}"), reason: "not a member".into() });
        };
        let env = self.app.envelope(to, body);
        self.app.client.call_with(&info.peer_addr, path, &env, timeout, size).await
    }

    /// How long member `id` has been silent (no liveness heartbeat), as this
    /// node's own table says; a member never heard from counts from this
    /// node's start (it gets a full lease before it is thought unreachable).
    pub fn silence(&self, id: NodeId) -> Option<Duration> {
        if id == self.app.id {
            return Some(Duration::ZERO);
        }
        let live = self.app.liveness();
        let now = Instant::now();
        Some(live.seen.get(&id).map_or_else(|| self.app.started.elapsed(), |s| now.saturating_duration_since(s.last)))
    }

    /// How long this node has been without contact to a quorum: `None`
    /// while it has it. A leader counts from its last quorum acknowledgement
    /// (openraft keeps a cut-off leader in the Leader role, so the role alone
    /// does not tell); any other node from the last liveness heartbeat of the
    /// leader it knows, or from its start when it knows none.
    pub fn without_quorum(&self) -> Option<Duration> {
        let m = self.app.raft.metrics().borrow().clone();
        let lease = self.app.config.lease;
        let gap = if m.state == ServerState::Leader && m.current_leader == Some(self.app.id) {
            let voters = m.membership_config.membership().voter_ids().count();
            if voters <= 1 {
                return None;
            }
            m.millis_since_quorum_ack.map_or(self.app.started.elapsed(), Duration::from_millis)
        } else {
            match m.current_leader {
                Some(l) => self.silence(l).unwrap_or_else(|| self.app.started.elapsed()),
                None => {
                    // The last time any leader was heard is not kept: the
                    // longest silence among the voters bounds it from below.
                    let live = self.app.liveness();
                    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                    let now = Instant::now();
                    voters
                        .iter()
                        .filter(|v| **v != self.app.id)
                        .filter_map(|v| live.seen.get(v).map(|s| now.saturating_duration_since(s.last)))
                        .min()
                        .unwrap_or_else(|| self.app.started.elapsed())
                        .max(lease)
                }
            }
        };
        (gap > lease).then_some(gap)
    }

    /// Whether member `id` was heard within the lease.
    pub fn reachable(&self, id: NodeId) -> bool {
        self.silence(id).is_some_and(|s| s <= self.app.config.lease)
    }

    /// Whether this node has caught up with what the leader had applied when
    /// asked after start (see `manager::sync`): before that, a node restarted
    /// with its data dir must treat its ring as a guess.
    pub fn synced(&self) -> bool {
        self.app.synced.load(Ordering::Acquire)
    }

    /// Whether this node asked to leave (drain) and must not be made Active again.
    pub fn is_leaving(&self) -> bool {
        self.app.is_leaving()
    }

    /// The lease this node runs with.
    pub fn lease(&self) -> Duration {
        self.app.config.lease
    }

    /// Whether the leader (as this node knows it) still lists this node in Raft.
    async fn leader_lists_me(&self) -> Option<bool> {
        let leader = {
            let m = self.app.raft.metrics().borrow().clone();
            let l = m.current_leader?;
            if l == self.app.id {
                return Some(m.membership_config.membership().get_node(&l).is_some());
            }
            (l, m.membership_config.membership().get_node(&l)?.clone())
        };
        let env = self.app.envelope(leader.0, ());
        let h: HelloReply =
            self.app.client.call(&leader.1.peer_addr, path::HELLO, &env, self.app.rpc_timeout()).await.ok()?;
        Some(h.nodes.contains_key(&self.app.id))
    }

    /// Sends a membership request to the leader (locally if we lead), following redirects.
    async fn manage(&self, req: Manage, what: &'static str) -> Result<u64, Error> {
        let app = &self.app;
        let deadline = Instant::now() + app.config.write_timeout;
        let mut last = String::from("no leader known");
        while Instant::now() < deadline {
            let target = {
                let m = app.raft.metrics().borrow().clone();
                m.current_leader.and_then(|l| m.membership_config.membership().get_node(&l).map(|n| (l, n.clone())))
            };
            let reply = match target {
                Some((l, _)) if l == app.id => leader::handle_manage(app, app.id, req.clone()).await,
                Some((l, node)) => {
                    let env = app.envelope(l, req.clone());
                    match app.client.call(&node.peer_addr, path::MANAGE, &env, app.config.write_timeout).await {
                        Ok(r) => r,
                        Err(e) => ManageReply::Refused(e.to_string()),
                    }
                }
                None => ManageReply::NotLeader { leader: None },
            };
            match reply {
                ManageReply::Done { epoch } => return Ok(epoch),
                ManageReply::NotLeader { .. } => last = "no leader known".into(),
                ManageReply::Refused(r) => last = r,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Membership { name: app.info.name.clone(), what, reason: last })
    }
}

/// Records openraft stopping on its own (a fatal error the store did not
/// report itself, or a panic in its core) as this node's fault.
async fn watch_raft(app: Arc<App>) {
    let mut metrics = app.raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            if !app.stop.is_cancelled() && !matches!(fatal, openraft::error::Fatal::Stopped) {
                app.faults.record(Fault::RaftStopped(fatal.to_string()));
            }
            return;
        }
        tokio::select! {
            _ = app.stop.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.app.stop.cancel();
        self.snapshot_gate.close();
    }
}
