//! Any replica answers any request: [`ClusterSource`] is the API's usage
//! source in a cluster. It plans who answers for what ([`plan`], pure),
//! reads its own part from the local store, asks the other members over the
//! peer port in parallel with a deadline, and merges. Per-peer results are
//! data (`(member, Result)`, as Garage's `call_many`): a member that does not
//! answer makes the answer partial, with one sentence per member for the
//! `Warning` header, never a silent hole.

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use raft::{MemberState, NodeId, ReplySize};
use tokio::sync::watch;

use crate::model::{Answer, NodeUsage, PodKey, PodQuery, PodUsage, UnixNanos, UsageSource};
use crate::ownership::Ownership;
use crate::peer::answer::Answerer;
use crate::peer::wire::{NodesQuery, NodesReply, PodAnswer, PodsQuery, PodsReply, Source, path};
use crate::selfmetrics::SelfMetrics;
use plan::{Asked, group_nodes, merge_pods, missing_sentence, pod_askees};

/// Why a member was not asked: it has been silent too long.
const SILENT: &str = "silent for more than a third of the lease";
/// Why a member's part is missing in degraded mode: this replica stands in
/// for it and has not scraped all of its nodes yet.
const COVERED: &str = "unreachable; its nodes are being scraped here";

/// Most pods whose node is remembered for routing a later GET.
const LOCATOR_CAPACITY: usize = 1 << 20;

/// The usage source of a replica in a cluster.
pub struct ClusterSource {
    node: Arc<raft::Node>,
    answerer: Answerer,
    ownership: watch::Receiver<Arc<Ownership>>,
    deadline: Duration,
    /// How long after an epoch change pods missing from the owners' answers
    /// are looked for everywhere (three resolutions).
    settle: Duration,
    metrics: Arc<SelfMetrics>,
    /// The node each pod was last answered from, so a GET of one pod goes to
    /// that node's owner only (pods do not change nodes).
    locator: Mutex<HashMap<PodKey, String>>,
}

impl ClusterSource {
    /// A source answering with `answerer` locally and asking peers through `node`.
    pub fn new(
        node: Arc<raft::Node>,
        answerer: Answerer,
        ownership: watch::Receiver<Arc<Ownership>>,
        deadline: Duration,
        resolution: Duration,
        metrics: Arc<SelfMetrics>,
    ) -> ClusterSource {
        let settle = resolution * 3;
        ClusterSource { node, answerer, ownership, deadline, settle, metrics, locator: Mutex::new(HashMap::new()) }
    }

    /// Calls `path` on `peer` with the deadline, recording latency and errors.
    async fn ask<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        peer: NodeId,
        name: &str,
        path: &str,
        body: Req,
    ) -> Result<Resp, String> {
        let started = Instant::now();
        let r = self.node.call(peer, path, body, self.deadline, ReplySize::Large).await;
        let labels = vec![("peer", name.to_string())];
        self.metrics.fanout_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        r.map_err(|e| {
            let reason = match &e {
                raft::CallError::Timeout { .. } => "timeout",
                raft::CallError::Unreachable { .. } => "unreachable",
                raft::CallError::Refused { .. } => "refused",
                raft::CallError::Decode { .. } => "decode",
                raft::CallError::Request { .. } => "request",
            };
            self.metrics
                .fanout_errors
                .get_or_create(&vec![("peer", name.to_string()), ("reason", reason.into())])
                .inc();
            tracing::debug!(peer = name, %e, "peer query failed");
            e.to_string()
        })
    }

    fn remember(&self, answers: &[PodAnswer]) {
        let mut loc = self.locator.lock().unwrap_or_else(|p| p.into_inner());
        if loc.len() + answers.len() > LOCATOR_CAPACITY {
            loc.clear();
        }
        for a in answers {
            loc.insert((a.namespace.clone(), a.name.clone()), a.node.clone());
        }
    }

    fn located(&self, key: &PodKey) -> Option<String> {
        self.locator.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }
}

