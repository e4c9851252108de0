//! The replica manager, the IO shell around [`plan::actions`]: it follows the
//! ownership watch, and at every change performs what the planner says —
//! adopts (asking the scheduler for catch-up scrapes), hands over, seeds new
//! holders, pulls what it lacks, forgets what it no longer holds — and holds
//! a member outside the ring back from Active until it holds the points of
//! every node it would hold ([`Manager::prepare`]), and a leaving member
//! until every new owner serves a newer sample ([`leave`]). Every movement
//! of points between replicas starts here or in [`Replicas`] (copies of each
//! scrape); the transfers themselves are [`Outbox`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use raft::{MemberState, NodeId, ReplySize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::intake::PULL_CHUNK;
use super::outbox::{Kind, Outbox, last_two};
use super::plan::{Action, actions};
use crate::model::{NodeBatch, UnixNanos, now_nanos};
use crate::ownership::Ownership;
use crate::peer::call::{Transport, call_many};
use crate::peer::wire::{NodesQuery, NodesReply, PointsQuery, PointsReply, Source, path};
use crate::scrape::scraper::ScrapeSink;
use crate::selfmetrics::SelfMetrics;
use crate::store::{Held, Origin, Store};

/// The node names this replica knows (from discovery).
pub type NodeNames = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// How often pending pulls, confirmations and readiness are looked at.
const EVERY: Duration = Duration::from_millis(250);
/// Deadline of one pull or one confirmation round.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a node just adopted is scraped at once rather than at its
/// phase: when this replica holds no sample of it, or only one older than
/// a resolution (its last scraper missed a period). A fresher one (a
/// stand-in's or the dead owner's last copy) means its last scraper kept
/// the node's rhythm, and a scrape now would be a second one within the
/// period: two holders would serve different samples of one second.
pub fn needs_catch_up(newest: Option<UnixNanos>, now: UnixNanos, resolution: Duration) -> bool {
    newest.is_none_or(|t| now - t > resolution.as_nanos() as i64)
}

/// How long a node adopted from a live member, whose points here are
/// stale, waits for that member's handover before it is caught up with a
/// scrape: a quarter of the resolution. The handover carries the member's
/// last two points (served at once, where a scrape gives one), and a scrape
/// before it lands would be the kubelet's second within the period.
pub fn handover_wait(resolution: Duration) -> Duration {
    resolution / 4
}

/// Of the adopted nodes awaiting a handover (`awaiting`, each with its
/// deadline), those to catch up `at` this moment: still scraped here
/// (`scrapes`), still stale, and past their deadline. A node no longer
/// scraped here, or no longer stale (its handover or a copy landed), leaves
/// the list; the others stay until their deadline.
pub fn due_catch_ups(
    awaiting: &mut HashMap<String, Instant>,
    at: Instant,
    scrapes: &dyn Fn(&str) -> bool,
    stale: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut due = Vec::new();
    awaiting.retain(|node, deadline| {
        if !scrapes(node) || !stale(node) {
            return false;
        }
        if at >= *deadline {
            due.push(node.clone());
            return false;
        }
        true
    });
    due.sort();
    due
}

/// Pull calls in flight at once.
const PULLS_IN_FLIGHT: usize = 2;

/// How many rounds of pulls from one member may fail (time out, under
/// load, or be refused) before its nodes are asked of their next candidate.
pub const PULL_TRIES: u32 = 3;

/// Settles one round of pulls: each `(member, names, answered)` is a call
/// for `names` and the nodes its reply held (`None`: the call failed).
/// Answered nodes are done (returns how many); a node the member answered
/// without is asked of its next candidate; a node whose call failed is
/// asked of the same member again until [`PULL_TRIES`] of its rounds failed
/// (the chunks that did arrive under load leave less for the next round).
/// A node without candidates left is given up.
pub fn settle_pulls(
    left: &mut BTreeMap<String, Vec<NodeId>>,
    tries: &mut BTreeMap<NodeId, u32>,
    round: Vec<(NodeId, Vec<String>, Option<BTreeSet<String>>)>,
) -> usize {
    let failed: BTreeSet<NodeId> = round.iter().filter(|(_, _, a)| a.is_none()).map(|(m, _, _)| *m).collect();
    for m in &failed {
        *tries.entry(*m).or_default() += 1;
    }
    let mut got = 0;
    for (m, names, answered) in round {
        let drop_candidate = match &answered {
            Some(_) => true,
            None => tries.get(&m).is_some_and(|t| *t >= PULL_TRIES),
        };
        for n in names {
            if answered.as_ref().is_some_and(|a| a.contains(&n)) {
                got += 1;
                left.remove(&n);
            } else if drop_candidate && let Some(from) = left.get_mut(&n) {
                from.retain(|f| *f != m);
                if from.is_empty() {
                    left.remove(&n);
                }
            }
        }
    }
    got
}

