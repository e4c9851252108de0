//! What one member does at one epoch: the kubelets it owns (scrapes) and the
//! kubelets it backs up (their successor is this member, so it keeps their
//! last points), and what changed between two plans (for the scheduler and
//! handover logs). Pure; it asks the [`Ring`] who owns what and must never
//! decide that itself.

use std::collections::BTreeSet;

use raft::NodeId;

use super::ring::Ring;

/// One member's share of the kubelets at one epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The epoch of the ring the plan was computed from.
    pub epoch: u64,
    /// Kubelets this member owns and scrapes.
    pub owned: BTreeSet<String>,
    /// Kubelets whose successor is this member: it keeps their owner's
    /// newest points and takes them over if the owner leaves.
    pub backups: BTreeSet<String>,
}

impl Plan {
    /// The plan of member `me` over the kubelets `nodes` (a member not on the
    /// ring owns and backs up nothing).
    pub fn for_member<I>(me: NodeId, ring: &Ring, nodes: I) -> Plan
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut plan = Plan { epoch: ring.epoch(), ..Plan::default() };
        for node in nodes {
            let node = node.as_ref();
            if ring.owner(node) == Some(me) {
                plan.owned.insert(node.to_string());
            } else if ring.successor(node) == Some(me) {
                plan.backups.insert(node.to_string());
            }
        }
        plan
    }
}

/// How a member's owned kubelets changed from one plan to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// The epoch of the old plan.
    pub from_epoch: u64,
    /// The epoch of the new plan.
    pub to_epoch: u64,
    /// Owned in the new plan and not in the old: start scraping.
    pub gained: BTreeSet<String>,
    /// Owned in the old plan and not in the new: hand over and stop.
    pub lost: BTreeSet<String>,
}

impl Diff {
    /// True when ownership did not change.
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// The owned kubelets gained and lost from `old` to `new`.
pub fn diff(old: &Plan, new: &Plan) -> Diff {
    Diff {
        from_epoch: old.epoch,
        to_epoch: new.epoch,
        gained: new.owned.difference(&old.owned).cloned().collect(),
        lost: old.owned.difference(&new.owned).cloned().collect(),
    }
}
