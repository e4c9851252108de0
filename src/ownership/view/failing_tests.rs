//! Who scrapes a node whose holders reported failing to reach its kubelet:
//! the next holder in ring order, exactly one member in every case, the
//! owner again once it reports success, and the owner when nobody can.

use raft::{ClusterState, Command, NodeId};

use super::Ownership;

/// Members `1..=n`, factor `rf`, with `failing` committed (member, nodes).
fn state(n: u64, rf: u32, failing: &[(NodeId, Vec<String>)]) -> ClusterState {
    let mut s = raft::fixture::active(n);
    s.apply(&Command::SetReplication(rf));
    s.apply(&Command::SetFailing(failing.to_vec()));
    s
}

fn views(s: &ClusterState, unreachable: &[NodeId]) -> Vec<Ownership> {
    let n = s.members.len() as u64;
    (1..=n)
        .filter(|me| !unreachable.contains(me))
        .map(|me| {
            let mut v = Ownership::from_state(me, s);
            v.unreachable = unreachable.iter().copied().collect();
            v
        })
        .collect()
}

fn nodes() -> Vec<String> {
    (0..200).map(|i| format!("node-{i}")).collect()
}

/// Every node each member holds, as its failing report.
fn all_held_by(n: u64, rf: u32, who: NodeId) -> Vec<String> {
    let v = Ownership::from_state(who, &state(n, rf, &[]));
    nodes().into_iter().filter(|x| v.holders(x).contains(who)).collect()
}

fn scrapers(views: &[Ownership], node: &str) -> Vec<NodeId> {
    views.iter().filter(|v| v.scrapes(node)).filter_map(|v| v.me).collect()
}

#[test]
fn the_next_holder_scrapes_for_an_owner_that_cannot_reach_the_kubelet() {
    for (n, rf) in [(3, 2), (3, 3), (5, 3)] {
        let cut = all_held_by(n, rf, 1);
        let s = state(n, rf, &[(1, cut.clone())]);
        let vs = views(&s, &[]);
        for x in nodes() {
            let holders = vs[0].holders(&x);
            let who = scrapers(&vs, &x);
            assert_eq!(who.len(), 1, "{x}: {who:?}");
            if holders.owner() == Some(1) {
                assert_eq!(who[0], holders.as_slice()[1], "{x}: the next holder in ring order");
                assert!(vs[(who[0] - 1) as usize].stands_in(&x));
                assert!(!vs[0].scrapes(&x) && !vs.iter().any(|v| v.covers(&x)));
            } else {
                assert_eq!(Some(who[0]), holders.owner(), "{x}: a healthy owner keeps its node");
                assert!(!vs.iter().any(|v| v.stands_in(&x)));
            }
            assert!(!vs[0].kubelet_unreachable(&x));
        }
    }
}

#[test]
fn a_stand_in_that_fails_too_passes_the_node_on_and_the_owner_keeps_it_when_nobody_can() {
    let (n, rf) = (3, 3);
    let everything = nodes();
    let s = state(n, rf, &[(1, everything.clone()), (2, everything.clone())]);
    let vs = views(&s, &[]);
    for x in &everything {
        let holders = vs[0].holders(x);
        let healthy = holders.as_slice().iter().copied().find(|h| *h == 3);
        assert_eq!(scrapers(&vs, x), vec![healthy.unwrap()], "{x}: the one holder that reaches it");
    }
    let s = state(n, rf, &[(1, everything.clone()), (2, everything.clone()), (3, everything.clone())]);
    let vs = views(&s, &[]);
    for x in &everything {
        let owner = vs[0].owner(x).unwrap();
        assert_eq!(scrapers(&vs, x), vec![owner], "{x}: nobody reaches it: the owner keeps trying");
        assert!(vs.iter().all(|v| v.kubelet_unreachable(x)));
        assert!(!vs.iter().any(|v| v.stands_in(x)));
    }
}

#[test]
fn reports_and_unreachable_members_together_still_leave_exactly_one_scraper() {
    let everything = nodes();
    let half: Vec<String> = everything.iter().step_by(2).cloned().collect();
    for (n, rf, dead) in [(3, 2, vec![2]), (3, 3, vec![3]), (5, 3, vec![2, 4]), (5, 2, vec![1])] {
        for failing in [vec![(1, half.clone())], vec![(2, everything.clone()), (3, half.clone())]] {
            let s = state(n, rf, &failing);
            let vs = views(&s, &dead);
            for x in &everything {
                let alive = vs[0].holders(x).as_slice().iter().any(|h| !dead.contains(h));
                assert_eq!(scrapers(&vs, x).len(), usize::from(alive), "{x} n {n} rf {rf} dead {dead:?} {failing:?}");
            }
        }
    }
}

#[test]
fn the_owner_takes_its_node_back_once_its_report_is_cleared() {
    let cut = all_held_by(3, 2, 1);
    let before = views(&state(3, 2, &[(1, cut.clone())]), &[]);
    let after: Vec<Ownership> = before.iter().map(|v| v.refreshed(&state(3, 2, &[]))).collect();
    assert!(after.iter().all(|v| v.epoch == before[0].epoch && v.failing.is_empty()));
    for x in &cut {
        if after[0].owner(x) == Some(1) {
            assert_eq!(scrapers(&after, x), vec![1], "{x}");
        }
    }
}

#[test]
fn a_report_matters_only_while_every_holder_before_its_member_reports_the_node_too() {
    let (n, rf) = (3, 3);
    let everything = nodes();
    let with = |failing: &[(NodeId, Vec<String>)]| views(&state(n, rf, failing), &[]);
    let vs = with(&[(2, everything.clone())]);
    for x in &everything {
        let order = vs[0].holders(x);
        let (owner, second) = (order.as_slice()[0], order.as_slice()[1]);
        let v = |id: NodeId| &vs[(id - 1) as usize];
        assert!(v(owner).report_matters(x), "{x}: the owner's report always matters");
        assert_eq!(v(second).report_matters(x), owner == 2, "{x}: 2's report matters only where it owns");
    }
    let vs = with(&[(1, everything.clone()), (2, everything.clone())]);
    for x in &everything {
        let order = vs[0].holders(x);
        let third = order.as_slice()[2];
        assert_eq!(
            vs[(third - 1) as usize].report_matters(x),
            third == 3,
            "{x}: behind 1 and 2 only member 3's matters"
        );
    }
}