/// Where every scrape lands: the store, and a copy for each other holder of
/// the node that this replica can reach.
pub struct Replicas<T: Transport> {
    /// Every point this replica holds.
    pub store: Arc<Store>,
    /// The queues to the other members.
    pub outbox: Arc<Outbox<T>>,
    /// Who holds what.
    pub ownership: watch::Receiver<Arc<Ownership>>,
}

impl<T: Transport> ScrapeSink for Replicas<T> {
    fn scraped(&self, node: &str, batch: NodeBatch, now: UnixNanos) {
        let ownership = self.ownership.borrow().clone();
        let holders = ownership.holders(node);
        let to: Vec<NodeId> = holders
            .as_slice()
            .iter()
            .copied()
            .filter(|h| Some(*h) != ownership.me && !ownership.unreachable.contains(h))
            .collect();
        if ownership.scrapes(node) {
            self.store.store_scrape(node, batch, now);
        } else {
            // A probe of a kubelet this replica had reported unreachable:
            // kept, as a copy, while another holder scrapes the node.
            self.store.store_replica(node, batch, now, Held::Copy, Origin::Scraped);
        }
        if !to.is_empty() {
            // The last two points as held now, so each holder's previous
            // point is this replica's and their rates equal its own.
            if let Some((last, prev)) = last_two(self.store.export(node)) {
                for h in to {
                    self.outbox.send_pair(h, Kind::Copy, node, last.clone(), prev.clone());
                }
            }
        }
    }

    fn failed(&self, node: &str, now: UnixNanos) {
        self.store.scrape_failed(node, now);
    }

    fn newest(&self, node: &str) -> Option<UnixNanos> {
        self.store.newest_sample(node)
    }

    fn forget(&self, node: &str) {
        self.store.forget_node(node);
    }
}

/// What the manager keeps between view changes.
#[derive(Default)]
struct Pending {
    /// Nodes to pull, with who may have them.
    pulls: BTreeMap<String, Vec<NodeId>>,
    /// Nodes released to a new owner, to forget once the handover lands.
    forget_after: HashMap<String, NodeId>,
    /// Leaving: nodes whose new owner has not yet served a newer sample.
    confirms: BTreeMap<String, NodeId>,
    /// Adopted nodes with stale points here whose previous owner is alive:
    /// caught up at the deadline unless its handover lands first.
    awaiting: HashMap<String, Instant>,
}

/// How far the manager has got, for [`leave`] to wait on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The epoch of the last view whose actions were performed.
    pub applied: Option<u64>,
    /// Whether this replica was out of the ring in that view.
    pub out_of_ring: bool,
    /// Nodes still awaiting confirmation by their new owner (leaving).
    pub unconfirmed: usize,
}

/// Performs the planner's actions for one replica in a cluster.
pub struct Manager {
    node: Arc<raft::Node>,
    replicas: Arc<Replicas<raft::Node>>,
    nodes: NodeNames,
    catch_up: mpsc::Sender<Vec<String>>,
    resolution: Duration,
    metrics: Arc<SelfMetrics>,
    pending: Mutex<Pending>,
    /// Handovers the outbox delivered: `(to, nodes)`.
    delivered: Mutex<Option<mpsc::Receiver<(NodeId, Vec<String>)>>>,
    progress: watch::Sender<Progress>,
}

impl Manager {
    /// A manager over `replicas`, asking the scheduler for catch-up scrapes
    /// through `catch_up`, told of delivered handovers by `delivered` (the
    /// outbox's other end).
    pub fn new(
        node: Arc<raft::Node>,
        replicas: Arc<Replicas<raft::Node>>,
        nodes: NodeNames,
        catch_up: mpsc::Sender<Vec<String>>,
        delivered: mpsc::Receiver<(NodeId, Vec<String>)>,
        resolution: Duration,
        metrics: Arc<SelfMetrics>,
    ) -> Manager {
        Manager {
            node,
            replicas,
            nodes,
            catch_up,
            resolution,
            metrics,
            pending: Mutex::default(),
            delivered: Mutex::new(Some(delivered)),
            progress: watch::Sender::new(Progress::default()),
        }
    }

