//! The planner against a naive model of the whole cluster: every member
//! holds exactly its nodes' holder sets before a change; every surviving
//! member plans its own actions from its own views; performing them all
//! must leave exactly the new holder sets holding each node (for every node
//! that still had a surviving holder), whatever the change: a member joins,
//! leaves on purpose (Draining), or crashes (Down, its points lost); and a
//! member that reports failing to reach the kubelets it holds, or reports
//! success again, moves who scrapes each node and nothing else: holder sets
//! stay, exactly one member scrapes each node before and after, the one
//! that stops releases to the one that starts, which adopts.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use raft::state::RingParams;
use raft::{ClusterState, Command, MemberState, NodeId};

use super::*;

fn join(s: &mut ClusterState, id: NodeId) {
    s.apply(&Command::Join { id, info: raft::fixture::info(&raft::fixture::name(id)) });
}

/// Members `1..=n`, all Active, ring committed, factor `rf`.
fn cluster(n: u64, rf: u32) -> ClusterState {
    raft::fixture::replicated(n, RingParams { hash_version: 1, vnodes: 64 }, rf)
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
    /// Member `i` reports failing every node it holds (and, with `also`,
    /// the next member every node it holds too).
    Cut {
        i: usize,
        also: bool,
    },
    /// The reports of `Cut` are cleared.
    Heal {
        i: usize,
        also: bool,
    },
}

/// The failing reports of `Cut { i, also }` at `n` members, factor `rf`.
fn reports(s: &ClusterState, n: u64, i: usize, also: bool, names: &[String]) -> Vec<(NodeId, Vec<String>)> {
    let first = 1 + (i as u64 % n);
    let who: Vec<NodeId> = if also { vec![first, 1 + (first % n)] } else { vec![first] };
    who.into_iter()
        .map(|id| {
            let v = view(id, s, &[]);
            (id, names.iter().filter(|x| v.holders(x).contains(id)).cloned().collect())
        })
        .collect()
}

/// Runs one change through every member's planner and the naive model;
/// returns, per node, who holds it after and who should.
fn run(n: u64, rf: u32, change: Change, k: usize) -> (Vec<(String, BTreeSet<NodeId>, BTreeSet<NodeId>)>, Vec<Action>) {
    let names = nodes(k);
    let mut old_state = cluster(n, rf);
    if let Change::Heal { i, also } = change {
        let r = reports(&old_state, n, i, also, &names);
        old_state.apply(&Command::SetFailing(r));
    }
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
        Change::Cut { i, also } => {
            let r = reports(&new_state, n, i, also, &names);
            new_state.apply(&Command::SetFailing(r));
        }
        Change::Heal { .. } => {
            new_state.failing.clear();
        }
    }
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

/// Who scrapes each node in `views`, which must be exactly one member.
fn sole_scrapers(views: &BTreeMap<NodeId, Ownership>, names: &[String]) -> BTreeMap<String, NodeId> {
    names
        .iter()
        .map(|x| {
            let who: Vec<NodeId> = views.iter().filter(|(_, v)| v.scrapes(x)).map(|(id, _)| *id).collect();
            assert_eq!(who.len(), 1, "{x} scraped by {who:?}");
            (x.clone(), who[0])
        })
        .collect()
}

/// A failing report (or its clearing) through every member's planner:
/// holders stay, and the member that stops scraping a node releases it
/// to the one that starts, which adopts it (an orphan: its previous
/// scraper cannot reach the kubelet) — and nothing else happens.
fn check_moves(n: u64, rf: u32, change: Change) -> Result<(), TestCaseError> {
    let (per_node, _) = run(n, rf, change, 60);
    for (node, have, want) in &per_node {
        prop_assert_eq!(have, want, "{} after {:?}", node, change);
    }
    let names = nodes(60);
    let (mut old_s, mut new_s) = (cluster(n, rf), cluster(n, rf));
    match change {
        Change::Cut { i, also } => {
            new_s.apply(&Command::SetFailing(reports(&new_s, n, i, also, &names)));
        }
        Change::Heal { i, also } => {
            old_s.apply(&Command::SetFailing(reports(&old_s, n, i, also, &names)));
        }
        _ => return Ok(()),
    }
    let views = |s: &ClusterState| (1..=n).map(|me| (me, view(me, s, &[]))).collect::<BTreeMap<_, _>>();
    let (before, after) = (sole_scrapers(&views(&old_s), &names), sole_scrapers(&views(&new_s), &names));
    for me in 1..=n {
        let planned = actions(Some(&views(&old_s)[&me]), &views(&new_s)[&me], &names, &|_| true);
        for x in &names {
            let (b, a) = (before[x], after[x]);
            let mine: Vec<&Action> = planned.iter().filter(|p| p.node() == x).collect();
            let want: Vec<Action> = match (b == me, a == me) {
                (true, false) => vec![Action::ReleaseTo { node: x.clone(), to: a }],
                (false, true) => vec![Action::Adopt { node: x.clone(), orphan: matches!(change, Change::Cut { .. }) }],
                _ => vec![],
            };
            prop_assert_eq!(mine, want.iter().collect::<Vec<_>>(), "member {} node {} {:?}", me, x, change);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn failing_reports_move_only_who_scrapes_and_each_move_is_one_release_and_one_adopt(
        n in 2u64..=7, rf in 1u32..=5, cut in any::<bool>(), i in 0usize..7, also in any::<bool>()
    ) {
        let change = if cut { Change::Cut { i, also } } else { Change::Heal { i, also } };
        check_moves(n, rf, change)?;
    }

    #[test]
    fn the_actions_take_every_old_holder_set_to_the_new_one(
        n in 1u64..=7, rf in 1u32..=5, which in 0usize..5, i in 0usize..7
    ) {
        let change = match which {
            0 => Change::Join,
            1 if n > 1 => Change::Leave(i),
            2 if n > 1 => Change::Crash(i),
            3 => Change::Cut { i, also: i % 2 == 0 },
            4 => Change::Heal { i, also: i % 2 == 1 },
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
