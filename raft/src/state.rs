//! The replicated cluster state (`ClusterState`) and the commands that change
//! it. Pure data and a pure `apply`: no I/O, no clocks, no openraft types, so
//! the invariants (epoch monotonic, one state per member, epoch bumps exactly
//! when the Active set or the ring parameters change) are tested without a
//! cluster. What the ring parameters mean is the server's `ownership` module's
//! business; this module only stores them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Raft node id of one incarnation of a replica: random 64 bits chosen when
/// the replica starts with an empty data dir, so a wiped replica never reuses
/// the id (or the vote) of its previous incarnation.
pub type NodeId = u64;

/// Where a member lives and what it is called; what a joining replica declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Stable replica name (StatefulSet pod name); survives restarts and wipes.
    pub name: String,
    /// Address of the replica's metrics API (`host:port`) as it can be
    /// reached (not a wildcard bind address). Informational, for operators
    /// and `cluster`: replicas talk to each other over `peer_addr` only.
    pub api_addr: String,
    /// Address of the replica's peer listener (`host:port`), for Raft and peer RPCs.
    pub peer_addr: String,
}

impl fmt::Display for MemberInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_addr)
    }
}

/// Where a member stands in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberState {
    /// Known and catching up (log and last points); not yet an owner.
    Joining,
    /// Owns its share of the ring.
    Active,
    /// Leaving the ring on purpose (SIGTERM); still answering and handing over.
    Draining,
    /// Silent (or unhealthy) for longer than the lease; its shards moved to successors.
    Down,
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Joining => "Joining",
            MemberState::Active => "Active",
            MemberState::Draining => "Draining",
            MemberState::Down => "Down",
        })
    }
}

/// One member of the ring: one incarnation of a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable name and addresses.
    pub info: MemberInfo,
    /// Current ring state.
    pub state: MemberState,
    /// How many times a replica of this name has joined with a fresh data dir
    /// (1 for the first); a higher incarnation replaces (retires) a lower one.
    pub incarnation: u64,
}

/// A member that left for good (replaced by a newer incarnation, or scaled
/// down). Kept as a tombstone so a stale process with that id is never
/// readmitted; the leader removes it from the Raft membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The replica name it had.
    pub name: String,
    /// The incarnation it had.
    pub incarnation: u64,
}

/// How the ring turns members and kubelet names into owners. Committed in the
/// state (as Garage keeps its layout parameters inside the layout) so that two
/// builds sharing an epoch during a rolling update compute the same owners, or
/// a build that does not know the parameters refuses to own anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingParams {
    /// Which specified hash function places members and kubelets on the ring
    /// (1: FNV-1a 64 with the SplitMix64 finaliser). A build that does not
    /// know the version owns nothing rather than guessing.
    pub hash_version: u32,
    /// Virtual nodes (points on the ring) per Active member; more points give
    /// a more even split and cost memory and build time.
    pub vnodes: u32,
}

impl RingParams {
    /// The parameters this build's leader commits: hash version 1 and 8,192
    /// virtual nodes per member, the fewest that keep max/mean ≤ 1.05 over
    /// 10,000 nodes at 3–5 members (measured: ≤ 1.033; 4,096 give 1.052, and
    /// 16,384 no better while doubling memory, which grows as members² ×
    /// vnodes). Beyond that the keys' own sampling noise (σ ≈ 2 % at 5
    /// members) dominates.
    pub const CURRENT: RingParams = RingParams { hash_version: 1, vnodes: 8_192 };
}

impl Default for RingParams {
    fn default() -> Self {
        RingParams::CURRENT
    }
}

impl fmt::Display for RingParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hash v{}, {} vnodes", self.hash_version, self.vnodes)
    }
}

/// The committed ring membership every replica agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Bumped exactly once by every committed entry that changes the set of
    /// Active members or the ring parameters; owners of kubelets depend only
    /// on it.
    pub epoch: u64,
    /// Current members by node id (at most one per name).
    pub members: BTreeMap<NodeId, Member>,
    /// Incarnations that left for good, by node id.
    pub retired: BTreeMap<NodeId, Retired>,
    /// The ring parameters; `None` until the leader commits them, and until
    /// then nobody owns anything.
    pub ring: Option<RingParams>,
    /// How many members hold each kubelet's last points, the owner included
    /// (capped by the ring at the number of Active members). `None` until the
    /// leader commits it, which it does only once every member speaks the
    /// protocol that carries it; until then the previous release's rule
    /// holds: the owner and one successor ([`ClusterState::LEGACY_REPLICATION`]).
    pub replication: Option<u32>,
    /// Per member, the kubelets it holds and has reported failing to scrape
    /// (each list sorted, at most [`ClusterState::MAX_FAILING`]; members
    /// without any are absent). The ownership view reads it to decide who
    /// scrapes a node in its owner's place, so all replicas agree on it.
    /// Changing it does not bump the epoch: owners and holders stay.
    pub failing: BTreeMap<NodeId, Vec<String>>,
}

