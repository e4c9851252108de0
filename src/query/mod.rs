//! Any replica answers any request: [`ClusterSource`] is the API's usage
//! source in a cluster. The [`plan`] (pure) says who may be asked for what
//! and in which order; this module asks, all within one deadline per
//! request, reads its own part from [`local`], merges, and hands the API a
//! typed list of what is missing and why. A member that does not answer
//! makes the answer partial, never a silent hole.
//!
//! Asking is hedged, as in "The Tail at Scale": a member that failed or was
//! silent a moment ago is suspected and skipped in favour of its other
//! holders at once; one that is merely slow is given about its usual answer
//! time ([`latency`]) before the next holder is asked too, and the first
//! good answer wins (the other call is cancelled).

pub mod latency;
pub mod local;
pub mod pause;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{AbortHandle, BoxFuture, abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use raft::{CallError, NodeId, ReplySize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::{Answer, Cause, Missing, NodeUsage, PodKey, PodQuery, PodUsage, UnixNanos, UsageSource, What};
use crate::ownership::Ownership;
use crate::peer::call::{Transport, call_many};
use crate::peer::wire::{NodesQuery, NodesReply, PodAnswer, PodsQuery, PodsReply, Source, path};
use crate::selfmetrics::SelfMetrics;
use crate::store::Origin;
use latency::{Latency, Size};
use local::Local;
use plan::{
    Asked, Outcomes, copy_sets, last_resort, merge_pods, missing_nodes, node_candidates, part_complete, pod_askees,
    pod_routing,
};

/// Most pods whose node is remembered for routing a later GET.
const LOCATOR_CAPACITY: usize = 1 << 20;
/// Pods lists of at most this many pods are routed to the owners of their
/// nodes when every pod can be placed (placing costs a lookup per pod).
const ROUTE_AT_MOST: usize = 10_000;

/// Node lists of more names than this are large answers ([`Size`]).
const LARGE_NODE_LISTS: usize = 1_000;

/// A pods query that no selector or name narrows asks for a member's whole
/// part: a large answer ([`Size`]).
fn pods_size(q: &PodsQuery) -> Size {
    if q.one.is_none() && q.labels.is_empty() && q.fields.is_empty() { Size::Large } else { Size::Small }
}

/// Whether a round for the pods `value` still lacks is to run: not when
/// none is missing; not when the deadline has passed, and then the answer
/// is marked `cut_short` (partial, and says so). The clock is read once, so
/// a round is either run or counted as cut short, never neither.
fn round_due(value: &[Option<PodUsage>], deadline: Instant, cut_short: &mut bool) -> bool {
    if value.iter().all(Option::is_some) {
        return false;
    }
    let due = Instant::now() < deadline;
    *cut_short |= !due;
    due
}

/// The usage source of a replica in a cluster.
pub struct ClusterSource<T: Transport> {
    transport: Arc<T>,
    local: Local,
    ownership: watch::Receiver<Arc<Ownership>>,
    deadline: Duration,
    /// How long after an epoch change pods missing from the owners' answers
    /// are looked for everywhere (three resolutions).
    settle: Duration,
    /// How recently a node's newest points must have arrived here for a
    /// pods list to be answered from them alone (one and a half
    /// resolutions: its owner scrapes every resolution and sends the copies
    /// at once).
    current: Duration,
    metrics: Arc<SelfMetrics>,
    /// The node each pod was last answered from, so a GET of one pod goes to
    /// that node's holders only (pods do not change nodes).
    locator: Mutex<Locator>,
    /// Whether this replica itself was away a moment ago.
    pause: Arc<pause::PauseClock>,
    /// Each member's usual answer time and recent failures.
    latency: Latency,
    /// Hedges allowed now, so hedging never more than adds a tenth to the
    /// calls made (a loaded machine, slow everywhere, would otherwise
    /// hedge every call and slow itself further).
    hedges: Mutex<HedgeBudget>,
    /// Each owner's copy sets (`plan::copy_sets`) for one ring, recomputed
    /// when the ring changes or a second has passed (nodes come and go):
    /// computing them costs a ring lookup per node.
    copies: Mutex<Option<CopySets>>,
}

/// The node each pod was last answered from, by namespace then name, so
/// that a lookup and the common update (a pod still on its node) borrow
/// the answer's names instead of copying them: a `top pod -A` remembers
/// 300,000 pods.
#[derive(Default)]
struct Locator {
    by_namespace: foldhash::HashMap<String, foldhash::HashMap<String, String>>,
}

impl Locator {
    /// Pods remembered (a sum over the namespaces, of which there are few).
    fn len(&self) -> usize {
        self.by_namespace.values().map(HashMap::len).sum()
    }

