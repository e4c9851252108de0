//! Which kubelets this replica cannot reach: the failed attempts in a row
//! per node, and the nodes it reports (with its liveness heartbeat, through
//! the [`Report`] callback) once they reach [`FAILING_AFTER`], so that the
//! next holder of the node scrapes it instead. A reported node is still
//! tried every round (a *probe*, see `scheduler`), and the first attempt
//! that reaches the kubelet takes it off the report, so the owner takes
//! the node back. A probe after a refused connection or a failed TLS
//! handshake only connects ([`Unreached::reach_tells`]): the kubelet serves
//! nothing to a replica that no longer scrapes it. After a timeout or
//! samples from the future the probe is a whole scrape, since only a
//! request tells whether the kubelet answers in time and right. A report that no longer changes who scrapes the node (a
//! holder before this one reaches it) is dropped; while every holder
//! reports a node, only its owner keeps trying, and the others' reports
//! [`Unreached::lapse`] after a few untried rounds (then they try again). Bookkeeping only: who scrapes is `ownership`'s decision
//! from the committed reports, and this module never talks to peers.
//!
//! Only failures to *reach* a kubelet count (connect, TLS handshake,
//! timeout, a request that could not be sent): a kubelet that answers with
//! an error or a bad body would answer every replica the same way, so
//! moving it helps nobody; such an answer counts as reached. One exception:
//! samples refused as from the future count as not reached, because the
//! cause may be this replica's own clock (stepped back): another holder
//! then scrapes the node. When the kubelet's clock is the one ahead, every
//! holder reports it and its owner alone keeps trying, as for a kubelet
//! nobody reaches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Failed rounds in a row after which a node is reported: one. The served
/// age of a node whose owner lost its kubelet is the time from its last
/// good scrape to the stand-in's first, so each round of waiting adds a
/// resolution to it: after one failed round the stand-in scrapes within
/// about R + 2 s of the last good sample (report with the next heartbeat,
/// the leader's commit, a catch-up scrape within a second), inside the
/// R + 5 s freshness bound at any resolution, and well before
/// `--max-staleness` (2 R by default) drops the node. Two rounds would put
/// it at 2 R + 2 s (32 s at the default 15 s). A false alarm (one dropped
/// connection) costs one move and one move back (two small Raft commits and
/// two handovers of a node's last points), never a gap: the owner's next
/// round reaches the kubelet again and clears the report.
pub const FAILING_AFTER: u32 = 1;

/// Where the reported list goes (the Raft node's heartbeat), called with
/// the whole sorted list whenever it changes.
pub type Report = Arc<dyn Fn(Vec<String>) + Send + Sync>;

/// Whether a scrape failure of this reason (a `scrape_errors` reason label)
/// means the kubelet was not reached.
pub fn unreached(reason: &str) -> bool {
    matches!(reason, "connect" | "tls" | "timeout" | "request" | "future_timestamp")
}

/// Failed attempts in a row per node, and the report built from them.
pub struct Unreached {
    after: u32,
    report: Option<Report>,
    inner: Mutex<Inner>,
}

/// One node's failed attempts in a row.
struct Streak {
    count: u32,
    /// When the last one was.
    last: Instant,
    /// Whether the last one failed to connect (refused, or the TLS handshake).
    refused: bool,
}

#[derive(Default)]
struct Inner {
    /// Per node: its failed attempts in a row.
    in_a_row: HashMap<String, Streak>,
    /// The list last reported (sorted).
    reported: Vec<String>,
}

impl Default for Unreached {
    fn default() -> Self {
        Unreached::new(FAILING_AFTER, None)
    }
}

