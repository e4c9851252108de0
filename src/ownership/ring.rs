//! The ring: the one place that says who owns a kubelet and who is its
//! successor, computed from the committed ring parameters and the Active
//! members of a [`ClusterState`] alone (so every replica at one epoch agrees).
//! It must not look at clocks, informers or liveness, and must not be bypassed:
//! callers ask [`Ring::owner`] and [`Ring::successor`] instead of hashing.
//!
//! Placement (hash version 1, see [`super::hash`]):
//! - virtual node `i` of the member named `name` sits at
//!   `hash64(name ++ [0xff] ++ (i as u32).to_le_bytes())` (0xff never occurs in
//!   UTF-8, so distinct `(name, i)` give distinct byte strings); the member's
//!   name, not its random node id, so a replica that comes back as a new
//!   incarnation keeps its arcs;
//! - a kubelet named `node` sits at `hash64(node)`;
//! - its owner is the first point at or after its position, wrapping past the
//!   largest point to the smallest (hashring's `get`); its successor is the
//!   owner in the ring without that owner: the next distinct member clockwise.
//!
//! Cost: besides the ring itself, one ring per member without that member
//! (so a successor is one more binary search), so memory is about members² ×
//! vnodes × 24 bytes: 5 MB at 5 members × 8,192, 20 MB at 10.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use hashring::HashRing;
use raft::state::RingParams;
use raft::{ClusterState, NodeId};
use thiserror::Error;

use super::hash::{HASH_VERSION, StableBuildHasher, hash64};

/// The most virtual nodes per member a build accepts (memory and build time
/// grow with members² × vnodes).
pub const MAX_VNODES: u32 = 1 << 16;

/// Why no ring could be built; the replica then owns nothing and says why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RingError {
    /// The leader has not committed ring parameters yet.
    #[error(
        "no ring parameters are committed yet (the leader commits them once every member runs a build that has them)"
    )]
    NotCommitted,
    /// The committed hash version is not one this build implements.
    #[error(
        "the committed ring uses hash version {version}, but this build implements only version {known}; \
         upgrade this replica to a build that knows version {version}"
    )]
    UnknownHashVersion {
        /// The committed version.
        version: u32,
        /// The version this build implements.
        known: u32,
    },
    /// The committed virtual-node count is out of range.
    #[error("the committed ring has {vnodes} virtual nodes per member; this build accepts 1 to {MAX_VNODES}")]
    BadVnodes {
        /// The committed count.
        vnodes: u32,
    },
    /// Two members share a name, so they would share every point.
    #[error("ring members {first:016x} and {second:016x} are both named {name:?}; member names must be unique")]
    DuplicateName {
        /// The shared name.
        name: String,
        /// One member's node id.
        first: NodeId,
        /// The other member's node id.
        second: NodeId,
    },
    /// A node id was given twice.
    #[error("ring member {id:016x} is listed twice")]
    DuplicateId {
        /// The repeated id.
        id: NodeId,
    },
}

/// A built ring broke one of its invariants (see [`Ring::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("ring invariant violated: {0}")]
pub struct RingViolation(pub String);

/// One Active member as the ring knows it.
#[derive(Debug)]
struct Entry {
    /// Its node id (what lookups return).
    id: NodeId,
    /// Its replica name (what its points are placed by).
    name: String,
    /// Its index in [`Ring::without`].
    slot: usize,
}

/// One point on the ring: virtual node `index` of `member`.
#[derive(Debug, Clone)]
struct VNode {
    /// The member the point belongs to.
    member: Arc<Entry>,
    /// Which of the member's points it is, `0..vnodes`.
    index: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.member.name.as_bytes());
        h.write_u8(0xff);
        h.write_u32(self.index);
    }
}

/// A kubelet's key: its name's bytes and nothing else (std's `str` hash would
/// append a separator that std is free to change).
struct NodeKey<'a>(&'a str);

impl Hash for NodeKey<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.0.as_bytes());
    }
}

type Points = HashRing<VNode, StableBuildHasher>;

