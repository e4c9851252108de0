//! The metrics store of one replica: the last two points of every node and
//! container it holds — the nodes it scrapes ([`Held::Owned`]) and the
//! copies of other owners' points ([`Held::Copy`]) in one map, so a holder
//! that comes to own a node extends the series it already has — and the
//! rates computed from them at read time.
//!
//! It follows metrics-server's storage rules (reference metrics-server.md
//! §1.7–1.10), with one difference of shape: metrics-server replaces its
//! whole store once per cluster-wide tick, while our scheduler scrapes each
//! node on its own schedule, so here every node has its own entry and a
//! scrape replaces only that node's entry (its node point and its pods).
//! A "batch" of the reference is therefore one [`Store::store_scrape`] per
//! node in it, and "absent from the batch" is [`Store::scrape_failed`].
//!
//! Beyond the reference, `max_staleness` keeps a failed node's last good
//! points (node and pods) servable, with their true timestamp and window,
//! while `now − newest sample ≤ resolution + max_staleness`; 0 restores the
//! reference (a failed scrape removes the node and its pods at once).
//!
//! Repeated samples: a scrape whose timestamps equal the stored last ones
//! keeps the stored previous point (reference rule "new ≤ last: keep prev if
//! older than new"), so a kubelet with frozen timestamps keeps being served
//! its previous rate. Only a series that never had a previous point stays
//! unservable when the same sample comes twice (reference N2/P3).
//!
//! Readiness and `metrics_server_storage_points` count what is held; a failed
//! node past its staleness bound is pruned at the next write (any node's).
//!
//! Samples from the future ([`clock`]): points from another replica that lie
//! beyond the allowance ahead of `now` are refused and counted, a held point
//! from the future never blocks true ones, and a node whose newest point is
//! from the future at read time is not served.
//!
//! Which kubelet may report a pod: any, as in metrics-server. The store
//! does not check a pod against the node the apiserver bound it to, because
//! that cannot be known cheaply here: the pod informer is metadata-only (no
//! `spec.nodeName`), and a full Pod watch would keep every pod's whole spec
//! and status on every replica, many times the metadata kept today. The cheap
//! way is a Table-format pod watch (`as=Table;includeObject=Metadata`, the
//! Node column beside the metadata we keep), which kube-rs reflectors do not
//! speak: that belongs to discovery, and is left for it.
//!
//! This module does no I/O and keeps no clock: callers pass `now`.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

// Seeded per process; the maps hold every pod of every node held, looked up
// on each scrape, copy and answer (with SipHash a scrape cost 1,903
// instructions per pod, with foldhash 1,553: `benches/hotpaths.sh store`).
use foldhash::HashMap;

use crate::model::{MetricsReader, NodeUsage, PodUsage, UnixNanos};
use crate::selfmetrics::SelfMetrics;

pub mod clock;
mod read;
pub mod series;
#[cfg(test)]
pub(crate) mod tests;
pub mod usage;
mod write;

use series::Series;

/// Why this replica holds a node's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// It scrapes the node (metrics-server's `storage_points`, stale nodes,
    /// sample ages).
    Owned,
    /// Another member scrapes it and sends copies here
    /// (`ha_metrics_server_backup_*`).
    Copy,
}

/// Where a node's newest points came from: scraped here, or sent by a
/// member (a copy after its scrape, a seed, a handover, a pull: the points
/// as that member held them when it sent them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Scraped,
    Member(u64),
}

impl Held {
    fn index(self) -> usize {
        match self {
            Held::Owned => 0,
            Held::Copy => 1,
        }
    }
}

/// One node's points, as its newest scrape left them.
#[derive(Debug)]
struct NodeEntry {
    /// Scraped here, or a copy.
    held: Held,
    /// The node's own series; `None` when the newest scrape had no valid node point.
    series: Option<Series>,
    /// `(namespace, name)` of the pods this node reported in its newest scrape.
    pods: Vec<(String, String)>,
    /// Newest sample timestamp among the node and its containers.
    newest: Option<UnixNanos>,
    /// The newest scrape of this node failed; its points are served stale.
    failed: bool,
    /// When (this replica's clock) its newest points arrived: scraped here,
    /// or a copy its owner sent after scraping.
    received: UnixNanos,
    /// Where they came from.
    origin: Origin,
}

/// One pod's container series, sorted by container name.
#[derive(Debug)]
struct PodEntry {
    /// The node that reported the pod last.
    node: String,
    /// As its node's entry.
    held: Held,
    /// The merge ([`Inner::merges`]) that wrote this entry last: a pod met
    /// again within that merge was reported twice in one batch.
    merged: u64,
    containers: Vec<(String, Series)>,
}