impl ClusterSource {
    /// Whether `peer` has been silent long enough that asking it would only
    /// cost the deadline: its part is asked of its successor's backups at once.
    ///
    /// Only while some other member is heard: when every other member looks
    /// silent, this replica is the likelier one to have been away (paused,
    /// cut off), and skipping them all would answer from its own stale
    /// store alone, so they are asked.
    fn suspect(&self, peer: NodeId) -> bool {
        let silent = |id: NodeId| self.node.silence(id).is_none_or(|s| s > self.node.lease() / 3);
        if !silent(peer) {
            return false;
        }
        let ownership = self.ownership.borrow();
        ownership.members.keys().any(|id| Some(*id) != ownership.me && *id != peer && !silent(*id))
    }

    /// Asks `asked` for the usage of `want` from `source`.
    async fn ask_nodes(
        &self,
        ownership: &Ownership,
        asked: Asked,
        source: Source,
        want: Vec<String>,
        now: UnixNanos,
    ) -> Result<Vec<(String, NodeUsage)>, String> {
        match asked {
            Asked::Local => Ok(self.answerer.nodes(&want, source, now)),
            Asked::Peer(peer) => {
                let q = NodesQuery { epoch: ownership.epoch, source, names: want };
                let name = ownership.name_of(peer);
                self.ask::<_, NodesReply>(peer, &name, path::NODES, q).await.map(|r| r.items)
            }
        }
    }

    /// Asks `asked` for the pods `q` selects from `source`.
    async fn ask_pods(
        &self,
        ownership: &Ownership,
        asked: Asked,
        mut q: PodsQuery,
        source: Source,
        now: UnixNanos,
    ) -> Result<Vec<PodAnswer>, String> {
        q.source = source;
        match asked {
            Asked::Local => self.answerer.pods(&q, now).map_err(|e| e.to_string()),
            Asked::Peer(peer) => {
                let name = ownership.name_of(peer);
                self.ask::<_, PodsReply>(peer, &name, path::PODS, q).await.map(|r| r.items)
            }
        }
    }
}

/// `Local` for this replica, else the peer.
fn asked(ownership: &Ownership, id: NodeId) -> Asked {
    if Some(id) == ownership.me { Asked::Local } else { Asked::Peer(id) }
}

