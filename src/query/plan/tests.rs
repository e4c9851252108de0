//! The planner's choices: who is asked first, who next, and whom a missing
//! part is blamed on.

use raft::ClusterState;
use raft::state::RingParams;

use super::*;
use crate::model::ContainerUsage;

fn cluster(n: u64, rf: u32) -> ClusterState {
    raft::fixture::replicated(n, RingParams::CURRENT, rf)
}

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

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("node-{i}")).collect()
}

#[test]
fn every_node_is_asked_of_its_owner_first_and_two_replicas_plan_the_same_owners() {
    let s = cluster(3, 2);
    let (a, b) = (Ownership::from_state(1, &s), Ownership::from_state(2, &s));
    for n in names(200) {
        let owner = a.owner(&n).unwrap();
        assert_eq!(node_candidates(&a, &n, &|_| false)[0], asked(&a, owner), "{n}");
        assert_eq!(node_candidates(&b, &n, &|_| false)[0], asked(&b, owner), "{n}");
    }
}

#[test]
fn a_suspected_owner_is_skipped_for_this_replica_then_the_other_holders() {
    let s = cluster(3, 3);
    let me = Ownership::from_state(1, &s);
    for n in names(200) {
        let holders = me.holders(&n);
        let owner = holders.owner().unwrap();
        if owner == 1 {
            continue;
        }
        let c = node_candidates(&me, &n, &|id| id == owner);
        assert_eq!(c[0], Asked::Local, "{n}: a copy is held here");
        let rest: Vec<Asked> = holders.copies().iter().filter(|h| **h != 1).map(|h| Asked::Peer(*h)).collect();
        assert_eq!(&c[1..], rest.as_slice(), "{n}");
    }
}

#[test]
fn without_a_ring_everything_is_answered_locally() {
    let mut s = cluster(3, 2);
    s.ring = None;
    let o = Ownership::from_state(1, &s);
    assert_eq!(node_candidates(&o, "a", &|_| false), vec![Asked::Local]);
    assert_eq!(pod_askees(&o, &|_| false), (vec![Asked::Local], vec![]));
    assert_eq!(node_candidates(&Ownership::single(), "a", &|_| false), vec![Asked::Local]);
}

#[test]
fn pods_are_asked_of_every_active_member_and_the_suspected_are_set_apart() {
    let o = Ownership::from_state(1, &cluster(3, 2));
    assert_eq!(pod_askees(&o, &|_| false), (vec![Asked::Local, Asked::Peer(2), Asked::Peer(3)], vec![]));
    assert_eq!(pod_askees(&o, &|id| id == 3), (vec![Asked::Local, Asked::Peer(2)], vec![3]));
}

#[test]
fn merged_pods_follow_the_keys_and_the_newer_duplicate_wins() {
    let keys =
        vec![("a".to_string(), "p1".to_string()), ("a".to_string(), "p2".to_string()), ("b".into(), "p3".into())];
    let got =
        merge_pods(&keys, &[answer("b", "p3", 5), answer("a", "p1", 1), answer("a", "p1", 3), answer("z", "p", 9)], 10);
    assert_eq!(got, vec![Some(usage(3)), None, Some(usage(5))]);
    // The newer wins in whichever order the answers came.
    let got = merge_pods(&keys, &[answer("a", "p1", 3), answer("a", "p1", 1)], 10);
    assert_eq!(got, vec![Some(usage(3)), None, None]);
}

#[test]
fn a_missing_node_is_blamed_on_its_owner_with_the_owners_cause() {
    let o = Ownership::from_state(1, &cluster(3, 2));
    let names = names(60);
    let mut outcomes = Outcomes::default();
    outcomes.fail(2, Cause::Timeout);
    outcomes.fail(2, Cause::Unreachable);
    let served: Vec<bool> = names.iter().map(|n| o.owner(n) == Some(1)).collect();
    let missing = missing_nodes(&o, &names, &served, &outcomes);
    let of = |id: u64| names.iter().filter(|n| o.owner(n) == Some(id)).count();
    assert_eq!(
        missing,
        vec![
            Missing { member: "r2".into(), cause: Cause::Timeout, what: What::Nodes { missing: of(2), of: 60 } },
            Missing { member: "r3".into(), cause: Cause::Lacks, what: What::Nodes { missing: of(3), of: 60 } },
        ],
        "the first cause stays; an owner that answered without its nodes lacks them"
    );
    assert!(missing_nodes(&o, &names, &vec![true; 60], &outcomes).is_empty());
}

#[test]
fn a_node_scraped_here_in_an_unreachable_owners_place_is_covering() {
    let mut o = Ownership::from_state(1, &cluster(3, 3));
    o.unreachable = [2, 3].into();
    let names = names(60);
    let served = vec![false; 60];
    let missing = missing_nodes(&o, &names, &served, &Outcomes::default());
    for m in &missing {
        if m.member != "r1" {
            assert_eq!(m.cause, Cause::Covering, "{m}");
        }
    }
    assert!(missing.iter().any(|m| m.cause == Cause::Covering));
    assert_eq!(
        missing[0].to_string(),
        format!(
            "partial answer: replica {}: {}; {} nodes missing",
            missing[0].member,
            missing[0].cause,
            match missing[0].what {
                What::Nodes { missing, of } => format!("{missing} of {of}"),
                What::Pods => unreachable!(),
            }
        )
    );
}