    fn remember(&mut self, answers: &[PodAnswer]) {
        if self.len() + answers.len() > LOCATOR_CAPACITY {
            *self = Locator::default();
        }
        for a in answers {
            let names = match self.by_namespace.get_mut(&a.namespace) {
                Some(names) => names,
                None => self.by_namespace.entry(a.namespace.clone()).or_default(),
            };
            match names.get_mut(&a.name) {
                Some(node) if *node == a.node => {}
                Some(node) => node.clone_from(&a.node),
                None => {
                    names.insert(a.name.clone(), a.node.clone());
                }
            }
        }
    }

    fn node_of(&self, (namespace, name): &PodKey) -> Option<&str> {
        self.by_namespace.get(namespace)?.get(name).map(String::as_str)
    }

    fn forget(&mut self, (namespace, name): &PodKey) {
        if let Some(names) = self.by_namespace.get_mut(namespace) {
            names.remove(name);
        }
    }
}

/// Each owner's distinct copy-holder sets for one ring.
struct CopySets {
    ring: Arc<crate::ownership::Ring>,
    replication: usize,
    at: Instant,
    sets: Arc<BTreeMap<NodeId, BTreeSet<Vec<NodeId>>>>,
}

/// A token bucket counted in calls: every call made adds one, a hedge
/// takes [`CALLS_PER_HEDGE`]; at most [`HEDGE_BURST`] hedges are saved up.
#[derive(Debug)]
struct HedgeBudget {
    calls: u32,
}

/// Calls made per hedge allowed, over time ("The Tail at Scale" keeps the
/// extra load of hedging to a few percent).
const CALLS_PER_HEDGE: u32 = 10;
/// Hedges that may be made at once after a quiet time.
const HEDGE_BURST: u32 = 10;

impl HedgeBudget {
    fn full() -> HedgeBudget {
        HedgeBudget { calls: HEDGE_BURST * CALLS_PER_HEDGE }
    }

    fn called(&mut self, calls: usize) {
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        self.calls = self.calls.saturating_add(calls).min(HEDGE_BURST * CALLS_PER_HEDGE);
    }

    fn take(&mut self) -> bool {
        if self.calls >= CALLS_PER_HEDGE {
            self.calls -= CALLS_PER_HEDGE;
            true
        } else {
            false
        }
    }
}

/// How a failed call shows in a `Warning`.
fn cause_of(e: &CallError) -> Cause {
    match e {
        CallError::Timeout { .. } => Cause::Timeout,
        CallError::Unreachable { .. } | CallError::Request { .. } => Cause::Unreachable,
        CallError::Refused { .. } | CallError::Decode { .. } => Cause::Refused,
    }
}

/// One call of a request: to whom, for which nodes, since when.
struct Call {
    to: NodeId,
    nodes: Vec<usize>,
    started: Instant,
    hedged: bool,
    done: bool,
    abort: AbortHandle,
}

type Reply<R> = (usize, Result<Result<R, CallError>, futures::future::Aborted>, Duration);

impl<T: Transport> ClusterSource<T> {
    /// A source answering from `local` and asking peers through `transport`,
    /// each request within `deadline`; `pause` tells whether this replica
    /// was itself away a moment ago.
    pub fn new(
        transport: Arc<T>,
        local: Local,
        ownership: watch::Receiver<Arc<Ownership>>,
        deadline: Duration,
        resolution: Duration,
        metrics: Arc<SelfMetrics>,
        pause: Arc<pause::PauseClock>,
    ) -> ClusterSource<T> {
        let settle = resolution * 3;
        let current = resolution * 3 / 2;
        let locator = Mutex::new(Locator::default());
        let latency = Latency::default();
        let hedges = Mutex::new(HedgeBudget::full());
        let copies = Mutex::new(None);
        ClusterSource {
            transport,
            local,
            ownership,
            deadline,
            settle,
            current,
            metrics,
            locator,
            pause,
            latency,
            hedges,
            copies,
        }
    }

    /// Each owner's copy sets at this ring (see [`plan::copy_sets`]).
    fn copy_sets(&self, ownership: &Ownership) -> Arc<BTreeMap<NodeId, BTreeSet<Vec<NodeId>>>> {
        let Some(ring) = ownership.ring_arc() else { return Arc::default() };
        let mut cached = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref()
            && Arc::ptr_eq(&c.ring, &ring)
            && c.replication == ownership.replication
            && c.at.elapsed() < Duration::from_secs(1)
        {
            return c.sets.clone();
        }
        let nodes = self.local.inventory.nodes();
        let sets = Arc::new(copy_sets(ownership, nodes.iter().map(|n| n.name.as_str())));
        *cached = Some(CopySets { ring, replication: ownership.replication, at: Instant::now(), sets: sets.clone() });
        sets
    }