    /// How far the manager has got.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Forgets the nodes released to `to` whose handover it acknowledged,
    /// unless this replica holds them again.
    fn delivered(&self, to: NodeId, nodes: &[String]) {
        let o = self.replicas.ownership.borrow().clone();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            if p.forget_after.get(n) == Some(&to) {
                p.forget_after.remove(n);
                if !o.scrapes(n) && o.me.is_none_or(|me| !o.holders(n).contains(me)) {
                    self.store().forget_node(n);
                }
            }
        }
    }

    fn publish(&self, o: &Ownership) {
        let me = self.node.id();
        let out_of_ring = o.members.get(&me).is_none_or(|m| m.state != MemberState::Active);
        let unconfirmed = self.pending.lock().unwrap_or_else(|e| e.into_inner()).confirms.len();
        self.progress.send_replace(Progress { applied: Some(o.epoch), out_of_ring, unconfirmed });
    }

    fn store(&self) -> &Arc<Store> {
        &self.replicas.store
    }

    /// Follows the ownership watch until `stop`, performing every change's
    /// actions, retrying pulls, confirming handovers and keeping the
    /// readiness to own up to date.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut ownership = self.replicas.ownership.clone();
        let Some(mut delivered) = self.delivered.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            tracing::error!("the replica manager was started twice");
            return;
        };
        let mut current: Option<Arc<Ownership>> = None;
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prepared_at: Option<u64> = None;
        loop {
            let next = ownership.borrow_and_update().clone();
            if current.as_ref().is_none_or(|c| !Arc::ptr_eq(c, &next)) {
                self.apply_change(current.as_deref(), &next);
                current = Some(next.clone());
            }
            self.catch_up_unhanded(&next);
            self.pull_pending(&next).await;
            self.confirm_pending(&next).await;
            prepared_at = self.prepare(&next, prepared_at).await;
            self.publish(&next);
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = ownership.changed() => if changed.is_err() { return },
                Some((to, nodes)) = delivered.recv() => self.delivered(to, &nodes),
                _ = every.tick() => {}
            }
        }
    }

    /// Performs the actions of one view change.
    fn apply_change(&self, old: Option<&Ownership>, new: &Ownership) {
        let names = (self.nodes)();
        let store = self.store().clone();
        let acts = actions(old, new, &names, &|n| store.held(n).is_some());
        if acts.is_empty() {
            return;
        }
        let now = now_nanos();
        let stale = |n: &str| self.stale(n, now);
        let mut catch_up = Vec::new();
        let (mut adopted, mut orphans, mut released, mut seeded, mut forgotten) = (0, 0, 0, 0, 0);
        let (mut awaiting, deadline) = (0, Instant::now() + handover_wait(self.resolution));
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for a in acts {
            match a {
                Action::Adopt { node, orphan } => {
                    adopted += 1;
                    orphans += usize::from(orphan);
                    store.set_held(&node, Held::Owned);
                    // An orphan whose newest point is fresh waits for its
                    // phase, the moment its last scraper would have come back.
                    // A stale one is scraped at once if nobody hands it over,
                    // else when its handover does not land in time.
                    if stale(&node) {
                        if orphan {
                            catch_up.push(node);
                        } else {
                            awaiting += 1;
                            pending.awaiting.insert(node, deadline);
                        }
                    }
                }
                Action::ReleaseTo { node, to } => {
                    released += 1;
                    self.replicas.outbox.send_all(to, Kind::Handover, &node, store.export(&node));
                    store.set_held(&node, Held::Copy);
                    pending.forget_after.remove(&node);
                }
                Action::ReseedTo { node, to } => {
                    seeded += 1;
                    self.replicas.outbox.send_all(to, Kind::Seed, &node, store.export(&node));
                }
                Action::PullFrom { node, from } => {
                    pending.pulls.insert(node, from);
                }
                Action::Confirm { node, to } => {
                    if store.newest_sample(&node).is_some() {
                        pending.confirms.insert(node, to);
                    }
                }
                Action::Forget { node } => {
                    forgotten += 1;
                    match new.owner(&node).filter(|_| old.is_some_and(|o| o.scrapes(&node))) {
                        Some(to) => {
                            pending.forget_after.insert(node, to);
                        }
                        None => store.forget_node(&node),
                    }
                }
            }
        }
        drop(pending);
        self.replicas.outbox.flush_soon();
        tracing::info!(
            epoch = new.epoch,
            from_epoch = old.map(|o| o.epoch),
            adopted,
            orphans,
            catch_up = catch_up.len(),
            awaiting_handover = awaiting,
            released,
            seeded,
            forgotten,
            "holdings changed"
        );
        self.metrics.ownership_changes.inc();
        self.send_catch_up(catch_up);
    }

    /// Whether this replica's points of `node` are too old at `now` for
    /// the node to wait for its phase ([`needs_catch_up`]).
    fn stale(&self, node: &str, now: UnixNanos) -> bool {
        needs_catch_up(self.store().newest_sample(node), now, self.resolution)
    }

    /// Hands `nodes` to the scheduler to be scraped soon.
    fn send_catch_up(&self, nodes: Vec<String>) {
        if !nodes.is_empty() && self.catch_up.try_send(nodes).is_err() {
            tracing::warn!("the scheduler's catch-up queue is full; the nodes wait for their usual phase");
        }
    }

    /// Sends the scheduler the adopted nodes whose handover did not land in
    /// time ([`due_catch_ups`]).
    fn catch_up_unhanded(&self, o: &Ownership) {
        let now = now_nanos();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.awaiting.is_empty() {
            return;
        }
        let due = due_catch_ups(&mut p.awaiting, Instant::now(), &|n| o.scrapes(n), &|n| self.stale(n, now));
        drop(p);
        if !due.is_empty() {
            tracing::info!(nodes = due.len(), "no handover in time; catching up");
        }
        self.send_catch_up(due);
    }

    /// Pulls pending nodes from their first candidate that has them, in
    /// chunks; a node no candidate has is given up.
    async fn pull_pending(&self, o: &Ownership) {
        let pulls = std::mem::take(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()).pulls);
        if pulls.is_empty() {
            return;
        }
        let started = Instant::now();
        let wanted = pulls.len();
        let mut left: BTreeMap<String, Vec<NodeId>> = pulls;
        let mut tries: BTreeMap<NodeId, u32> = BTreeMap::new();
        let mut got = 0usize;
        while !left.is_empty() {
            // Each node from its first remaining candidate, in chunks.
            let mut asks: Vec<(NodeId, String, PointsQuery)> = Vec::new();
            let mut by_member: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
            for (n, from) in &left {
                if let Some(f) = from.iter().find(|f| !o.unreachable.contains(f)) {
                    by_member.entry(*f).or_default().push(n.clone());
                }
            }
            if by_member.is_empty() {
                break;
            }
            for (m, names) in by_member {
                for chunk in names.chunks(PULL_CHUNK) {
                    asks.push((m, o.name_of(m), PointsQuery { epoch: o.epoch, names: chunk.to_vec() }));
                }
            }
            // A few chunks at a time, each with its own deadline: all of
            // them at once (40 at 10,000 nodes) under one deadline made a
            // loaded member time most of them out, and work on the rest.
            let replies: Vec<(Vec<String>, (NodeId, Result<PointsReply, raft::CallError>))> =
                futures::stream::iter(asks)
                    .map(|ask| async move {
                        let names = ask.2.names.clone();
                        let deadline = Instant::now() + CALL_TIMEOUT;
                        let mut r =
                            call_many(&*self.node, &self.metrics, path::POINTS, vec![ask], deadline, ReplySize::Large)
                                .await;
                        r.pop().map(|reply| (names, reply))
                    })
                    .buffer_unordered(PULLS_IN_FLIGHT)
                    .filter_map(std::future::ready)
                    .collect()
                    .await;
            let now = now_nanos();
            let mut round = Vec::with_capacity(replies.len());
            for (names, (m, r)) in replies {
                let mut answered: BTreeSet<String> = BTreeSet::new();
                let ok = r.is_ok();
                if let Ok(reply) = r {
                    for (n, batches) in reply.points {
                        let held = if o.scrapes(&n) { Held::Owned } else { Held::Copy };
                        let mut batches = batches.into_iter();
                        match (batches.next(), batches.next()) {
                            (Some(a), Some(b)) => {
                                self.store().store_replica_pair(&n, (a, b), now, held, (Origin::Member(m), false));
                            }
                            (Some(a), None) => {
                                self.store().store_replica(&n, a, now, held, Origin::Member(m));
                            }
                            _ => {}
                        }
                        answered.insert(n);
                    }
                }
                round.push((m, names, ok.then_some(answered)));
            }
            got += settle_pulls(&mut left, &mut tries, round);
        }
        tracing::info!(
            wanted,
            got,
            took_ms = started.elapsed().as_millis() as u64,
            "pulled the points of nodes now held here"
        );
    }

    /// Leaving: asks the new owners of the nodes awaiting confirmation for
    /// their newest samples, and confirms those newer than this replica's.
    async fn confirm_pending(&self, o: &Ownership) {
        let confirms = self.pending.lock().unwrap_or_else(|e| e.into_inner()).confirms.clone();
        if confirms.is_empty() {
            return;
        }
        let mut by_owner: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        for (n, to) in &confirms {
            by_owner.entry(*to).or_default().push(n.clone());
        }
        let calls = by_owner
            .into_iter()
            .map(|(to, names)| (to, o.name_of(to), NodesQuery { epoch: o.epoch, source: Source::Owned, names }))
            .collect();
        let deadline = Instant::now() + CALL_TIMEOUT;
        let replies: Vec<(NodeId, Result<NodesReply, raft::CallError>)> =
            call_many(&*self.node, &self.metrics, path::NODES, calls, deadline, ReplySize::Large).await;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in replies {
            for (n, usage) in r.map(|r| r.items).unwrap_or_default() {
                let mine = self.store().newest_sample(&n);
                if mine.is_none_or(|t| usage.timestamp > t) {
                    pending.confirms.remove(&n);
                }
            }
        }
    }

    /// Keeps `ready_to_own` at the epoch for which this member, if outside
    /// the ring (Joining, Down, or Draining after a restart), holds the
    /// points of every node it would hold if made Active: it plans the
    /// change into the ring and performs its pulls first.
    async fn prepare(&self, o: &Ownership, prepared_at: Option<u64>) -> Option<u64> {
        let me = self.node.id();
        match o.members.get(&me).map(|m| m.state) {
            None => return prepared_at,
            Some(MemberState::Active) => {
                self.node.set_ready_to_own(Some(o.epoch));
                return None;
            }
            Some(_) if self.node.is_leaving() => return prepared_at,
            Some(_) => {}
        }
        if prepared_at == Some(o.epoch) {
            return prepared_at;
        }
        self.node.set_ready_to_own(None);
        let mut state = self.node.state().borrow().clone();
        if state.ring.is_none() || state.epoch != o.epoch {
            // No ring to compute a share by (or the view lags the state):
            // nothing to hold yet.
            if state.ring.is_none() {
                self.node.set_ready_to_own(Some(o.epoch));
                return Some(o.epoch);
            }
            return prepared_at;
        }
        state.apply(&raft::Command::SetStates(vec![(me, MemberState::Active)]));
        let mut would = Ownership::from_state(me, &state);
        would.unreachable = o.unreachable.clone();
        let store = self.store().clone();
        let names = (self.nodes)();
        let pulls: BTreeMap<String, Vec<NodeId>> = actions(Some(o), &would, &names, &|n| store.held(n).is_some())
            .into_iter()
            .filter_map(|a| match a {
                Action::PullFrom { node, from } => Some((node, from)),
                _ => None,
            })
            .collect();
        let wanted = pulls.len();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).pulls.extend(pulls);
        let started = Instant::now();
        self.pull_pending(o).await;
        tracing::info!(
            epoch = o.epoch,
            nodes = wanted,
            took_ms = started.elapsed().as_millis() as u64,
            "holding the points of the nodes this replica will hold; ready to join the ring"
        );
        self.node.set_ready_to_own(Some(o.epoch));
        Some(o.epoch)
    }
}

