//! Points on their way to other members: one bounded queue and one sender
//! task per receiving member, so a slow or refusing receiver never stalls
//! the others. Every [`FLUSH_EVERY`] a sender takes what its queue holds
//! (every copy, and at most a chunk of seeds and handovers: a bulk transfer
//! goes on round after round without holding back fresh copies) and
//! pushes it in chunks of at most [`CHUNK_BYTES`] (the receiver refuses
//! bodies over 16 MiB), each chunk bounded by [`PUSH_TIMEOUT`]. Scraping
//! never waits: a full queue drops its oldest copy and counts it. A copy
//! that fails is dropped (the next scrape sends a newer point); a handover
//! or a seed that fails is queued again, a few times.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::{NodeId, ReplySize};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::model::NodeBatch;
use crate::ownership::Ownership;
use crate::peer::call::{Transport, call_many};
use crate::peer::wire::{PushAck, PushOut, path};
use crate::selfmetrics::SelfMetrics;

/// How often queued points are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Most entries waiting for one receiver (a node's batch is one entry).
pub const QUEUE_CAPACITY: usize = 16_384;
/// Largest push body, estimated before encoding.
pub const CHUNK_BYTES: usize = 2 << 20;
/// Deadline of one push.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a handover or seed that failed is sent again.
const RETRIES: u8 = 4;

/// Why a batch travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A copy of a fresh scrape, for the node's other holders.
    Copy,
    /// The last points of a node, for a member that holds it from now on.
    Seed,
    /// The last points of a node, for its new owner.
    Handover,
}

struct Entry {
    kind: Kind,
    node: String,
    batch: Arc<NodeBatch>,
    /// The sender's previous points of `node`, travelling just before `batch`.
    prev: Option<Arc<NodeBatch>>,
    tries: u8,
}

impl Entry {
    fn bytes(&self) -> usize {
        approx_bytes(&self.batch) + self.prev.as_deref().map_or(0, approx_bytes)
    }
}

#[derive(Default)]
struct Queue {
    entries: Mutex<VecDeque<Entry>>,
    wake: Notify,
}

/// Told the receiver and the nodes whose handover it acknowledged.
pub type Delivered = mpsc::Sender<(NodeId, Vec<String>)>;

/// The outgoing queues of one replica.
pub struct Outbox<T: Transport> {
    transport: Arc<T>,
    metrics: Arc<SelfMetrics>,
    ownership: watch::Receiver<Arc<Ownership>>,
    queues: Mutex<HashMap<NodeId, Arc<Queue>>>,
    delivered: Delivered,
    tasks: TaskTracker,
    stop: CancellationToken,
    capacity: usize,
}

/// About how many bytes `batch` takes encoded (names, and 40 bytes a point).
pub fn approx_bytes(batch: &NodeBatch) -> usize {
    48 + batch
        .pods
        .iter()
        .map(|p| 16 + p.namespace.len() + p.name.len() + p.containers.iter().map(|c| 40 + c.name.len()).sum::<usize>())
        .sum::<usize>()
}

/// The last and the previous batch of a [`Store::export`](crate::store::Store::export)
/// (newest first, at most two), shared; `None` for a node not held.
pub fn last_two(export: Vec<NodeBatch>) -> Option<(Arc<NodeBatch>, Option<Arc<NodeBatch>>)> {
    let mut it = export.into_iter().map(Arc::new);
    it.next().map(|last| (last, it.next()))
}

impl<T: Transport> Outbox<T> {
    /// Queues of `capacity` entries per receiver; senders stop on `stop`.
    pub fn new(
        transport: Arc<T>,
        metrics: Arc<SelfMetrics>,
        ownership: watch::Receiver<Arc<Ownership>>,
        delivered: Delivered,
        capacity: usize,
        stop: CancellationToken,
    ) -> Arc<Outbox<T>> {
        let tasks = TaskTracker::new();
        let queues = Mutex::new(HashMap::new());
        Arc::new(Outbox { transport, metrics, ownership, queues, delivered, tasks, stop, capacity })
    }

    /// Queues `batch` of `node` for member `to`; never blocks.
    pub fn send(self: &Arc<Self>, to: NodeId, kind: Kind, node: &str, batch: Arc<NodeBatch>) {
        self.send_pair(to, kind, node, batch, None);
    }

    /// Queues `node`'s last points and, if any, the previous ones it holds,
    /// to travel together (previous first) so the receiver takes both as
    /// this replica has them; never blocks.
    pub fn send_pair(
        self: &Arc<Self>,
        to: NodeId,
        kind: Kind,
        node: &str,
        batch: Arc<NodeBatch>,
        prev: Option<Arc<NodeBatch>>,
    ) {
        let queue = self.queue(to);
        let mut q = queue.entries.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(Entry { kind, node: node.to_string(), batch, prev, tries: 0 });
        while q.len() > self.capacity {
            // The oldest copy goes first: a newer one of its node is queued or coming.
            let at = q.iter().position(|e| e.kind == Kind::Copy).unwrap_or(0);
            q.remove(at);
            self.metrics.backups_dropped.inc();
        }
    }

    /// Queues the batches that rebuild `node`'s last points for `to`
    /// ([`Store::export`](crate::store::Store::export)).
    pub fn send_all(self: &Arc<Self>, to: NodeId, kind: Kind, node: &str, batches: Vec<NodeBatch>) {
        if let Some((last, prev)) = last_two(batches) {
            self.send_pair(to, kind, node, last, prev);
        }
    }