    /// Whether a call slower than its hedge delay may be hedged now (see
    /// [`HedgeBudget`]); counted in `/metrics` either way.
    fn may_hedge(&self, ownership: &Ownership, to: NodeId) -> bool {
        let ok = self.hedges.lock().unwrap_or_else(|p| p.into_inner()).take();
        if ok {
            self.hedged(ownership, to);
        } else {
            self.metrics.fanout_hedges_refused.inc();
        }
        ok
    }

    /// Counts calls made toward the hedge budget.
    fn budget(&self, calls: usize) {
        self.hedges.lock().unwrap_or_else(|p| p.into_inner()).called(calls);
    }

    /// Whether `peer` is skipped in favour of its other holders at once: it
    /// has been silent for a third of the lease (unless it is Draining), or
    /// failed a request within the lease. Not within a lease after this replica was itself away
    /// (stopped, starved): then every peer looks silent because their
    /// heartbeats could not be read, and they are asked.
    fn suspect(&self, ownership: &Ownership, peer: NodeId) -> bool {
        if Some(peer) == ownership.me {
            return false;
        }
        let lease = self.transport.lease();
        let now = std::time::Instant::now();
        if self.pause.away_within(lease, now) {
            return false;
        }
        // A member leaving in good order (Draining) serves what it held
        // until its handover lands, and is busiest then: silence alone does
        // not make it a suspect, a failed call does.
        let draining = ownership.members.get(&peer).is_some_and(|m| m.state == raft::MemberState::Draining);
        let silent = !draining && self.transport.silence(peer).is_none_or(|s| s > lease / 3);
        silent || self.latency.failed_within(peer, lease, now)
    }

    /// The members skipped in this request, counted and recorded as such.
    fn suspects(&self, ownership: &Ownership, outcomes: &mut Outcomes) -> BTreeSet<NodeId> {
        let skipped: BTreeSet<NodeId> =
            ownership.members.keys().copied().filter(|id| self.suspect(ownership, *id)).collect();
        for id in &skipped {
            outcomes.fail(*id, Cause::Silent);
            self.metrics.fanout_suspected.get_or_create(&vec![("peer", ownership.name_of(*id))]).inc();
        }
        skipped
    }

    /// How long a call of `size` may run before the next holder is asked
    /// too: a large answer may take up to half the deadline before it is.
    fn hedge_after(&self, to: NodeId, size: Size) -> Duration {
        let cap = match size {
            Size::Small => self.deadline / 4,
            Size::Large => self.deadline / 2,
        };
        self.latency.hedge_after(to, size, cap)
    }

    fn hedged(&self, ownership: &Ownership, to: NodeId) {
        self.metrics.fanout_hedges.get_or_create(&vec![("peer", ownership.name_of(to))]).inc();
    }

    fn remember(&self, answers: &[PodAnswer]) {
        self.locator.lock().unwrap_or_else(|p| p.into_inner()).remember(answers);
    }

    fn located(&self, key: &PodKey) -> Option<String> {
        self.locator.lock().unwrap_or_else(|p| p.into_inner()).node_of(key).map(str::to_string)
    }

    /// One call to `to` before `deadline`, recorded by `call_many`.
    async fn call<Req, Resp>(
        &self,
        ownership: &Ownership,
        path: &'static str,
        to: NodeId,
        body: Req,
        deadline: Instant,
    ) -> Result<Resp, CallError>
    where
        Req: serde::Serialize + Send + Sync,
        Resp: serde::de::DeserializeOwned + Send + 'static,
    {
        self.budget(1);
        let calls = vec![(to, ownership.name_of(to), body)];
        let mut r = call_many(&*self.transport, &self.metrics, path, calls, deadline, ReplySize::Large).await;
        r.pop()
            .map_or_else(|| Err(CallError::Request { addr: to.to_string(), reason: "no call made".into() }), |(_, r)| r)
    }

    /// Records how a finished call of `size` went, for suspicion and hedge delays.
    fn observe<R>(&self, to: NodeId, size: Size, result: &Result<R, CallError>, took: Duration) {
        match result {
            Ok(_) => self.latency.answered(to, size, took),
            Err(e) if size.suspects(matches!(e, CallError::Timeout { .. })) => {
                self.latency.failed(to, std::time::Instant::now())
            }
            Err(_) => {}
        }
    }

