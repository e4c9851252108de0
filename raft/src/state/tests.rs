//! Unit tests of the failing-kubelet lists in the cluster state: what a
//! `SetFailing` commits, that it never moves the epoch, that a member that
//! leaves takes its list with it, and that older snapshots still load.

use super::*;
use crate::fixture::active;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn failing_lists_are_committed_sorted_bounded_and_without_an_epoch_change() {
    let mut s = active(3);
    let epoch = s.epoch;
    let r = s.apply(&Command::SetFailing(vec![(2, names(&["n-b", "n-a", "n-b"])), (99, names(&["x"]))]));
    assert_eq!(r.refused, None);
    assert_eq!(s.epoch, epoch, "who owns and holds what did not change");
    assert_eq!(s.failing_of(2), names(&["n-a", "n-b"]).as_slice());
    assert!(s.failing_of(99).is_empty(), "unknown members are ignored");
    let many: Vec<String> = (0..ClusterState::MAX_FAILING + 10).map(|i| format!("n-{i:05}")).collect();
    s.apply(&Command::SetFailing(vec![(1, many)]));
    assert_eq!(s.failing_of(1).len(), ClusterState::MAX_FAILING);
    s.apply(&Command::SetFailing(vec![(2, Vec::new())]));
    assert!(!s.failing.contains_key(&2), "an empty report clears the list");
}

#[test]
fn a_retired_or_replaced_member_takes_its_failing_list_with_it() {
    let mut s = active(3);
    s.apply(&Command::SetFailing(vec![(1, names(&["a"])), (2, names(&["b"]))]));
    s.apply(&Command::Retire { id: 1 });
    assert!(!s.failing.contains_key(&1));
    let name2 = s.members[&2].info.clone();
    s.apply(&Command::Join { id: 7, info: name2 });
    assert!(!s.failing.contains_key(&2), "a new incarnation starts without its predecessor's reports");
}

#[test]
fn snapshots_without_failing_lists_still_load() {
    #[derive(Serialize)]
    struct V3<'a> {
        epoch: u64,
        members: &'a BTreeMap<NodeId, Member>,
        retired: &'a BTreeMap<NodeId, Retired>,
        ring: Option<RingParams>,
        replication: Option<u32>,
    }
    let mut s = active(3);
    s.apply(&Command::SetReplication(3));
    let old = V3 { epoch: s.epoch, members: &s.members, retired: &s.retired, ring: s.ring, replication: s.replication };
    let bytes = crate::codec::encode(&old).unwrap();
    assert_eq!(ClusterState::decode(&bytes).unwrap(), s);
    s.apply(&Command::SetFailing(vec![(3, names(&["z"]))]));
    let now = crate::codec::encode(&s).unwrap();
    assert_eq!(ClusterState::decode(&now).unwrap(), s);
}