impl PodEntry {
    /// Containers with a previous point: those metrics-server counts.
    fn points(&self) -> usize {
        self.containers.iter().filter(|(_, s)| s.prev.is_some()).count()
    }
}

/// What is held, by [`Held`] (`[owned, copy]`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Nodes held.
    nodes: usize,
    /// Nodes with a previous point.
    node_points: usize,
    /// Containers with a previous point.
    container_points: usize,
    /// Pods with at least one container with a previous point.
    pod_points: usize,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<String, NodeEntry>,
    /// namespace → pod name → entry.
    pods: HashMap<String, HashMap<String, PodEntry>>,
    /// Nodes held although their newest scrape failed.
    failed: BTreeSet<String>,
    /// Counters by [`Held::index`].
    counts: [Counts; 2],
    /// Merges so far (see [`PodEntry::merged`]).
    merges: u64,
}

/// The store. Cheap to read concurrently; writes hold the lock for the
/// time it takes to merge one node's points.
pub struct Store {
    resolution_ns: i64,
    max_staleness_ns: i64,
    metrics: Arc<SelfMetrics>,
    inner: RwLock<Inner>,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Store {
    /// `resolution` is `--metric-resolution` (it bounds the fresh-container
    /// shortcut); `max_staleness` is `--max-staleness` (0 = reference behaviour).
    pub fn new(resolution: Duration, max_staleness: Duration, metrics: Arc<SelfMetrics>) -> Store {
        let store = Store {
            resolution_ns: nanos(resolution),
            max_staleness_ns: nanos(max_staleness),
            metrics,
            inner: RwLock::new(Inner::default()),
        };
        store.publish(&store.write_lock());
        store
    }

    /// Whether metrics-server would report ready: at least one node and one
    /// pod can be served (from what is scraped here or held as a copy).
    pub fn ready(&self) -> bool {
        let inner = self.read_lock();
        let c = |f: fn(&Counts) -> usize| inner.counts.iter().map(f).sum::<usize>();
        c(|c| c.node_points) > 0 && c(|c| c.pod_points) > 0
    }

    /// Why this replica holds `node`'s points, if it holds any.
    pub fn held(&self, node: &str) -> Option<Held> {
        self.read_lock().nodes.get(node).map(|e| e.held)
    }

    /// The nodes held, with why and their newest sample.
    pub fn holdings(&self) -> Vec<(String, Held, Option<UnixNanos>)> {
        self.read_lock().nodes.iter().map(|(n, e)| (n.clone(), e.held, e.newest)).collect()
    }

    /// The newest sample timestamp held for `node`, if any (the scheduler
    /// asks before re-scraping a node it just gained).
    pub fn newest_sample(&self, node: &str) -> Option<UnixNanos> {
        self.read_lock().nodes.get(node).and_then(|e| e.newest)
    }

    fn read_lock(&self) -> RwLockReadGuard<'_, Inner> {
        // No code path panics while holding the lock; if one ever did, the
        // data is still consistent enough to serve.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a node's points may be served at `now`: never while its
    /// newest sample is from the future; with a staleness bound, only while
    /// its newest sample is within `resolution + max_staleness` (whether its
    /// last scrape failed or it was handed over and never refreshed); with
    /// `--max-staleness=0`, metrics-server's rule (served until a scrape fails).
    fn servable(&self, entry: &NodeEntry, now: UnixNanos) -> bool {
        if entry.newest.is_some_and(|t| clock::from_future(t, now)) {
            // Held from before this replica's own clock stepped back: no
            // answer carries a timestamp from the future.
            return false;
        }
        let fresh = entry.newest.is_some_and(|t| now.saturating_sub(t) <= self.stale_bound());
        if self.max_staleness_ns == 0 { !entry.failed } else { fresh }
    }

    /// How old the newest sample of a failed node may be and still be served.
    fn stale_bound(&self) -> i64 {
        self.resolution_ns.saturating_add(self.max_staleness_ns)
    }

    /// Sets the storage gauges from the counters: what is scraped here as
    /// metrics-server's `storage_points`, copies as `backup_points`.
    fn publish(&self, inner: &Inner) {
        for (held, points) in [(Held::Owned, &self.metrics.storage_points), (Held::Copy, &self.metrics.backup_points)] {
            let c = inner.counts[held.index()];
            points.get_or_create(&vec![("type", "node")]).set(c.node_points as i64);
            points.get_or_create(&vec![("type", "container")]).set(c.container_points as i64);
        }
        self.metrics.served_stale_nodes.set(inner.failed.len() as i64);
        self.metrics.backup_nodes.set(inner.counts[Held::Copy.index()].nodes as i64);
    }

    /// Sets (or with `None` removes) `node`'s sample-age gauge; only nodes
    /// scraped here have one.
    fn set_sample_age(&self, node: &str, newest: Option<UnixNanos>, now: UnixNanos) {
        let labels = vec![("node", node.to_string())];
        match newest {
            Some(t) => {
                self.metrics.node_sample_age.get_or_create(&labels).set(now.saturating_sub(t) as f64 / 1e9);
            }
            None => {
                self.metrics.node_sample_age.remove(&labels);
            }
        }
    }
}

impl Store {
    /// `(namespace, name)` of every pod held, in one namespace or all.
    pub fn pod_keys(&self, namespace: Option<&str>) -> Vec<(String, String)> {
        let inner = self.read_lock();
        let one = |ns: &String, pods: &HashMap<String, PodEntry>| {
            pods.keys().map(|n| (ns.clone(), n.clone())).collect::<Vec<_>>()
        };
        match namespace {
            Some(ns) => inner.pods.get_key_value(ns).map(|(k, v)| one(k, v)).unwrap_or_default(),
            None => inner.pods.iter().flat_map(|(k, v)| one(k, v)).collect(),
        }
    }