    /// Nodes: each from its first candidate; a candidate that fails,
    /// answers without a node, or is slower than its hedge delay is
    /// followed by the next for the nodes still missing; the first good
    /// answer wins. Ends when every node is served, no candidate is left,
    /// or the deadline passes.
    async fn nodes_within(
        &self,
        names: &[String],
        now: UnixNanos,
        deadline: Instant,
    ) -> Answer<Vec<Option<NodeUsage>>> {
        let ownership = self.ownership.borrow().clone();
        let size = if names.len() > LARGE_NODE_LISTS { Size::Large } else { Size::Small };
        let mut outcomes = Outcomes::default();
        let skipped = self.suspects(&ownership, &mut outcomes);
        let candidates: Vec<Vec<Asked>> =
            names.iter().map(|n| node_candidates(&ownership, n, &|id| skipped.contains(&id))).collect();
        let mut out: Vec<Option<NodeUsage>> = vec![None; names.len()];
        let mut next = vec![0usize; names.len()];
        let mut inflight_for = vec![0usize; names.len()];
        let mut failed_now: BTreeSet<NodeId> = BTreeSet::new();
        let mut calls: Vec<Call> = Vec::new();
        let mut running: FuturesUnordered<BoxFuture<'_, Reply<NodesReply>>> = FuturesUnordered::new();
        let mut pending: Vec<usize> = (0..names.len()).collect();
        loop {
            // Ask the next candidate of every node that needs one; this
            // replica's own part is read at once.
            while !pending.is_empty() {
                let mut groups: BTreeMap<Asked, Vec<usize>> = BTreeMap::new();
                for i in pending.drain(..) {
                    if out[i].is_some() {
                        continue;
                    }
                    while let Some(Asked::Peer(p)) = candidates[i].get(next[i])
                        && failed_now.contains(p)
                    {
                        next[i] += 1;
                    }
                    if let Some(a) = candidates[i].get(next[i]) {
                        next[i] += 1;
                        groups.entry(*a).or_default().push(i);
                    }
                }
                for (a, idx) in groups {
                    let wanted: Vec<String> = idx.iter().map(|i| names[*i].clone()).collect();
                    match a {
                        Asked::Local => {
                            let mut got: HashMap<String, NodeUsage> =
                                self.local.nodes(&wanted, now).into_iter().collect();
                            for i in idx {
                                out[i] = got.remove(&names[i]);
                                if out[i].is_none() && inflight_for[i] == 0 {
                                    pending.push(i);
                                }
                            }
                        }
                        Asked::Peer(to) => {
                            let q = NodesQuery { epoch: ownership.epoch, source: Source::Any, names: wanted };
                            let id = calls.len();
                            let started = Instant::now();
                            let (fut, abort) = abortable(self.call(&ownership, path::NODES, to, q, deadline));
                            for i in &idx {
                                inflight_for[*i] += 1;
                            }
                            calls.push(Call { to, nodes: idx, started, hedged: false, done: false, abort });
                            running.push(Box::pin(async move { (id, fut.await, started.elapsed()) }));
                        }
                    }
                }
            }
            if out.iter().all(Option::is_some) || running.is_empty() || Instant::now() >= deadline {
                break;
            }
            let hedge_at = calls
                .iter()
                .filter(|c| !c.done && !c.hedged)
                .map(|c| c.started + self.hedge_after(c.to, size))
                .min()
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                Some((id, result, took)) = running.next() => {
                    let call = &mut calls[id];
                    call.done = true;
                    for i in &call.nodes {
                        inflight_for[*i] -= 1;
                    }
                    let Ok(result) = result else { continue };
                    self.observe(call.to, size, &result, took);
                    match result {
                        Ok(reply) => {
                            let mut got: HashMap<String, NodeUsage> = reply.items.into_iter().collect();
                            for i in &call.nodes {
                                if out[*i].is_none() {
                                    out[*i] = got.remove(&names[*i]);
                                }
                            }
                        }
                        Err(e) => {
                            outcomes.fail(call.to, cause_of(&e));
                            failed_now.insert(call.to);
                        }
                    }
                    for i in &call.nodes {
                        if out[*i].is_none() && inflight_for[*i] == 0 {
                            pending.push(*i);
                        }
                    }
                    // Calls whose every node is served now are no longer needed.
                    for c in calls.iter_mut().filter(|c| !c.done && c.nodes.iter().all(|i| out[*i].is_some())) {
                        c.abort.abort();
                    }
                }
                _ = tokio::time::sleep_until(hedge_at) => {
                    let now_i = Instant::now();
                    for c in calls.iter_mut().filter(|c| !c.done && !c.hedged) {
                        if now_i >= c.started + self.hedge_after(c.to, size) {
                            c.hedged = true;
                            let left: Vec<usize> = c.nodes.iter().copied().filter(|i| out[*i].is_none()).collect();
                            if !left.is_empty()
                                && left.iter().any(|i| next[*i] < candidates[*i].len())
                                && self.may_hedge(&ownership, c.to)
                            {
                                pending.extend(left);
                            }
                        }
                    }
                }
            }
        }
        // Whoever is still being waited for at the deadline did not answer in time.
        for c in calls.iter().filter(|c| !c.done) {
            outcomes.fail(c.to, Cause::Timeout);
            c.abort.abort();
        }
        let served: Vec<bool> = out.iter().map(Option::is_some).collect();
        let missing = missing_nodes(&ownership, names, &served, &outcomes);
        if !missing.is_empty() {
            tracing::debug!(epoch = ownership.epoch, ?missing, "answering nodes partially");
        }
        Answer { value: out, missing }
    }