/// Owners and successors of kubelets at one epoch.
#[derive(Clone)]
pub struct Ring {
    /// The parameters the ring was built with.
    params: RingParams,
    /// The epoch of the state it was built from.
    epoch: u64,
    /// The Active members by node id.
    members: BTreeMap<NodeId, Arc<Entry>>,
    /// Every member's `params.vnodes` points.
    points: Points,
    /// `without[slot]`: the points of every member but the one at `slot`;
    /// the owner there of a key owned by that member is its successor.
    without: Vec<Points>,
}

impl Ring {
    /// The ring of `state`'s Active members under its committed parameters.
    pub fn from_state(state: &ClusterState) -> Result<Ring, RingError> {
        let params = state.ring.ok_or(RingError::NotCommitted)?;
        Ring::new(params, state.epoch, state.active().map(|(id, m)| (id, m.info.name.clone())))
    }

    /// The ring of explicit `(node id, name)` members (tests, tools); no
    /// members give an empty ring that owns nothing.
    pub fn new(
        params: RingParams,
        epoch: u64,
        members: impl IntoIterator<Item = (NodeId, String)>,
    ) -> Result<Ring, RingError> {
        if params.hash_version != HASH_VERSION {
            return Err(RingError::UnknownHashVersion { version: params.hash_version, known: HASH_VERSION });
        }
        if params.vnodes == 0 || params.vnodes > MAX_VNODES {
            return Err(RingError::BadVnodes { vnodes: params.vnodes });
        }
        let mut ids = BTreeSet::new();
        let mut by_name: BTreeMap<String, NodeId> = BTreeMap::new();
        for (id, name) in members {
            if !ids.insert(id) {
                return Err(RingError::DuplicateId { id });
            }
            if let Some(first) = by_name.insert(name.clone(), id) {
                return Err(RingError::DuplicateName { name, first, second: id });
            }
        }
        // Slots and points in name order, so the ring does not depend on the
        // order members were given in (hashring sorts stably by hash alone).
        let entries: Vec<Arc<Entry>> =
            by_name.into_iter().enumerate().map(|(slot, (name, id))| Arc::new(Entry { id, name, slot })).collect();
        let all: Vec<VNode> =
            entries.iter().flat_map(|e| (0..params.vnodes).map(|index| VNode { member: e.clone(), index })).collect();
        let build = |nodes: Vec<VNode>| {
            let mut ring = HashRing::with_hasher(StableBuildHasher);
            ring.batch_add(nodes);
            ring
        };
        let without =
            entries.iter().map(|e| build(all.iter().filter(|v| v.member.slot != e.slot).cloned().collect())).collect();
        let members = entries.into_iter().map(|e| (e.id, e)).collect();
        Ok(Ring { params, epoch, members, points: build(all), without })
    }

    /// The parameters the ring was built with.
    pub fn params(&self) -> RingParams {
        self.params
    }

    /// The epoch of the state the ring was built from.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The members, by node id, with their names.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.members.values().map(|e| (e.id, e.name.as_str()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there is no member, so nobody owns anything.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member that owns (scrapes) the kubelet `node`; `None` on an empty ring.
    pub fn owner(&self, node: &str) -> Option<NodeId> {
        self.points.get(&NodeKey(node)).map(|v| v.member.id)
    }

    /// The next distinct member clockwise from `node`'s owner: who takes the
    /// node over if the owner leaves, and who keeps its last point meanwhile.
    /// `None` with fewer than two members.
    pub fn successor(&self, node: &str) -> Option<NodeId> {
        let key = NodeKey(node);
        let owner = self.points.get(&key)?;
        self.without.get(owner.member.slot)?.get(&key).map(|v| v.member.id)
    }

