//! The query planner, pure: which members are asked for which nodes and in
//! what order, which members are asked for pods, how answers merge into one
//! ordered result, and whom a missing part is blamed on. Everything is
//! decided here from the [`Ownership`] view and who is suspected; the
//! executor in `query` only sends, waits and fills.
//!
//! Nodes: each node's candidates are its owner (unless suspected), then
//! this replica if it holds or scrapes the node, then the other holders in
//! ring order, then the holders of the previous epoch (a handover may still
//! be in flight); a node nobody owns (no member Active) is asked of every
//! member that may hold it. Pods: every Active member answers for the nodes it
//! scrapes (the pod informer is metadata-only, so no replica knows a pod's
//! node before someone scraped it); a member that cannot is replaced by the
//! copies the others hold of its nodes.

use std::collections::{BTreeMap, BTreeSet};

use raft::{MemberState, NodeId};

use crate::model::{Cause, Missing, PodKey, PodUsage, UnixNanos, What};
use crate::ownership::{Mode, Ownership};
use crate::peer::wire::PodAnswer;

/// Who is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asked {
    /// This replica's own store.
    Local,
    /// Another member, over the peer port.
    Peer(NodeId),
}

/// `Local` for this replica, else the peer.
pub fn asked(ownership: &Ownership, id: NodeId) -> Asked {
    if Some(id) == ownership.me { Asked::Local } else { Asked::Peer(id) }
}

/// The members to ask for `node`, in order (see the module doc); empty only
/// when every holder is suspected and this replica holds nothing.
pub fn node_candidates(ownership: &Ownership, node: &str, suspected: &dyn Fn(NodeId) -> bool) -> Vec<Asked> {
    if !matches!(ownership.mode, Mode::Ring(_)) {
        return vec![Asked::Local];
    }
    let holders = ownership.holders(node);
    let previous = ownership.previous_holders(node);
    let mut out: Vec<Asked> = Vec::with_capacity(holders.len() + 2);
    let mut add = |a: Asked| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    if let Some(owner) = holders.owner()
        && (Some(owner) == ownership.me || !suspected(owner))
    {
        add(asked(ownership, owner));
    }
    let me_holds = ownership.me.is_some_and(|me| holders.contains(me) || previous.contains(me));
    if me_holds || ownership.scrapes(node) {
        add(Asked::Local);
    }
    for id in holders.copies().iter().chain(previous.as_slice()) {
        if Some(*id) == ownership.me || !suspected(*id) {
            add(asked(ownership, *id));
        }
    }
    if holders.owner().is_none() {
        // Nobody owns it: no member is Active (the last one left while the
        // others were still joining, as a rollout paced by readiness does).
        // The joiners hold the points they pulled and were handed: after
        // its previous holders, anything anyone holds, this replica's first.
        for a in last_resort(ownership, &|_| false, suspected) {
            add(a);
        }
    }
    out
}

/// The members whose parts a pods list needs when every selected pod was
/// placed on a node (`nodes`): the members that scrape those nodes (their
/// owners, or the holders standing in for them), other than this replica. `None` (ask every member) without a ring, when a node has no
/// owner, or when the owners are every other Active member anyway.
pub fn pod_routing(ownership: &Ownership, nodes: &BTreeSet<String>) -> Option<BTreeSet<NodeId>> {
    ownership.ring()?;
    let mut owners = BTreeSet::new();
    for n in nodes {
        // Who scrapes it: the owner, or the holder standing in for an owner
        // cut off from its kubelet.
        let scraper = ownership.assigned(n)?;
        if Some(scraper) != ownership.me {
            owners.insert(scraper);
        }
    }
    let others = ownership.active().filter(|id| Some(*id) != ownership.me).count();
    (owners.len() < others).then_some(owners)
}

/// Who is asked for pods, first: this replica and, with a ring, every other
/// Active member not suspected. The suspected ones are returned apart: their
/// part is asked of the copies the others hold.
pub fn pod_askees(ownership: &Ownership, suspected: &dyn Fn(NodeId) -> bool) -> (Vec<Asked>, Vec<NodeId>) {
    let mut askees = vec![Asked::Local];
    let mut skipped = Vec::new();
    if ownership.ring().is_some() {
        for id in ownership.active().filter(|id| Some(*id) != ownership.me) {
            if suspected(id) { skipped.push(id) } else { askees.push(Asked::Peer(id)) }
        }
    }
    (askees, skipped)
}

/// Members that may hold pods nobody else answered for while ownership
/// moves: every member not suspected and not `failed`, Draining ones
/// included (they keep what they handed over until they exit).
pub fn last_resort(
    ownership: &Ownership,
    failed: &dyn Fn(NodeId) -> bool,
    suspected: &dyn Fn(NodeId) -> bool,
) -> Vec<Asked> {
    let mut out = vec![Asked::Local];
    if ownership.ring().is_some() {
        out.extend(
            ownership
                .members
                .iter()
                .filter(|(id, m)| Some(**id) != ownership.me && m.state != MemberState::Down)
                .map(|(id, _)| *id)
                .filter(|id| !failed(*id) && !suspected(*id))
                .map(Asked::Peer),
        );
    }
    out
}

