//! Samples from the future: the one rule for how far a sample's timestamp
//! may lie ahead of this replica's clock, used wherever points enter or leave
//! (the scrape, points from other replicas, reads, the merge of pod answers).
//! Pure: callers pass `now`.
//!
//! Why refuse rather than clamp: a served sample must carry the timestamp the
//! kubelet gave it. Clamping would invent one, and a rate over a clamped
//! window is a rate nobody measured. A refused sample is simply not there:
//! the node keeps its last true points (served with their true age while
//! `--max-staleness` allows) and the first true sample after the kubelet's
//! clock comes back makes a rate with the last true one before the jump,
//! over the honest (long) window between them.
//!
//! Why [`FUTURE_ALLOWANCE_NS`] is 2 s: the check runs after the whole body
//! arrived, so request latency and kubelet-side caching only make honest
//! samples look older, never newer; what it has to absorb is the offset
//! between the two hosts' clocks. NTP-synced hosts agree within milliseconds
//! and etcd already warns about peers more than 1 s apart, so 2 s passes
//! every host etcd would not complain about. Within it, a kubelet clock that
//! steps forward and back can bend at most one rate, by at most
//! `R / (R - 2 s)` (about 15 % at the default 15 s resolution); a larger
//! allowance would let a bigger jump through, a smaller one would leave
//! slightly skewed nodes with no metrics at all.

use crate::model::{NodeBatch, UnixNanos};

/// How far ahead of this replica's clock a sample may be and still be taken.
pub const FUTURE_ALLOWANCE_NS: i64 = 2_000_000_000;

/// Whether a sample taken at `t` is from the future at `now` (beyond the allowance).
pub fn from_future(t: UnixNanos, now: UnixNanos) -> bool {
    t > now.saturating_add(FUTURE_ALLOWANCE_NS)
}

/// How far ahead of `now` the timestamp `t` is, in nanoseconds (0 if not ahead).
pub fn ahead_ns(t: UnixNanos, now: UnixNanos) -> i64 {
    t.saturating_sub(now).max(0)
}

/// The samples of one batch that are from the future.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FutureSamples {
    /// How many (node point and container points).
    pub samples: u64,
    /// How far ahead of `now` the furthest one is, in nanoseconds.
    pub ahead_ns: i64,
}

/// Counts the samples of `batch` that are from the future at `now`.
pub fn future_samples(batch: &NodeBatch, now: UnixNanos) -> FutureSamples {
    let containers = batch.pods.iter().flat_map(|p| p.containers.iter().map(|c| c.point.timestamp));
    let mut out = FutureSamples::default();
    for t in batch.node.map(|p| p.timestamp).into_iter().chain(containers) {
        if from_future(t, now) {
            out.samples += 1;
            out.ahead_ns = out.ahead_ns.max(ahead_ns(t, now));
        }
    }
    out
}