    /// Verifies the ring's invariants: every point belongs to a member and
    /// sits where the specification says, in order and without collisions;
    /// each member has exactly `vnodes` points, numbered `0..vnodes`; each
    /// member's successor ring is the ring minus exactly that member; and for
    /// a fixed set of probe keys the owner is the first point clockwise, the
    /// successor the next distinct member, never the owner, and `None` only
    /// with one member.
    pub fn check(&self) -> Result<(), RingViolation> {
        let fail = |what: String| Err(RingViolation(what));
        let v = self.params.vnodes as usize;
        let sorted = points_of(&self.points);
        if sorted.len() != self.members.len() * v {
            return fail(format!("{} points for {} members × {v} vnodes", sorted.len(), self.members.len()));
        }
        let mut seen: BTreeMap<NodeId, BTreeSet<u32>> = BTreeMap::new();
        for pair in sorted.windows(2) {
            if pair[0].0 >= pair[1].0 {
                return fail(format!("points {:016x} and {:016x} are out of order or collide", pair[0].0, pair[1].0));
            }
        }
        for (hash, vnode) in &sorted {
            let m = &vnode.member;
            match self.members.get(&m.id) {
                Some(e) if Arc::ptr_eq(e, m) => {}
                _ => return fail(format!("point {hash:016x} belongs to {:016x}, not a member", m.id)),
            }
            let spec = hash64(&[m.name.as_bytes(), &[0xff], &vnode.index.to_le_bytes()].concat());
            if *hash != spec {
                return fail(format!("vnode {} of {} at {hash:016x}, specified at {spec:016x}", vnode.index, m.name));
            }
            if vnode.index >= self.params.vnodes || !seen.entry(m.id).or_default().insert(vnode.index) {
                return fail(format!("vnode {} of {} is out of range or repeated", vnode.index, m.name));
            }
        }
        if self.without.len() != self.members.len() {
            return fail(format!("{} successor rings for {} members", self.without.len(), self.members.len()));
        }
        for e in self.members.values() {
            let expected: Vec<u64> = sorted.iter().filter(|(_, p)| p.member.id != e.id).map(|(h, _)| *h).collect();
            let Some(ring) = self.without.get(e.slot) else { return fail(format!("{} has no slot", e.name)) };
            let got = points_of(ring);
            if got.iter().map(|(h, _)| *h).ne(expected.iter().copied()) || got.iter().any(|(_, p)| p.member.id == e.id)
            {
                return fail(format!("the ring without {} is not the ring minus its points", e.name));
            }
        }
        let probes = self.members.values().map(|e| e.name.clone()).chain((0..64).map(|i| format!("node-{i}")));
        for node in probes {
            let (owner, successor) = walk(&sorted, hash64(node.as_bytes()));
            if (self.owner(&node), self.successor(&node)) != (owner, successor) {
                return fail(format!("{node}: lookups disagree with a walk over the points"));
            }
            if successor.is_some() && successor == owner {
                return fail(format!("{node}: successor is the owner"));
            }
            if successor.is_none() && self.members.len() > 1 {
                return fail(format!("{node}: no successor with {} members", self.members.len()));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("params", &self.params)
            .field("epoch", &self.epoch)
            .field("members", &self.members().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The points of `ring` in ring order (smallest hash first), with their
/// hashes. hashring 0.3.6 lists its points only through `into_iter`, which
/// exists for its default SipHash builder alone, or through
/// `get_with_replicas(key, len - 1)`: the whole ring, cloned, rotated to the
/// key. Fine for `check()`; lookups never call it.
fn points_of(ring: &Points) -> Vec<(u64, VNode)> {
    let all = ring.get_with_replicas(&NodeKey(""), ring.len().saturating_sub(1)).unwrap_or_default();
    let mut points: Vec<(u64, VNode)> = all.into_iter().map(|v| (StableBuildHasher.hash_one(&v), v)).collect();
    let wrap = points.windows(2).position(|w| w[0].0 > w[1].0).map_or(0, |i| i + 1);
    points.rotate_left(wrap);
    points
}

/// Owner and successor of the key at `k` by walking the sorted points.
fn walk(sorted: &[(u64, VNode)], k: u64) -> (Option<NodeId>, Option<NodeId>) {
    let start = sorted.partition_point(|(h, _)| *h < k);
    let mut clockwise = sorted[start..].iter().chain(&sorted[..start]).map(|(_, v)| v.member.id);
    let owner = clockwise.next();
    (owner, clockwise.find(|id| Some(*id) != owner))
}