    /// Pods: every Active member answers for the nodes it scrapes (its
    /// part); the part of a member that is suspected, fails, or is slower
    /// than its hedge delay is also asked of the copies every other member
    /// holds of its nodes; while ownership moves, anything anyone holds. A
    /// member whose part neither it nor its holders gave makes the answer
    /// partial. All within `deadline`.
    async fn pods_within(
        &self,
        query: &PodQuery,
        keys: &[PodKey],
        now: UnixNanos,
        deadline: Instant,
    ) -> Answer<Vec<Option<PodUsage>>> {
        let ownership = self.ownership.borrow().clone();
        let base = PodsQuery {
            epoch: ownership.epoch,
            source: Source::Owned,
            namespace: query.namespace.clone(),
            labels: query.labels.clone(),
            fields: query.fields.clone(),
            one: query.one.clone(),
        };
        let with = |source: Source| PodsQuery { source, ..base.clone() };
        let mut outcomes = Outcomes::default();
        let skipped = self.suspects(&ownership, &mut outcomes);
        let mut answers: Vec<PodAnswer> = Vec::new();
        // A GET of a pod whose node is known: that node's candidates, in order.
        if let Some(node) = query.one.as_ref().and_then(|k| self.located(k)) {
            for a in node_candidates(&ownership, &node, &|id| skipped.contains(&id)) {
                if Instant::now() >= deadline {
                    break;
                }
                let r = match a {
                    Asked::Local => self.local.pods(&with(Source::Any), now).map_err(|e| e.to_string()),
                    Asked::Peer(to) => {
                        let started = Instant::now();
                        let r =
                            self.call::<_, PodsReply>(&ownership, path::PODS, to, with(Source::Any), deadline).await;
                        self.observe(to, Size::Small, &r, started.elapsed());
                        r.map(|r| r.items).map_err(|e| e.to_string())
                    }
                };
                answers.extend(r.into_iter().flatten());
                if !answers.is_empty() {
                    return Answer::complete(merge_pods(keys, &answers, now));
                }
            }
            // Recreated elsewhere, or not held where it was: ask everyone.
            if let Some(key) = &query.one {
                self.locator.lock().unwrap_or_else(|p| p.into_inner()).forget(key);
            }
        }
        let placed = if query.one.is_none() { self.place(keys) } else { None };
        // A list whose every pod is placed on nodes this replica holds
        // current points of (scraped here, or copies still arriving after
        // each of their owners' scrapes; at the default factor every member
        // holds every node) is answered from them, asking nobody: the
        // scraper holds nothing newer than a copy in flight. Current means
        // arrived within 1.5 resolutions, on a node this replica holds, and
        // scraped here if this replica scrapes it, or else sent by the
        // member that scrapes it now: after a ring change or a member's
        // loss, each node is answered here again from its first point
        // under its new scraper, while the nodes whose scraper did not
        // change never stop. Not while this replica stands in for owners
        // it cannot reach, and not when a pod is not found here.
        if let Some(nodes) = &placed
            && ownership.fallback.is_none()
            && let Some(me) = ownership.me
            && nodes.iter().all(|n| self.current_here(&ownership, me, n, now))
            && let Ok(items) = self.local.pods(&with(Source::Any), now)
        {
            let value = merge_pods(keys, &items, now);
            if value.iter().all(Option::is_some) {
                self.metrics.fanout_local.inc();
                self.remember(&items);
                return Answer::complete(value);
            }
        }
        // A list whose every pod is placed (the HPA's: one Deployment in one
        // namespace) asks only the owners of those pods' nodes; the others
        // only if a pod was not where it was placed.
        let routed = placed.and_then(|nodes| pod_routing(&ownership, &nodes));
        let mut parts = self
            .pod_parts(&ownership, &skipped, (routed.as_ref(), true), &mut outcomes, &with, now, deadline, &mut answers)
            .await;
        let mut value = merge_pods(keys, &answers, now);
        // Whether a round that might have found a missing pod was not run
        // for want of time: the answer is then partial, and says so.
        let mut cut_short = false;
        if let Some(asked) = &routed {
            self.metrics.fanout_routed.inc();
            if round_due(&value, deadline, &mut cut_short) {
                let rest: BTreeSet<NodeId> = ownership.active().filter(|id| !asked.contains(id)).collect();
                let more = self.pod_parts(
                    &ownership,
                    &skipped,
                    (Some(&rest), false),
                    &mut outcomes,
                    &with,
                    now,
                    deadline,
                    &mut answers,
                );
                parts.extend(more.await);
                value = merge_pods(keys, &answers, now);
            }
        }
        // A last resort while ownership moves (a few resolutions after an
        // epoch change, or with a member failed): anything anyone holds.
        let failed = !outcomes.failed.is_empty();
        // No member Active (the last one left while the others were still
        // joining): nobody has a part to give, the joiners hold the points.
        let unowned = ownership.ring().is_some() && ownership.active().next().is_none();
        let moving = ownership.since.elapsed() < self.settle || failed || unowned;
        if moving && round_due(&value, deadline, &mut cut_short) {
            let holders = last_resort(&ownership, &|id| outcomes.failed.contains_key(&id), &|id| skipped.contains(&id));
            let mut asks = Vec::new();
            for a in holders {
                match a {
                    Asked::Local => answers.extend(self.local.pods(&with(Source::Any), now).unwrap_or_default()),
                    Asked::Peer(to) => asks.push((to, ownership.name_of(to), with(Source::Any))),
                }
            }
            self.budget(asks.len());
            let replies: Vec<(NodeId, Result<PodsReply, CallError>)> =
                call_many(&*self.transport, &self.metrics, path::PODS, asks, deadline, ReplySize::Large).await;
            for (id, r) in replies {
                match r {
                    Ok(r) => answers.extend(r.items),
                    // It may have held what is still missing: named if so.
                    Err(e) => {
                        parts.entry(id).or_insert(cause_of(&e));
                    }
                }
            }
            value = merge_pods(keys, &answers, now);
        }
        // A pod every asked member answered without (one restarted a moment
        // ago, its store still empty, answers its part with nothing) that
        // this replica holds a copy of: served from the copy, as true as
        // the owner's, rather than left out.
        if value.iter().any(Option::is_none) {
            for (slot, (namespace, name)) in value.iter_mut().zip(keys) {
                if slot.is_none()
                    && let Some((node, usage)) = self.local.store.pod_on_node(namespace, name, now)
                    && !crate::store::clock::from_future(usage.timestamp, now)
                {
                    *slot = Some(usage.clone());
                    answers.push(PodAnswer { namespace: namespace.clone(), name: name.clone(), node, usage });
                }
            }
        }
        self.remember(&answers);
        // A pod's node is only known once someone scraped it, so while any
        // asked-for pod is missing, every member whose part may be missing
        // is named: those whose part neither they nor their holders gave,
        // and those this replica scrapes in the place of.
        let mut missing = Vec::new();
        if value.iter().any(Option::is_none) {
            for (id, m) in ownership.members.iter().filter(|(id, _)| Some(**id) != ownership.me) {
                let covered = ownership.unreachable.contains(id) && ownership.fallback.is_some();
                let unasked = cut_short && m.state != raft::MemberState::Down;
                let cause =
                    parts.get(id).copied().or(covered.then_some(Cause::Covering)).or(unasked.then_some(Cause::Timeout));
                if let Some(cause) = cause {
                    missing.push(Missing { member: ownership.name_of(*id), cause, what: What::Pods });
                }
            }
            // Pods last seen on a node whose owner cannot reach its
            // kubelet: named as such, by the node's owner.
            let dark: BTreeSet<NodeId> = keys
                .iter()
                .zip(&value)
                .filter(|(_, v)| v.is_none())
                .filter_map(|(k, _)| self.located(k))
                .filter_map(|node| ownership.owner(&node).filter(|o| ownership.reports_failing(*o, &node)))
                .collect();
            for owner in dark {
                let cause = Cause::KubeletsUnreachable;
                missing.push(Missing { member: ownership.name_of(owner), cause, what: What::Pods });
            }
            if unowned
                && missing.is_empty()
                && let Some(me) = ownership.me
            {
                missing.push(Missing { member: ownership.name_of(me), cause: Cause::Unowned, what: What::Pods });
            }
            if missing.is_empty() {
                // Every member asked answered, none with these pods: a pod
                // without metrics yet (or any more), or a hole nobody saw.
                tracing::debug!(
                    lacking = value.iter().filter(|v| v.is_none()).count(),
                    of = keys.len(),
                    routed = routed.as_ref().map(BTreeSet::len),
                    moving,
                    epoch = ownership.epoch,
                    since_ms = ownership.since.elapsed().as_millis() as u64,
                    "answering pods without some, no member named"
                );
            }
        }
        Answer { value, missing }
    }

