//! The outbox over an in-process transport: chunked pushes under the body
//! limit, a slow or refusing receiver that stalls nobody else, bounded
//! queues, and handovers that are retried and reported when delivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use raft::CallError;
use raft::MemberState;
use raft::state::RingParams;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::model::{ContainerPoint, PodPoints, Point};
use crate::peer::wire::Push;

#[derive(Default)]
struct Recorder {
    /// Per receiver: the encoded size and the pushes it took.
    got: Mutex<BTreeMap<NodeId, Vec<(usize, Push)>>>,
    slow: HashSet<NodeId>,
    refusing: Mutex<HashSet<NodeId>>,
    /// How long every push takes to be taken.
    delay: Duration,
}

impl Transport for Recorder {
    fn call<Req, Resp>(
        &self,
        to: NodeId,
        _path: &'static str,
        body: Req,
        timeout: Duration,
        _size: ReplySize,
    ) -> impl std::future::Future<Output = Result<Resp, CallError>> + Send
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send + 'static,
    {
        let bytes = raft::codec::encode(&body).expect("encodes");
        let slow = self.slow.contains(&to);
        let refused = self.refusing.lock().unwrap().contains(&to);
        let outcome = if slow || refused {
            None
        } else {
            let push: Push = raft::codec::decode(&bytes).expect("a push within the decode limit");
            self.got.lock().unwrap().entry(to).or_default().push((bytes.len(), push));
            Some(raft::codec::encode(&PushAck { taken: 1 }).expect("encodes"))
        };
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            if slow {
                tokio::time::sleep(timeout).await;
                return Err(CallError::Timeout { addr: to.to_string(), path: String::new(), timeout });
            }
            match outcome {
                Some(b) => Ok(raft::codec::decode(&b).expect("decodes")),
                None => Err(CallError::Refused {
                    addr: to.to_string(),
                    path: String::new(),
                    status: 503,
                    reason: String::new(),
                }),
            }
        }
    }

    fn silence(&self, _: NodeId) -> Option<Duration> {
        Some(Duration::ZERO)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(3)
    }
}

fn view() -> watch::Receiver<Arc<Ownership>> {
    let members = (1..=4).map(|id| (id, raft::fixture::name(id), MemberState::Active));
    let s = raft::fixture::state(members, Some(RingParams { hash_version: 1, vnodes: 16 }));
    watch::channel(Arc::new(Ownership::from_state(1, &s))).1
}

/// One node's batch with `pods` pods of two containers.
fn node_batch(pods: usize) -> NodeBatch {
    let point = Point { timestamp: 1, cpu_cumulative_ns: 1, memory_bytes: 1, start_time: None };
    NodeBatch {
        node: Some(point),
        pods: (0..pods)
            .map(|p| PodPoints {
                namespace: "kube-system".into(),
                name: format!("pod-with-a-long-realistic-name-{p:04}"),
                containers: ["app", "sidecar"].iter().map(|c| ContainerPoint { name: c.to_string(), point }).collect(),
            })
            .collect(),
    }
}

fn outbox(rec: Arc<Recorder>, capacity: usize) -> (Arc<Outbox<Recorder>>, mpsc::Receiver<(NodeId, Vec<String>)>) {
    let (tx, rx) = mpsc::channel(1 << 16);
    let metrics = Arc::new(SelfMetrics::new(15.0));
    (Outbox::new(rec, metrics, view(), tx, capacity, CancellationToken::new()), rx)
}

#[tokio::test(start_paused = true)]
async fn a_handover_of_five_thousand_nodes_goes_in_chunks_under_the_body_limit_and_is_reported() {
    let rec = Arc::new(Recorder::default());
    let (out, mut delivered) = outbox(rec.clone(), QUEUE_CAPACITY);
    let batch = node_batch(30);
    for i in 0..5_000 {
        out.send_all(2, Kind::Handover, &format!("node-{i}"), vec![batch.clone(), batch.clone()]);
    }
    let mut reported = HashSet::new();
    while reported.len() < 5_000 {
        let (to, nodes) = delivered.recv().await.expect("deliveries reported");
        assert_eq!(to, 2);
        reported.extend(nodes);
    }
    let got = rec.got.lock().unwrap();
    let pushes = &got[&2];
    assert!(pushes.len() > 1, "one body for 5,000 nodes");
    for (bytes, push) in pushes {
        assert!(push.handover);
        assert!(*bytes <= raft::codec::DECODE_LIMIT, "a {bytes}-byte push is over the receiver's limit");
    }
    let batches: usize = pushes.iter().map(|(_, p)| p.points.len()).sum();
    assert_eq!(batches, 10_000, "every batch sent once, in order");
    let order: Vec<&str> = pushes.iter().flat_map(|(_, p)| p.points.iter().map(|(n, _)| n.as_str())).collect();
    assert_eq!(order[0], "node-0");
    assert_eq!(order[9_999], "node-4999");
    out.stop().await;
}