impl Unreached {
    /// Reports nodes after `after` failed attempts in a row through `report`.
    pub fn new(after: u32, report: Option<Report>) -> Unreached {
        Unreached { after: after.max(1), report, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attempt to scrape `node` did not reach its kubelet, for `reason`
    /// (a `scrape_errors` reason label).
    pub fn failed(&self, node: &str, reason: &str) {
        let mut inner = self.lock();
        let now = Instant::now();
        let refused = matches!(reason, "connect" | "tls");
        let streak = inner.in_a_row.entry(node.to_string()).or_insert(Streak { count: 0, last: now, refused });
        *streak = Streak { count: streak.count.saturating_add(1), last: now, refused };
        self.publish(inner);
    }

    /// Whether a connection alone (TCP and the TLS handshake, no request)
    /// tells whether `node`'s kubelet is back: its last attempt failed to
    /// connect. Not after a timeout or samples from the future.
    pub fn reach_tells(&self, node: &str) -> bool {
        self.lock().in_a_row.get(node).is_some_and(|s| s.refused)
    }

    /// An attempt reached `node`'s kubelet (whatever it answered).
    pub fn reached(&self, node: &str) {
        let mut inner = self.lock();
        if inner.in_a_row.remove(node).is_some() {
            self.publish(inner);
        }
    }

    /// Whether `node` is reported: this replica tries it every round only
    /// to see whether it can reach it again.
    pub fn reports(&self, node: &str) -> bool {
        self.lock().in_a_row.get(node).is_some_and(|s| s.count >= self.after)
    }

    /// The reported nodes, sorted.
    pub fn list(&self) -> Vec<String> {
        self.lock().reported.clone()
    }

    /// Forgets every node but those `keep` names (deleted nodes, nodes
    /// this replica no longer holds: it no longer tries them).
    pub fn keep_only(&self, keep: &dyn Fn(&str) -> bool) {
        let mut inner = self.lock();
        let before = inner.in_a_row.len();
        inner.in_a_row.retain(|n, _| keep(n));
        if inner.in_a_row.len() != before {
            self.publish(inner);
        }
    }

    /// Forgets the nodes whose last attempt is older than `untried_for`
    /// (nobody tried them since: their report lapses, and the node is
    /// tried again if it comes back to this replica).
    pub fn lapse(&self, untried_for: Duration) {
        let mut inner = self.lock();
        let now = Instant::now();
        let before = inner.in_a_row.len();
        inner.in_a_row.retain(|_, s| now.saturating_duration_since(s.last) < untried_for);
        if inner.in_a_row.len() != before {
            self.publish(inner);
        }
    }

    /// Recomputes the report and, when it changed, sends it (outside the lock).
    fn publish(&self, mut inner: std::sync::MutexGuard<'_, Inner>) {
        let mut now: Vec<String> =
            inner.in_a_row.iter().filter(|(_, s)| s.count >= self.after).map(|(k, _)| k.clone()).collect();
        now.sort_unstable();
        if now == inner.reported {
            return;
        }
        inner.reported.clone_from(&now);
        drop(inner);
        if let Some(report) = &self.report {
            report(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (Report, Arc<Mutex<Vec<Vec<String>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (Arc::new(move |l| s.lock().unwrap().push(l)), seen)
    }

    #[test]
    fn a_node_is_reported_after_the_failed_rounds_and_cleared_when_reached() {
        let (report, seen) = recorder();
        let u = Unreached::new(2, Some(report));
        u.failed("b", "connect");
        assert!(!u.reports("b") && seen.lock().unwrap().is_empty(), "one failure is not enough at 2");
        u.failed("b", "connect");
        u.failed("a", "connect");
        u.failed("a", "connect");
        assert!(u.reports("a") && u.reports("b"));
        assert_eq!(u.list(), vec!["a".to_string(), "b".to_string()]);
        u.failed("a", "connect");
        u.reached("b");
        assert_eq!(*seen.lock().unwrap(), vec![vec!["b".to_string()], vec!["a".into(), "b".into()], vec!["a".into()]]);
        u.keep_only(&|n| n != "a");
        assert!(u.list().is_empty() && seen.lock().unwrap().last().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_left_untried_lapses() {
        let (report, seen) = recorder();
        let u = Unreached::new(1, Some(report));
        u.failed("a", "connect");
        tokio::time::sleep(Duration::from_secs(5)).await;
        u.failed("b", "connect");
        u.lapse(Duration::from_secs(4));
        assert_eq!(u.list(), vec!["b".to_string()], "a was not tried for 5 s");
        assert_eq!(seen.lock().unwrap().last().unwrap(), &vec!["b".to_string()]);
    }

    #[test]
    fn the_shipped_threshold_reports_at_the_first_failed_round() {
        let u = Unreached::default();
        u.failed("n", "connect");
        assert!(u.reports("n"));
        u.reached("n");
        assert!(!u.reports("n"));
    }

    #[test]
    fn a_connection_tells_only_after_a_failure_to_connect() {
        let u = Unreached::default();
        assert!(!u.reach_tells("n"), "never failed");
        for (reason, tells) in
            [("connect", true), ("tls", true), ("timeout", false), ("request", false), ("future_timestamp", false)]
        {
            u.failed("n", reason);
            assert_eq!(u.reach_tells("n"), tells, "{reason}");
        }
        u.failed("n", "tls");
        u.reached("n");
        assert!(!u.reach_tells("n"), "reached: nothing to tell");
    }

    #[test]
    fn only_failures_to_reach_the_kubelet_and_samples_from_the_future_count() {
        for r in ["connect", "tls", "timeout", "request", "future_timestamp"] {
            assert!(unreached(r), "{r}");
        }
        for r in ["status", "too_large", "body", "malformed", "address", "no_address"] {
            assert!(!unreached(r), "{r}");
        }
    }
}
