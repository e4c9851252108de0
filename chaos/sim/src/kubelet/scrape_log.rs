//! The fleet's scrape log: one record per `/metrics/resource` request (and
//! per connection refused by a source block), with the node, the time, the
//! client's source address (which replica made it, since replicas that
//! bind an address connect from it) and what the kubelet did with it.
//! Bounded: the oldest records go first. Read by the chaos observer and by
//! tests with [`KubeletFleet::scrapes_since`] and
//! [`KubeletFleet::scrapes_after`].

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::KubeletFleet;

/// Records kept before the oldest are dropped (an hour of 60 nodes at R = 1 s
/// is 216,000).
pub const SCRAPE_LOG_CAPACITY: usize = 500_000;

/// What the kubelet did with one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScrapeOutcome {
    /// Answered with the current sample.
    Ok,
    /// Answered with the current sample after the [`Fault::Slow`](super::Fault::Slow) delay.
    Slow,
    /// Answered `500`.
    Http500,
    /// Answered with a body that is not Prometheus text.
    Malformed,
    /// Answered with the frozen sample.
    Frozen,
    /// Held without an answer ([`Fault::Hang`](super::Fault::Hang)).
    Hang,
    /// Refused as unauthenticated (`401`).
    Unauthorized,
    /// The connection came from a blocked source and was closed at once.
    Refused,
    /// The connection came from a blocked source and was held unanswered.
    Blackholed,
}

impl ScrapeOutcome {
    /// Whether the request reached the kubelet's handler (a scrape the
    /// kubelet paid for), as opposed to a connection a block turned away.
    pub fn reached_kubelet(self) -> bool {
        !matches!(self, ScrapeOutcome::Refused | ScrapeOutcome::Blackholed)
    }

    /// Whether the scraper got a usable sample.
    pub fn usable(self) -> bool {
        matches!(self, ScrapeOutcome::Ok | ScrapeOutcome::Slow | ScrapeOutcome::Frozen)
    }
}

/// One scrape as the kubelet saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRecord {
    /// Position in the log (1, 2, …; never reused).
    pub seq: u64,
    /// The node whose kubelet was asked.
    pub node: Arc<str>,
    /// When the request arrived, Unix milliseconds.
    pub at_ms: u64,
    /// The client's source address, when the socket reported one.
    pub client: Option<IpAddr>,
    pub outcome: ScrapeOutcome,
}

impl ScrapeRecord {
    /// When the request arrived.
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.at_ms)
    }
}

/// The bounded log shared by every node of a fleet.
#[derive(Debug, Default)]
pub(crate) struct ScrapeLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    next_seq: u64,
    records: VecDeque<ScrapeRecord>,
}

impl ScrapeLog {
    pub fn push(&self, node: &Arc<str>, at_ms: u64, client: Option<IpAddr>, outcome: ScrapeOutcome) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_seq += 1;
        let seq = inner.next_seq;
        if inner.records.len() >= SCRAPE_LOG_CAPACITY {
            inner.records.pop_front();
        }
        inner.records.push_back(ScrapeRecord { seq, node: node.clone(), at_ms, client, outcome });
    }

    fn after(&self, seq: u64) -> Vec<ScrapeRecord> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Records are in seq order: skip those at or before `seq`.
        let first = inner.records.partition_point(|r| r.seq <= seq);
        inner.records.range(first..).cloned().collect()
    }

    fn since(&self, t_ms: u64) -> Vec<ScrapeRecord> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.records.iter().filter(|r| r.at_ms >= t_ms).cloned().collect()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl KubeletFleet {
    /// Every logged scrape that arrived at or after `t`, oldest first.
    pub fn scrapes_since(&self, t: SystemTime) -> Vec<ScrapeRecord> {
        self.shared.log.since(unix_ms(t))
    }

    /// Every logged scrape with a sequence number above `seq`, oldest
    /// first (for reading the log incrementally: pass the last seen `seq`).
    pub fn scrapes_after(&self, seq: u64) -> Vec<ScrapeRecord> {
        self.shared.log.after(seq)
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_read_incrementally() {
        let log = ScrapeLog::default();
        let node: Arc<str> = Arc::from("node-0");
        for i in 0..5 {
            log.push(&node, 1_000 + i, None, ScrapeOutcome::Ok);
        }
        let all = log.after(0);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(log.after(3).len(), 2);
        assert_eq!(log.since(1_003).len(), 2);
        assert!(log.after(5).is_empty());
    }
}
