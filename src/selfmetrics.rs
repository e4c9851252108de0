//! The server's own `/metrics`: metrics-server's six `metrics_server_*`
//! families with their names, types, labels and buckets, plus our own under
//! `ha_metrics_server_*`. One registry per process; every stage records into
//! the [`SelfMetrics`] it was handed.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label set with one `node` label.
pub type NodeLabel = Vec<(&'static str, String)>;

/// Every `reason` label of `ha_metrics_server_scrape_errors` (the kubelet
/// client's failure kinds and the scraper's own).
pub const SCRAPE_ERROR_REASONS: [&str; 11] = [
    "connect",
    "tls",
    "timeout",
    "status",
    "too_large",
    "body",
    "request",
    "malformed",
    "future_timestamp",
    "address",
    "no_address",
];

/// Go's `prometheus.DefBuckets`.
pub const DEF_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every self-metric the server records.
pub struct SelfMetrics {
    registry: Registry,
    /// `metrics_server_api_metric_freshness_seconds`: now − timestamp of each served item.
    pub api_metric_freshness: Histogram,
    /// `metrics_server_kubelet_last_request_time_seconds{node}`.
    pub kubelet_last_request_time: Family<NodeLabel, Gauge<f64, AtomicU64>>,
    /// `metrics_server_kubelet_request_duration_seconds{node}`.
    pub kubelet_request_duration: Family<NodeLabel, Histogram>,
    /// `metrics_server_kubelet_request_total{success}`.
    pub kubelet_request_total: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `metrics_server_manager_tick_duration_seconds`: one scrape round.
    pub manager_tick_duration: Histogram,
    /// `metrics_server_storage_points{type}`: nodes and containers that can be served.
    pub storage_points: Family<Vec<(&'static str, &'static str)>, Gauge>,
    /// `ha_metrics_server_scrape_errors_total{node,reason}`.
    pub scrape_errors: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_future_samples_total{node}`: samples refused
    /// because their timestamp lies beyond the allowance ahead of this
    /// replica's clock (a kubelet's clock ahead, or such points from a peer).
    pub future_samples: Family<NodeLabel, Counter>,
    /// `ha_metrics_server_served_stale_nodes`: nodes served from their last good
    /// scrape because the newest one failed.
    pub served_stale_nodes: Gauge,
    /// `ha_metrics_server_clock_skew_seconds`: how far this replica's clock
    /// is corrected to agree with its kubelets' (0 while they agree).
    pub clock_skew: Gauge<f64, AtomicU64>,
    /// `ha_metrics_server_node_sample_age_seconds{node}`: age of the newest sample held.
    pub node_sample_age: Family<NodeLabel, Gauge<f64, AtomicU64>>,
    /// `ha_metrics_server_backup_points{type}`: nodes and containers backed up
    /// here by their owners that could be served from this replica.
    pub backup_points: Family<Vec<(&'static str, &'static str)>, Gauge>,
    /// `ha_metrics_server_backup_nodes`: nodes with a backup held here.
    pub backup_nodes: Gauge,
    /// `ha_metrics_server_owned_nodes`: kubelets this replica scrapes.
    pub owned_nodes: Gauge,
    /// `ha_metrics_server_standin_nodes`: of those, the kubelets it scrapes
    /// in their owner's place because the owner (and any holder before this
    /// replica) reported it cannot reach them. Non-zero on some replica
    /// means another replica is cut off from these kubelets.
    pub standin_nodes: Gauge,
    /// `ha_metrics_server_kubelets_unreached`: kubelets this replica holds
    /// and cannot reach (its last attempt did not get through), reported to
    /// the cluster so the next holder scrapes them.
    pub kubelets_unreached: Gauge,
    /// `ha_metrics_server_api_requests_total{code}`: answers of the metrics
    /// API (`/apis/metrics.k8s.io/...`) by HTTP status class: the
    /// availability SLI (5xx over all).
    pub api_requests: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `ha_metrics_server_nodes_known`: nodes this replica's informer lists
    /// (0 until it could answer for every one of them once, as readiness).
    pub nodes_known: Gauge,
    /// `ha_metrics_server_nodes_answerable`: of those, the ones it can answer
    /// for now (own or backed-up points, or a reachable owner): the coverage SLI.
    pub nodes_answerable: Gauge,
    /// `ha_metrics_server_node_freshness_seconds`: age of the newest sample
    /// of each node this replica scrapes, sampled every resolution: the
    /// freshness SLI.
    pub node_freshness: Histogram,
    /// `ha_metrics_server_backups_dropped_total`: backup batches dropped
    /// because the queue was full.
    pub backups_dropped: Counter,
    /// `ha_metrics_server_push_errors_total{peer}`: backup or handover pushes that failed.
    pub push_errors: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_handovers_total`: handover pushes delivered.
    pub handovers: Counter,
    /// `ha_metrics_server_points_refused_total{peer}`: pushed batches refused
    /// because the sender holds none of their nodes at this epoch or the last.
    pub points_refused: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_handover_duration_seconds`: a planned leave, from the
    /// Draining commit to every moved node served fresh by its new owner.
    pub handover_duration: Histogram,
    /// `ha_metrics_server_degraded`: 1 while this replica also scrapes the
    /// nodes of owners it cannot reach (quorum lost, or not caught up yet).
    pub degraded: Gauge,
    /// `ha_metrics_server_ring_epoch`: the committed epoch this replica scrapes by.
    pub ring_epoch: Gauge,
    /// `ha_metrics_server_ownership_changes_total`: epochs this replica re-planned for.
    pub ownership_changes: Counter,
    /// `ha_metrics_server_fanout_duration_seconds{peer}`: one peer query, request to answer.
    pub fanout_duration: Family<Vec<(&'static str, String)>, Histogram>,
    /// `ha_metrics_server_fanout_errors_total{peer,reason}`: peer queries without an answer.
    pub fanout_errors: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_fanout_hedges_total{peer}`: a slow member's part also
    /// asked of its other holders.
    pub fanout_hedges: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_fanout_hedges_refused_total`: slow calls not hedged
    /// because hedges already added a tenth to the calls made.
    pub fanout_hedges_refused: Counter,
    /// `ha_metrics_server_fanout_suspected_total{peer}`: requests that skipped a
    /// member silent or failing a moment ago.
    pub fanout_suspected: Family<Vec<(&'static str, String)>, Counter>,
    /// `ha_metrics_server_fanout_routed_total`: pods lists asked only of the
    /// owners of their pods' nodes (every pod placed), not of every member.
    pub fanout_routed: Counter,
    /// `ha_metrics_server_fanout_local_total`: pods lists answered from this
    /// replica's own current points and copies, no member asked.
    pub fanout_local: Counter,
    /// `ha_metrics_server_partial_answers_total{resource}`: API answers that lack
    /// items because an owner did not answer (each carried a Warning header).
    pub partial_answers: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl SelfMetrics {
    /// Builds the registry. `resolution_s` sets the tick-duration buckets
    /// around the scrape period, as metrics-server does.
    pub fn new(resolution_s: f64) -> SelfMetrics {
        let mut registry = Registry::default();
        let api_metric_freshness = Histogram::new(exponential_buckets(1.0, 1.364, 20));
        registry.register(
            "metrics_server_api_metric_freshness_seconds",
            "Freshness of metrics exported",
            api_metric_freshness.clone(),
        );
        let kubelet_last_request_time = Family::<NodeLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "metrics_server_kubelet_last_request_time_seconds",
            "Time of last request performed to kubelet API per node",
            kubelet_last_request_time.clone(),
        );
        let kubelet_request_duration =
            Family::<NodeLabel, Histogram>::new_with_constructor(|| Histogram::new(DEF_BUCKETS));
        registry.register(
            "metrics_server_kubelet_request_duration_seconds",
            "Duration of requests to kubelet API in seconds",
            kubelet_request_duration.clone(),
        );
        let kubelet_request_total = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "metrics_server_kubelet_request",
            "Number of requests sent to kubelet API",
            kubelet_request_total.clone(),
        );
        let manager_tick_duration = Histogram::new(tick_buckets(resolution_s));
        registry.register(
            "metrics_server_manager_tick_duration_seconds",
            "The total time spent collecting and storing metrics in seconds",
            manager_tick_duration.clone(),
        );
        let storage_points = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        registry.register("metrics_server_storage_points", "Number of metrics points stored", storage_points.clone());
        let scrape_errors = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_scrape_errors",
            "Failed kubelet scrapes per node and reason",
            scrape_errors.clone(),
        );
        let future_samples = Family::<NodeLabel, Counter>::default();
        registry.register(
            "ha_metrics_server_future_samples",
            "Kubelet samples refused because their timestamp is ahead of this replica's clock by more than the allowance",
            future_samples.clone(),
        );
        let clock_skew = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "ha_metrics_server_clock_skew_seconds",
            "How far the kubelets' clocks are ahead of this host's, as this replica corrects its clock by (0 while they agree within 1 s)",
            clock_skew.clone(),
        );
        let served_stale_nodes = Gauge::default();
        registry.register(
            "ha_metrics_server_served_stale_nodes",
            "Nodes served from their last good scrape because the newest one failed",
            served_stale_nodes.clone(),
        );
        let node_sample_age = Family::<NodeLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "ha_metrics_server_node_sample_age_seconds",
            "Age of the newest kubelet sample held per node",
            node_sample_age.clone(),
        );
        let backup_points = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        registry.register(
            "ha_metrics_server_backup_points",
            "Backed-up nodes and containers held here that could be served",
            backup_points.clone(),
        );
        let backup_nodes = Gauge::default();
        registry.register("ha_metrics_server_backup_nodes", "Nodes with a backup held here", backup_nodes.clone());
        let degraded = Gauge::default();
        registry.register(
            "ha_metrics_server_degraded",
            "1 while this replica also scrapes the nodes of owners it cannot reach (quorum lost or not caught up)",
            degraded.clone(),
        );
        let backups_dropped = Counter::default();
        registry.register(
            "ha_metrics_server_backups_dropped",
            "Backup batches dropped because the queue to successors was full",
            backups_dropped.clone(),
        );
        let push_errors = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_push_errors",
            "Backup or handover pushes that failed, per peer",
            push_errors.clone(),
        );
        let handovers = Counter::default();
        registry.register("ha_metrics_server_handovers", "Handover pushes delivered to new owners", handovers.clone());
        let points_refused = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_points_refused",
            "Pushed node batches refused because the sender may hold none of their nodes",
            points_refused.clone(),
        );
        let handover_duration = Histogram::new([0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0]);
        registry.register(
            "ha_metrics_server_handover_duration_seconds",
            "A planned leave, from the Draining commit to every moved node served fresh by its new owner",
            handover_duration.clone(),
        );
        let api_requests = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "ha_metrics_server_api_requests",
            "Answers of the metrics.k8s.io API by HTTP status class (the availability SLI)",
            api_requests.clone(),
        );
        let nodes_known = Gauge::default();
        registry.register("ha_metrics_server_nodes_known", "Nodes this replica's informer lists", nodes_known.clone());
        let nodes_answerable = Gauge::default();
        registry.register(
            "ha_metrics_server_nodes_answerable",
            "Known nodes this replica can answer for now (the coverage SLI is answerable / known)",
            nodes_answerable.clone(),
        );
        let node_freshness = Histogram::new([1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0]);
        registry.register(
            "ha_metrics_server_node_freshness_seconds",
            "Age of the newest sample of each node this replica scrapes, sampled every resolution (the freshness SLI)",
            node_freshness.clone(),
        );
        let owned_nodes = Gauge::default();
        registry.register("ha_metrics_server_owned_nodes", "Kubelets this replica scrapes", owned_nodes.clone());
        let standin_nodes = Gauge::default();
        registry.register(
            "ha_metrics_server_standin_nodes",
            "Kubelets this replica scrapes in their owner's place because the owner reported it cannot reach them",
            standin_nodes.clone(),
        );
        let kubelets_unreached = Gauge::default();
        registry.register(
            "ha_metrics_server_kubelets_unreached",
            "Kubelets this replica holds and cannot reach, reported so the next holder scrapes them",
            kubelets_unreached.clone(),
        );
        let ring_epoch = Gauge::default();
        registry.register(
            "ha_metrics_server_ring_epoch",
            "The committed ring epoch this replica scrapes and answers by",
            ring_epoch.clone(),
        );
        let ownership_changes = Counter::default();
        registry.register(
            "ha_metrics_server_ownership_changes",
            "Ring epochs this replica re-planned its scrapes for",
            ownership_changes.clone(),
        );
        let fanout_duration = Family::<Vec<(&'static str, String)>, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
        });
        registry.register(
            "ha_metrics_server_fanout_duration_seconds",
            "Duration of one query to a peer, request to answer",
            fanout_duration.clone(),
        );
        let fanout_errors = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_fanout_errors",
            "Queries to a peer that got no answer, per peer and reason",
            fanout_errors.clone(),
        );
        let fanout_hedges = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_fanout_hedges",
            "Slow members whose part was also asked of their other holders",
            fanout_hedges.clone(),
        );
        let fanout_hedges_refused = Counter::default();
        registry.register(
            "ha_metrics_server_fanout_hedges_refused",
            "Slow calls not hedged because hedges already added a tenth to the peer calls made",
            fanout_hedges_refused.clone(),
        );
        let fanout_suspected = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "ha_metrics_server_fanout_suspected",
            "Requests that skipped a member silent or failing a moment ago",
            fanout_suspected.clone(),
        );
        let fanout_routed = Counter::default();
        registry.register(
            "ha_metrics_server_fanout_routed",
            "Pods lists asked only of the owners of their pods' nodes, not of every member",
            fanout_routed.clone(),
        );
        let fanout_local = Counter::default();
        registry.register(
            "ha_metrics_server_fanout_local",
            "Pods lists answered from this replica's own current points and copies, no member asked",
            fanout_local.clone(),
        );
        let partial_answers = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        registry.register(
            "ha_metrics_server_partial_answers",
            "API answers that lack items because their owner did not answer (each carries a Warning header)",
            partial_answers.clone(),
        );
        // Series alerts rely on exist from the start, at zero.
        for resource in ["nodes", "pods"] {
            let _series = partial_answers.get_or_create(&vec![("resource", resource)]);
        }
        SelfMetrics {
            api_requests,
            nodes_known,
            nodes_answerable,
            node_freshness,
            backups_dropped,
            push_errors,
            handovers,
            points_refused,
            handover_duration,
            degraded,
            backup_points,
            backup_nodes,
            owned_nodes,
            standin_nodes,
            kubelets_unreached,
            ring_epoch,
            ownership_changes,
            fanout_duration,
            fanout_errors,
            fanout_hedges,
            fanout_hedges_refused,
            fanout_suspected,
            fanout_routed,
            fanout_local,
            partial_answers,
            registry,
            api_metric_freshness,
            kubelet_last_request_time,
            kubelet_request_duration,
            kubelet_request_total,
            manager_tick_duration,
            storage_points,
            scrape_errors,
            future_samples,
            served_stale_nodes,
            clock_skew,
            node_sample_age,
        }
    }

    /// Mutable access to register more families (raft, peers) at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Drops every per-node series of `node`, so deleted nodes do not leak
    /// series (metrics-server #1876).
    pub fn forget_node(&self, node: &str) {
        let labels = vec![("node", node.to_string())];
        self.kubelet_last_request_time.remove(&labels);
        self.kubelet_request_duration.remove(&labels);
        self.node_sample_age.remove(&labels);
        self.future_samples.remove(&labels);
        for reason in SCRAPE_ERROR_REASONS {
            self.scrape_errors.remove(&vec![("node", node.to_string()), ("reason", reason.to_string())]);
        }
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `DefBuckets` plus buckets around the resolution (metrics-server's
/// `BucketsForScrapeDuration`): half, the resolution itself and 1.5×.
fn tick_buckets(resolution_s: f64) -> Vec<f64> {
    let mut b: Vec<f64> = DEF_BUCKETS.to_vec();
    for extra in [resolution_s * 0.5, resolution_s, resolution_s * 1.5] {
        if extra > 10.0 {
            b.push(extra);
        }
    }
    b.sort_by(f64::total_cmp);
    b.dedup();
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_a_node_removes_all_its_series() {
        let m = SelfMetrics::new(15.0);
        let node = vec![("node", "gone".to_string())];
        m.kubelet_last_request_time.get_or_create(&node).set(1.0);
        m.kubelet_request_duration.get_or_create(&node).observe(0.1);
        m.node_sample_age.get_or_create(&node).set(2.0);
        m.scrape_errors.get_or_create(&vec![("node", "gone".to_string()), ("reason", "tls".to_string())]).inc();
        assert!(m.encode().contains("gone"));
        m.forget_node("gone");
        assert!(!m.encode().contains("gone"), "{}", m.encode());
    }
}
