//! What a run records: plain data, serializable, with no behaviour. The
//! observer and the harness fill a [`Recording`]; the invariants are pure
//! functions over it. Times are Unix milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who answered a metrics request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// Replica `i`, asked directly.
    Replica(usize),
    /// The apiserver's aggregation proxy (`/apis/metrics.k8s.io` through kube-apiserver).
    Proxy,
}

/// Which list was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Nodes,
    Pods,
}

/// One served item: a node (`name`) or a pod (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    /// The sample's timestamp.
    pub ts_ms: u64,
    /// CPU in nanocores and memory in bytes (pods: summed over containers).
    pub cpu_nanocores: f64,
    pub memory_bytes: f64,
}

/// One answer (or failed request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub at_ms: u64,
    pub source: Source,
    pub kind: Kind,
    /// HTTP status; `None` when the request failed before an answer.
    pub status: Option<u16>,
    pub warnings: Vec<String>,
    /// The ring epoch the replica reported in its last status (direct answers only).
    pub epoch: Option<u64>,
    pub items: Vec<Item>,
}

/// One answer to an HPA-shaped request (`namespaces/<ns>/pods?labelSelector=…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaAnswer {
    pub at_ms: u64,
    pub source: Source,
    /// The [`crate::hpa::Hpa`] asked for, by name.
    pub hpa: String,
    /// HTTP status; `None` when the request failed before an answer.
    pub status: Option<u16>,
    pub pods: Vec<crate::hpa::ServedPod>,
}

/// One scrape as the simulated kubelet logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scrape {
    pub at_ms: u64,
    pub node: String,
    /// The replica that scraped (by its source address), if known.
    pub replica: Option<usize>,
    /// Whether the request reached the kubelet (not turned away by a partition).
    pub reached: bool,
}

/// A replica's Raft and ring view at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub at_ms: u64,
    pub replica: usize,
    /// `Leader`, `Follower`, `Candidate`, `Learner`, `Stopped`.
    pub role: String,
    pub term: u64,
    pub leader: Option<String>,
    /// The committed ClusterState epoch.
    pub epoch: u64,
    pub last_applied: Option<u64>,
    /// The epoch the replica scrapes and answers by.
    pub ring_epoch: u64,
    /// Committed members as `name=State`, sorted.
    pub members: Vec<String>,
}

/// Something the harness did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub what: String,
    /// The replica whose data was wiped (its history may start again).
    pub wiped: Option<usize>,
}

/// True usage of a node or pod.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub cpu_nanocores: f64,
    pub memory_bytes: f64,
}

/// Everything one scenario run recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    pub resolution_ms: u64,
    pub start_ms: u64,
    pub fault_start_ms: u64,
    pub heal_ms: u64,
    pub end_ms: u64,
    pub nodes: Vec<String>,
    pub pods: Vec<String>,
    pub truth: BTreeMap<String, Truth>,
    pub answers: Vec<Answer>,
    pub scrapes: Vec<Scrape>,
    pub views: Vec<View>,
    pub events: Vec<Event>,
    /// Nodes (and their pods) whose kubelet the scenario breaks: exempt from
    /// freshness and correctness.
    pub faulted_nodes: Vec<String>,
    /// Of those, the ones that may leave answers (their kubelet broken for
    /// longer than `--max-staleness`, as metrics-server drops them too): exempt
    /// from coverage as well.
    #[serde(default)]
    pub may_vanish: Vec<String>,
    /// The simulated HPAs and what their requests got.
    #[serde(default)]
    pub hpas: Vec<crate::hpa::Hpa>,
    #[serde(default)]
    pub hpa_answers: Vec<HpaAnswer>,
    /// Each replica's resident memory over the run.
    #[serde(default)]
    pub memory: Vec<MemorySample>,
}

/// One replica process's resident memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    pub at_ms: u64,
    pub replica: usize,
    /// The process (a restarted replica is a new one).
    pub pid: u32,
    pub rss_kib: u64,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
