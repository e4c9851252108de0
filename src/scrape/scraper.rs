//! One scrape of one kubelet, end to end: fetch `/metrics/resource`, parse
//! it, store the points, and record metrics-server's per-request
//! self-metrics. A failure of any step is that node's failure only: it is
//! counted by reason, logged once when the node starts failing, and the store
//! decides how long the node's last good points stay servable.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::discovery::{ScrapeTarget, TargetError};
use crate::model::now_nanos;
use crate::peer::push::Pusher;
use crate::scrape::client::KubeletClient;
use crate::scrape::parse::parse_scrape;
use crate::scrape::scheduler::ScrapeOne;
use crate::selfmetrics::SelfMetrics;
use crate::store::Store;

/// The nodes whose latest scrape failed: a kubelet problem, not a gap of ours.
pub type Failing = Arc<Mutex<HashSet<String>>>;

/// Scrapes kubelets into a [`Store`].
pub struct KubeletScraper {
    client: KubeletClient,
    store: Arc<Store>,
    /// What other replicas backed up here (adopted when a node becomes ours).
    backups: Arc<Store>,
    /// Sends backups and handovers to other replicas (none without peers).
    pusher: Option<Arc<Pusher>>,
    metrics: Arc<SelfMetrics>,
    /// `https`, or `http` with `--deprecated-kubelet-completely-insecure`.
    scheme: &'static str,
    /// Nodes whose last scrape failed, so a failure is logged at warn level
    /// once per outage, not once per period.
    failing: Failing,
}

impl KubeletScraper {
    pub fn new(
        client: KubeletClient,
        scheme: &'static str,
        store: Arc<Store>,
        metrics: Arc<SelfMetrics>,
    ) -> KubeletScraper {
        let backups = Arc::new(Store::with_role(
            std::time::Duration::from_secs(1),
            std::time::Duration::ZERO,
            metrics.clone(),
            crate::store::Role::Backup,
        ));
        KubeletScraper { client, store, backups, pusher: None, metrics, scheme, failing: Failing::default() }
    }

    /// The nodes whose last scrape failed (shared, for readiness).
    pub fn failing(&self) -> Failing {
        self.failing.clone()
    }

    /// Backs every scraped batch up through `pusher`, adopts gained nodes
    /// from `backups` and hands lost ones over.
    pub fn with_peers(mut self, backups: Arc<Store>, pusher: Arc<Pusher>) -> KubeletScraper {
        self.backups = backups;
        self.pusher = Some(pusher);
        self
    }

    fn failed(&self, node: &str, reason: &'static str, error: &dyn std::fmt::Display) {
        self.metrics
            .scrape_errors
            .get_or_create(&vec![("node", node.to_string()), ("reason", reason.to_string())])
            .inc();
        self.store.scrape_failed(node, now_nanos());
        let first = self.failing.lock().map(|mut f| f.insert(node.to_string())).unwrap_or(true);
        if first {
            tracing::warn!(node, reason, error = %error, "failed to scrape node");
        } else {
            tracing::debug!(node, reason, error = %error, "failed to scrape node");
        }
    }
}

impl ScrapeOne for KubeletScraper {
    async fn scrape(&self, target: ScrapeTarget) {
        let node = target.node.as_str();
        let request_time = now_nanos();
        let started = Instant::now();
        let url: http::Uri = match target.url(self.scheme).parse() {
            Ok(u) => u,
            Err(e) => return self.failed(node, "address", &e),
        };
        let result = self.client.get(&url, node).await;
        let labels = vec![("node", node.to_string())];
        self.metrics.kubelet_request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        self.metrics.kubelet_last_request_time.get_or_create(&labels).set(request_time as f64 / 1e9);
        let success = if result.is_ok() { "true" } else { "false" };
        self.metrics.kubelet_request_total.get_or_create(&vec![("success", success)]).inc();
        let body = match result {
            Ok(body) => body,
            Err(e) => return self.failed(node, e.reason(), &e),
        };
        match parse_scrape(body, node, request_time, &self.metrics).await {
            Ok(batch) => {
                if let Some(p) = &self.pusher {
                    p.backup(node, batch.clone());
                }
                self.store.store_scrape(node, batch, now_nanos());
                let recovered = self.failing.lock().map(|mut f| f.remove(node)).unwrap_or(false);
                if recovered {
                    tracing::info!(node, "node scraped again after failures");
                }
            }
            Err(e) => self.failed(node, e.reason(), &e),
        }
    }

    fn unreachable(&self, error: &TargetError) {
        let TargetError::NoAddress { node, .. } = error;
        self.failed(node, "no_address", error);
    }

    fn newest(&self, node: &str) -> Option<crate::model::UnixNanos> {
        self.store.newest_sample(node)
    }

    fn adopt(&self, node: &str) {
        if self.store.adopt(node, &self.backups, now_nanos()) {
            tracing::debug!(node, "serving the backed-up points of a node now owned here");
        }
    }

    /// Hands `node`'s last points to its new owner and keeps them here as a
    /// backup: this replica is often the node's successor, and the new
    /// owner's pushes then extend a series that already has a rate. Without
    /// them, a new owner killed before its second push left the node with
    /// one backed-up point (no rate) and stale own points: a gap.
    fn release(&self, node: &str, to: Option<raft::NodeId>) {
        let points = self.store.export(node);
        if let (Some(p), Some(to)) = (&self.pusher, to) {
            p.hand_over(to, node, points.clone());
        }
        let now = now_nanos();
        for batch in points {
            self.backups.store_replica(node, batch, now);
        }
    }

    fn reseed(&self, node: &str, to: raft::NodeId) {
        if let Some(p) = &self.pusher {
            p.seed_backup(to, node, self.store.export(node));
        }
    }

    fn forget(&self, node: &str) {
        self.store.forget_node(node);
        self.metrics.forget_node(node);
        if let Ok(mut f) = self.failing.lock() {
            f.remove(node);
        }
    }
}

#[cfg(test)]
mod tests;