#[tokio::test(start_paused = true)]
async fn copies_scraped_during_a_bulk_handover_travel_between_its_chunks() {
    // Each push takes a second to be taken: 5,000 nodes handed over are
    // some twenty chunks, twenty seconds.
    let rec = Arc::new(Recorder { delay: Duration::from_secs(1), ..Recorder::default() });
    let (out, mut delivered) = outbox(rec.clone(), QUEUE_CAPACITY);
    let batch = node_batch(30);
    for i in 0..5_000 {
        out.send_all(2, Kind::Handover, &format!("node-{i}"), vec![batch.clone(), batch.clone()]);
    }
    out.flush_soon();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    out.send(2, Kind::Copy, "scraped-meanwhile", Arc::new(node_batch(30)));
    let mut reported = HashSet::new();
    while reported.len() < 5_000 {
        reported.extend(delivered.recv().await.expect("deliveries reported").1);
    }
    let got = rec.got.lock().unwrap();
    let pushes = &got[&2];
    assert!(pushes.len() > 10, "the handover took {} pushes", pushes.len());
    let copy_at = pushes
        .iter()
        .position(|(_, p)| !p.handover && p.points.iter().any(|(n, _)| n == "scraped-meanwhile"))
        .expect("the copy was sent");
    assert!(copy_at <= 3, "the copy waited for {copy_at} of {} handover chunks", pushes.len() - 1);
    let handed: usize = pushes.iter().filter(|(_, p)| p.handover).map(|(_, p)| p.points.len()).sum();
    assert_eq!(handed, 10_000, "every handover batch sent once");
    let order: Vec<&str> =
        pushes.iter().filter(|(_, p)| p.handover).flat_map(|(_, p)| p.points.iter().map(|(n, _)| n.as_str())).collect();
    assert!(order.windows(2).all(|w| w[0] == w[1] || node_number(w[0]) < node_number(w[1])), "in queue order");
    drop(got);
    out.stop().await;
}

fn node_number(name: &str) -> usize {
    name.trim_start_matches("node-").parse().expect("a node-<i> name")
}

#[tokio::test(start_paused = true)]
async fn a_slow_receiver_and_a_refusing_one_stall_nobody_else() {
    let rec = Arc::new(Recorder { slow: [3].into(), ..Recorder::default() });
    rec.refusing.lock().unwrap().insert(4);
    let (out, _delivered) = outbox(rec.clone(), QUEUE_CAPACITY);
    let batch = Arc::new(node_batch(2));
    for round in 0..5 {
        for to in [2, 3, 4] {
            out.send(to, Kind::Copy, &format!("node-{round}"), batch.clone());
        }
        tokio::time::sleep(FLUSH_EVERY * 2).await;
    }
    let got = rec.got.lock().unwrap();
    let to_two: usize = got.get(&2).map_or(0, |p| p.iter().map(|(_, p)| p.points.len()).sum());
    assert_eq!(to_two, 5, "every copy reached the healthy receiver while the others hang or refuse");
    assert!(!got.contains_key(&3) && !got.contains_key(&4));
    drop(got);
    out.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_its_oldest_copy_first_and_keeps_handovers() {
    let rec = Arc::new(Recorder { slow: [2].into(), ..Recorder::default() });
    let (out, _delivered) = outbox(rec, 4);
    let batch = Arc::new(node_batch(1));
    out.send(2, Kind::Handover, "moved", batch.clone());
    for i in 0..6 {
        out.send(2, Kind::Copy, &format!("node-{i}"), batch.clone());
    }
    assert_eq!(out.pending(2), 4);
    assert_eq!(out.metrics.backups_dropped.get(), 3);
    let q = out.queue(2);
    let kept: Vec<String> = q.entries.lock().unwrap().iter().map(|e| e.node.clone()).collect();
    assert_eq!(kept, ["moved", "node-3", "node-4", "node-5"]);
    out.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_handover_is_sent_again_once_the_receiver_takes_it() {
    let rec = Arc::new(Recorder::default());
    rec.refusing.lock().unwrap().insert(2);
    let (out, mut delivered) = outbox(rec.clone(), QUEUE_CAPACITY);
    out.send(2, Kind::Handover, "node-1", Arc::new(node_batch(1)));
    tokio::time::sleep(FLUSH_EVERY * 2).await;
    rec.refusing.lock().unwrap().clear();
    let (to, nodes) = delivered.recv().await.expect("delivered after the retry");
    assert_eq!((to, nodes), (2, vec!["node-1".to_string()]));
    out.stop().await;
}

#[test]
fn chunks_stay_under_the_chunk_size_and_a_huge_batch_travels_alone() {
    let small = Arc::new(node_batch(30));
    let huge = Arc::new(node_batch(40_000));
    assert!(approx_bytes(&huge) > CHUNK_BYTES);
    let entry =
        |b: &Arc<NodeBatch>| Entry { kind: Kind::Copy, node: "n".into(), batch: b.clone(), prev: None, tries: 0 };
    let mut entries: Vec<Entry> = (0..2_000).map(|_| entry(&small)).collect();
    entries.insert(700, entry(&huge));
    let cs = chunks(entries);
    assert_eq!(cs.iter().map(Vec::len).sum::<usize>(), 2_001);
    for c in &cs {
        let size: usize = c.iter().map(|e| approx_bytes(&e.batch)).sum();
        assert!(size <= CHUNK_BYTES || c.len() == 1, "a chunk of {size} bytes with {} batches", c.len());
        let encoded = raft::codec::encode(&PushOut {
            epoch: 1,
            handover: false,
            points: c.iter().map(|e| (e.node.as_str(), &*e.batch)).collect(),
        })
        .unwrap();
        assert!(encoded.len() <= CHUNK_BYTES * 2 || c.len() == 1, "the estimate is off: {} bytes", encoded.len());
    }
}

#[test]
fn a_borrowed_push_encodes_as_the_owned_one() {
    let b = node_batch(3);
    let owned = Push { epoch: 4, handover: true, points: vec![("n".to_string(), b.clone())] };
    let borrowed = PushOut { epoch: 4, handover: true, points: vec![("n", &b)] };
    assert_eq!(raft::codec::encode(&owned).unwrap(), raft::codec::encode(&borrowed).unwrap());
}
