//! The planner against a naive model of the whole cluster: every member
//! holds exactly its nodes' holder sets before a change; every surviving
//! member plans its own actions from its own views; performing them all
//! must leave exactly the new holder sets holding each node (for every node
//! that still had a surviving holder), whatever the change: a member joins,
//! leaves on purpose (Draining), or crashes (Down, its points lost).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use raft::state::RingParams;
use raft::{ClusterState, Command, MemberInfo, MemberState, NodeId};

use super::*;

fn join(s: &mut ClusterState, id: NodeId) {
    let info = MemberInfo { name: format!("replica-{id}"), api_addr: String::new(), peer_addr: format!("h{id}:1") };
    s.apply(&Command::Join { id, info });
}

/// Members `1..=n`, all Active, ring committed, factor `rf`.
fn cluster(n: u64, rf: u32) -> ClusterState {
    let mut s = ClusterState::default();
    for id in 1..=n {
        join(&mut s, id);
    }
    s.apply(&Command::SetStates((1..=n).map(|id| (id, MemberState::Active)).collect()));
    s.apply(&Command::SetRing(RingParams { hash_version: 1, vnodes: 64 }));
    s.apply(&Command::SetReplication(rf));
    s
}

fn nodes(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("node-{i}")).collect()
}

fn view(me: NodeId, s: &ClusterState, unreachable: &[NodeId]) -> Ownership {
    let mut v = Ownership::from_state(me, s);
    v.unreachable = unreachable.iter().copied().filter(|id| *id != me).collect();
    v
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Join,
    Leave(usize),
    Crash(usize),
}

/// Runs one change through every member's planner and the naive model;
/// returns, per node, who holds it after and who should.
fn run(n: u64, rf: u32, change: Change, k: usize) -> (Vec<(String, BTreeSet<NodeId>, BTreeSet<NodeId>)>, Vec<Action>) {
    let old_state = cluster(n, rf);
    let mut new_state = old_state.clone();
    let (mut crashed, mut acting): (Option<NodeId>, Vec<NodeId>) = (None, (1..=n).collect());
    match change {
        Change::Join => {
            join(&mut new_state, n + 1);
            new_state.apply(&Command::SetStates(vec![(n + 1, MemberState::Active)]));
            acting.push(n + 1);
        }
        Change::Leave(i) => {
            let id = 1 + (i as u64 % n);
            new_state.apply(&Command::SetStates(vec![(id, MemberState::Draining)]));
        }
        Change::Crash(i) => {
            let id = 1 + (i as u64 % n);
            new_state.apply(&Command::SetStates(vec![(id, MemberState::Down)]));
            crashed = Some(id);
            acting.retain(|a| *a != id);
        }
    }
    let names = nodes(k);
    let old_view = |me: NodeId| view(me, &old_state, &[]);
    let unreachable: Vec<NodeId> = crashed.into_iter().collect();
    let new_view = |me: NodeId| view(me, &new_state, &unreachable);
    // Before: every Active member holds exactly what the ring gives it; a
    // newcomer holds nothing; a crashed member's points are gone.
    let mut holds: BTreeMap<NodeId, BTreeSet<String>> = BTreeMap::new();
    for id in 1..=n {
        let v = old_view(id);
        holds.insert(id, names.iter().filter(|x| v.holders(x).contains(id)).cloned().collect());
    }
    holds.insert(n + 1, BTreeSet::new());
    if let Some(c) = crashed {
        holds.insert(c, BTreeSet::new());
    }
    let before = holds.clone();
    let mut all_actions = Vec::new();
    let mut gains: Vec<(NodeId, String)> = Vec::new();
    let mut drops: Vec<(NodeId, String)> = Vec::new();
    for me in &acting {
        let old = (*me <= n).then(|| old_view(*me));
        let held = |x: &str| before[me].contains(x);
        let acts = actions(old.as_ref(), &new_view(*me), &names, &held);
        for a in &acts {
            match a {
                Action::ReleaseTo { node, to } | Action::ReseedTo { node, to } => {
                    if before[me].contains(node) {
                        gains.push((*to, node.clone()));
                    }
                }
                Action::PullFrom { node, from } => {
                    if from.iter().any(|f| before.get(f).is_some_and(|h| h.contains(node))) {
                        gains.push((*me, node.clone()));
                    }
                }
                Action::Forget { node } => drops.push((*me, node.clone())),
                Action::Adopt { .. } | Action::Confirm { .. } => {}
            }
        }
        all_actions.extend(acts);
    }
    for (id, node) in gains {
        holds.entry(id).or_default().insert(node);
    }
    for (id, node) in drops {
        holds.entry(id).or_default().remove(&node);
    }
    let v = new_view(acting[0]);
    let out = names
        .iter()
        .map(|x| {
            let have: BTreeSet<NodeId> = holds.iter().filter(|(_, h)| h.contains(x)).map(|(id, _)| *id).collect();
            let survived = before.iter().any(|(id, h)| Some(*id) != crashed && h.contains(x));
            let want: BTreeSet<NodeId> =
                if survived { v.holders(x).as_slice().iter().copied().collect() } else { BTreeSet::new() };
            (x.clone(), have, want)
        })
        .collect();
    (out, all_actions)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_actions_take_every_old_holder_set_to_the_new_one(
        n in 1u64..=7, rf in 1u32..=5, which in 0usize..3, i in 0usize..7
    ) {
        let change = match which {
            0 => Change::Join,
            1 if n > 1 => Change::Leave(i),
            _ if n > 1 => Change::Crash(i),
            _ => Change::Join,
        };
        let (per_node, _) = run(n, rf, change, 60);
        for (node, have, want) in per_node {
            prop_assert_eq!(&have, &want, "{} after {:?} at {} members, rf {}", node, change, n, rf);
        }
    }
}