/// [`ClusterState`] as protocol version 3 first encoded it (before the
/// failing kubelets), so snapshots written by that build still load.
#[derive(Deserialize)]
struct ClusterStateV3 {
    epoch: u64,
    members: BTreeMap<NodeId, Member>,
    retired: BTreeMap<NodeId, Retired>,
    ring: Option<RingParams>,
    replication: Option<u32>,
}

/// [`ClusterState`] as protocol version 2 encoded it (before the
/// replication factor), so snapshots written or sent by that release still load.
#[derive(Deserialize)]
struct ClusterStateV2 {
    epoch: u64,
    members: BTreeMap<NodeId, Member>,
    retired: BTreeMap<NodeId, Retired>,
    ring: Option<RingParams>,
}

impl ClusterState {
    /// The replication factor while none is committed: the owner and its
    /// successor, as the release before the replication factor kept them.
    pub const LEGACY_REPLICATION: u32 = 2;

    /// Most failing kubelets kept per member (as many as one heartbeat carries).
    pub const MAX_FAILING: usize = crate::network::wire::MAX_FAILING;

    /// Decodes a snapshot of the state, in this release's encoding or an
    /// earlier one's: protocol 2's lacks `replication` (it loads with `None`,
    /// and the leader commits the factor once every member speaks this
    /// release's protocol), the first protocol-3 encoding lacks `failing`
    /// (it loads with none).
    pub fn decode(bytes: &[u8]) -> std::io::Result<ClusterState> {
        let current = match crate::codec::decode::<ClusterState>(bytes) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        if let Ok(v3) = crate::codec::decode::<ClusterStateV3>(bytes) {
            return Ok(ClusterState {
                epoch: v3.epoch,
                members: v3.members,
                retired: v3.retired,
                ring: v3.ring,
                replication: v3.replication,
                failing: BTreeMap::new(),
            });
        }
        match crate::codec::decode::<ClusterStateV2>(bytes) {
            Ok(v2) => Ok(ClusterState {
                epoch: v2.epoch,
                members: v2.members,
                retired: v2.retired,
                ring: v2.ring,
                replication: None,
                failing: BTreeMap::new(),
            }),
            Err(_) => Err(current),
        }
    }

