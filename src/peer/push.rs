//! Sending points to other members: after each scrape, the node's newest
//! raw batch to its successor (a backup), and at an ownership change, the
//! last two points of every node that moved away to its new owner (a
//! handover). Scraping never waits: batches wait in a bounded queue that a
//! task drains every [`FLUSH_EVERY`], one push per receiver; a full queue
//! drops its oldest batch and counts it. A push that fails is counted and
//! dropped: the next scrape sends a newer point anyway.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::{NodeId, ReplySize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::wire::{Push, PushAck, path};
use crate::model::NodeBatch;
use crate::ownership::Ownership;
use crate::selfmetrics::SelfMetrics;

/// How often queued backups are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most backup batches waiting at once.
pub const QUEUE_CAPACITY: usize = 8192;
/// Deadline of one push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The outgoing queues.
pub struct Pusher {
    backups: Mutex<VecDeque<(String, NodeBatch)>>,
    /// `(to, node, batches, handover)`: handovers, and backup seeds (`false`).
    handovers: Mutex<Vec<(NodeId, String, Vec<NodeBatch>, bool)>>,
    capacity: usize,
    metrics: Arc<SelfMetrics>,
}

impl Pusher {
    /// Queues of `capacity` backup batches.
    pub fn new(capacity: usize, metrics: Arc<SelfMetrics>) -> Pusher {
        Pusher { backups: Mutex::new(VecDeque::new()), handovers: Mutex::new(Vec::new()), capacity, metrics }
    }

    /// Queues `node`'s newest batch for its successor; never blocks.
    pub fn backup(&self, node: &str, batch: NodeBatch) {
        let mut q = self.backups.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back((node.to_string(), batch));
        while q.len() > self.capacity {
            q.pop_front();
            self.metrics.backups_dropped.inc();
        }
    }

    /// Queues the last points of `node` (the batches that rebuild them) for
    /// its new owner `to`.
    pub fn hand_over(&self, to: NodeId, node: &str, batches: Vec<NodeBatch>) {
        if batches.is_empty() {
            return;
        }
        self.handovers.lock().unwrap_or_else(|p| p.into_inner()).push((to, node.to_string(), batches, true));
    }

    /// Queues the last points of `node` for `to`, its new successor, so the
    /// backup there can serve a rate at once instead of after two scrapes.
    pub fn seed_backup(&self, to: NodeId, node: &str, batches: Vec<NodeBatch>) {
        if batches.is_empty() {
            return;
        }
        self.handovers.lock().unwrap_or_else(|p| p.into_inner()).push((to, node.to_string(), batches, false));
    }

    /// Sends everything queued now: backups grouped by successor (by the
    /// current ring), handovers by new owner. Returns the pushes that failed.
    pub async fn flush(&self, node: &raft::Node, ownership: &Ownership) -> usize {
        let backups: Vec<(String, NodeBatch)> =
            self.backups.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        let handovers = std::mem::take(&mut *self.handovers.lock().unwrap_or_else(|p| p.into_inner()));
        let mut pushes: BTreeMap<(NodeId, bool), Vec<(String, NodeBatch)>> = BTreeMap::new();
        for (n, batch) in backups {
            if let Some(succ) = ownership.successor(&n).filter(|s| Some(*s) != ownership.me) {
                pushes.entry((succ, false)).or_default().push((n, batch));
            }
        }
        for (to, n, batches, handover) in handovers {
            if Some(to) == ownership.me {
                continue;
            }
            let entry = pushes.entry((to, handover)).or_default();
            entry.extend(batches.into_iter().map(|b| (n.clone(), b)));
        }
        let calls = pushes.into_iter().map(|((to, handover), points)| {
            let body = Push { epoch: ownership.epoch, handover, points };
            let name = ownership.name_of(to);
            async move {
                let r: Result<PushAck, _> = node.call(to, path::PUSH, body, PUSH_TIMEOUT, ReplySize::Small).await;
                if let Err(e) = &r {
                    tracing::debug!(peer = %name, handover, error = %e, "push failed");
                    self.metrics.push_errors.get_or_create(&vec![("peer", name)]).inc();
                } else if handover {
                    self.metrics.handovers.inc();
                }
                r.is_err()
            }
        });
        futures::future::join_all(calls).await.into_iter().filter(|failed| *failed).count()
    }
}

/// Drains the queues every [`FLUSH_EVERY`] until `shutdown`.
pub async fn run(
    pusher: Arc<Pusher>,
    node: Arc<raft::Node>,
    ownership: watch::Receiver<Arc<Ownership>>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let o = ownership.borrow().clone();
                pusher.flush(&node, &o).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_batch_and_counts_it_without_blocking() {
        let metrics = Arc::new(SelfMetrics::new(15.0));
        let p = Pusher::new(3, metrics.clone());
        for i in 0..5 {
            p.backup(&format!("node-{i}"), NodeBatch::default());
        }
        let q = p.backups.lock().unwrap();
        let names: Vec<&str> = q.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["node-2", "node-3", "node-4"]);
        assert_eq!(metrics.backups_dropped.get(), 2);
    }
}