impl UsageSource for ClusterSource {
    /// Nodes: each from its owner; what an owner could not give (it is
    /// silent, failed, or lacks the node) from the owner's successor's
    /// backups; what is still missing from Draining members, which keep
    /// serving what they handed over. A node still missing because its owner
    /// failed makes the answer partial.
    fn nodes<'a>(&'a self, names: &'a [String], now: UnixNanos) -> BoxFuture<'a, Answer<Vec<Option<NodeUsage>>>> {
        Box::pin(async move {
            let ownership = self.ownership.borrow().clone();
            let mut out: Vec<Option<NodeUsage>> = vec![None; names.len()];
            let mut failed: BTreeMap<NodeId, String> = BTreeMap::new();
            // Round 1: the owners that are not known to be silent.
            let mut first: BTreeMap<Asked, Vec<usize>> = BTreeMap::new();
            for (a, idx) in group_nodes(&ownership, names) {
                match a {
                    Asked::Peer(p) if self.suspect(p) => {
                        failed.insert(p, SILENT.into());
                    }
                    _ => {
                        first.insert(a, idx);
                    }
                }
            }
            let calls = first.iter().map(|(a, idx)| {
                let want: Vec<String> = idx.iter().map(|i| names[*i].clone()).collect();
                let ownership = &ownership;
                async move { (*a, idx, self.ask_nodes(ownership, *a, Source::Owned, want, now).await) }
            });
            for (a, idx, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(items) => fill_nodes(&mut out, names, idx, items),
                    Err(cause) => {
                        if let Asked::Peer(p) = a {
                            failed.insert(p, cause);
                        }
                    }
                }
            }
            // Round 2: successors' backups of what is still missing.
            let mut second: BTreeMap<(Asked, NodeId), Vec<usize>> = BTreeMap::new();
            for (i, n) in names.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                if let (Some(owner), Some(succ)) = (ownership.owner(n), ownership.successor(n)) {
                    second.entry((asked(&ownership, succ), owner)).or_default().push(i);
                }
            }
            let calls = second.iter().map(|((a, owner), idx)| {
                let want: Vec<String> = idx.iter().map(|i| names[*i].clone()).collect();
                let ownership = &ownership;
                async move { (idx, self.ask_nodes(ownership, *a, Source::BackupOf(*owner), want, now).await) }
            });
            for (idx, result) in futures::future::join_all(calls).await {
                if let Ok(items) = result {
                    fill_nodes(&mut out, names, idx, items);
                }
            }
            // Round 3, a last resort for what is still missing: everyone else
            // who answers, from what they hold — the owner at the previous
            // epoch until its handover lands, a Draining member, a replica
            // that just handed the node over. The newest sample wins.
            let idx: Vec<usize> = (0..names.len()).filter(|i| out[*i].is_none()).collect();
            if !idx.is_empty() {
                let mut holders: Vec<Asked> = vec![Asked::Local];
                holders.extend(
                    ownership
                        .members
                        .keys()
                        .filter(|id| Some(**id) != ownership.me && !failed.contains_key(id) && !self.suspect(**id))
                        .map(|id| Asked::Peer(*id)),
                );
                let calls = holders.iter().map(|a| {
                    let want: Vec<String> = idx.iter().map(|i| names[*i].clone()).collect();
                    let ownership = &ownership;
                    async move { self.ask_nodes(ownership, *a, Source::Any, want, now).await }
                });
                let mut newest: HashMap<String, NodeUsage> = HashMap::new();
                for items in futures::future::join_all(calls).await.into_iter().flatten() {
                    for (n, u) in items {
                        if newest.get(&n).is_none_or(|held| held.timestamp < u.timestamp) {
                            newest.insert(n, u);
                        }
                    }
                }
                fill_nodes(&mut out, names, &idx, newest.into_iter().collect());
            }
            for (i, n) in names.iter().enumerate().filter(|(i, _)| out[*i].is_none()) {
                tracing::debug!(
                    node = %n,
                    epoch = ownership.epoch,
                    owner = ?ownership.owner(n).map(|o| ownership.name_of(o)),
                    successor = ?ownership.successor(n).map(|o| ownership.name_of(o)),
                    previous = ?ownership.previous_owner(n).map(|o| ownership.name_of(o)),
                    index = i,
                    "no replica could serve this node"
                );
            }
            // Owners this replica stands in for (degraded mode) whose nodes
            // it has not scraped yet: missing too, and said so.
            for n in names.iter().enumerate().filter(|(i, _)| out[*i].is_none()).map(|(_, n)| n) {
                if let Some(owner) = ownership.owner(n).filter(|o| ownership.covers_for(*o)) {
                    failed.entry(owner).or_insert_with(|| COVERED.into());
                }
            }
            let mut missing = Vec::new();
            for (peer, cause) in failed {
                let lacking = names
                    .iter()
                    .enumerate()
                    .filter(|(i, n)| out[*i].is_none() && ownership.owner(n) == Some(peer))
                    .count();
                if lacking > 0 {
                    let what = format!("{lacking} of {} nodes", names.len());
                    missing.push(missing_sentence(&ownership.name_of(peer), &what, &cause));
                }
            }
            Answer { value: out, missing }
        })
    }

    /// Pods: from every Active member (or the owner of the node a pod was
    /// last seen on, for a GET); a member that is silent or fails is
    /// replaced by what it backed up on the others, and Draining members
    /// are asked when something is missing. A failed member whose
    /// replacement also failed makes the answer partial.
    fn pods<'a>(
        &'a self,
        query: &'a PodQuery,
        keys: &'a [PodKey],
        now: UnixNanos,
    ) -> BoxFuture<'a, Answer<Vec<Option<PodUsage>>>> {
        Box::pin(async move {
            let ownership = self.ownership.borrow().clone();
            let on_node = query.one.as_ref().and_then(|k| self.located(k));
            let q = PodsQuery {
                epoch: ownership.epoch,
                source: Source::Owned,
                namespace: query.namespace.clone(),
                labels: query.labels.clone(),
                fields: query.fields.clone(),
                one: query.one.clone(),
            };
            let mut failed: BTreeMap<NodeId, String> = BTreeMap::new();
            let mut first = Vec::new();
            for a in pod_askees(&ownership, on_node.as_deref()) {
                match a {
                    Asked::Peer(p) if self.suspect(p) => {
                        failed.insert(p, SILENT.into());
                    }
                    _ => first.push(a),
                }
            }
            let calls = first.iter().map(|a| {
                let (q, ownership) = (q.clone(), &ownership);
                async move { (*a, self.ask_pods(ownership, *a, q, Source::Owned, now).await) }
            });
            let mut answers = Vec::new();
            for (a, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(items) => answers.extend(items),
                    Err(cause) => {
                        if let Asked::Peer(p) = a {
                            failed.insert(p, cause);
                        }
                    }
                }
            }
            // The failed members' pods from the backups the others hold.
            let reachable: Vec<Asked> = std::iter::once(Asked::Local)
                .chain(
                    ownership
                        .active()
                        .filter(|id| Some(*id) != ownership.me && !failed.contains_key(id))
                        .map(Asked::Peer),
                )
                .collect();
            let mut still_missing = BTreeMap::new();
            for (peer, cause) in &failed {
                let calls = reachable.iter().map(|a| {
                    let (q, ownership) = (q.clone(), &ownership);
                    async move { self.ask_pods(ownership, *a, q, Source::BackupOf(*peer), now).await }
                });
                let mut any_failed = false;
                for result in futures::future::join_all(calls).await {
                    match result {
                        Ok(items) => answers.extend(items),
                        Err(_) => any_failed = true,
                    }
                }
                if any_failed {
                    still_missing.insert(*peer, cause.clone());
                }
            }
            self.remember(&answers);
            let mut value = merge_pods(keys, answers.iter().cloned(), now);
            // Draining members keep what they handed over.
            let draining: Vec<NodeId> = ownership
                .members
                .iter()
                .filter(|(id, m)| m.state == MemberState::Draining && Some(**id) != ownership.me && !self.suspect(**id))
                .map(|(id, _)| *id)
                .collect();
            if value.iter().any(Option::is_none) && !draining.is_empty() {
                let calls = draining.iter().map(|d| {
                    let (q, ownership) = (q.clone(), &ownership);
                    async move { self.ask_pods(ownership, Asked::Peer(*d), q, Source::Owned, now).await }
                });
                for items in futures::future::join_all(calls).await.into_iter().flatten() {
                    answers.extend(items);
                }
                value = merge_pods(keys, answers.iter().cloned(), now);
            }
            // A last resort for pods still missing while ownership moves (a
            // few resolutions after an epoch change, or with a member down):
            // anything any reachable member holds, served or backed up.
            let moving = ownership.since.elapsed() < self.settle || !failed.is_empty();
            if moving && value.iter().any(Option::is_none) {
                let calls = reachable.iter().map(|a| {
                    let (q, ownership) = (q.clone(), &ownership);
                    async move { self.ask_pods(ownership, *a, q, Source::Any, now).await }
                });
                for items in futures::future::join_all(calls).await.into_iter().flatten() {
                    answers.extend(items);
                }
                value = merge_pods(keys, answers.iter().cloned(), now);
            }
            // Pods cannot be traced to a failed member (their node is only
            // known once someone scraped them), so every failed member is
            // named while any asked-for pod is still missing.
            if value.iter().any(Option::is_none) {
                for (p, cause) in &failed {
                    still_missing.entry(*p).or_insert_with(|| cause.clone());
                }
                for id in ownership.members.keys().filter(|id| ownership.covers_for(**id)) {
                    still_missing.entry(*id).or_insert_with(|| COVERED.into());
                }
            }
            let mut missing: Vec<String> = still_missing
                .iter()
                .map(|(p, cause)| missing_sentence(&ownership.name_of(*p), "the pods of its nodes are", cause))
                .collect();
            // A GET routed by a stale location (the pod was recreated on
            // another node): ask everyone once more.
            if let Some(key) = query.one.as_ref().filter(|_| on_node.is_some())
                && value.iter().all(Option::is_none)
                && missing.is_empty()
            {
                self.locator.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                let retry = self.pods(query, keys, now).await;
                value = retry.value;
                missing = retry.missing;
            }
            Answer { value, missing }
        })
    }
}

/// Puts node answers into `out` at the indices of `idx`, where still empty.
fn fill_nodes(out: &mut [Option<NodeUsage>], names: &[String], idx: &[usize], items: Vec<(String, NodeUsage)>) {
    let mut by_name: HashMap<String, NodeUsage> = items.into_iter().collect();
    for i in idx {
        if out[*i].is_none() {
            out[*i] = by_name.remove(&names[*i]);
        }
    }
}
