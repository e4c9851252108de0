//! The invariants, as pure functions over a [`Recording`]: each returns a
//! [`Check`] with its figures and, on failure, examples of what broke. No
//! sockets, no clocks: the unit tests feed them hand-made recordings.
//! [`serving`] judges the answers clients got, [`scrapes`] the kubelets'
//! scrape log, [`raft`] the replicas' cluster views, [`hpa`] what an HPA
//! would have decided from the pods answers, [`memory`] whether a replica's
//! resident memory grew over a long soak.

pub mod hpa;
pub mod memory;
pub mod raft;
pub mod scrapes;
pub mod serving;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::Recording;

/// One invariant's verdict on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub figures: BTreeMap<String, f64>,
    /// Examples of violations (a few), or why the check could not pass.
    pub detail: Vec<String>,
}

impl Check {
    pub(crate) fn new(name: &str, pass: bool, figures: &[(&str, f64)], detail: Vec<String>) -> Check {
        Check {
            name: name.to_string(),
            pass,
            figures: figures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            detail: detail.into_iter().take(8).collect(),
        }
    }
}

/// What a scenario allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Degraded mode (no quorum, or a replica cut off) may scrape a node more than once.
    pub may_duplicate: bool,
    /// How often the fault may move a node between owners: one extra scrape allowed per move.
    pub moves_per_node: u64,
    /// How long after the heal the cluster has to be exactly-once again.
    pub liveness_bound_ms: u64,
}

/// Slack added to the resolution for the freshness bound (R + 5 s).
pub const FRESHNESS_SLACK_MS: u64 = 5_000;

/// Every invariant, in report order.
pub fn evaluate(rec: &Recording, policy: &Policy) -> Vec<Check> {
    vec![
        serving::coverage(rec),
        serving::freshness(rec),
        serving::correctness(rec),
        scrapes::exactly_once(rec, policy),
        serving::agreement(rec),
        serving::api_errors(rec),
        raft::safety(rec),
        scrapes::liveness(rec, policy),
        hpa::decisions(rec),
    ]
}

#[cfg(test)]
pub(crate) mod fixture;
