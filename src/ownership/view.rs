//! [`Ownership`]: what one replica acts on at one committed epoch — whether
//! it scrapes a node, who owns a node and who holds copies of its points,
//! who the members are and where to reach them, and which of them it cannot
//! reach. Built purely from the committed [`ClusterState`] (or for a replica
//! without `--peers`) plus the liveness the shell observes; the shell
//! follows the state and publishes a new view per change.
//!
//! Who scrapes a node: its *assigned* scraper, the first of its holders in
//! ring order that has not reported failing to scrape it (committed in
//! [`ClusterState::failing`], so every replica agrees), or the owner when
//! every holder has (nobody reaches the kubelet; the owner keeps trying).
//! While the assigned scraper cannot be reached, the first holder in that
//! order this replica can reach scrapes it (a holder serves the copies it
//! has at once and extends them with its own scrapes), or, in degraded
//! mode, this replica whatever its place. Duplicates are allowed while
//! members disagree about who is reachable; gaps are not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use raft::{ClusterState, MemberState, NodeId};

use super::ring::{Holders, Ring, RingError};

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
    /// How many members hold each node's points (committed; the ring caps
    /// it at the number of Active members).
    pub replication: usize,
    /// The ring and replication factor of the epoch before this one: the
    /// previous holders of a node that just moved still hold its points
    /// until the handover lands.
    pub previous: Option<(Arc<Ring>, usize)>,
    /// When this replica started acting on this epoch, or on the last
    /// change of who scrapes what within it (committed failing reports):
    /// answers look wider for a while after either.
    pub since: std::time::Instant,
    /// Per member, the kubelets it reported failing to scrape (committed,
    /// each list sorted): a holder that fails a node is passed over.
    pub failing: Arc<BTreeMap<NodeId, Vec<String>>>,
    /// Started with peers and nothing committed yet (epoch 0), within the
    /// grace the member loop gives a start (`member::GRACE_LEASES` leases): a
    /// newcomer about to receive the ring of a cluster that already scrapes
    /// every kubelet, or a replica of a new cluster about to bootstrap one.
    /// It scrapes nothing yet, instead of scraping every node once more on
    /// its way in; with no ring by the end of the grace it scrapes every
    /// node (no ring: duplicates allowed, gaps not).
    pub joining: bool,
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
            replication: 1,
            previous: None,
            since: std::time::Instant::now(),
            failing: Arc::default(),
            joining: false,
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
            replication: state.replication_factor() as usize,
            previous: None,
            since: std::time::Instant::now(),
            failing: Arc::new(state.failing.clone()),
            joining: false,
        }
    }

    /// This view with the member table and the failing kubelets of `state`,
    /// committed at the same epoch (the ring and holders are unchanged).
    pub fn refreshed(&self, state: &ClusterState) -> Ownership {
        let moved = state.failing != *self.failing;
        Ownership {
            members: Ownership::from_members(state),
            failing: if moved { Arc::new(state.failing.clone()) } else { self.failing.clone() },
            since: if moved { std::time::Instant::now() } else { self.since },
            ..self.clone()
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

    /// Whether member `id` reported failing to scrape `node` (committed).
    pub fn reports_failing(&self, id: NodeId, node: &str) -> bool {
        self.failing.get(&id).is_some_and(|l| l.binary_search_by(|n| n.as_str().cmp(node)).is_ok())
    }

    /// The member that scrapes `node` by the committed state alone (see the
    /// module doc); `None` without a ring.
    pub fn assigned(&self, node: &str) -> Option<NodeId> {
        self.assigned_of(&self.holders(node), node)
    }

    /// Whether this replica scrapes `node`: always without a ring (unless
    /// still [`Ownership::joining`]), else when it is the assigned scraper
    /// or [`Ownership::covers`] it.
    pub fn scrapes(&self, node: &str) -> bool {
        match &self.mode {
            Mode::Single => true,
            Mode::NoRing(_) => !self.joining,
            Mode::Ring(_) => self.scrapes_with(&self.holders(node), node),
        }
    }

    /// Whether this replica scrapes `node` in its assigned scraper's place:
    /// that member cannot be reached and this replica is the first holder
    /// (in scrape order) it can reach, or, in degraded mode, it can reach
    /// no holder at all. A degraded replica that reaches a holder before it
    /// leaves the node to that one, as a synced one does: a replica
    /// restarted beside a survivor (not yet caught up, so degraded) would
    /// otherwise scrape the third member's nodes along with the survivor
    /// and that member itself, three scrapes a period.
    pub fn covers(&self, node: &str) -> bool {
        let holders = self.holders(node);
        self.assigned_of(&holders, node).is_some_and(|a| Some(a) != self.me) && self.scrapes_with(&holders, node)
    }

    /// Whether this replica is the assigned scraper of `node` although it
    /// does not own it: the owner (and any holder before this one) reported
    /// failing to reach the kubelet.
    pub fn stands_in(&self, node: &str) -> bool {
        let holders = self.holders(node);
        self.me.is_some() && holders.owner() != self.me && self.assigned_of(&holders, node) == self.me
    }

    /// Whether every holder of `node` reported failing to scrape it: nobody
    /// reaches its kubelet (as far as the committed state says).
    pub fn kubelet_unreachable(&self, node: &str) -> bool {
        let holders = self.holders(node);
        !holders.is_empty() && holders.as_slice().iter().all(|h| self.reports_failing(*h, node))
    }

    /// Whether this replica's own report of `node` can change who scrapes
    /// it: it holds the node and every holder before it in ring order
    /// reported failing it (the owner's report always matters). A report
    /// that does not matter is dropped, so a holder that cannot reach a
    /// kubelet the owner reaches does not keep trying it.
    pub fn report_matters(&self, node: &str) -> bool {
        let Some(me) = self.me else { return false };
        let holders = self.holders(node);
        holders.contains(me)
            && holders.as_slice().iter().take_while(|h| **h != me).all(|h| self.reports_failing(*h, node))
    }

    /// The member that scrapes `node` as this replica sees it: its assigned
    /// scraper, or, when that one cannot be reached, the first holder (in
    /// scrape order) that can, as [`Ownership::covers`] decides; `None`
    /// when there is no ring or no holder can be reached.
    pub fn scraper(&self, node: &str) -> Option<NodeId> {
        self.scraper_with(&self.holders(node), node)
    }

    /// [`Ownership::scraper`] among `holders`, the holders of `node`.
    pub fn scraper_with(&self, holders: &Holders, node: &str) -> Option<NodeId> {
        let assigned = self.assigned_of(holders, node)?;
        if Some(assigned) == self.me || !self.unreachable.contains(&assigned) {
            return Some(assigned);
        }
        self.first_reachable(holders, node)
    }

    /// Whether this replica scrapes `node` (whose holders are `holders`) on
    /// a ring: it is the node's [`Ownership::scraper`], or no holder can be
    /// reached and it is degraded.
    fn scrapes_with(&self, holders: &Holders, node: &str) -> bool {
        match self.scraper_with(holders, node) {
            Some(s) => Some(s) == self.me,
            // No holder can be reached: in degraded mode every replica that
            // cannot reach one scrapes the node (twice is better than never);
            // otherwise the node waits for the Down commit.
            None => self.fallback.is_some() && !holders.is_empty(),
        }
    }

    /// The first holder of `node` this replica can reach (itself included),
    /// those that do not report failing it first, in ring order.
    fn first_reachable(&self, holders: &Holders, node: &str) -> Option<NodeId> {
        let reachable = |h: &&NodeId| Some(**h) == self.me || !self.unreachable.contains(*h);
        let in_order = holders.as_slice().iter().filter(|h| !self.reports_failing(**h, node));
        let then_failing = holders.as_slice().iter().filter(|h| self.reports_failing(**h, node));
        in_order.chain(then_failing).find(reachable).copied()
    }

    fn assigned_of(&self, holders: &Holders, node: &str) -> Option<NodeId> {
        holders.as_slice().iter().find(|h| !self.reports_failing(**h, node)).copied().or(holders.owner())
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

    /// The members that hold `node`'s points, the owner first; none without a ring.
    pub fn holders(&self, node: &str) -> Holders {
        self.ring().map_or(Holders::NONE, |r| r.holders(node, self.replication))
    }

    /// The holders of `node` at the previous epoch (none if there was none).
    pub fn previous_holders(&self, node: &str) -> Holders {
        self.previous.as_ref().map_or(Holders::NONE, |(r, rf)| r.holders(node, *rf))
    }

    /// Whether `id` may send points of `node`: a holder at this epoch or the
    /// previous one (a handover or a copy in flight across the change).
    pub fn may_hold(&self, id: NodeId, node: &str) -> bool {
        self.holders(node).contains(id) || self.previous_holders(node).contains(id)
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
    use raft::Command;
    use raft::fixture::{active, name, state};

    #[test]
    fn with_a_ring_each_node_is_scraped_by_exactly_one_member() {
        let s = active(3);
        let views: Vec<Ownership> = (1..=3).map(|me| Ownership::from_state(me, &s)).collect();
        for i in 0..300 {
            let node = format!("node-{i}");
            let scrapers = views.iter().filter(|v| v.scrapes(&node)).count();
            assert_eq!(scrapers, 1, "{node}");
            let holders = views[0].holders(&node);
            assert_eq!(holders.len(), 2, "the legacy factor until one is committed");
            assert_eq!(holders.owner(), views[0].owner(&node));
        }
    }

    /// Views of members `1..=n` at factor `rf` in which `dead` cannot be reached.
    fn views_without(n: u64, rf: u32, dead: &[u64]) -> Vec<Ownership> {
        let mut s = active(n);
        s.apply(&Command::SetReplication(rf));
        (1..=n)
            .filter(|me| !dead.contains(me))
            .map(|me| {
                let mut v = Ownership::from_state(me, &s);
                v.unreachable = dead.iter().copied().collect();
                v
            })
            .collect()
    }

    #[test]
    fn an_unreachable_owners_nodes_are_scraped_by_exactly_its_first_reachable_holder() {
        for (n, rf, dead) in [(3, 2, vec![2]), (3, 3, vec![1]), (5, 3, vec![1, 4]), (5, 2, vec![3])] {
            let views = views_without(n, rf, &dead);
            for i in 0..300 {
                let node = format!("node-{i}");
                let holders = views[0].holders(&node);
                let alive_holder = holders.as_slice().iter().any(|h| !dead.contains(h));
                let scrapers = views.iter().filter(|v| v.scrapes(&node)).count();
                // With no holder left, nobody has a copy to extend: the node
                // waits for the Down commit (a new ring) like before.
                assert_eq!(scrapers, usize::from(alive_holder), "{node} holders {holders:?} dead {dead:?}");
            }
        }
    }

    #[test]
    fn a_survivor_of_two_lost_replicas_scrapes_every_node_at_factor_three() {
        let views = views_without(3, 3, &[1, 2]);
        assert_eq!(views.len(), 1);
        assert!((0..300).all(|i| views[0].scrapes(&format!("node-{i}"))));
    }

    #[test]
    fn in_degraded_mode_a_node_none_of_whose_holders_can_be_reached_is_scraped_by_every_replica() {
        let mut views = views_without(5, 2, &[1, 4]);
        for v in &mut views {
            v.fallback = Some(Fallback::QuorumLost);
        }
        let mut orphaned = 0;
        for i in 0..300 {
            let node = format!("node-{i}");
            let holders = views[0].holders(&node);
            if holders.as_slice().iter().all(|h| [1, 4].contains(h)) {
                orphaned += 1;
                assert!(views.iter().all(|v| v.scrapes(&node)), "{node}");
            }
        }
        assert!(orphaned > 0, "some node has both its holders among the dead");
    }

    #[test]
    fn in_degraded_mode_a_node_with_a_reachable_holder_is_scraped_by_that_holder_alone() {
        for (n, rf, dead) in [(3, 3, vec![2]), (5, 2, vec![1]), (5, 3, vec![1, 4])] {
            let mut views = views_without(n, rf, &dead);
            for v in &mut views {
                v.fallback = Some(Fallback::Unsynced);
            }
            for i in 0..300 {
                let node = format!("node-{i}");
                let holders = views[0].holders(&node);
                if holders.as_slice().iter().any(|h| !dead.contains(h)) {
                    let scrapers = views.iter().filter(|v| v.scrapes(&node)).count();
                    assert_eq!(scrapers, 1, "{node} holders {holders:?} dead {dead:?}");
                }
            }
        }
    }

    #[test]
    fn without_a_committed_ring_every_member_scrapes_every_node() {
        let s = state((1..=3).map(|id| (id, name(id), MemberState::Active)), None);
        let v = Ownership::from_state(1, &s);
        assert!(matches!(v.mode, Mode::NoRing(RingError::NotCommitted)));
        assert!(v.scrapes("node-0") && v.owner("node-0").is_none());
        assert!(Ownership::single().scrapes("anything"));
        let joining = Ownership { joining: true, ..v.clone() };
        assert!(!joining.scrapes("node-0"), "a replica waiting for its first ring scrapes nothing yet");
        assert_eq!(v.active().count(), 3);
    }
}

#[cfg(test)]
mod failing_tests;