    /// Whether this replica (`me`) holds `node` at this ring with points as
    /// new as its scraper's but for a copy in flight: scraped here within
    /// 1.5 resolutions when it scrapes the node (copies from before it took
    /// the node over count until its first scrape), or else last sent by
    /// the member that scrapes it, that long ago at most.
    fn current_here(&self, ownership: &Ownership, me: NodeId, node: &str, now: UnixNanos) -> bool {
        let holders = ownership.holders(node);
        if !holders.contains(me) {
            return false;
        }
        let from = match ownership.scraper_with(&holders, node) {
            Some(s) if s == me => None,
            Some(s) => Some(Origin::Member(s)),
            None => return false,
        };
        self.local.store.current(node, now, self.current, from)
    }

    /// The nodes of the pods `keys` names, when this replica can place every
    /// one (from the pods it holds, or where a peer's answer last put it);
    /// `None` for an empty or very large list, or one it cannot place whole.
    fn place(&self, keys: &[PodKey]) -> Option<BTreeSet<String>> {
        if keys.is_empty() || keys.len() > ROUTE_AT_MOST {
            return None;
        }
        let mut nodes = BTreeSet::new();
        for key in keys {
            let node = self.located(key).or_else(|| self.local.store.node_of_pod(&key.0, &key.1))?;
            nodes.insert(node);
        }
        Some(nodes)
    }

