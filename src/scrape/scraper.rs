//! One scrape of one kubelet, end to end: fetch `/metrics/resource`, parse
//! it, hand the points to a [`ScrapeSink`], and record metrics-server's
//! per-request self-metrics. A failure of any step is that node's failure
//! only: it is counted by reason, logged once when the node starts failing,
//! and the sink decides how long the node's last good points stay
//! servable. The scraper knows nothing of peers: where the points go from
//! the sink (the store alone, or the store and the node's other holders) is
//! the sink's business. Attempts that do not reach a kubelet are also
//! counted in [`Unreached`], which reports the nodes this replica cannot
//! reach; a *probe* (an attempt at a node it reported and no longer scrapes)
//! only connects when the kubelet refused the connection or the handshake
//! (see `failing`), and otherwise keeps a good result like any scrape; its
//! failure is not the node's: the member that scrapes it now decides what
//! is served.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::discovery::{ScrapeTarget, TargetError};
use crate::model::clock::KubeletClocks;
use crate::model::{NodeBatch, UnixNanos, now_nanos};
use crate::scrape::client::{Dated, KubeletClient};
use crate::scrape::failing::{self, Report, Unreached};
use crate::scrape::parse::parse_scrape;
use crate::scrape::scheduler::{Attempt, ScrapeOne};
use crate::selfmetrics::SelfMetrics;
use crate::store::Store;

/// The nodes whose latest scrape failed: a kubelet problem, not a gap of ours.
pub type Failing = Arc<Mutex<HashSet<String>>>;

/// Where a scrape's result goes.
pub trait ScrapeSink: Send + Sync + 'static {
    /// A good batch of `node`, scraped around `now`.
    fn scraped(&self, node: &str, batch: NodeBatch, now: UnixNanos);
    /// Scraping `node` failed at `now`.
    fn failed(&self, node: &str, now: UnixNanos);
    /// Time of the newest point held for `node`, if any.
    fn newest(&self, node: &str) -> Option<UnixNanos>;
    /// `node` left the cluster.
    fn forget(&self, node: &str);
}

/// A single replica's sink: the store alone.
impl ScrapeSink for Store {
    fn scraped(&self, node: &str, batch: NodeBatch, now: UnixNanos) {
        self.store_scrape(node, batch, now);
    }

    fn failed(&self, node: &str, now: UnixNanos) {
        self.scrape_failed(node, now);
    }

    fn newest(&self, node: &str) -> Option<UnixNanos> {
        self.newest_sample(node)
    }

    fn forget(&self, node: &str) {
        self.forget_node(node);
    }
}

/// Scrapes kubelets into a [`ScrapeSink`].
pub struct KubeletScraper {
    client: KubeletClient,
    sink: Arc<dyn ScrapeSink>,
    metrics: Arc<SelfMetrics>,
    /// `https`, or `http` with `--deprecated-kubelet-completely-insecure`.
    scheme: &'static str,
    /// Nodes whose last scrape failed, so a failure is logged at warn level
    /// once per outage, not once per period.
    failing: Failing,
    /// Nodes whose kubelet this replica cannot reach, reported to the cluster.
    unreached: Arc<Unreached>,
    /// The kubelets' clocks, which correct this host's when they agree it is off.
    clocks: KubeletClocks,
}

impl KubeletScraper {
    pub fn new(
        client: KubeletClient,
        scheme: &'static str,
        sink: Arc<dyn ScrapeSink>,
        metrics: Arc<SelfMetrics>,
        resolution: Duration,
    ) -> KubeletScraper {
        KubeletScraper {
            client,
            sink,
            metrics,
            scheme,
            failing: Failing::default(),
            unreached: Arc::default(),
            clocks: KubeletClocks::new(resolution),
        }
    }

    /// Reports the nodes whose kubelet this replica cannot reach through
    /// `report` (in a cluster: the Raft node's heartbeat), after `after`
    /// failed rounds in a row ([`failing::FAILING_AFTER`] in the server).
    pub fn reporting(mut self, after: u32, report: Report) -> KubeletScraper {
        self.unreached = Arc::new(Unreached::new(after, Some(report)));
        self
    }

