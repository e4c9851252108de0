//! The `ClusterState` test fixture: committed states built through
//! [`ClusterState::apply`], as the leader commits them (members join, then
//! their states, then the ring parameters), for the unit tests of this
//! crate and of the server (which turns it on with the `test-support`
//! feature as a dev-dependency).
//!
//! Must not: be compiled into a server (`test-support` is for
//! dev-dependencies only), or build a state `apply` would refuse.

use crate::state::{ClusterState, Command, MemberInfo, MemberState, NodeId, RingParams};

/// The info of a member named `name`, at addresses derived from its name.
pub fn info(name: &str) -> MemberInfo {
    MemberInfo { name: name.into(), api_addr: format!("{name}:443"), peer_addr: format!("{name}:7946") }
}

/// The name [`active`] gives member `id`: `r{id}`.
pub fn name(id: NodeId) -> String {
    format!("r{id}")
}

/// A state where `members` (id, name, state) joined in order and were then
/// given their states in one commit, with `ring` committed when given.
///
/// Panics if `apply` refuses a step (a fixture that cannot be committed).
pub fn state<S: Into<String>>(
    members: impl IntoIterator<Item = (NodeId, S, MemberState)>,
    ring: Option<RingParams>,
) -> ClusterState {
    let mut s = ClusterState::default();
    let mut states = Vec::new();
    for (id, name, st) in members {
        commit(&mut s, &Command::Join { id, info: info(&name.into()) });
        states.push((id, st));
    }
    commit(&mut s, &Command::SetStates(states));
    if let Some(p) = ring {
        commit(&mut s, &Command::SetRing(p));
    }
    s
}

/// `n` Active members with ids `1..=n` named by [`name`], and the current
/// ring parameters committed: the usual cluster of the unit tests.
pub fn active(n: u64) -> ClusterState {
    state((1..=n).map(|id| (id, name(id), MemberState::Active)), Some(RingParams::CURRENT))
}

/// `n` Active members as [`active`], with `ring` committed and replication
/// factor `rf`: the cluster of the replica and query tests.
pub fn replicated(n: u64, ring: RingParams, rf: u32) -> ClusterState {
    let mut s = state((1..=n).map(|id| (id, name(id), MemberState::Active)), Some(ring));
    commit(&mut s, &Command::SetReplication(rf));
    s
}

fn commit(s: &mut ClusterState, cmd: &Command) {
    if let Some(why) = s.apply(cmd).refused {
        panic!("fixture step {cmd:?} refused: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_commits_every_member_and_the_ring_in_three_epochs_at_most() {
        let s = active(3);
        assert_eq!(s.active_ids(), (1..=3).collect());
        assert_eq!(s.by_name("r2").map(|(id, _)| id), Some(2));
        assert_eq!(s.ring, Some(RingParams::CURRENT));
        assert_eq!(s.epoch, 2, "one bump for the Active set, one for the ring");
    }

    #[test]
    fn members_keep_the_states_they_are_given_and_no_ring_means_none_committed() {
        use MemberState::*;
        let s = state([(1, "a", Active), (2, "b", Joining), (3, "c", Down)], None);
        assert_eq!(s.count(Active), 1);
        assert_eq!(s.by_name("c").map(|(_, m)| m.state), Some(Down));
        assert_eq!(s.by_name("b").map(|(_, m)| m.info.peer_addr.clone()), Some("b:7946".into()));
        assert_eq!(s.ring, None);
    }
}