    /// Asks every Active member (or, when `only` is given, those of them;
    /// this replica's own part when `with_local`) for its part of a pods query, hedging each part on
    /// the copies the other members hold of its nodes; adds what they give
    /// to `answers` and returns the parts nobody completed, with why.
    #[allow(clippy::too_many_arguments)] // one request's state, passed once
    async fn pod_parts(
        &self,
        ownership: &Ownership,
        skipped: &BTreeSet<NodeId>,
        (only, with_local): (Option<&BTreeSet<NodeId>>, bool),
        outcomes: &mut Outcomes,
        with: &(dyn Fn(Source) -> PodsQuery + Sync),
        now: UnixNanos,
        deadline: Instant,
        answers: &mut Vec<PodAnswer>,
    ) -> BTreeMap<NodeId, Cause> {
        /// What a call of this request was for.
        #[derive(Clone, Copy)]
        enum Ask {
            /// A member's own part.
            Part(NodeId),
            /// Another member's copies of `of`'s part.
            Copies { of: NodeId, from: NodeId },
        }
        let size = pods_size(&with(Source::Owned));
        let wanted = |id: NodeId| only.is_none_or(|o| o.contains(&id));
        let (mut askees, _) = pod_askees(ownership, &|id| skipped.contains(&id));
        askees.retain(|a| match a {
            Asked::Local => with_local,
            Asked::Peer(id) => wanted(*id),
        });
        // Parts not answered by their member yet, with who still owes copies.
        let mut open: BTreeMap<NodeId, Option<BTreeSet<Asked>>> = BTreeMap::new();
        let mut covered_by: BTreeMap<NodeId, BTreeSet<Asked>> = BTreeMap::new();
        let mut calls: Vec<(Ask, Instant, bool, bool, AbortHandle)> = Vec::new();
        let mut running: FuturesUnordered<BoxFuture<'_, Reply<PodsReply>>> = FuturesUnordered::new();
        let mut to_hedge: Vec<NodeId> =
            skipped.iter().copied().filter(|id| wanted(*id) && ownership.active().any(|a| a == *id)).collect();
        // A whole part of this replica's own (a `top pod -A`'s: a third of
        // every pod at RF 3) is read on the blocking pool while the members
        // answer theirs, instead of before their calls go out.
        let mut local_part = None;
        for a in askees {
            match a {
                Asked::Local if size == Size::Large => {
                    let (local, query) = (self.local.clone(), with(Source::Owned));
                    local_part = Some(tokio::task::spawn_blocking(move || local.pods(&query, now)));
                }
                Asked::Local => match self.local.pods(&with(Source::Owned), now) {
                    Ok(items) => answers.extend(items),
                    Err(e) => tracing::warn!(error = %e, "answering pods locally failed"),
                },
                Asked::Peer(to) => {
                    open.insert(to, None);
                    let started = Instant::now();
                    let (fut, abort) = abortable(self.call(ownership, path::PODS, to, with(Source::Owned), deadline));
                    let id = calls.len();
                    calls.push((Ask::Part(to), started, false, false, abort));
                    running.push(Box::pin(async move { (id, fut.await, started.elapsed()) }));
                }
            }
        }
        for id in &to_hedge {
            open.insert(*id, None);
        }
        loop {
            // Ask every other member for the copies of the parts to hedge.
            for of in to_hedge.drain(..) {
                if !matches!(open.get(&of), Some(None)) {
                    continue;
                }
                let holders = last_resort(ownership, &|id| id == of || outcomes.failed.contains_key(&id), &|id| {
                    skipped.contains(&id)
                });
                let mut owed = BTreeSet::new();
                for h in holders {
                    match h {
                        Asked::Local => {
                            if let Ok(items) = self.local.pods(&with(Source::BackupOf(of)), now) {
                                answers.extend(items);
                                covered_by.entry(of).or_default().insert(Asked::Local);
                            }
                        }
                        Asked::Peer(from) => {
                            owed.insert(h);
                            let started = Instant::now();
                            let q = with(Source::BackupOf(of));
                            let (fut, abort) = abortable(self.call(ownership, path::PODS, from, q, deadline));
                            let id = calls.len();
                            calls.push((Ask::Copies { of, from }, started, false, false, abort));
                            running.push(Box::pin(async move { (id, fut.await, started.elapsed()) }));
                        }
                    }
                }
                open.insert(of, Some(owed));
            }
            let waiting = open.values().any(|owed| owed.as_ref().is_none_or(|o| !o.is_empty()));
            if !waiting || running.is_empty() || Instant::now() >= deadline {
                break;
            }
            let hedge_at = calls
                .iter()
                .filter(|c| !c.2 && !c.3 && matches!(c.0, Ask::Part(_)))
                .map(|c| match c.0 {
                    Ask::Part(to) => c.1 + self.hedge_after(to, size),
                    Ask::Copies { .. } => deadline,
                })
                .min()
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                Some((id, result, took)) = running.next() => {
                    calls[id].3 = true;
                    let Ok(result) = result else { continue };
                    let ask = calls[id].0;
                    let to = match ask { Ask::Part(to) => to, Ask::Copies { from, .. } => from };
                    self.observe(to, size, &result, took);
                    match (ask, result) {
                        (Ask::Part(to), Ok(r)) => {
                            answers.extend(r.items);
                            open.remove(&to);
                        }
                        (Ask::Part(to), Err(e)) => {
                            outcomes.fail(to, cause_of(&e));
                            to_hedge.push(to);
                        }
                        (Ask::Copies { of, from }, r) => {
                            if let Ok(r) = r {
                                answers.extend(r.items);
                                covered_by.entry(of).or_default().insert(Asked::Peer(from));
                            }
                            if let Some(Some(owed)) = open.get_mut(&of) {
                                owed.remove(&Asked::Peer(from));
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(hedge_at) => {
                    let now_i = Instant::now();
                    for c in calls.iter_mut().filter(|c| !c.2 && !c.3) {
                        if let Ask::Part(to) = c.0 && now_i >= c.1 + self.hedge_after(to, size) {
                            c.2 = true;
                            if self.may_hedge(ownership, to) {
                                to_hedge.push(to);
                            }
                        }
                    }
                }
            }
        }
        for c in calls.iter().filter(|c| !c.3) {
            c.4.abort();
        }
        if let Some(part) = local_part {
            match part.await {
                Ok(Ok(items)) => answers.extend(items),
                Ok(Err(e)) => tracing::warn!(error = %e, "answering pods locally failed"),
                Err(e) => tracing::error!(error = %e, "answering pods locally panicked"),
            }
        }
        // A part is complete when its member answered, or when every node
        // it owns had a holder that gave its copies.
        let mut incomplete = BTreeMap::new();
        let sets = if open.is_empty() { Arc::default() } else { self.copy_sets(ownership) };
        for (of, _) in open {
            if !part_complete(ownership, sets.get(&of), covered_by.get(&of)) {
                incomplete.insert(of, outcomes.failed.get(&of).copied().unwrap_or(Cause::Timeout));
            }
        }
        incomplete
    }
}

impl<T: Transport> UsageSource for ClusterSource<T> {
    fn nodes<'a>(&'a self, names: &'a [String], now: UnixNanos) -> BoxFuture<'a, Answer<Vec<Option<NodeUsage>>>> {
        Box::pin(self.nodes_within(names, now, Instant::now() + self.deadline))
    }

    fn pods<'a>(
        &'a self,
        query: &'a PodQuery,
        keys: &'a [PodKey],
        now: UnixNanos,
    ) -> BoxFuture<'a, Answer<Vec<Option<PodUsage>>>> {
        Box::pin(self.pods_within(query, keys, now, Instant::now() + self.deadline))
    }
}

#[cfg(test)]
mod tests;