/// For each owner, the distinct sets of members holding copies of its
/// nodes (`node_names`): a part whose member did not answer is complete
/// when every one of its sets had a member that gave its copies. A node
/// without copies (replication factor 1) adds an empty set, which nobody
/// can cover.
pub fn copy_sets<'a>(
    ownership: &Ownership,
    node_names: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<NodeId, BTreeSet<Vec<NodeId>>> {
    let mut out: BTreeMap<NodeId, BTreeSet<Vec<NodeId>>> = BTreeMap::new();
    for n in node_names {
        let holders = ownership.holders(n);
        if let Some(owner) = holders.owner() {
            out.entry(owner).or_default().insert(holders.copies().to_vec());
        }
    }
    out
}

/// Whether the copies given by `got` complete the part of an owner whose
/// nodes' copy sets are `sets` (see [`copy_sets`]); an owner without nodes
/// has nothing to complete.
pub fn part_complete(
    ownership: &Ownership,
    sets: Option<&BTreeSet<Vec<NodeId>>>,
    got: Option<&BTreeSet<Asked>>,
) -> bool {
    sets.is_none_or(|sets| {
        sets.iter().all(|copies| copies.iter().any(|h| got.is_some_and(|g| g.contains(&asked(ownership, *h)))))
    })
}

/// Puts pod answers in the order of `keys`; when two members answer for one
/// pod (an epoch change in flight, or a node that moved), the newer sample
/// wins. An answer from the future at `now` (a member whose clock or whose
/// kubelet's clock is ahead) is dropped, so it can never shadow a true one.
pub fn merge_pods(keys: &[PodKey], answers: &[PodAnswer], now: UnixNanos) -> Vec<Option<PodUsage>> {
    // The newest answer per pod, by reference: only the winners asked for
    // are copied (a `top pod -A` merges 300,000 answers, several times when
    // parts come in late). One map of the answers, then one lookup per key.
    let mut best: foldhash::HashMap<(&str, &str), &PodUsage> = foldhash::HashMapExt::with_capacity(answers.len());
    for a in answers {
        if crate::store::clock::from_future(a.usage.timestamp, now) {
            continue;
        }
        best.entry((a.namespace.as_str(), a.name.as_str()))
            .and_modify(|held| {
                if held.timestamp < a.usage.timestamp {
                    *held = &a.usage;
                }
            })
            .or_insert(&a.usage);
    }
    keys.iter().map(|(ns, n)| best.get(&(ns.as_str(), n.as_str())).map(|u| PodUsage::clone(u))).collect()
}

/// What became of each member asked (or skipped) in one request.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// Members skipped as suspected, or whose call failed, with why.
    pub failed: BTreeMap<NodeId, Cause>,
}

impl Outcomes {
    /// Records that `id` was skipped or failed; the first cause stays.
    pub fn fail(&mut self, id: NodeId, cause: Cause) {
        self.failed.entry(id).or_insert(cause);
    }
}

/// The missing parts of a node answer: each node still missing is blamed on
/// its owner, with the owner's failure, or `Covering` when this replica
/// scrapes it in the owner's place and has not yet, or
/// `KubeletsUnreachable` when the owner reported failing to reach its
/// kubelet (and no holder had it), or `Lacks` when the owner answered
/// without it. One entry per
/// owner and cause, counting its nodes.
pub fn missing_nodes(ownership: &Ownership, names: &[String], served: &[bool], outcomes: &Outcomes) -> Vec<Missing> {
    if ownership.ring().is_none() {
        return Vec::new();
    }
    let mut by_owner: BTreeMap<(NodeId, CauseKey), (Cause, usize)> = BTreeMap::new();
    for (n, _) in names.iter().zip(served).filter(|(_, s)| !**s) {
        let Some(owner) = ownership.owner(n) else {
            // Nobody owns it, and no member that could hold it gave it:
            // blamed on its owner of the epoch before (or on this replica),
            // never left out silently.
            let Some(blamed) = ownership.previous_holders(n).owner().or(ownership.me) else { continue };
            by_owner.entry((blamed, CauseKey(false))).or_insert((Cause::Unowned, 0)).1 += 1;
            continue;
        };
        let cause = match outcomes.failed.get(&owner) {
            _ if ownership.covers(n) => Cause::Covering,
            _ if ownership.reports_failing(owner, n) => Cause::KubeletsUnreachable,
            Some(c) => *c,
            None => Cause::Lacks,
        };
        let key = (owner, CauseKey(cause == Cause::KubeletsUnreachable));
        by_owner.entry(key).or_insert((cause, 0)).1 += 1;
    }
    by_owner
        .into_iter()
        .map(|((owner, _), (cause, missing))| Missing {
            member: ownership.name_of(owner),
            cause,
            what: What::Nodes { missing, of: names.len() },
        })
        .collect()
}

/// Keeps nodes nobody can reach apart from an owner's other missing nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CauseKey(bool);

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kubelet_tests;