#[test]
fn a_survivor_of_a_crash_adopts_the_orphans_it_holds_copies_of_without_pulling() {
    let (per_node, acts) = run(3, 3, Change::Crash(0), 200);
    assert!(per_node.iter().all(|(_, have, want)| have == want));
    let adopts = acts.iter().filter(|a| matches!(a, Action::Adopt { orphan: true, .. })).count();
    assert!(adopts > 0, "the crashed member's nodes are adopted as orphans");
    assert!(!acts.iter().any(|a| matches!(a, Action::PullFrom { .. })), "every holder already had them: {acts:?}");
}

#[test]
fn a_leaving_member_hands_over_and_confirms_every_node_it_scraped() {
    let s = cluster(3, 2);
    let names = nodes(200);
    let mut draining = s.clone();
    draining.apply(&Command::SetStates(vec![(1, MemberState::Draining)]));
    let (old, new) = (view(1, &s, &[]), view(1, &draining, &[]));
    let acts = actions(Some(&old), &new, &names, &|_| true);
    let owned: BTreeSet<&String> = names.iter().filter(|x| old.scrapes(x)).collect();
    assert!(!owned.is_empty());
    for x in &owned {
        let to = new.owner(x).unwrap();
        assert!(acts.contains(&Action::ReleaseTo { node: (*x).clone(), to }), "{x}");
        assert!(acts.contains(&Action::Confirm { node: (*x).clone(), to }), "{x}");
        assert!(acts.contains(&Action::Forget { node: (*x).clone() }), "{x}: the leaving member holds nothing after");
    }
    assert!(!acts.iter().any(|a| matches!(a, Action::Adopt { .. } | Action::PullFrom { .. })));
}

#[test]
fn at_start_a_member_pulls_what_it_holds_and_adopts_what_it_owns() {
    let s = cluster(3, 2);
    let names = nodes(100);
    let v = view(2, &s, &[]);
    let acts = actions(None, &v, &names, &|_| false);
    for x in &names {
        let holds = v.holders(x).contains(2);
        let pulled = acts.iter().any(|a| matches!(a, Action::PullFrom { node, from } if node == x && from[0] == v.owner(x).filter(|o| *o != 2).unwrap_or(from[0])));
        assert_eq!(holds, pulled, "{x}");
        let adopted = acts.contains(&Action::Adopt { node: x.clone(), orphan: true });
        assert_eq!(v.owner(x) == Some(2), adopted, "{x}");
    }
}

#[test]
fn nothing_changes_nothing_is_done() {
    let s = cluster(4, 3);
    let v = view(3, &s, &[]);
    assert!(actions(Some(&v), &v, &nodes(100), &|_| true).is_empty());
}

#[test]
fn a_drain_makes_no_orphans_and_a_crash_does() {
    let s = cluster(3, 2);
    let names = nodes(200);
    let mut drained = s.clone();
    drained.apply(&Command::SetStates(vec![(1, MemberState::Draining)]));
    let mut crashed = s.clone();
    crashed.apply(&Command::SetStates(vec![(1, MemberState::Down)]));
    for me in [2, 3] {
        let old = view(me, &s, &[]);
        let planned = actions(Some(&old), &view(me, &drained, &[]), &names, &|_| true);
        let adopts: Vec<&Action> = planned.iter().filter(|a| matches!(a, Action::Adopt { .. })).collect();
        assert!(!adopts.is_empty());
        assert!(adopts.iter().all(|a| matches!(a, Action::Adopt { orphan: false, .. })), "{adopts:?}");
        let failed = actions(Some(&old), &view(me, &crashed, &[1]), &names, &|_| true);
        assert!(
            failed
                .iter()
                .filter(|a| matches!(a, Action::Adopt { .. }))
                .all(|a| matches!(a, Action::Adopt { orphan: true, .. }))
        );
    }
}
