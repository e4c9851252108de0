//! The ring: the one place that says who owns a kubelet and which members
//! hold copies of its points, computed from the committed ring parameters and
//! the Active members of a [`ClusterState`] alone (so every replica at one
//! epoch agrees). It must not look at clocks, informers or liveness, and must
//! not be bypassed: callers ask [`Ring::owner`] and [`Ring::holders`] instead
//! of hashing.
//!
//! Placement (hash version 1, see [`super::hash`]):
//! - virtual node `i` of the member named `name` sits at
//!   `hash64(name ++ [0xff] ++ (i as u32).to_le_bytes())` (0xff never occurs in
//!   UTF-8, so distinct `(name, i)` give distinct byte strings); the member's
//!   name, not its random node id, so a replica that comes back as a new
//!   incarnation keeps its arcs;
//! - a kubelet named `node` sits at `hash64(node)`;
//! - its owner is the first point at or after its position, wrapping past the
//!   largest point to the smallest (hashring's `get`);
//! - its holders, for a replication factor `rf`, are the first `rf` distinct
//!   members met walking clockwise from its position, the owner first (fewer
//!   when the ring has fewer members). With `rf` 2 the second holder is the
//!   member the previous release called the successor, so two releases
//!   sharing an epoch agree on it.
//!
//! Removing a member changes a kubelet's holders only if that member was one
//! of them, and then only by that member's place going to the next distinct
//! member clockwise: the copies the others hold stay where they are.
//!
//! Cost: the points twice (hashring's and one ordered copy for the walk),
//! members × vnodes × about 40 bytes: 1 MB at 3 members × 8,192. A lookup is a
//! binary search and a short walk (the expected walk to meet `rf` distinct
//! members among `m` is about `m · H(rf)` points).

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

/// The most copies of a kubelet's points a ring hands out (the owner's
/// included): [`Holders`] has room for this many.
pub const MAX_HOLDERS: usize = 7;

/// One Active member as the ring knows it.
#[derive(Debug)]
struct Entry {
    /// Its node id (what lookups return).
    id: NodeId,
    /// Its replica name (what its points are placed by).
    name: String,
    /// Its index in [`Ring::ids`], in name order.
    slot: usize,
}

/// The members that hold a kubelet's last points, the owner first, then the
/// next distinct members clockwise. A small fixed array: lookups allocate
/// nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Holders {
    ids: [NodeId; MAX_HOLDERS],
    len: usize,
}

impl Holders {
    /// No holder (an empty ring).
    pub const NONE: Holders = Holders { ids: [0; MAX_HOLDERS], len: 0 };

    /// The holders, the owner first.
    pub fn as_slice(&self) -> &[NodeId] {
        &self.ids[..self.len]
    }

    /// The owner (the first holder).
    pub fn owner(&self) -> Option<NodeId> {
        self.as_slice().first().copied()
    }

    /// Whether `id` is one of the holders.
    pub fn contains(&self, id: NodeId) -> bool {
        self.as_slice().contains(&id)
    }

    /// How many holders there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nobody holds the kubelet (an empty ring).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The holders other than the owner: where copies are pushed.
    pub fn copies(&self) -> &[NodeId] {
        self.as_slice().get(1..).unwrap_or(&[])
    }

    fn push(&mut self, id: NodeId) {
        if self.len < MAX_HOLDERS {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }
}

impl fmt::Debug for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice().iter().map(|id| format!("{id:016x}"))).finish()
    }
}

impl<'a> IntoIterator for &'a Holders {
    type Item = &'a NodeId;
    type IntoIter = std::slice::Iter<'a, NodeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
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

/// Owners and holders of kubelets at one epoch.
#[derive(Clone)]
pub struct Ring {
    /// The parameters the ring was built with.
    params: RingParams,
    /// The epoch of the state it was built from.
    epoch: u64,
    /// The Active members by node id.
    members: BTreeMap<NodeId, Arc<Entry>>,
    /// Every member's `params.vnodes` points: the authority for the owner.
    points: Points,
    /// The same points in ring order, as `(hash, slot)`, for the walk to the
    /// further holders.
    order: Vec<(u64, u32)>,
    /// Member ids by slot.
    ids: Vec<NodeId>,
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
        let mut points = HashRing::with_hasher(StableBuildHasher);
        points.batch_add(all);
        let order = points_of(&points).into_iter().map(|(h, v)| (h, v.member.slot as u32)).collect();
        let ids = entries.iter().map(|e| e.id).collect();
        let members = entries.into_iter().map(|e| (e.id, e)).collect();
        Ok(Ring { params, epoch, members, points, order, ids })
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