    /// Entries waiting for `to`.
    pub fn pending(&self, to: NodeId) -> usize {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.get(&to).map_or(0, |q| q.entries.lock().unwrap_or_else(|p| p.into_inner()).len())
    }

    /// Sends what is queued at once instead of at the next flush.
    pub fn flush_soon(&self) {
        for q in self.queues.lock().unwrap_or_else(|p| p.into_inner()).values() {
            q.wake.notify_one();
        }
    }

    /// Stops the senders and waits for them.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn queue(self: &Arc<Self>, to: NodeId) -> Arc<Queue> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queues.get(&to) {
            return q.clone();
        }
        let q = Arc::new(Queue::default());
        queues.insert(to, q.clone());
        let me = self.clone();
        let queue = q.clone();
        self.tasks.spawn(async move { me.sender(to, queue).await });
        q
    }

    /// Drains one receiver's queue every [`FLUSH_EVERY`] until stopped.
    async fn sender(self: Arc<Self>, to: NodeId, queue: Arc<Queue>) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = queue.wake.notified() => {}
            }
            let (entries, more) = take_round(&mut queue.entries.lock().unwrap_or_else(|p| p.into_inner()));
            if entries.is_empty() {
                continue;
            }
            let failed = self.push(to, entries).await;
            // After a failure the retries wait for the next flush.
            let more = more && failed.is_empty();
            if !failed.is_empty() {
                let mut q = queue.entries.lock().unwrap_or_else(|p| p.into_inner());
                for e in failed.into_iter().rev() {
                    q.push_front(e);
                }
            }
            if more {
                // The rest of a bulk transfer goes on at once, behind the
                // copies scraped meanwhile.
                queue.wake.notify_one();
            }
        }
    }

    /// Pushes `entries` to `to` in chunks, copies and the rest apart (the
    /// receiver counts handovers); returns the handovers and seeds to retry.
    async fn push(&self, to: NodeId, entries: Vec<Entry>) -> Vec<Entry> {
        let ownership = self.ownership.borrow().clone();
        if Some(to) == ownership.me {
            return Vec::new();
        }
        let name = ownership.name_of(to);
        let (handovers, copies): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.kind == Kind::Handover);
        let mut retry = Vec::new();
        for (handover, group) in [(false, copies), (true, handovers)] {
            for chunk in chunks(group) {
                let points: Vec<(&str, &NodeBatch)> = chunk
                    .iter()
                    .flat_map(|e| e.prev.iter().chain(std::iter::once(&e.batch)).map(|b| (e.node.as_str(), &**b)))
                    .collect();
                let body = PushOut { epoch: ownership.epoch, handover, points };
                let deadline = Instant::now() + PUSH_TIMEOUT;
                let call = vec![(to, name.clone(), body)];
                let result = call_many::<_, _, PushAck>(
                    &*self.transport,
                    &self.metrics,
                    path::PUSH,
                    call,
                    deadline,
                    ReplySize::Small,
                )
                .await
                .pop()
                .map(|(_, r)| r);
                match result {
                    Some(Ok(_)) => {
                        if handover {
                            self.metrics.handovers.inc();
                            let nodes: Vec<String> = chunk.iter().map(|e| e.node.clone()).collect();
                            // A full channel only delays forgetting: pruning drops the points later.
                            let _ = self.delivered.try_send((to, nodes));
                        }
                    }
                    _ => {
                        self.metrics.push_errors.get_or_create(&vec![("peer", name.clone())]).inc();
                        retry.extend(chunk.into_iter().filter(|e| e.kind != Kind::Copy && e.tries < RETRIES).map(
                            |mut e| {
                                e.tries += 1;
                                e
                            },
                        ));
                    }
                }
            }
        }
        retry
    }
}

/// What one round sends of a receiver's queue: every copy, and the seeds
/// and handovers in the queue's order up to one chunk ([`CHUNK_BYTES`], at
/// least one entry); the rest stays queued. Returns whether any does.
/// A bulk transfer (a joining member seeded, a leaving one's thousands of
/// nodes handed over, tens of megabytes at 10,000 nodes) then never holds
/// back the copies of the scrapes made while it travels: their receiver
/// would hold points a period old, and scrape the node again if it took it
/// over then.
fn take_round(q: &mut VecDeque<Entry>) -> (Vec<Entry>, bool) {
    let mut taken = Vec::with_capacity(q.len());
    let mut kept = VecDeque::new();
    let mut bulk = 0usize;
    for e in q.drain(..) {
        if e.kind == Kind::Copy {
            taken.push(e);
            continue;
        }
        let bytes = e.bytes().max(1);
        if bulk == 0 || bulk + bytes <= CHUNK_BYTES {
            bulk += bytes;
            taken.push(e);
        } else {
            kept.push_back(e);
        }
    }
    let more = !kept.is_empty();
    *q = kept;
    (taken, more)
}

/// Splits `entries` into chunks of at most [`CHUNK_BYTES`] (estimated); a
/// batch larger than that travels alone.
fn chunks(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut size = 0usize;
    for e in entries {
        let bytes = e.bytes();
        if out.last().is_none_or(|c| !c.is_empty() && size + bytes > CHUNK_BYTES) {
            out.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(c) = out.last_mut() {
            c.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests;