    /// Usage of the pods held whose node `keep` accepts (asked once per
    /// node), in one namespace or all: `((namespace, name), node, usage)`.
    /// One pass over each node's pods, holding the lock for one node at a
    /// time (a member's whole part of `top pod -A` is 100,000 pods at
    /// 10,000 nodes, and a lookup and lock per pod was most of its cost).
    pub fn pods_where(
        &self,
        namespace: Option<&str>,
        mut keep: impl FnMut(&str) -> bool,
        now: UnixNanos,
    ) -> Vec<((String, String), String, PodUsage)> {
        let nodes: Vec<String> = self.read_lock().nodes.keys().filter(|n| keep(n)).cloned().collect();
        let mut out = Vec::new();
        for node in nodes {
            let inner = self.read_lock();
            let Some(entry) = inner.nodes.get(&node) else { continue };
            if !self.servable(entry, now) {
                continue;
            }
            for (ns, name) in &entry.pods {
                if namespace.is_some_and(|want| want != ns) {
                    continue;
                }
                // A pod another node reported since is that node's.
                let Some(pod) = inner.pods.get(ns).and_then(|m| m.get(name)).filter(|p| p.node == node) else {
                    continue;
                };
                if let Some(usage) = read::pod_usage(pod, ns, name) {
                    out.push(((ns.clone(), name.clone()), node.clone(), usage));
                }
            }
        }
        out
    }

    /// Whether this replica holds servable points of `node` whose newest
    /// arrived at most `within` before `now` from `from` (from anywhere when
    /// `None`): scraped here, or copies still coming in from the member that
    /// scrapes it, so no member holds a newer point than a copy in flight.
    /// A failed scrape, copies that stopped, or points last sent by another
    /// member make it not current.
    pub fn current(&self, node: &str, now: UnixNanos, within: Duration, from: Option<Origin>) -> bool {
        let inner = self.read_lock();
        let Some(entry) = inner.nodes.get(node) else { return false };
        !entry.failed
            && from.is_none_or(|f| f == entry.origin)
            && self.servable(entry, now)
            && now.saturating_sub(entry.received) <= nanos(within)
    }

    /// The node that last reported a pod held here (no usage computed).
    pub fn node_of_pod(&self, namespace: &str, name: &str) -> Option<String> {
        self.read_lock().pods.get(namespace)?.get(name).map(|p| p.node.clone())
    }

    /// Usage of one pod at `now` and the node that reported it.
    pub fn pod_on_node(&self, namespace: &str, name: &str, now: UnixNanos) -> Option<(String, PodUsage)> {
        let inner = self.read_lock();
        let pod = inner.pods.get(namespace)?.get(name)?;
        let entry = inner.nodes.get(&pod.node)?;
        if !self.servable(entry, now) {
            return None;
        }
        read::pod_usage(pod, namespace, name).map(|u| (pod.node.clone(), u))
    }
}

impl MetricsReader for Store {
    fn node(&self, name: &str, now: UnixNanos) -> Option<NodeUsage> {
        let inner = self.read_lock();
        let entry = inner.nodes.get(name)?;
        if !self.servable(entry, now) {
            return None;
        }
        read::node_usage(entry.series.as_ref()?, name)
    }

    fn pod(&self, namespace: &str, name: &str, now: UnixNanos) -> Option<PodUsage> {
        let inner = self.read_lock();
        let pod = inner.pods.get(namespace)?.get(name)?;
        let entry = inner.nodes.get(&pod.node)?;
        if !self.servable(entry, now) {
            return None;
        }
        read::pod_usage(pod, namespace, name)
    }
}
