//! Plain data shared between the pipeline stages: the raw points a scrape
//! yields ([`points`]), what the store serves and the API reads, and the
//! traits the API reads through. No I/O and no Kubernetes client types live
//! here, so the parser, the store, the replica manager, the peer fan-out and
//! the API agree on one shape without importing each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::selector::LabelSelector;

use futures::future::BoxFuture;

pub use apimachinery::UnixNanos;

pub mod clock;
pub use clock::now_nanos;
pub mod points;
pub use points::{ContainerPoint, NodeBatch, PodPoints, Point};

/// Resource usage of one node or container at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// CPU rate in nanocores (1e-9 cores), computed from two cumulative samples.
    pub cpu_nanocores: u64,
    /// Working-set memory in bytes, from the newest sample.
    pub memory_bytes: u64,
}

/// What the API serves for one node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeUsage {
    /// Time of the newest kubelet sample used.
    pub timestamp: UnixNanos,
    /// Time between the two samples the rate was computed from, in nanoseconds.
    pub window_ns: i64,
    pub usage: Usage,
}

/// What the API serves for one container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: Usage,
}

/// What the API serves for one pod: the time information is that of the
/// container with the earliest timestamp, as metrics-server does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodUsage {
    pub timestamp: UnixNanos,
    pub window_ns: i64,
    pub containers: Vec<ContainerUsage>,
}

/// The metadata the API copies from a Node or a Pod into its metrics objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    pub name: String,
    /// `None` for nodes.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Pods in the order a list serves them (by namespace, then name), with
/// their keys in the same order; shared, so a list kept between changes is
/// handed out without copying.
#[derive(Debug, Clone, Default)]
pub struct PodList {
    pub metas: Arc<Vec<Arc<ObjectMeta>>>,
    pub keys: Arc<Vec<PodKey>>,
}

impl PodList {
    /// `metas` in served order.
    pub fn sorted(mut metas: Vec<Arc<ObjectMeta>>) -> PodList {
        metas.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let keys = metas.iter().map(|m| (m.namespace.clone().unwrap_or_default(), m.name.clone())).collect();
        PodList { metas: Arc::new(metas), keys: Arc::new(keys) }
    }

    /// The pods `keep` selects, in the same order.
    pub fn filter(&self, keep: impl Fn(&ObjectMeta) -> bool) -> PodList {
        let (metas, keys) = self
            .metas
            .iter()
            .zip(self.keys.iter())
            .filter(|(m, _)| keep(m))
            .map(|(m, k)| (m.clone(), k.clone()))
            .unzip();
        PodList { metas: Arc::new(metas), keys: Arc::new(keys) }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The objects the cluster currently has, as seen by discovery (informers).
/// Metrics are only served for objects listed here: a deleted pod disappears
/// from the API at once even if its last points are still stored.
pub trait Inventory: Send + Sync {
    /// Nodes that match `--node-selector`, in no particular order (the API
    /// sorts what it serves).
    fn nodes(&self) -> Vec<ObjectMeta>;
    /// One node by name, whether or not it matches `--node-selector`
    /// (metrics-server's get ignores the selector; such a node has no metrics).
    fn node(&self, name: &str) -> Option<ObjectMeta>;
    /// Running pods, in one namespace or all of them, that `labels` selects,
    /// in no particular order. Shared, so a list of 300,000 pods copies
    /// pointers; an implementation may use `labels` to avoid a full scan.
    fn pods(&self, namespace: Option<&str>, labels: &LabelSelector) -> Vec<Arc<ObjectMeta>>;
    /// The running pods `pods` gives, in the order a list serves them. An
    /// implementation may keep the list of every pod between changes (a
    /// `top pod -A` at 10,000 nodes lists 300,000).
    fn pod_list(&self, namespace: Option<&str>, labels: &LabelSelector) -> PodList {
        PodList::sorted(self.pods(namespace, labels))
    }
    /// One running pod.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>>;
    /// Whether the informers have completed their first list.
    fn synced(&self) -> bool;
}

/// One replica's own points: usage of a node or a pod it holds, looked up
/// one at a time (the store, or a test double).
pub trait MetricsReader: Send + Sync {
    /// Usage of one node at `now`, if it can be served.
    fn node(&self, name: &str, now: UnixNanos) -> Option<NodeUsage>;
    /// Usage of one pod at `now`, if it can be served.
    fn pod(&self, namespace: &str, name: &str, now: UnixNanos) -> Option<PodUsage>;
}

/// `namespace/name` of a pod.
pub type PodKey = (String, String);

/// The pods one request asks for: the selectors as the client sent them
/// (peers filter by their own inventory with the same ones), and the keys
/// the asking replica's inventory selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodQuery {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// The raw `labelSelector` (empty: everything).
    pub labels: String,
    /// The raw `fieldSelector` (empty: everything).
    pub fields: String,
    /// A single pod (a GET), if that is what is asked.
    pub one: Option<PodKey>,
}

/// A possibly partial answer: what could be served, and what is missing
/// and why, one entry per member whose part is missing. A partial answer is
/// data, not a log line; the API renders each entry once, as a `Warning`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer<T> {
    /// What could be served.
    pub value: T,
    /// What is missing, by member.
    pub missing: Vec<Missing>,
}