    /// The members that hold `node`'s last points at replication factor
    /// `rf`: its owner, then the next distinct members clockwise, `min(rf,
    /// members)` in all (at most [`MAX_HOLDERS`]); none on an empty ring.
    pub fn holders(&self, node: &str, rf: usize) -> Holders {
        let mut out = Holders::NONE;
        let Some(owner) = self.points.get(&NodeKey(node)) else { return out };
        out.push(owner.member.id);
        let want = rf.min(self.ids.len()).min(MAX_HOLDERS);
        if want <= 1 {
            return out;
        }
        let start = self.order.partition_point(|(h, _)| *h < hash64(node.as_bytes()));
        let (before, from_key) = self.order.split_at(start);
        for (_, slot) in from_key.iter().chain(before) {
            let id = self.ids[*slot as usize];
            if !out.contains(id) {
                out.push(id);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// The next distinct member clockwise from `node`'s owner (the second
    /// holder): who takes the node over first if the owner leaves. `None`
    /// with fewer than two members.
    pub fn successor(&self, node: &str) -> Option<NodeId> {
        self.holders(node, 2).as_slice().get(1).copied()
    }

    /// Verifies the ring's invariants: every point belongs to a member and
    /// sits where the specification says, in order and without collisions;
    /// each member has exactly `vnodes` points, numbered `0..vnodes`; the
    /// ordered copy used for the walk is exactly hashring's points; and for a
    /// fixed set of probe keys, at every replication factor up to
    /// [`MAX_HOLDERS`], the holders are the owner then the next distinct
    /// members clockwise (as a walk over hashring's own points finds them),
    /// distinct, `min(rf, members)` of them.
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
        let copy_matches = self.order.len() == sorted.len()
            && self.order.iter().zip(&sorted).all(|((h, slot), (h2, v))| {
                h == h2 && self.ids.get(*slot as usize) == Some(&v.member.id) && v.member.slot == *slot as usize
            });
        if !copy_matches {
            return fail("the ordered copy of the points differs from hashring's points".into());
        }
        let probes = self.members.values().map(|e| e.name.clone()).chain((0..64).map(|i| format!("node-{i}")));
        for node in probes {
            // Beyond the number of members every factor gives all of them.
            for rf in 1..=MAX_HOLDERS.min(self.members.len() + 1) {
                let want = walk(&sorted, hash64(node.as_bytes()), rf.min(self.members.len()));
                let got = self.holders(&node, rf);
                if got.as_slice() != want.as_slice() {
                    return fail(format!("{node}: holders at rf {rf} disagree with a walk over the points"));
                }
                if got.len() != rf.min(self.members.len()) {
                    return fail(format!(
                        "{node}: {} holders at rf {rf} with {} members",
                        got.len(),
                        self.members.len()
                    ));
                }
                if got.owner() != self.owner(&node) {
                    return fail(format!("{node}: the first holder is not the owner"));
                }
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

/// The first `rf` distinct members clockwise from the key at `k`, by walking
/// the sorted points one by one (no shortcut shared with [`Ring::holders`]).
fn walk(sorted: &[(u64, VNode)], k: u64, rf: usize) -> Vec<NodeId> {
    let start = sorted.partition_point(|(h, _)| *h < k);
    let mut out: Vec<NodeId> = Vec::new();
    for (_, v) in sorted[start..].iter().chain(&sorted[..start]) {
        if out.len() == rf {
            break;
        }
        if !out.contains(&v.member.id) {
            out.push(v.member.id);
        }
    }
    out
}
