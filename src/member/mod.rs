//! This replica as a member of the replica cluster: starts its Raft node
//! from the validated [`ClusterSettings`], mounts the node's routes (and the
//! cluster view) on the peer port, mirrors the node's view into the Raft
//! gauges, and says how to leave on SIGTERM ([`leave`]). Raft and the peer
//! port's connections run on a thread of their own ([`control`]). Who owns which
//! kubelet is not decided here: that is `ownership`'s job, built on
//! [`raft::Node::state`].

pub mod control;
pub mod gauges;
pub mod leave;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::routing::get;
use raft::PeerClient;
use tls::rotating::RotatingTls;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterSettings;
use crate::ownership::{Fallback, Ownership};
use control::{ControlRuntime, OnRuntime};
use gauges::RaftMetrics;
pub use status::ClusterStatus;
use tokio::sync::watch;

/// How often liveness (unreachable members, quorum) is re-evaluated.
const LIVENESS_EVERY: Duration = Duration::from_millis(250);

/// How many leases a replica waits before it scrapes nodes the committed
/// ring may not give it: without quorum before degraded mode, and, started
/// without any committed state, for a ring before it scrapes every node.
pub const GRACE_LEASES: u32 = 2;

/// Whether a replica `since_start` after its start, at committed `epoch`,
/// is still joining: nothing committed yet (epoch 0) and within the grace.
fn joining(epoch: u64, since_start: Duration, lease: Duration) -> bool {
    epoch == 0 && since_start < lease * GRACE_LEASES
}

/// Follows the committed state of `node` and its liveness, and publishes
/// this replica's [`Ownership`] on every change: the ring is rebuilt (off
/// the async threads) only when the epoch moves; the unreachable members
/// and degraded mode (no quorum for longer than twice the lease, or not yet
/// caught up after a start) are re-evaluated every 250 ms.
pub fn follow_ownership(
    node: Arc<raft::Node>,
    metrics: Arc<crate::selfmetrics::SelfMetrics>,
    shutdown: CancellationToken,
) -> watch::Receiver<Arc<Ownership>> {
    let me = node.id();
    let mut state = node.state();
    let started = tokio::time::Instant::now();
    let mut initial = Ownership::from_state(me, &state.borrow_and_update());
    initial.joining = joining(initial.epoch, started.elapsed(), node.lease());
    let (tx, rx) = watch::channel(Arc::new(initial));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(LIVENESS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_turn = tokio::time::Instant::now();
        let mut away_until: Option<tokio::time::Instant> = None;
        loop {
            let committed = tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = state.changed() => {
                    if changed.is_err() { break }
                    true
                }
                _ = every.tick() => false,
            };
            // A wait longer than a lease, where the tick is every 250 ms:
            // this replica itself was stopped (SIGSTOP, a frozen VM), long
            // enough for every peer to look silent (see below). A shorter
            // stall (CPU starvation) makes no peer look silent by itself, and
            // a peer that really died in it must be taken for unreachable at
            // once: the tried threshold of 750 ms delayed a kill -9 failover
            // on a loaded machine.
            let woke = tokio::time::Instant::now();
            if woke.saturating_duration_since(last_turn) > node.lease() {
                away_until = Some(woke + node.lease());
            }
            let previous = tx.borrow().clone();
            let mut next = if committed {
                let s = state.borrow_and_update().clone();
                if s.epoch == previous.epoch {
                    previous.refreshed(&s)
                } else {
                    match tokio::task::spawn_blocking(move || Ownership::from_state(me, &s)).await {
                        Ok(mut o) => {
                            o.previous = previous.ring_arc().map(|r| (r, previous.replication));
                            o
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "building the ring failed");
                            continue;
                        }
                    }
                }
            } else {
                (*previous).clone()
            };
            // Right after this replica was away every peer looks silent, its
            // heartbeats unread, so for a lease after it a peer newly silent
            // is not taken for unreachable: its silence is ours. It would
            // otherwise stand in for every other owner at once, with catch-up
            // scrapes of nodes it holds no fresh points of. (The query fan-out
            // reads its own pauses from `query::pause`, a ticker; this loop
            // measures its own wait, which a ticker woken after it would miss.)
            let away = away_until.is_some_and(|t| woke < t);
            let silent = next.members.keys().copied().filter(|id| *id != me && !node.reachable(*id));
            next.unreachable = unreachable(silent, &previous.unreachable, away);
            next.fallback = fallback_of(&node);
            next.joining = joining(next.epoch, started.elapsed(), node.lease());
            if previous.joining && !next.joining && next.epoch == 0 {
                tracing::warn!(
                    grace_leases = GRACE_LEASES,
                    "no ring received within the join grace: scraping every node"
                );
            }
            if let crate::ownership::Mode::NoRing(why) = &next.mode
                && next.epoch != previous.epoch
            {
                tracing::warn!(epoch = next.epoch, reason = %why, "no usable ring: scraping every node");
            }
            if next.fallback != previous.fallback {
                match next.fallback {
                    Some(why) => tracing::warn!(
                        reason = %why,
                        unreachable = next.unreachable.len(),
                        "degraded: also scraping the nodes of unreachable owners"
                    ),
                    None => tracing::info!(epoch = next.epoch, "back to the committed ring"),
                }
                metrics.degraded.set(i64::from(next.fallback.is_some()));
            }
            let same = !committed
                && next.unreachable == previous.unreachable
                && next.fallback == previous.fallback
                && next.joining == previous.joining;
            if !same && tx.send(Arc::new(next)).is_err() {
                break;
            }
            // Measured from here, so building a ring is not taken for a pause.
            last_turn = tokio::time::Instant::now();
        }
    });
    rx
}

