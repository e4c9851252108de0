//! [`Ownership`]: what one replica acts on at one committed epoch — whether
//! it scrapes a node, who owns a node and who backs it up, who the members
//! are and where to reach them. Built purely from the committed
//! [`ClusterState`] (or for a replica without `--peers`); the shell follows
//! the state and publishes a new one per change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raft::{ClusterState, MemberState, NodeId};

use super::ring::{Ring, RingError};

/// How a replica decides what it scrapes.
#[derive(Debug, Clone)]
pub enum Mode {
    /// No `--peers`: one replica owns every node, as metrics-server.
    Single,
    /// The committed ring decides one owner per node.
    Ring(Arc<Ring>),
    /// No usable ring (none committed yet, or one this build cannot compute):
    /// the replica scrapes every node and answers from its own store —
    /// duplicates allowed, gaps not.
    NoRing(RingError),
}

/// One member as the ownership view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// Stable replica name.
    pub name: String,
    /// Where its peer port is reached.
    pub peer_addr: String,
    /// Its committed ring state.
    pub state: MemberState,
}

/// Why a replica does not trust the committed ring alone and also scrapes
/// (and answers for) the nodes of owners it cannot reach: duplicates
/// allowed, gaps not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// No contact to a quorum for longer than twice the lease: the ring may
    /// have moved on without this replica, or cannot move at all.
    QuorumLost,
    /// Restarted with its data dir and not yet caught up with the leader:
    /// the ring it holds may be older than the cluster's.
    Unsynced,
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fallback::QuorumLost => "no quorum for more than twice the lease",
            Fallback::Unsynced => "not yet caught up with the leader since the start",
        })
    }
}

/// What this replica acts on at one epoch.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The committed epoch this view was built from (0 for a single replica).
    pub epoch: u64,
    /// This replica's member id; `None` for a single replica.
    pub me: Option<NodeId>,
    /// How owners are decided.
    pub mode: Mode,
    /// Every current member, by id.
    pub members: BTreeMap<NodeId, MemberEntry>,
    /// Members this replica has not heard from within the lease.
    pub unreachable: BTreeSet<NodeId>,
    /// Set when the ring alone is not to be trusted (degraded mode).
    pub fallback: Option<Fallback>,
    /// The ring of the epoch before this one: the previous owner of a node
    /// that just moved still holds its points until the handover lands.
    pub previous: Option<Arc<Ring>>,
    /// When this replica started acting on this epoch.
    pub since: std::time::Instant,
}

impl Ownership {
    /// A replica without `--peers`.
    pub fn single() -> Ownership {
        Ownership {
            epoch: 0,
            me: None,
            mode: Mode::Single,
            members: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            fallback: None,
            previous: None,
            since: std::time::Instant::now(),
        }
    }

    /// The view of member `me` at the committed `state`.
    pub fn from_state(me: NodeId, state: &ClusterState) -> Ownership {
        let mode = match Ring::from_state(state) {
            Ok(ring) => Mode::Ring(Arc::new(ring)),
            Err(e) => Mode::NoRing(e),
        };
        Ownership {
            epoch: state.epoch,
            me: Some(me),
            mode,
            members: Ownership::from_members(state),
            unreachable: BTreeSet::new(),
            fallback: None,
            previous: None,
            since: std::time::Instant::now(),
        }
    }

    /// The member table of `state`.
    pub fn from_members(state: &ClusterState) -> BTreeMap<NodeId, MemberEntry> {
        state
            .members
            .iter()
            .map(|(id, m)| {
                (*id, MemberEntry { name: m.info.name.clone(), peer_addr: m.info.peer_addr.clone(), state: m.state })
            })
            .collect()
    }

    /// Whether this replica scrapes `node`: always without a ring, else
    /// when the ring makes it the owner — or, in degraded mode, when the
    /// owner is one it cannot reach.
    pub fn scrapes(&self, node: &str) -> bool {
        match &self.mode {
            Mode::Single | Mode::NoRing(_) => true,
            Mode::Ring(ring) => ring.owner(node).is_some_and(|o| Some(o) == self.me || self.covers_for(o)),
        }
    }

    /// Whether this replica stands in for `owner` (degraded mode, owner unreachable).
    pub fn covers_for(&self, owner: NodeId) -> bool {
        self.fallback.is_some() && self.unreachable.contains(&owner)
    }

    /// The ring, shared, if owners are decided by one.
    pub fn ring_arc(&self) -> Option<Arc<Ring>> {
        match &self.mode {
            Mode::Ring(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// The ring, if owners are decided by one.
    pub fn ring(&self) -> Option<&Ring> {
        match &self.mode {
            Mode::Ring(r) => Some(r),
            _ => None,
        }
    }

    /// The owner of `node` by the ring.
    pub fn owner(&self, node: &str) -> Option<NodeId> {
        self.ring().and_then(|r| r.owner(node))
    }

    /// The owner of `node` at the previous epoch, when it was another member.
    pub fn previous_owner(&self, node: &str) -> Option<NodeId> {
        self.previous.as_ref().and_then(|r| r.owner(node)).filter(|p| Some(*p) != self.owner(node))
    }

    /// The member that backs `node` up (the next distinct member clockwise).
    pub fn successor(&self, node: &str) -> Option<NodeId> {
        self.ring().and_then(|r| r.successor(node))
    }

    /// The Active members (the ring), by id.
    pub fn active(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, m)| m.state == MemberState::Active).map(|(id, _)| *id)
    }

    /// A member's name, or its id in hex when unknown.
    pub fn name_of(&self, id: NodeId) -> String {
        self.members.get(&id).map_or_else(|| format!("{id:016x}"), |m| m.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::fixture::{active, name, state};

    #[test]
    fn with_a_ring_each_node_is_scraped_by_exactly_one_member() {
        let s = active(3);
        let views: Vec<Ownership> = (1..=3).map(|me| Ownership::from_state(me, &s)).collect();
        for i in 0..300 {
            let node = format!("node-{i}");
            let scrapers = views.iter().filter(|v| v.scrapes(&node)).count();
            assert_eq!(scrapers, 1, "{node}");
            assert_ne!(views[0].owner(&node), views[0].successor(&node));
        }
    }

    #[test]
    fn without_a_committed_ring_every_member_scrapes_every_node() {
        let s = state((1..=3).map(|id| (id, name(id), MemberState::Active)), None);
        let v = Ownership::from_state(1, &s);
        assert!(matches!(v.mode, Mode::NoRing(RingError::NotCommitted)));
        assert!(v.scrapes("node-0") && v.owner("node-0").is_none());
        assert!(Ownership::single().scrapes("anything"));
        assert_eq!(v.active().count(), 3);
    }
}