#[test]
fn pod_lists_route_to_the_owners_of_the_placed_nodes_unless_that_is_everyone() {
    let o = Ownership::from_state(1, &cluster(3, 2));
    let owned_by = |id: NodeId| (0..60).map(|i| format!("node-{i}")).find(|n| o.owner(n) == Some(id)).expect("a node");
    let mine: BTreeSet<String> = [owned_by(1)].into();
    assert_eq!(pod_routing(&o, &mine), Some(BTreeSet::new()), "only this replica's own part");
    let one_other: BTreeSet<String> = [owned_by(1), owned_by(2)].into();
    assert_eq!(pod_routing(&o, &one_other), Some([2].into()));
    let everyone: BTreeSet<String> = [owned_by(2), owned_by(3)].into();
    assert_eq!(pod_routing(&o, &everyone), None, "all members anyway");
}

/// The naive rule the copy sets stand in for: every node `of` owns has a
/// copy holder among those that gave their copies.
fn complete_naively(o: &Ownership, nodes: &[String], of: NodeId, got: &BTreeSet<Asked>) -> bool {
    nodes
        .iter()
        .filter(|n| o.owner(n) == Some(of))
        .all(|n| o.holders(n).copies().iter().any(|h| got.contains(&asked(o, *h))))
}

#[test]
fn a_part_is_complete_from_copy_sets_exactly_when_every_node_of_it_had_a_copy_given() {
    let nodes = names(300);
    for (members, rf) in [(3, 1), (3, 2), (3, 3), (5, 2), (5, 3)] {
        let s = cluster(members, rf);
        let me = Ownership::from_state(1, &s);
        let sets = copy_sets(&me, nodes.iter().map(String::as_str));
        // Every subset of the members as the ones that gave copies.
        for mask in 0u32..(1 << members) {
            let got: BTreeSet<Asked> =
                (1..=members).filter(|id| mask & (1 << (id - 1)) != 0).map(|id| asked(&me, id)).collect();
            for of in 1..=members {
                assert_eq!(
                    part_complete(&me, sets.get(&of), Some(&got)),
                    complete_naively(&me, &nodes, of, &got),
                    "{members} members, RF {rf}, part of {of}, copies from {got:?}"
                );
            }
        }
        // Nothing given completes only an owner without nodes.
        for of in 1..=members {
            assert_eq!(part_complete(&me, sets.get(&of), None), !sets.contains_key(&of));
        }
    }
}

/// Three members, none Active any more: 3 was the last and left (its ring
/// of the epoch before is `previous`), 1 and 2 are joining, `down` Down.
fn nobody_active(down: Option<NodeId>) -> Ownership {
    let mut s = cluster(3, 3);
    let last = {
        let mut t = s.clone();
        let applied = t.apply(&raft::Command::SetStates(vec![(1, MemberState::Joining), (2, MemberState::Joining)]));
        assert_eq!(applied.refused, None);
        Ownership::from_state(1, &t)
    };
    let mut states = vec![(1, MemberState::Joining), (2, MemberState::Joining), (3, MemberState::Draining)];
    if let Some(d) = down {
        states.retain(|(id, _)| *id != d);
        states.push((d, MemberState::Down));
    }
    assert_eq!(s.apply(&raft::Command::SetStates(states)).refused, None);
    let mut o = Ownership::from_state(1, &s);
    o.previous = last.ring_arc().map(|r| (r, last.replication));
    o
}

#[test]
fn a_node_nobody_owns_is_asked_of_its_last_owner_then_every_member_that_may_hold_it() {
    let o = nobody_active(None);
    assert!(o.ring().is_some() && o.active().next().is_none(), "a ring with no member");
    for n in names(50) {
        assert_eq!(o.owner(&n), None);
        assert_eq!(
            node_candidates(&o, &n, &|_| false),
            vec![Asked::Peer(3), Asked::Local, Asked::Peer(2)],
            "{n}: the last owner, then anything anyone holds"
        );
        assert_eq!(node_candidates(&o, &n, &|id| id == 2), vec![Asked::Peer(3), Asked::Local], "{n}: suspected");
    }
    let o = nobody_active(Some(2));
    assert_eq!(
        node_candidates(&o, "node-1", &|_| false),
        vec![Asked::Peer(3), Asked::Local],
        "a Down member is not asked"
    );
}

#[test]
fn a_node_nobody_owns_and_nobody_gave_is_named_never_left_out_silently() {
    let o = nobody_active(None);
    let names = names(40);
    let mut served = vec![false; 40];
    served[0] = true;
    let missing = missing_nodes(&o, &names, &served, &Outcomes::default());
    assert_eq!(
        missing,
        vec![Missing { member: "r3".into(), cause: Cause::Unowned, what: What::Nodes { missing: 39, of: 40 } }],
        "blamed on the owner of the epoch before"
    );
    assert_eq!(
        missing[0].to_string(),
        "partial answer: replica r3: no Active member owns them now and no holder gave them; 39 of 40 nodes missing"
    );
    let mut fresh = o.clone();
    fresh.previous = None;
    let missing = missing_nodes(&fresh, &names, &served, &Outcomes::default());
    assert_eq!(missing.len(), 1);
    assert_eq!((missing[0].member.as_str(), missing[0].cause), ("r1", Cause::Unowned), "no epoch before: this replica");
}
