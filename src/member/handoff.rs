//! Handing kubelets over without a gap, both ways in:
//!
//! - [`prepare`]: a member outside the ring (Joining, Down, or Draining after
//!   a restart) pulls the last two points of every node it would own from
//!   their current owners, and only then tells the leader it is ready to be
//!   made Active (heartbeat `ready_to_own`). Re-done whenever the epoch moves.
//! - [`leave`]: a member asked to stop (SIGTERM) commits Draining, lets the
//!   scheduler hand each moved node's points to its new owner, and keeps
//!   answering until every new owner has served a sample newer than the
//!   ones handed over (make before break), or the handoff timeout passes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{MemberState, NodeId, ReplySize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::now_nanos;
use crate::ownership::{Ownership, Ring};
use crate::peer::wire::{NodesQuery, NodesReply, PointsQuery, PointsReply, Source, path};
use crate::selfmetrics::SelfMetrics;
use crate::store::Store;

/// How often preparation and handoff progress are checked.
const EVERY: Duration = Duration::from_millis(250);
/// Deadline of one pull or probe.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The node names this replica knows.
pub type NodeNames = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The nodes `me` would own if the Active members and it formed the ring.
fn would_own(o: &Ownership, me: NodeId, nodes: &[String]) -> Option<Vec<String>> {
    let ring = o.ring()?;
    let mut members: Vec<(NodeId, String)> = ring.members().map(|(id, n)| (id, n.to_string())).collect();
    if !members.iter().any(|(id, _)| *id == me) {
        members.push((me, o.members.get(&me)?.name.clone()));
    }
    let candidate = Ring::new(ring.params(), o.epoch, members).ok()?;
    Some(nodes.iter().filter(|n| candidate.owner(n) == Some(me)).cloned().collect())
}

/// Pulls the last points of `nodes` from their current owners into `store`;
/// true when every owner answered.
async fn pull(node: &raft::Node, o: &Ownership, nodes: Vec<String>, store: &Store) -> bool {
    let mut by_owner: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for n in nodes {
        if let Some(owner) = o.owner(&n).filter(|owner| Some(*owner) != o.me) {
            by_owner.entry(owner).or_default().push(n);
        }
    }
    let calls = by_owner.into_iter().map(|(owner, names)| async move {
        let q = PointsQuery { epoch: o.epoch, names };
        node.call::<_, PointsReply>(owner, path::POINTS, q, CALL_TIMEOUT, ReplySize::Large).await
    });
    let mut all = true;
    for r in futures::future::join_all(calls).await {
        match r {
            Ok(reply) => {
                for (n, batches) in reply.points {
                    for b in batches {
                        store.store_replica(&n, b, now_nanos());
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "pulling points before joining the ring failed");
                all = false;
            }
        }
    }
    all
}

/// Keeps `ready_to_own` at the epoch for which this member, if outside the
/// ring, holds the points of what it would own (none while it pulls).
pub async fn prepare(
    node: Arc<raft::Node>,
    ownership: watch::Receiver<Arc<Ownership>>,
    store: Arc<Store>,
    nodes: NodeNames,
    shutdown: CancellationToken,
) {
    let me = node.id();
    let mut prepared_at: Option<u64> = None;
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let o = ownership.borrow().clone();
        match o.members.get(&me).map(|m| m.state) {
            None => continue,
            Some(MemberState::Active) => {
                node.set_ready_to_own(Some(o.epoch));
                prepared_at = None;
                continue;
            }
            Some(_) if node.is_leaving() => continue,
            Some(_) => {}
        }
        if prepared_at == Some(o.epoch) {
            continue;
        }
        node.set_ready_to_own(None);
        let Some(mine) = would_own(&o, me, &nodes()) else {
            // No ring to compute a share by: nothing to hold.
            node.set_ready_to_own(Some(o.epoch));
            prepared_at = Some(o.epoch);
            continue;
        };
        let started = Instant::now();
        if pull(&node, &o, mine.clone(), &store).await {
            tracing::info!(
                epoch = o.epoch,
                nodes = mine.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "holding the points of the nodes this replica will own; ready to join the ring"
            );
            node.set_ready_to_own(Some(o.epoch));
            prepared_at = Some(o.epoch);
        }
    }
}

/// What a planned leave achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Nodes this replica owned before leaving.
    pub moved: usize,
    /// Of those, served fresh by their new owner before the deadline.
    pub confirmed: usize,
}

/// Leaves the ring, make before break: commits Draining, waits for the ring
/// without this member, then until each new owner has served a sample newer
/// than this replica's last one for every moved node (the scheduler hands
/// the points over at the epoch change), or `timeout`.
pub async fn leave(
    node: &raft::Node,
    ownership: &mut watch::Receiver<Arc<Ownership>>,
    store: &Store,
    nodes: &NodeNames,
    timeout: Duration,
    metrics: &SelfMetrics,
) -> Handoff {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let me = node.id();
    let before = ownership.borrow().clone();
    let owned: Vec<String> = nodes().into_iter().filter(|n| before.owner(n) == Some(me)).collect();
    if let Err(e) = node.drain().await {
        tracing::warn!(error = %e, "could not commit Draining; leaving without a handoff");
        return Handoff { moved: owned.len(), confirmed: 0 };
    }
    let out_of_ring = |o: &Ownership| o.members.get(&me).is_none_or(|m| m.state != MemberState::Active);
    if tokio::time::timeout_at(deadline, ownership.wait_for(|o| out_of_ring(o))).await.is_err() {
        tracing::warn!("the ring without this replica was not seen in time");
        return Handoff { moved: owned.len(), confirmed: 0 };
    }
    let mut pending: BTreeMap<String, i64> =
        owned.iter().filter_map(|n| store.newest_sample(n).map(|t| (n.clone(), t))).collect();
    let moved = owned.len();
    while !pending.is_empty() && tokio::time::Instant::now() < deadline {
        let o = ownership.borrow().clone();
        let mut by_owner: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for n in pending.keys() {
            if let Some(owner) = o.owner(n).filter(|owner| *owner != me) {
                by_owner.entry(owner).or_default().push(n.clone());
            }
        }
        let calls = by_owner.into_iter().map(|(owner, names)| {
            let q = NodesQuery { epoch: o.epoch, source: Source::Owned, names };
            async move { node.call::<_, NodesReply>(owner, path::NODES, q, CALL_TIMEOUT, ReplySize::Large).await }
        });
        for reply in futures::future::join_all(calls).await.into_iter().flatten() {
            for (n, usage) in reply.items {
                if pending.get(&n).is_some_and(|mine| usage.timestamp > *mine) {
                    pending.remove(&n);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep_until((tokio::time::Instant::now() + EVERY).min(deadline)).await;
    }
    let confirmed = moved - pending.len();
    metrics.handoff_duration.observe(started.elapsed().as_secs_f64());
    if pending.is_empty() {
        tracing::info!(moved, took_ms = started.elapsed().as_millis() as u64, "handed every node over");
    } else {
        tracing::warn!(moved, unconfirmed = pending.len(), "handoff timed out; leaving anyway");
    }
    Handoff { moved, confirmed }
}
