//! The raw points a scrape yields, as they travel through the pipeline: the
//! parser makes them, the store keeps the last two of each series, and the
//! replica manager copies them to the other holders of a node. Plain data
//! (serde for the peer wire); no I/O.

use super::UnixNanos;

/// One sample of a node or a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// When the kubelet took the sample (its own timestamp, or the request time).
    pub timestamp: UnixNanos,
    /// Cumulative CPU time in core-nanoseconds (`uint64(seconds * 1e9)`).
    pub cpu_cumulative_ns: u64,
    /// Working-set memory in bytes.
    pub memory_bytes: u64,
    /// Container start time; `None` for nodes and when the kubelet gave none
    /// (behaves like Go's zero `time.Time`: older than any sample).
    pub start_time: Option<UnixNanos>,
}

/// One container's point, by container name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerPoint {
    pub name: String,
    pub point: Point,
}

/// The points of one pod's containers, sorted by container name, never empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodPoints {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerPoint>,
}

/// Everything one scrape of one kubelet yielded (also the unit a replica
/// backs up to a node's successor and hands over to a new owner).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeBatch {
    /// The node's own point, `None` when it was missing or invalid.
    pub node: Option<Point>,
    /// Valid pods, in the order the kubelet first mentioned them.
    pub pods: Vec<PodPoints>,
}