/// The members taken for unreachable: the `silent` ones (no contact for a
/// lease), except, while this replica was `away` a moment ago, those it did
/// not already take for unreachable.
fn unreachable(
    silent: impl Iterator<Item = raft::NodeId>,
    before: &std::collections::BTreeSet<raft::NodeId>,
    away: bool,
) -> std::collections::BTreeSet<raft::NodeId> {
    silent.filter(|id| !away || before.contains(id)).collect()
}

/// Degraded mode: quorum lost for more than twice the lease, or not caught
/// up with the leader since the start.
fn fallback_of(node: &raft::Node) -> Option<Fallback> {
    if node.without_quorum().is_some_and(|gap| gap > node.lease() * GRACE_LEASES) {
        Some(Fallback::QuorumLost)
    } else if !node.synced() {
        Some(Fallback::Unsynced)
    } else {
        None
    }
}

/// Starts the Raft node (not yet reachable: see [`serve`]); its peer
/// client uses `tls`'s current certificates at every handshake.
pub async fn start_node(
    settings: &ClusterSettings,
    tls: &RotatingTls,
    control: &ControlRuntime,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<raft::Node>> {
    let local = Some(settings.peer_listen.ip()).filter(|ip| !ip.is_unspecified());
    let client = PeerClient::tls_from(tls.client_config().context("the peer client's TLS")?, local)
        .on_control_runtime(control.handle().clone());
    // Started on the control runtime: Raft's core and the membership
    // manager's tasks are spawned there.
    let config = settings.raft.clone();
    let node = control.run(raft::Node::start(config, client, shutdown)).await?;
    Ok(Arc::new(node.context("starting the Raft node")?))
}

/// Serves the peer port: Raft's routes, the cluster status (from `nodes`,
/// the node names this replica knows) and the server's `routes`; refreshes
/// `gauges` every second. The connections and Raft's routes run on
/// `control`, the cluster status and the server's routes on the caller's
/// runtime.
#[allow(clippy::too_many_arguments)] // the peer port's parts, each once
pub async fn serve(
    settings: &ClusterSettings,
    tls: &RotatingTls,
    node: Arc<raft::Node>,
    ownership: watch::Receiver<Arc<Ownership>>,
    nodes: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    routes: axum::Router,
    gauges: RaftMetrics,
    control: &ControlRuntime,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let status_node = node.clone();
    let server_routes = routes.route(
        status::VIEW_PATH,
        get(move || {
            let (n, o, nodes) = (status_node.clone(), ownership.clone(), nodes.clone());
            async move {
                let view = n.view();
                let ownership = o.borrow().clone();
                let names = nodes();
                Json(tokio::task::spawn_blocking(move || ClusterStatus::new(view, &ownership, &names)).await.ok())
            }
        }),
    );
    // Raft's routes answer on the control runtime, with the connections;
    // the server's own on this one.
    let all = node.routes().fallback_service(OnRuntime::new(server_routes, tokio::runtime::Handle::current()));
    crate::peer::serve(settings, tls.server(), all, control.handle(), shutdown.clone())?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    gauges.update(&node.view(), node.fault().as_ref());
                    gauges.count_refusals(&node.peer_refusals());
                    gauges.count_traffic(&node.peer_traffic());
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn right_after_its_own_pause_a_replica_takes_no_newly_silent_peer_for_unreachable() {
        let before: BTreeSet<raft::NodeId> = [3].into();
        let silent = || [2, 3].into_iter();
        assert_eq!(super::unreachable(silent(), &before, false), [2, 3].into());
        assert_eq!(super::unreachable(silent(), &before, true), [3].into(), "2 fell silent while it was away");
        assert!(super::unreachable([2].into_iter(), &BTreeSet::new(), true).is_empty());
    }

    #[test]
    fn a_replica_joins_only_with_nothing_committed_and_only_within_the_grace() {
        let lease = std::time::Duration::from_secs(3);
        assert!(super::joining(0, std::time::Duration::ZERO, lease), "at the start, before any ring");
        assert!(super::joining(0, lease * 2 - std::time::Duration::from_millis(1), lease));
        assert!(!super::joining(0, lease * 2, lease), "no ring within two leases: it scrapes every node");
        assert!(!super::joining(1, std::time::Duration::ZERO, lease), "a committed state, even without a ring");
    }
}
