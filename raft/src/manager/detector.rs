//! The failure detector's pure core: what we last heard from each member
//! ([`Liveness`]) and which state changes the leader should commit
//! ([`decide`]). Times are passed in, so it is tested without clocks.
//!
//! Every member heartbeats every other member, so every replica (not only the
//! leader) keeps this table; a new leader therefore judges members by when it
//! last heard from them, and a dead old leader is Down about one lease after
//! it died, not one lease after the election.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::state::{ClusterState, MemberState, NodeId};

/// What was last heard from one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Last heartbeat of any kind.
    pub last: Instant,
    /// Last heartbeat that said scraping is healthy.
    pub last_good: Option<Instant>,
    /// Start of the current unbroken run of healthy heartbeats.
    pub good_since: Option<Instant>,
    /// The member said it is leaving.
    pub leaving: bool,
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

    /// Records a heartbeat from `id` at `now`.
    pub fn record(&mut self, id: NodeId, now: Instant, healthy: bool, leaving: bool) {
        let max_gap = self.max_gap;
        let entry = self.seen.entry(id).or_insert(Seen { last: now, last_good: None, good_since: None, leaving });
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
    }

    /// How long `id` has been silent or unhealthy at `now`.
    pub fn silence(&self, id: NodeId, now: Instant) -> Duration {
        let last_good = self.seen.get(&id).and_then(|s| s.last_good).unwrap_or(self.since).max(self.since);
        now.saturating_duration_since(last_good)
    }

    /// Whether `id` has been heard healthy, without a gap, for at least `hysteresis`.
    pub fn stable(&self, id: NodeId, now: Instant, hysteresis: Duration) -> bool {
        self.seen.get(&id).is_some_and(|s| {
            !s.leaving
                && now.saturating_duration_since(s.last) <= self.max_gap
                && s.good_since.is_some_and(|t| now.saturating_duration_since(t) >= hysteresis)
        })
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
/// a member's log is close enough to the leader's to own shards.
pub fn decide(
    state: &ClusterState,
    live: &Liveness,
    now: Instant,
    bounds: Bounds,
    caught_up: impl Fn(NodeId) -> bool,
) -> Vec<(NodeId, MemberState)> {
    let mut changes = Vec::new();
    for (&id, m) in &state.members {
        let next = match m.state {
            MemberState::Active if live.silence(id, now) > bounds.lease => Some(MemberState::Down),
            MemberState::Joining | MemberState::Down | MemberState::Draining
                if live.stable(id, now, bounds.hysteresis) && caught_up(id) =>
            {
                Some(MemberState::Active)
            }
            _ => None,
        };
        if let Some(s) = next {
            changes.push((id, s));
        }
    }
    changes
}
