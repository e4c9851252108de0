//! The query planner, pure: which member answers for which nodes, which
//! members are asked for pods, and how the answers merge into one ordered
//! result. Node requests go to the nodes' owners; pod requests to every
//! Active member, because the pod informer is metadata-only and no replica
//! knows a pod's node before someone scraped it (a GET goes to the owner of
//! the node the pod was last seen on, when that is known).

use std::collections::{BTreeMap, HashMap};

use raft::NodeId;

use crate::model::{PodKey, PodUsage};
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

/// The member that answers for `node`: its owner, or this replica when
/// there is no ring (single replica, or no committed ring: every replica
/// then scrapes every node itself).
pub fn answerer_of(ownership: &Ownership, node: &str) -> Asked {
    match (&ownership.mode, ownership.owner(node)) {
        (Mode::Ring(_), Some(owner)) if Some(owner) != ownership.me && !ownership.covers_for(owner) => {
            Asked::Peer(owner)
        }
        _ => Asked::Local,
    }
}

/// The indices of `names` grouped by who answers for them.
pub fn group_nodes(ownership: &Ownership, names: &[String]) -> BTreeMap<Asked, Vec<usize>> {
    let mut groups: BTreeMap<Asked, Vec<usize>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        groups.entry(answerer_of(ownership, n)).or_default().push(i);
    }
    groups
}

/// Who is asked for pods: this replica, and with a ring every other Active
/// member — or, for one pod whose node is known (`on_node`), that node's
/// owner only.
pub fn pod_askees(ownership: &Ownership, on_node: Option<&str>) -> Vec<Asked> {
    if let Some(node) = on_node
        && ownership.ring().is_some()
    {
        return vec![answerer_of(ownership, node)];
    }
    let mut askees = vec![Asked::Local];
    if ownership.ring().is_some() {
        askees.extend(
            ownership.active().filter(|id| Some(*id) != ownership.me && !ownership.covers_for(*id)).map(Asked::Peer),
        );
    }
    askees
}

/// Puts pod answers in the order of `keys`; when two members answer for one
/// pod (an epoch change in flight, or a node that moved), the newer sample wins.
pub fn merge_pods(keys: &[PodKey], answers: impl IntoIterator<Item = PodAnswer>) -> Vec<Option<PodUsage>> {
    let mut best: HashMap<(&str, &str), PodUsage> = HashMap::with_capacity(keys.len());
    let index: HashMap<(&str, &str), ()> = keys.iter().map(|(ns, n)| ((ns.as_str(), n.as_str()), ())).collect();
    let answers: Vec<PodAnswer> = answers.into_iter().collect();
    for a in &answers {
        let key = (a.namespace.as_str(), a.name.as_str());
        if !index.contains_key(&key) {
            continue;
        }
        match best.get(&key) {
            Some(held) if held.timestamp >= a.usage.timestamp => {}
            _ => {
                best.insert(key, a.usage.clone());
            }
        }
    }
    keys.iter().map(|(ns, n)| best.remove(&(ns.as_str(), n.as_str()))).collect()
}

/// The sentence a partial answer's `Warning` carries for one member.
pub fn missing_sentence(member: &str, what: &str, cause: &str) -> String {
    format!("partial answer: replica {member} did not answer ({cause}); {what} missing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContainerUsage;
    use raft::fixture::active;

    fn usage(ts: i64) -> PodUsage {
        PodUsage {
            timestamp: ts,
            window_ns: 1,
            containers: vec![ContainerUsage { name: "c".into(), usage: Default::default() }],
        }
    }

    fn answer(ns: &str, n: &str, ts: i64) -> PodAnswer {
        PodAnswer { namespace: ns.into(), name: n.into(), node: "x".into(), usage: usage(ts) }
    }

    #[test]
    fn every_node_is_asked_of_its_owner_and_two_replicas_plan_the_same_owners() {
        let s = active(3);
        let names: Vec<String> = (0..200).map(|i| format!("node-{i}")).collect();
        let (a, b) = (Ownership::from_state(1, &s), Ownership::from_state(2, &s));
        let ga = group_nodes(&a, &names);
        let gb = group_nodes(&b, &names);
        assert_eq!(ga.values().map(Vec::len).sum::<usize>(), names.len());
        for (i, n) in names.iter().enumerate() {
            let owner = a.owner(n).unwrap();
            let at_a = if owner == 1 { Asked::Local } else { Asked::Peer(owner) };
            let at_b = if owner == 2 { Asked::Local } else { Asked::Peer(owner) };
            assert!(ga[&at_a].contains(&i) && gb[&at_b].contains(&i), "{n}");
        }
    }

    #[test]
    fn without_a_ring_everything_is_answered_locally() {
        let mut s = active(3);
        s.ring = None;
        let o = Ownership::from_state(1, &s);
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(group_nodes(&o, &names).keys().copied().collect::<Vec<_>>(), vec![Asked::Local]);
        assert_eq!(pod_askees(&o, None), vec![Asked::Local]);
        assert_eq!(pod_askees(&Ownership::single(), Some("a")), vec![Asked::Local]);
    }

    #[test]
    fn pods_are_asked_of_every_active_member_or_of_the_known_nodes_owner() {
        let o = Ownership::from_state(1, &active(3));
        assert_eq!(pod_askees(&o, None), vec![Asked::Local, Asked::Peer(2), Asked::Peer(3)]);
        let owner = o.owner("node-7").unwrap();
        let want = if owner == 1 { Asked::Local } else { Asked::Peer(owner) };
        assert_eq!(pod_askees(&o, Some("node-7")), vec![want]);
    }

    #[test]
    fn merged_pods_follow_the_keys_and_the_newer_duplicate_wins() {
        let keys =
            vec![("a".to_string(), "p1".to_string()), ("a".to_string(), "p2".to_string()), ("b".into(), "p3".into())];
        let got = merge_pods(
            &keys,
            vec![answer("b", "p3", 5), answer("a", "p1", 1), answer("a", "p1", 3), answer("z", "p", 9)],
        );
        assert_eq!(got, vec![Some(usage(3)), None, Some(usage(5))]);
    }
}