impl<T> Answer<T> {
    /// A complete answer.
    pub fn complete(value: T) -> Answer<T> {
        Answer { value, missing: Vec::new() }
    }
}

/// One member's missing part of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The member (replica name) whose part is missing.
    pub member: String,
    /// Why.
    pub cause: Cause,
    /// What is missing.
    pub what: What,
}

/// Why a member's part of an answer is missing. Fixed phrases: nothing a
/// peer sent (addresses, error text) reaches an API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Not heard from recently, so not asked; no other holder had its part.
    Silent,
    /// Asked, and no answer came within the request's deadline.
    Timeout,
    /// Asked, and it could not be reached.
    Unreachable,
    /// Asked, and it refused or answered with something unreadable.
    Refused,
    /// It answered without nodes it owns, and no other holder had them.
    Lacks,
    /// It cannot be reached and this replica scrapes its nodes in its
    /// place, but has not scraped them all yet.
    Covering,
    /// The owner reported failing to reach the nodes' kubelets and no
    /// holder has a servable point of them: no holder could scrape them
    /// for longer than `--max-staleness` (as metrics-server drops a node
    /// whose kubelet it cannot reach).
    KubeletsUnreachable,
    /// No member owns them (none is Active: the ring is between its last
    /// member leaving and the next joining), and no member that holds
    /// their points gave them. Named by their owner of the epoch before.
    Unowned,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Silent => "not heard from recently",
            Cause::Timeout => "no answer within the deadline",
            Cause::Unreachable => "unreachable",
            Cause::Refused => "refused the request",
            Cause::Lacks => "answered without them",
            Cause::Covering => "unreachable; its nodes are being scraped here",
            Cause::KubeletsUnreachable => "their kubelets cannot be reached",
            Cause::Unowned => "no Active member owns them now and no holder gave them",
        })
    }
}

/// What a member's missing part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// `missing` of the `of` nodes asked for.
    Nodes {
        /// Nodes missing from the answer because of this member.
        missing: usize,
        /// Nodes asked for in all.
        of: usize,
    },
    /// Pods of the nodes it owns (a pod's node is only known once it was
    /// scraped, so they are not counted).
    Pods,
}

impl std::fmt::Display for Missing {
    /// The sentence of the `Warning` header kubectl prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (member, cause) = (&self.member, self.cause);
        match self.what {
            What::Nodes { missing, of } => {
                write!(f, "partial answer: replica {member}: {cause}; {missing} of {of} nodes missing")
            }
            What::Pods => write!(f, "partial answer: replica {member}: {cause}; the pods of its nodes may be missing"),
        }
    }
}

/// Where the API gets usage from, for a whole request at once: the local
/// store for a single replica, the shard owners (local part and fan-out) in
/// a cluster.
pub trait UsageSource: Send + Sync {
    /// Usage of `names` at `now`, in the same order (`None`: not servable).
    fn nodes<'a>(&'a self, names: &'a [String], now: UnixNanos) -> BoxFuture<'a, Answer<Vec<Option<NodeUsage>>>>;
    /// Usage of the pods `keys` (selected by `query`) at `now`, in the same order.
    fn pods<'a>(
        &'a self,
        query: &'a PodQuery,
        keys: &'a [PodKey],
        now: UnixNanos,
    ) -> BoxFuture<'a, Answer<Vec<Option<PodUsage>>>>;
}

/// A [`UsageSource`] over one replica's own points.
pub struct Local<R: ?Sized>(pub std::sync::Arc<R>);

impl<R: MetricsReader + ?Sized + 'static> UsageSource for Local<R> {
    fn nodes<'a>(&'a self, names: &'a [String], now: UnixNanos) -> BoxFuture<'a, Answer<Vec<Option<NodeUsage>>>> {
        Box::pin(async move { Answer::complete(names.iter().map(|n| self.0.node(n, now)).collect()) })
    }

    fn pods<'a>(
        &'a self,
        _query: &'a PodQuery,
        keys: &'a [PodKey],
        now: UnixNanos,
    ) -> BoxFuture<'a, Answer<Vec<Option<PodUsage>>>> {
        Box::pin(async move { Answer::complete(keys.iter().map(|(ns, n)| self.0.pod(ns, n, now)).collect()) })
    }
}
