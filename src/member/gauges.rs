//! The Raft gauges in `/metrics` (`ha_metrics_server_raft_*`), refreshed
//! from the node's [`ClusterView`] once a second, and the count of peer
//! requests the node refused for who sent them
//! (`ha_metrics_server_peer_requests_refused_total{reason}`), brought up
//! to the node's own count at the same time, as are the body bytes of its
//! peer calls (`ha_metrics_server_peer_bytes_total{route,direction}`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use raft::{ClusterView, MemberState, Role};

/// Brings `counter` up to `count`, a total the node keeps itself (it only
/// grows, so the counter never has to go down).
fn raise_to(counter: &Counter, count: u64) {
    let shown = counter.get();
    if count > shown {
        counter.inc_by(count - shown);
    }
}

/// Raft gauges in `/metrics`.
#[derive(Clone, Default)]
pub struct RaftMetrics {
    is_leader: Gauge,
    term: Gauge,
    epoch: Gauge,
    members: Family<Vec<(&'static str, &'static str)>, Gauge<i64, std::sync::atomic::AtomicI64>>,
    role: Family<Vec<(&'static str, &'static str)>, Gauge>,
    last_applied: Gauge<i64, std::sync::atomic::AtomicI64>,
    fault: Family<Vec<(&'static str, &'static str)>, Gauge>,
    peer_refused: Family<Vec<(&'static str, &'static str)>, Counter>,
    peer_bytes: Family<Vec<(&'static str, String)>, Counter>,
}

impl RaftMetrics {
    /// Registers the gauges; call before the registry is shared.
    pub fn register(self, registry: &mut prometheus_client::registry::Registry) -> Self {
        registry.register(
            "ha_metrics_server_peer_requests_refused",
            "Peer requests refused because the client certificate does not name the sender the request claims \
             (reason: unknown_sender, not_the_sender, join_not_self, no_certificate)",
            self.peer_refused.clone(),
        );
        for reason in raft::network::bind::Refusal::ALL {
            let _ = self.peer_refused.get_or_create(&vec![("reason", reason.label())]);
        }
        registry.register(
            "ha_metrics_server_peer_bytes",
            "Body bytes of this replica's calls to its peers, by route: requests sent and replies received \
             (direction: sent, received; TLS and HTTP framing not counted)",
            self.peer_bytes.clone(),
        );
        let r = registry.sub_registry_with_prefix("ha_metrics_server_raft");
        r.register("is_leader", "1 on the Raft leader, 0 elsewhere", self.is_leader.clone());
        r.register("term", "Current Raft term", self.term.clone());
        r.register(
            "epoch",
            "Epoch of the committed ring membership (bumps on every Active-set change)",
            self.epoch.clone(),
        );
        r.register("members", "Ring members by state", self.members.clone());
        r.register("role", "1 for this replica's current Raft role", self.role.clone());
        r.register("last_applied_index", "Last applied Raft log index", self.last_applied.clone());
        r.register(
            "fault",
            "1 for the kind of fault that stopped this replica's Raft node (storage, raft_stopped, task_died)",
            self.fault.clone(),
        );
        self
    }

    /// Brings the refusal counters up to the node's counts (`(reason, count)`,
    /// as [`raft::Node::peer_refusals`] gives them; they only grow).
    pub fn count_refusals(&self, counts: &[(&'static str, u64)]) {
        for (reason, count) in counts {
            raise_to(&self.peer_refused.get_or_create(&vec![("reason", *reason)]), *count);
        }
    }

    /// Brings the peer byte counters up to the client's counts (`(route,
    /// sent, received)`, as [`raft::Node::peer_traffic`] gives them).
    pub fn count_traffic(&self, counts: &[(String, u64, u64)]) {
        for (route, sent, received) in counts {
            for (direction, count) in [("sent", *sent), ("received", *received)] {
                let labels = vec![("route", route.clone()), ("direction", direction.to_string())];
                raise_to(&self.peer_bytes.get_or_create(&labels), count);
            }
        }
    }

    /// Sets every gauge from one view and the node's fault.
    pub fn update(&self, s: &ClusterView, fault: Option<&raft::Fault>) {
        for kind in ["storage", "raft_stopped", "task_died"] {
            self.fault.get_or_create(&vec![("kind", kind)]).set(i64::from(fault.is_some_and(|f| f.kind() == kind)));
        }
        self.is_leader.set(i64::from(s.is_leader()));
        self.term.set(s.term as i64);
        self.epoch.set(s.epoch as i64);
        self.last_applied.set(s.last_applied.map_or(-1, |v| v as i64));
        for (state, label) in [
            (MemberState::Joining, "Joining"),
            (MemberState::Active, "Active"),
            (MemberState::Draining, "Draining"),
            (MemberState::Down, "Down"),
        ] {
            self.members.get_or_create(&vec![("state", label)]).set(s.count(state) as i64);
        }
        for (role, label) in [
            (Role::Leader, "Leader"),
            (Role::Follower, "Follower"),
            (Role::Candidate, "Candidate"),
            (Role::Learner, "Learner"),
            (Role::Stopped, "Stopped"),
        ] {
            self.role.get_or_create(&vec![("role", label)]).set(i64::from(s.role == role));
        }
    }
}