    /// The nodes this replica cannot reach (shared, for metrics and tests).
    pub fn unreached(&self) -> Arc<Unreached> {
        self.unreached.clone()
    }

    /// The nodes whose last scrape failed (shared, for readiness).
    pub fn failing(&self) -> Failing {
        self.failing.clone()
    }

    fn failed(&self, node: &str, reason: &'static str, error: &dyn std::fmt::Display, attempt: Attempt) {
        self.metrics
            .scrape_errors
            .get_or_create(&vec![("node", node.to_string()), ("reason", reason.to_string())])
            .inc();
        if failing::unreached(reason) {
            self.unreached.failed(node, reason);
        } else if reason != "no_address" {
            self.unreached.reached(node);
        }
        if attempt == Attempt::Probe {
            tracing::debug!(node, reason, error = %error, "kubelet still not reached");
            return;
        }
        self.sink.failed(node, now_nanos());
        let first = self.failing.lock().map(|mut f| f.insert(node.to_string())).unwrap_or(true);
        if first {
            tracing::warn!(node, reason, error = %error, "failed to scrape node");
        } else {
            tracing::debug!(node, reason, error = %error, "failed to scrape node");
        }
    }
}

impl ScrapeOne for KubeletScraper {
    async fn scrape(&self, target: ScrapeTarget, attempt: Attempt) {
        let node = target.node.as_str();
        let request_time = now_nanos();
        let started = Instant::now();
        let url: http::Uri = match target.url(self.scheme).parse() {
            Ok(u) => u,
            Err(e) => return self.failed(node, "address", &e, attempt),
        };
        if attempt == Attempt::Probe && self.unreached.reach_tells(node) {
            return match self.client.reach(&url, node).await {
                Ok(()) => {
                    tracing::debug!(node, "kubelet reached again");
                    self.unreached.reached(node);
                }
                Err(e) => self.failed(node, e.reason(), &e, attempt),
            };
        }
        let result = self.client.get_dated(&url, node).await;
        let labels = vec![("node", node.to_string())];
        self.metrics.kubelet_request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        self.metrics.kubelet_last_request_time.get_or_create(&labels).set(request_time as f64 / 1e9);
        let success = if result.is_ok() { "true" } else { "false" };
        self.metrics.kubelet_request_total.get_or_create(&vec![("success", success)]).inc();
        let body = match result {
            Ok(Dated { body, date }) => {
                if let Some(date) = date {
                    let skew = self.clocks.observe(node, date);
                    self.metrics.clock_skew.set(skew as f64 / 1e9);
                }
                body
            }
            Err(e) => return self.failed(node, e.reason(), &e, attempt),
        };
        self.unreached.reached(node);
        match parse_scrape(body, node, request_time, &self.metrics).await {
            Ok(batch) => {
                self.sink.scraped(node, batch, now_nanos());
                let recovered = self.failing.lock().map(|mut f| f.remove(node)).unwrap_or(false);
                if recovered {
                    tracing::info!(node, "node scraped again after failures");
                }
            }
            Err(e) => self.failed(node, e.reason(), &e, attempt),
        }
    }

    fn unreachable(&self, error: &TargetError) {
        let TargetError::NoAddress { node, .. } = error;
        self.failed(node, "no_address", error, Attempt::Scrape);
    }

    fn probes(&self, node: &str) -> bool {
        self.unreached.reports(node)
    }

    fn keep_only(&self, keep: &dyn Fn(&str) -> bool, untried_for: std::time::Duration) {
        self.unreached.keep_only(keep);
        self.unreached.lapse(untried_for);
    }

    fn newest(&self, node: &str) -> Option<UnixNanos> {
        self.sink.newest(node)
    }

    fn forget(&self, node: &str) {
        self.sink.forget(node);
        self.metrics.forget_node(node);
        if let Ok(mut f) = self.failing.lock() {
            f.remove(node);
        }
        self.unreached.keep_only(&|n| n != node);
    }
}