    /// The kubelets member `id` has reported failing to scrape (sorted).
    pub fn failing_of(&self, id: NodeId) -> &[String] {
        self.failing.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The replication factor in force: the committed one, else
    /// [`ClusterState::LEGACY_REPLICATION`].
    pub fn replication_factor(&self) -> u32 {
        self.replication.unwrap_or(ClusterState::LEGACY_REPLICATION)
    }

    /// Ids of the Active members (the ring).
    pub fn active_ids(&self) -> BTreeSet<NodeId> {
        self.members.iter().filter(|(_, m)| m.state == MemberState::Active).map(|(id, _)| *id).collect()
    }

    /// The Active members with their info, sorted by node id.
    pub fn active(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().filter(|(_, m)| m.state == MemberState::Active).map(|(id, m)| (*id, m))
    }

    /// The current member with this name, if any.
    pub fn by_name(&self, name: &str) -> Option<(NodeId, &Member)> {
        self.members.iter().find(|(_, m)| m.info.name == name).map(|(id, m)| (*id, m))
    }

    /// Number of members in `state`.
    pub fn count(&self, state: MemberState) -> usize {
        self.members.values().filter(|m| m.state == state).count()
    }

    /// Applies one command; bumps `epoch` once if the Active set, the ring
    /// parameters or the replication factor changed (anything that can
    /// change an owner or a holder).
    pub fn apply(&mut self, cmd: &Command) -> CommandResult {
        let before = self.active_ids();
        let ring_before = self.ring;
        let replication_before = self.replication;
        let outcome = match cmd {
            Command::Join { id, info } => self.join(*id, info),
            Command::SetStates(changes) => {
                for (id, state) in changes {
                    if let Some(m) = self.members.get_mut(id) {
                        m.state = *state;
                    }
                }
                Ok(())
            }
            Command::Retire { id } => {
                if let Some(m) = self.members.remove(id) {
                    self.retired.insert(*id, Retired { name: m.info.name, incarnation: m.incarnation });
                }
                Ok(())
            }
            Command::SetRing(params) => {
                self.ring = Some(*params);
                Ok(())
            }
            Command::SetReplication(factor) => {
                if *factor == 0 {
                    Err("a replication factor of 0 would leave nodes without a holder".to_string())
                } else {
                    self.replication = Some(*factor);
                    Ok(())
                }
            }
            Command::SetFailing(reports) => {
                for (id, nodes) in reports {
                    if !self.members.contains_key(id) {
                        continue;
                    }
                    let mut nodes = nodes.clone();
                    nodes.sort_unstable();
                    nodes.dedup();
                    nodes.truncate(Self::MAX_FAILING);
                    if nodes.is_empty() {
                        self.failing.remove(id);
                    } else {
                        self.failing.insert(*id, nodes);
                    }
                }
                Ok(())
            }
        };
        // A member that left (retired, replaced) reports nothing any more.
        let members = &self.members;
        self.failing.retain(|id, _| members.contains_key(id));
        self.bound_retired();
        if self.active_ids() != before || self.ring != ring_before || self.replication != replication_before {
            self.epoch += 1;
        }
        CommandResult { epoch: self.epoch, refused: outcome.err() }
    }

    /// Tombstones kept per replica name: the newest incarnations. A process
    /// of an older one would have had to sit out this many restarts with a
    /// wiped data dir to come back, and if it did, it joins as the newest
    /// incarnation of its name (retiring the current one), which the
    /// failure detector then treats like any restart.
    pub const RETIRED_PER_NAME: usize = 8;

    /// Keeps the tombstones bounded: the newest [`Self::RETIRED_PER_NAME`]
    /// incarnations per name (deterministic: by incarnation, then id).
    fn bound_retired(&mut self) {
        let mut by_name: BTreeMap<&str, Vec<(u64, NodeId)>> = BTreeMap::new();
        for (id, r) in &self.retired {
            by_name.entry(r.name.as_str()).or_default().push((r.incarnation, *id));
        }
        let drop: Vec<NodeId> = by_name
            .into_values()
            .filter(|v| v.len() > Self::RETIRED_PER_NAME)
            .flat_map(|mut v| {
                v.sort_unstable_by(|a, b| b.cmp(a));
                v.split_off(Self::RETIRED_PER_NAME).into_iter().map(|(_, id)| id)
            })
            .collect();
        for id in drop {
            self.retired.remove(&id);
        }
    }

    fn join(&mut self, id: NodeId, info: &MemberInfo) -> Result<(), String> {
        if let Some(r) = self.retired.get(&id) {
            return Err(format!("node {id:016x} ({}) was retired; restart it with an empty data dir", r.name));
        }
        if let Some(m) = self.members.get_mut(&id) {
            if m.info.name != info.name {
                return Err(format!("node {id:016x} is already member {}, not {}", m.info.name, info.name));
            }
            m.info = info.clone();
            return Ok(());
        }
        let older: Vec<NodeId> =
            self.members.iter().filter(|(_, m)| m.info.name == info.name).map(|(id, _)| *id).collect();
        let last = self
            .members
            .values()
            .filter(|m| m.info.name == info.name)
            .map(|m| m.incarnation)
            .chain(self.retired.values().filter(|r| r.name == info.name).map(|r| r.incarnation))
            .max()
            .unwrap_or(0);
        for old in older {
            if let Some(m) = self.members.remove(&old) {
                self.retired.insert(old, Retired { name: m.info.name, incarnation: m.incarnation });
            }
        }
        self.members.insert(id, Member { info: info.clone(), state: MemberState::Joining, incarnation: last + 1 });
        Ok(())
    }
}

/// A change to the cluster state, proposed by the leader's membership manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A replica incarnation joins as `Joining`; an older incarnation of the
    /// same name is retired. Re-joining with the same id only updates addresses.
    Join {
        /// The joining incarnation.
        id: NodeId,
        /// Its name and addresses.
        info: MemberInfo,
    },
    /// Sets the state of several members at once (unknown ids are ignored).
    SetStates(Vec<(NodeId, MemberState)>),
    /// Removes a member for good (scale-down after draining).
    Retire {
        /// The member to retire.
        id: NodeId,
    },
    /// Commits the ring parameters (the same parameters again change nothing).
    SetRing(RingParams),
    /// Commits the replication factor (the same factor again changes
    /// nothing; 0 is refused). Last variant, so entries written before it
    /// existed still decode; committed only once every member speaks the
    /// protocol that introduced it (a member that cannot decode it would stop).
    SetReplication(u32),
    /// Sets what each listed member reports failing to scrape (its whole
    /// list, replacing the one committed; empty clears it; unknown members
    /// are ignored; lists are sorted and bounded by
    /// [`ClusterState::MAX_FAILING`]). Does not change the epoch. Last
    /// variant, so a build without it refuses the entry rather than
    /// misreading it; committed only once every member speaks the protocol
    /// whose heartbeats carry the lists.
    SetFailing(Vec<(NodeId, Vec<String>)>),
}

#[cfg(test)]
mod tests;

/// What applying a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The epoch after the command.
    pub epoch: u64,
    /// Why the command was refused (state unchanged), if it was.
    pub refused: Option<String>,
}
