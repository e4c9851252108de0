//! The failure detector's pure core: what we last heard from each member
//! ([`Liveness`]) and which state changes the leader should commit
//! ([`decide`]). Times are passed in, so it is tested without clocks.
//!
//! Every member heartbeats every other member, so every replica (not only the
//! leader) keeps this table; a new leader therefore judges members by when it
//! last heard from them, and a dead old leader is Down about one lease after
//! it died, not one lease after the election.
//!
//! Tables keyed by a sender's own id are bounded ([`bound`]): members and
//! Raft nodes are kept; anyone else ("strangers": retired incarnations, a
//! joiner not yet committed, or a sender making ids up) only while heard
//! within [`STRANGER_TTL`], and at most [`MAX_STRANGERS`] of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::network::wire::{Heartbeat, Readiness};
use crate::state::{ClusterState, MemberState, NodeId};

/// How long a sender that is neither a member nor a Raft node is remembered.
pub const STRANGER_TTL: Duration = Duration::from_secs(60);
/// How many such senders are remembered at most (the most recently heard).
pub const MAX_STRANGERS: usize = 64;

/// Bounds a table keyed by senders' ids: keeps every id `known` says is a
/// member (or Raft node), drops strangers not heard (`heard`) within
/// [`STRANGER_TTL`] of `now`, then the least recently heard strangers beyond
/// [`MAX_STRANGERS`].
pub fn bound<V>(
    map: &mut BTreeMap<NodeId, V>,
    known: impl Fn(NodeId) -> bool,
    heard: impl Fn(&V) -> Instant,
    now: Instant,
) {
    map.retain(|id, v| known(*id) || now.saturating_duration_since(heard(v)) < STRANGER_TTL);
    let mut strangers: Vec<(Instant, NodeId)> =
        map.iter().filter(|(id, _)| !known(**id)).map(|(id, v)| (heard(v), *id)).collect();
    if strangers.len() > MAX_STRANGERS {
        strangers.sort_unstable();
        let extra = strangers.len() - MAX_STRANGERS;
        for (_, id) in &strangers[..extra] {
            map.remove(id);
        }
    }
}

/// What was last heard from one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Last heartbeat of any kind.
    pub last: Instant,
    /// Last heartbeat that said scraping is healthy.
    pub last_good: Option<Instant>,
    /// Start of the current unbroken run of healthy heartbeats.
    pub good_since: Option<Instant>,
    /// The member said it is leaving.
    pub leaving: bool,
    /// The epoch at which the member said it holds the last points of the
    /// nodes it would own if made Active (a precondition of every way into
    /// Active); see [`Readiness`].
    pub ready: Option<u64>,
    /// The replication factor the member is configured with (`None` from a
    /// previous-release member).
    pub replication: Option<u32>,
    /// Kubelets the member owns and fails to scrape.
    pub failing: Vec<String>,
}

/// Liveness table of one replica.
#[derive(Debug, Clone)]
pub struct Liveness {
    /// When this replica started listening: members never heard from are
    /// treated as heard at this time, so a fresh leader gives them a full lease.
    pub since: Instant,
    /// Gap between heartbeats that breaks a healthy run.
    pub max_gap: Duration,
    /// Per member.
    pub seen: BTreeMap<NodeId, Seen>,
}

impl Liveness {
    /// An empty table started at `since`.
    pub fn new(since: Instant, max_gap: Duration) -> Liveness {
        Liveness { since, max_gap, seen: BTreeMap::new() }
    }

    /// Records the whole heartbeat `hb` from `id` at `now`.
    pub fn record_heartbeat(&mut self, id: NodeId, now: Instant, hb: &Heartbeat) {
        self.record(id, now, hb.scrape_healthy, hb.leaving, hb.ready_to_own);
        if let Some(entry) = self.seen.get_mut(&id) {
            entry.replication = hb.replication;
            entry.failing.clone_from(&hb.failing);
        }
    }

    /// Records a heartbeat from `id` at `now` (its liveness fields only).
    pub fn record(&mut self, id: NodeId, now: Instant, healthy: bool, leaving: bool, ready: Option<u64>) {
        let max_gap = self.max_gap;
        let entry = self.seen.entry(id).or_insert_with(|| Seen {
            last: now,
            last_good: None,
            good_since: None,
            leaving,
            ready,
            replication: None,
            failing: Vec::new(),
        });
        let gap = now.saturating_duration_since(entry.last);
        entry.good_since = match (healthy, entry.good_since) {
            (false, _) => None,
            (true, Some(t)) if gap <= max_gap => Some(t),
            (true, _) => Some(now),
        };
        if healthy {
            entry.last_good = Some(now);
        }
        entry.last = now;
        entry.leaving = leaving;
        entry.ready = ready;
    }

    /// Bounds the table (see [`bound`]).
    pub fn prune(&mut self, known: impl Fn(NodeId) -> bool, now: Instant) {
        bound(&mut self.seen, known, |s| s.last, now);
    }

    /// How long `id` has been silent or unhealthy at `now`.
    pub fn silence(&self, id: NodeId, now: Instant) -> Duration {
        let last_good = self.seen.get(&id).and_then(|s| s.last_good).unwrap_or(self.since).max(self.since);
        now.saturating_duration_since(last_good)
    }

    /// Whether `id` has been heard healthy, without a gap, for at least
    /// `hysteresis`, not leaving, and holding the points it would own at `epoch`.
    pub fn stable(&self, id: NodeId, now: Instant, hysteresis: Duration, epoch: u64) -> bool {
        self.seen.get(&id).is_some_and(|s| {
            !s.leaving
                && Readiness::holds(s.ready, epoch)
                && now.saturating_duration_since(s.last) <= self.max_gap
                && s.good_since.is_some_and(|t| now.saturating_duration_since(t) >= hysteresis)
        })
    }
}

