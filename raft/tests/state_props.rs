//! Randomized invariants of the replicated state machine: epoch never goes
//! back, one state per member and at most one member per name, tombstoned
//! (retired) ids never come back and tombstones stay bounded per name, the
//! ring parameters change only by `SetRing`, and the epoch bumps exactly
//! when the Active set or the ring parameters change.

use std::collections::BTreeSet;

use proptest::prelude::*;
use raft::state::RingParams;
use raft::{ClusterState, Command, MemberInfo, MemberState, codec};

fn info(name: u8) -> MemberInfo {
    MemberInfo { name: format!("r{name}"), api_addr: format!("a{name}"), peer_addr: format!("p{name}") }
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Joining),
        Just(MemberState::Active),
        Just(MemberState::Draining),
        Just(MemberState::Down)
    ]
}

/// Few distinct values, so the same parameters are often committed twice.
fn ring_params() -> impl Strategy<Value = RingParams> {
    (1u32..3, prop_oneof![Just(1u32), Just(64), Just(RingParams::CURRENT.vnodes)])
        .prop_map(|(hash_version, vnodes)| RingParams { hash_version, vnodes })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1u64..12, 0u8..5).prop_map(|(id, n)| Command::Join { id, info: info(n) }),
        proptest::collection::vec((1u64..12, state()), 0..4).prop_map(Command::SetStates),
        (1u64..12).prop_map(|id| Command::Retire { id }),
        ring_params().prop_map(Command::SetRing),
    ]
}

proptest! {
    #[test]
    fn random_commands_keep_the_cluster_state_invariants(cmds in proptest::collection::vec(command(), 0..60)) {
        let mut s = ClusterState::default();
        for cmd in &cmds {
            let before = s.clone();
            let r = s.apply(cmd);
            prop_assert_eq!(r.epoch, s.epoch);
            prop_assert!(s.epoch >= before.epoch);
            let changed = s.active_ids() != before.active_ids() || s.ring != before.ring;
            prop_assert_eq!(s.epoch, before.epoch + changed as u64);
            if r.refused.is_some() {
                prop_assert_eq!(&s, &before);
            }
            match cmd {
                Command::SetRing(p) => {
                    prop_assert_eq!(s.ring, Some(*p));
                    prop_assert_eq!(&s.members, &before.members, "SetRing touched the members");
                }
                _ => prop_assert_eq!(s.ring, before.ring, "only SetRing changes the ring parameters"),
            }
            let names: Vec<&str> = s.members.values().map(|m| m.info.name.as_str()).collect();
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            prop_assert_eq!(names.len(), unique.len(), "two members share a name");
            for id in before.retired.keys().chain(s.retired.keys()) {
                prop_assert!(!s.members.contains_key(id), "retired id {} came back", id);
            }
            for name in s.retired.values().map(|r| r.name.as_str()) {
                let n = s.retired.values().filter(|r| r.name == name).count();
                prop_assert!(n <= ClusterState::RETIRED_PER_NAME, "{} tombstones for {}", n, name);
            }
            for (id, m) in &s.members {
                if let Some((_, old)) = before.members.iter().find(|(oid, om)| *oid != id && om.info.name == m.info.name) {
                    prop_assert!(m.incarnation > old.incarnation);
                }
            }
        }
    }
}

#[test]
fn tombstones_keep_only_the_newest_incarnations_of_a_name() {
    let mut s = ClusterState::default();
    // A replica wiped and restarted 40 times: each new incarnation retires the last.
    for id in 1..=40u64 {
        assert!(s.apply(&Command::Join { id, info: info(0) }).refused.is_none());
    }
    s.apply(&Command::Join { id: 100, info: info(1) });
    s.apply(&Command::Retire { id: 100 });
    let kept: BTreeSet<u64> = s.retired.iter().filter(|(_, r)| r.name == "r0").map(|(id, _)| *id).collect();
    let newest: BTreeSet<u64> = (40 - ClusterState::RETIRED_PER_NAME as u64..40).collect();
    assert_eq!(kept, newest, "the newest incarnations' tombstones are kept");
    assert!(s.retired.contains_key(&100), "another name's tombstone is untouched");
    let refused = s.apply(&Command::Join { id: 39, info: info(0) });
    assert!(refused.refused.is_some_and(|r| r.contains("retired")), "a kept tombstone still refuses its id");
    assert_eq!(s.by_name("r0").map(|(id, m)| (id, m.incarnation)), Some((40, 40)));
}

