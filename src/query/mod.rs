//! Any replica answers any request: [`ClusterSource`] is the API's usage
//! source in a cluster. It plans who answers for what ([`plan`], pure),
//! reads its own part from the local store, asks the other members over the
//! peer port in parallel with a deadline, and merges. Per-peer results are
//! data (`(member, Result)`, as Garage's `call_many`): a member that does not
//! answer makes the answer partial, with one sentence per member for the
//! `Warning` header, never a silent hole.

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use raft::{NodeId, ReplySize};
use tokio::sync::watch;

use crate::model::{Answer, NodeUsage, PodKey, PodQuery, PodUsage, UnixNanos, UsageSource};
use crate::ownership::Ownership;
use crate::peer::answer::Answerer;
use crate::peer::wire::{NodesQuery, NodesReply, PodAnswer, PodsQuery, PodsReply, Source, path};
use crate::selfmetrics::SelfMetrics;
use plan::{Asked, group_nodes, merge_pods, missing_sentence, pod_askees};

/// Most pods whose node is remembered for routing a later GET.
const LOCATOR_CAPACITY: usize = 1 << 20;

/// The usage source of a replica in a cluster.
pub struct ClusterSource {
    node: Arc<raft::Node>,
    answerer: Answerer,
    ownership: watch::Receiver<Arc<Ownership>>,
    deadline: Duration,
    metrics: Arc<SelfMetrics>,
    /// The node each pod was last answered from, so a GET of one pod goes to
    /// that node's owner only (pods do not change nodes).
    locator: Mutex<HashMap<PodKey, String>>,
}

impl ClusterSource {
    /// A source answering with `answerer` locally and asking peers through `node`.
    pub fn new(
        node: Arc<raft::Node>,
        answerer: Answerer,
        ownership: watch::Receiver<Arc<Ownership>>,
        deadline: Duration,
        metrics: Arc<SelfMetrics>,
    ) -> ClusterSource {
        ClusterSource { node, answerer, ownership, deadline, metrics, locator: Mutex::new(HashMap::new()) }
    }

    /// Calls `path` on `peer` with the deadline, recording latency and errors.
    async fn ask<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        peer: NodeId,
        name: &str,
        path: &str,
        body: Req,
    ) -> Result<Resp, String> {
        let started = Instant::now();
        let r = self.node.call(peer, path, body, self.deadline, ReplySize::Large).await;
        let labels = vec![("peer", name.to_string())];
        self.metrics.fanout_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        r.map_err(|e| {
            let reason = match &e {
                raft::CallError::Timeout { .. } => "timeout",
                raft::CallError::Unreachable { .. } => "unreachable",
                raft::CallError::Refused { .. } => "refused",
                raft::CallError::Decode { .. } => "decode",
                raft::CallError::Request { .. } => "request",
            };
            self.metrics
                .fanout_errors
                .get_or_create(&vec![("peer", name.to_string()), ("reason", reason.into())])
                .inc();
            tracing::debug!(peer = name, %e, "peer query failed");
            e.to_string()
        })
    }

    fn remember(&self, answers: &[PodAnswer]) {
        let mut loc = self.locator.lock().unwrap_or_else(|p| p.into_inner());
        if loc.len() + answers.len() > LOCATOR_CAPACITY {
            loc.clear();
        }
        for a in answers {
            loc.insert((a.namespace.clone(), a.name.clone()), a.node.clone());
        }
    }

    fn located(&self, key: &PodKey) -> Option<String> {
        self.locator.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }
}

impl UsageSource for ClusterSource {
    fn nodes<'a>(&'a self, names: &'a [String], now: UnixNanos) -> BoxFuture<'a, Answer<Vec<Option<NodeUsage>>>> {
        Box::pin(async move {
            let ownership = self.ownership.borrow().clone();
            let groups = group_nodes(&ownership, names);
            let mut out: Vec<Option<NodeUsage>> = vec![None; names.len()];
            let mut missing = Vec::new();
            let calls = groups.iter().map(|(asked, idx)| {
                let want: Vec<String> = idx.iter().map(|i| names[*i].clone()).collect();
                let ownership = &ownership;
                async move {
                    let r = match asked {
                        Asked::Local => Ok(self.answerer.nodes(&want, now)),
                        Asked::Peer(peer) => {
                            let q = NodesQuery { epoch: ownership.epoch, source: Source::Owned, names: want };
                            let name = ownership.name_of(*peer);
                            self.ask::<_, NodesReply>(*peer, &name, path::NODES, q).await.map(|r| r.items)
                        }
                    };
                    (*asked, idx, r)
                }
            });
            for (asked, idx, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(items) => {
                        let mut by_name: HashMap<String, NodeUsage> = items.into_iter().collect();
                        for i in idx {
                            out[*i] = by_name.remove(&names[*i]);
                        }
                    }
                    Err(cause) => {
                        let who = match asked {
                            Asked::Peer(p) => ownership.name_of(p),
                            Asked::Local => "self".into(),
                        };
                        let what = format!("{} of {} nodes", idx.len(), names.len());
                        missing.push(missing_sentence(&who, &what, &cause));
                    }
                }
            }
            Answer { value: out, missing }
        })
    }

    fn pods<'a>(
        &'a self,
        query: &'a PodQuery,
        keys: &'a [PodKey],
        now: UnixNanos,
    ) -> BoxFuture<'a, Answer<Vec<Option<PodUsage>>>> {
        Box::pin(async move {
            let ownership = self.ownership.borrow().clone();
            let on_node = query.one.as_ref().and_then(|k| self.located(k));
            let q = PodsQuery {
                epoch: ownership.epoch,
                source: Source::Owned,
                namespace: query.namespace.clone(),
                labels: query.labels.clone(),
                fields: query.fields.clone(),
                one: query.one.clone(),
            };
            let askees = pod_askees(&ownership, on_node.as_deref());
            let calls = askees.iter().map(|asked| {
                let (q, ownership) = (q.clone(), &ownership);
                async move {
                    let r = match asked {
                        Asked::Local => self.answerer.pods(&q, now).map_err(|e| e.to_string()),
                        Asked::Peer(peer) => {
                            let name = ownership.name_of(*peer);
                            self.ask::<_, PodsReply>(*peer, &name, path::PODS, q).await.map(|r| r.items)
                        }
                    };
                    (*asked, r)
                }
            });
            let mut answers = Vec::new();
            let mut missing = Vec::new();
            for (asked, result) in futures::future::join_all(calls).await {
                match result {
                    Ok(items) => answers.extend(items),
                    Err(cause) => {
                        let who = match asked {
                            Asked::Peer(p) => ownership.name_of(p),
                            Asked::Local => "self".into(),
                        };
                        missing.push(missing_sentence(&who, "the pods of its nodes are", &cause));
                    }
                }
            }
            self.remember(&answers);
            let mut value = merge_pods(keys, answers);
            // A GET routed by a stale location (the pod was recreated on
            // another node): ask everyone once more.
            if let Some(key) = query.one.as_ref().filter(|_| on_node.is_some())
                && value.iter().all(Option::is_none)
                && missing.is_empty()
            {
                self.locator.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                let retry = self.pods(query, keys, now).await;
                value = retry.value;
                missing = retry.missing;
            }
            Answer { value, missing }
        })
    }
}