/// What a planned leave achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Nodes this replica scraped before leaving.
    pub moved: usize,
    /// Of those, served fresh by their new owner before the deadline.
    pub confirmed: usize,
}

/// Leaves the ring, make before break: commits Draining, waits until the
/// manager has performed the view without this member (every node handed
/// over, confirmations started), then until each new owner has served a
/// sample newer than this replica's last for every moved node, or `timeout`.
pub async fn leave(manager: &Manager, timeout: Duration) -> Handover {
    let started = Instant::now();
    let deadline = started + timeout;
    let before = manager.replicas.ownership.borrow().clone();
    let moved = (manager.nodes)().into_iter().filter(|n| before.scrapes(n)).count();
    let drained = match manager.node.drain().await {
        Ok(epoch) => epoch,
        Err(e) => {
            tracing::warn!(error = %e, "could not commit Draining; leaving without a handover");
            return Handover { moved, confirmed: 0 };
        }
    };
    let mut progress = manager.progress();
    let applied = |p: &Progress| p.out_of_ring && p.applied.is_some_and(|e| e >= drained);
    let done = |p: &Progress| applied(p) && p.unconfirmed == 0;
    let waited = tokio::time::timeout_at(deadline, progress.wait_for(done)).await.map(|r| r.is_ok());
    let last = *progress.borrow();
    let unconfirmed = if applied(&last) { last.unconfirmed } else { moved };
    let confirmed = moved.saturating_sub(unconfirmed);
    manager.metrics.handover_duration.observe(started.elapsed().as_secs_f64());
    match waited {
        Ok(true) => tracing::info!(moved, took_ms = started.elapsed().as_millis() as u64, "handed every node over"),
        _ if !applied(&last) => tracing::warn!(moved, "the ring without this replica was not seen in time"),
        _ => tracing::warn!(moved, unconfirmed, "handover timed out; leaving anyway"),
    }
    Handover { moved, confirmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Duration = Duration::from_secs(15);
    const S: i64 = 1_000_000_000;

    #[test]
    fn an_adopted_node_is_caught_up_at_once_only_without_a_sample_of_this_period() {
        let now = 1_000 * S;
        assert!(needs_catch_up(None, now, R), "nothing held: scraped at once");
        assert!(needs_catch_up(Some(now - 16 * S), now, R), "a period missed: scraped at once");
        assert!(!needs_catch_up(Some(now - 15 * S), now, R), "exactly one period old: its phase is now");
        assert!(!needs_catch_up(Some(now - 3 * S), now, R), "fresh: waits for its phase");
        assert!(!needs_catch_up(Some(now + 2 * S), now, R), "from a clock ahead: not stale either");
    }

    #[test]
    fn an_adopted_node_waits_for_its_handover_until_the_deadline() {
        let t0 = Instant::now();
        let wait = handover_wait(R);
        assert_eq!(wait, Duration::from_millis(3_750));
        let names = ["handed", "late", "moved-on", "no-handover"];
        let mut awaiting: HashMap<String, Instant> = names.iter().map(|n| (n.to_string(), t0 + wait)).collect();
        let scrapes = |n: &str| n != "moved-on";
        // Before the deadline: nothing due; the handed-over node and the one
        // no longer scraped here leave the list.
        let due = due_catch_ups(&mut awaiting, t0 + wait / 2, &scrapes, &|n| n != "handed");
        assert!(due.is_empty(), "caught up before the deadline: {due:?}");
        let mut left: Vec<&String> = awaiting.keys().collect();
        left.sort();
        assert_eq!(left, ["late", "no-handover"]);
        // At the deadline: the one whose handover landed just now is not
        // scraped; the other is.
        let due = due_catch_ups(&mut awaiting, t0 + wait, &scrapes, &|n| !["handed", "late"].contains(&n));
        assert_eq!(due, ["no-handover"]);
        assert!(awaiting.is_empty());
    }

    #[test]
    fn a_pull_that_fails_is_asked_again_of_the_same_member_a_few_times() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut left: BTreeMap<String, Vec<NodeId>> =
            ["a", "b", "c"].iter().map(|n| (n.to_string(), vec![1, 2])).collect();
        let mut tries = BTreeMap::new();
        // Member 1 gives "a", lacks "b"; the call for "c" times out.
        let round = vec![(1, names(&["a", "b"]), Some(["a".to_string()].into())), (1, names(&["c"]), None)];
        assert_eq!(settle_pulls(&mut left, &mut tries, round), 1);
        assert_eq!(left.get("a"), None, "pulled");
        assert_eq!(left["b"], vec![2], "1 lacks it: asked of 2");
        assert_eq!(left["c"], vec![1, 2], "1 timed out once: asked again");
        for _ in 1..PULL_TRIES - 1 {
            settle_pulls(&mut left, &mut tries, vec![(1, names(&["c"]), None)]);
            assert_eq!(left["c"], vec![1, 2]);
        }
        settle_pulls(&mut left, &mut tries, vec![(1, names(&["c"]), None)]);
        assert_eq!(left["c"], vec![2], "after {PULL_TRIES} failed rounds: the next candidate");
        assert_eq!(settle_pulls(&mut left, &mut tries, vec![(2, names(&["b", "c"]), Some(BTreeSet::new()))]), 0);
        assert!(left.is_empty(), "nobody has them: given up");
    }
}