#[test]
fn ring_params_start_uncommitted_and_committing_them_bumps_the_epoch_once() {
    let mut s = ClusterState::default();
    assert_eq!(s.ring, None, "a fresh cluster has no ring parameters, so nobody owns anything");
    let r = s.apply(&Command::SetRing(RingParams::CURRENT));
    assert_eq!((r.epoch, r.refused), (1, None));
    assert_eq!(s.ring, Some(RingParams::CURRENT));
    let again = s.apply(&Command::SetRing(RingParams::CURRENT));
    assert_eq!(again.epoch, 1, "re-committing the same parameters changes no owner, so no new epoch");
    let other = RingParams { vnodes: RingParams::CURRENT.vnodes / 2, ..RingParams::CURRENT };
    assert_eq!(s.apply(&Command::SetRing(other)).epoch, 2, "other parameters move owners: new epoch");
    assert_eq!(s.ring, Some(other));
}

#[test]
fn ring_params_default_to_the_current_ones() {
    assert_eq!(RingParams::default(), RingParams::CURRENT);
    assert_eq!(RingParams::CURRENT.hash_version, 1);
}

/// Old log entries must keep decoding: variants are encoded by position, so
/// new variants go last and the earlier variants keep their bytes.
#[test]
fn commands_written_before_set_ring_keep_their_encoding() {
    assert_eq!(codec::encode(&Command::Retire { id: 7 }).unwrap(), [2, 7]);
    assert_eq!(codec::encode(&Command::SetStates(vec![(5, MemberState::Active)])).unwrap(), [1, 1, 5, 1]);
    let join = codec::encode(&Command::Join { id: 3, info: info(1) }).unwrap();
    assert_eq!(join[..2], [0, 3]);
    let set_ring = Command::SetRing(RingParams { hash_version: 1, vnodes: 100 });
    assert_eq!(codec::encode(&set_ring).unwrap(), [3, 1, 100]);
    assert_eq!(codec::decode::<Command>(&[3, 1, 100]).unwrap(), set_ring);
    assert_eq!(codec::encode(&Command::SetReplication(3)).unwrap(), [4, 3]);
}

/// A snapshot written (or sent) by the previous release, whose state had no
/// replication factor, still loads: with `replication: None` (the legacy
/// owner-and-successor rule), everything else intact.
#[test]
fn a_previous_release_snapshot_loads_without_a_replication_factor() {
    #[derive(serde::Serialize)]
    struct V2 {
        epoch: u64,
        members: std::collections::BTreeMap<raft::NodeId, raft::Member>,
        retired: std::collections::BTreeMap<raft::NodeId, raft::Retired>,
        ring: Option<RingParams>,
    }
    let mut s = ClusterState::default();
    s.apply(&Command::Join { id: 7, info: info(1) });
    s.apply(&Command::SetStates(vec![(7, MemberState::Active)]));
    s.apply(&Command::SetRing(RingParams::CURRENT));
    let old =
        codec::encode(&V2 { epoch: s.epoch, members: s.members.clone(), retired: s.retired.clone(), ring: s.ring })
            .unwrap();
    let loaded = ClusterState::decode(&old).expect("v2 snapshot");
    assert_eq!(loaded, s);
    assert_eq!(loaded.replication, None);
    assert_eq!(loaded.replication_factor(), ClusterState::LEGACY_REPLICATION);
    let epoch = s.epoch;
    s.apply(&Command::SetReplication(3));
    assert_eq!(s.epoch, epoch + 1, "a new replication factor moves holders: a new epoch");
    s.apply(&Command::SetReplication(3));
    assert_eq!(s.epoch, epoch + 1, "the same factor again changes nothing");
    assert!(s.apply(&Command::SetReplication(0)).refused.is_some());
    assert_eq!(ClusterState::decode(&codec::encode(&s).unwrap()).unwrap(), s);
    assert!(ClusterState::decode(b"\x01garbage").is_err());
}

/// What this release sends a peer that speaks the previous protocol is
/// byte for byte the previous release's heartbeat, and what that release
/// sends decodes here as asking for no replication factor.
#[test]
fn heartbeats_keep_the_previous_release_shape_both_ways() {
    use raft::network::wire::{Heartbeat, HeartbeatV2};
    #[derive(serde::Serialize)]
    struct Released {
        name: String,
        scrape_healthy: bool,
        leaving: bool,
        ready_to_own: Option<u64>,
    }
    let hb = Heartbeat {
        name: "r1".into(),
        scrape_healthy: true,
        leaving: true,
        ready_to_own: Some(4),
        replication: Some(3),
        failing: vec!["node-1".into()],
    };
    let released =
        codec::encode(&Released { name: "r1".into(), scrape_healthy: true, leaving: true, ready_to_own: Some(4) })
            .unwrap();
    assert_eq!(codec::encode(&HeartbeatV2::from(&hb)).unwrap(), released);
    let old: HeartbeatV2 = codec::decode(&released).unwrap();
    assert_eq!(Heartbeat::from(old), Heartbeat { replication: None, failing: vec![], ..hb });
}