/// When each member was last committed Down, for damping members that go
/// Down and come back over and over: each return within [`FLAP_WINDOW`]
/// doubles the time a member must be healthy before it is Active again.
#[derive(Debug, Clone, Default)]
pub struct Flaps {
    /// Down commits per member, oldest first, within the window.
    pub downs: BTreeMap<NodeId, Vec<Instant>>,
}

/// How far back Down commits count as flapping.
pub const FLAP_WINDOW: Duration = Duration::from_secs(300);
/// The longest hysteresis flapping can demand.
pub const MAX_HYSTERESIS: Duration = Duration::from_secs(60);

impl Flaps {
    /// Records that `id` was committed Down at `now`.
    pub fn down(&mut self, id: NodeId, now: Instant) {
        let v = self.downs.entry(id).or_default();
        v.retain(|t| now.saturating_duration_since(*t) < FLAP_WINDOW);
        v.push(now);
    }

    /// Forgets ids that are no longer members and Down commits older than the window.
    pub fn prune(&mut self, member: impl Fn(NodeId) -> bool, now: Instant) {
        self.downs.retain(|id, v| {
            v.retain(|t| now.saturating_duration_since(*t) < FLAP_WINDOW);
            member(*id) && !v.is_empty()
        });
    }

    /// Down commits of `id` within the window before `now`.
    pub fn recent(&self, id: NodeId, now: Instant) -> usize {
        self.downs.get(&id).map_or(0, |v| v.iter().filter(|t| now.saturating_duration_since(**t) < FLAP_WINDOW).count())
    }

    /// The hysteresis `id` must meet to become Active again: `base` after
    /// at most one recent Down, doubled for each further one, capped.
    pub fn hysteresis(&self, id: NodeId, now: Instant, base: Duration) -> Duration {
        let extra = self.recent(id, now).saturating_sub(1).min(16) as u32;
        base.saturating_mul(1 << extra).min(MAX_HYSTERESIS.max(base))
    }
}

/// Failure detector bounds.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Silent (or unhealthy) longer than this → Down.
    pub lease: Duration,
    /// Healthy at least this long → Active again.
    pub hysteresis: Duration,
}

/// The state changes the leader should commit now. `caught_up` says whether
/// a member's log is close enough to the leader's to own shards. Any member
/// silent for longer than the lease goes Down (a Joining or Draining one too:
/// a replica that dies mid-handoff must not stay Draining forever); every way
/// back into Active needs health for the (flap-damped) hysteresis, a caught-up
/// log, and the member saying it holds the points it would own.
pub fn decide(
    state: &ClusterState,
    live: &Liveness,
    flaps: &Flaps,
    now: Instant,
    bounds: Bounds,
    caught_up: impl Fn(NodeId) -> bool,
) -> Vec<(NodeId, MemberState)> {
    let mut changes = Vec::new();
    for (&id, m) in &state.members {
        let next = match m.state {
            MemberState::Active | MemberState::Joining | MemberState::Draining
                if live.silence(id, now) > bounds.lease =>
            {
                Some(MemberState::Down)
            }
            MemberState::Joining | MemberState::Down | MemberState::Draining
                if live.stable(id, now, flaps.hysteresis(id, now, bounds.hysteresis), state.epoch) && caught_up(id) =>
            {
                Some(MemberState::Active)
            }
            _ => None,
        };
        if let Some(s) = next {
            changes.push((id, s));
        }
    }
    if gathering(state, live, flaps, now, bounds, &changes) {
        changes.retain(|(_, s)| *s != MemberState::Active);
    }
    changes
}

/// How long members that qualify for Active wait, while no member is
/// Active, for the others that are heard from but do not qualify yet.
pub const COLD_START_GATHER: Duration = Duration::from_secs(2);

/// Whether the Active commits among `changes` wait: no member is Active
/// (a cold start of the whole cluster, or after every member went Down),
/// some member heard from within the heartbeat gap (or not heard from yet,
/// within that gap of this replica's start) and not leaving does not
/// qualify yet, and none of those that qualify has for [`COLD_START_GATHER`].
/// Replicas started together (a StatefulSet) finish their first lists
/// within a second or two of each other; a ring made of the first one
/// alone gives it every node, and the next epochs move two thirds of them
/// again, each move a handover or catch-up scrape while nothing is served.
fn gathering(
    state: &ClusterState,
    live: &Liveness,
    flaps: &Flaps,
    now: Instant,
    bounds: Bounds,
    changes: &[(NodeId, MemberState)],
) -> bool {
    if state.members.values().any(|m| m.state == MemberState::Active) {
        return false;
    }
    let joining: Vec<NodeId> = changes.iter().filter(|(_, s)| *s == MemberState::Active).map(|(id, _)| *id).collect();
    if joining.is_empty() {
        return false;
    }
    // A member never heard from counts as heard when this replica started
    // listening (as for its lease): a leader elected a moment ago waits for
    // the others' first heartbeats, one that has run a while does not.
    // Peers heard from that the state does not list yet count too: at a
    // cluster's first start the declared members join one per round.
    let ids: BTreeSet<NodeId> = state.members.keys().chain(live.seen.keys()).copied().collect();
    let heard_waiting = ids.iter().any(|id| {
        let (last, leaving) = live.seen.get(id).map_or((live.since, false), |s| (s.last, s.leaving));
        !joining.contains(id) && !leaving && now.saturating_duration_since(last) <= live.max_gap
    });
    let waited = joining.iter().any(|id| {
        let h = flaps.hysteresis(*id, now, bounds.hysteresis);
        live.stable(*id, now, h.saturating_add(COLD_START_GATHER), state.epoch)
    });
    heard_waiting && !waited
}

#[cfg(test)]
mod tests;
