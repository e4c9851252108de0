//! Randomized invariants of the replicated state machine: epoch never goes
//! back, one state per member and at most one member per name, retired ids
//! never come back, and the epoch bumps exactly when the Active set changes.

use std::collections::BTreeSet;

use proptest::prelude::*;
use raft::{ClusterState, Command, MemberInfo, MemberState};

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

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1u64..12, 0u8..5).prop_map(|(id, n)| Command::Join { id, info: info(n) }),
        proptest::collection::vec((1u64..12, state()), 0..4).prop_map(Command::SetStates),
        (1u64..12).prop_map(|id| Command::Retire { id }),
    ]
}

proptest! {
    #[test]
    fn random_commands_keep_the_cluster_state_invariants(cmds in proptest::collection::vec(command(), 0..60)) {
        let mut s = ClusterState::default();
        let mut retired_ever = BTreeSet::new();
        for cmd in &cmds {
            let before = s.clone();
            let r = s.apply(cmd);
            prop_assert_eq!(r.epoch, s.epoch);
            prop_assert!(s.epoch >= before.epoch);
            let changed = s.active_ids() != before.active_ids();
            prop_assert_eq!(s.epoch, before.epoch + changed as u64);
            if r.refused.is_some() {
                prop_assert_eq!(&s, &before);
            }
            let names: Vec<&str> = s.members.values().map(|m| m.info.name.as_str()).collect();
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            prop_assert_eq!(names.len(), unique.len(), "two members share a name");
            retired_ever.extend(s.retired.keys().copied());
            for id in &retired_ever {
                prop_assert!(!s.members.contains_key(id), "retired id {} came back", id);
            }
            for (id, m) in &s.members {
                if let Some((_, old)) = before.members.iter().find(|(oid, om)| *oid != id && om.info.name == m.info.name) {
                    prop_assert!(m.incarnation > old.incarnation);
                }
            }
        }
    }
}
