//! Store cases of the reference (metrics-server.md §6.2: N1–N7, R1, T1, T2,
//! P1–P13) and our per-node and staleness rules.
//!
//! Mapping of the reference's "batches": the reference stores one
//! cluster-wide batch per tick; here each node of a batch is one
//! `store_scrape(node, ..)`. A node that a reference batch lacks is a
//! `scrape_failed(node, ..)` (with `max_staleness` 0, as in the reference)
//! or a `store_scrape` whose batch has no node point; a pod that a batch
//! lacks is a scrape of its node that does not report it.

use super::Store;
use crate::model::{ContainerPoint, NodeBatch, PodPoints, Point};
use crate::model::{MetricsReader, UnixNanos};
use crate::selfmetrics::SelfMetrics;
use std::sync::Arc;
use std::time::Duration;

mod future;
mod merge;
mod node;
mod pod;
mod replica;
mod stale;

/// One second in nanoseconds.
pub const S: i64 = 1_000_000_000;
pub const MIB: u64 = 1 << 20;
/// The time every test's "+N s" is relative to.
pub const T0: UnixNanos = 1_700_000_000 * S;

pub fn at(secs: i64) -> UnixNanos {
    T0 + secs * S
}

pub fn new_store(resolution_s: u64, staleness_s: u64) -> (Store, Arc<SelfMetrics>) {
    let metrics = Arc::new(SelfMetrics::new(resolution_s as f64));
    let store = Store::new(Duration::from_secs(resolution_s), Duration::from_secs(staleness_s), metrics.clone());
    (store, metrics)
}

/// A node point at `+ts` seconds with `cpu_s` CPU-seconds.
pub fn node_point(ts: i64, cpu_s: f64, memory: u64) -> Point {
    Point { timestamp: at(ts), cpu_cumulative_ns: (cpu_s * 1e9) as u64, memory_bytes: memory, start_time: None }
}

/// A container point at `+ts` seconds, started at `+start` seconds.
pub fn container(name: &str, start: Option<i64>, ts: i64, cpu_s: f64, memory: u64) -> ContainerPoint {
    ContainerPoint {
        name: name.to_string(),
        point: Point {
            timestamp: at(ts),
            cpu_cumulative_ns: (cpu_s * 1e9) as u64,
            memory_bytes: memory,
            start_time: start.map(at),
        },
    }
}

pub fn pod(ns: &str, name: &str, mut containers: Vec<ContainerPoint>) -> PodPoints {
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    PodPoints { namespace: ns.to_string(), name: name.to_string(), containers }
}

pub fn batch(node: Option<Point>, pods: Vec<PodPoints>) -> NodeBatch {
    NodeBatch { node, pods }
}

pub fn storage_points(metrics: &SelfMetrics, kind: &'static str) -> i64 {
    metrics.storage_points.get_or_create(&vec![("type", kind)]).get()
}

/// Reads a pod at a time when nothing is stale.
pub fn read_pod(store: &Store, ns: &str, name: &str) -> Option<crate::model::PodUsage> {
    store.pod(ns, name, at(1_000))
}

pub fn read_node(store: &Store, name: &str) -> Option<crate::model::NodeUsage> {
    store.node(name, at(1_000))
}
