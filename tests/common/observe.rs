//! A background observer for failover tests: polls the node list (every
//! 500 ms) and the pod list (every 2 s) of chosen replicas directly, and
//! records what a client would notice — a missing node or pod, the age of
//! the oldest served sample, errors, partial answers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tls::pki::CertPair;
use tokio_util::sync::CancellationToken;

/// What the observer saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Node-list answers received.
    pub node_answers: usize,
    /// Node-list answers lacking at least one node, with an example.
    pub missing_node_answers: usize,
    pub example_missing: Option<(usize, Vec<String>)>,
    /// Pod-list answers received, and those lacking a running pod.
    pub pod_answers: usize,
    pub missing_pod_answers: usize,
    /// The oldest served sample, over every answer.
    pub max_age: Duration,
    /// Requests that failed (connection errors, non-200).
    pub errors: usize,
    /// Answers with a Warning header, and the first one's warnings.
    pub partial: usize,
    pub example_warning: Option<Vec<String>>,
}

/// A running observer; [`Observer::stop`] returns what it saw.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn age_of(ts: &str, now: SystemTime) -> Duration {
    let parsed = apimachinery::format::parse_time(ts).map(|ns| UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64));
    parsed.and_then(|t| now.duration_since(t).ok()).unwrap_or_default()
}

impl Observer {
    /// Polls replicas `which` (addresses from `c`) with `admin`.
    pub fn start(c: &super::Cluster, which: &[usize], admin: &CertPair) -> Observer {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let nodes: BTreeSet<String> = c.env.spec.nodes.iter().map(|n| n.name.clone()).collect();
        let pods: BTreeSet<String> = c
            .env
            .spec
            .nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)))
            .collect();
        let mut tasks = Vec::new();
        for &i in which {
            let addr = c.env.replica_addr(i);
            for (path, every, want) in [
                ("/apis/metrics.k8s.io/v1beta1/nodes", Duration::from_millis(500), nodes.clone()),
                ("/apis/metrics.k8s.io/v1beta1/pods", Duration::from_secs(2), pods.clone()),
            ] {
                let (seen, stop, admin) = (seen.clone(), stop.clone(), admin.clone());
                let is_nodes = path.ends_with("/nodes");
                tasks.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tick.tick() => {}
                        }
                        // A load balancer sends nothing to a replica that is not ready.
                        let ready = sim::client::fetch(addr, "/readyz", None, &[]).await;
                        if !ready.is_ok_and(|r| r.status == 200) {
                            continue;
                        }
                        let r = tokio::time::timeout(
                            Duration::from_secs(5),
                            sim::client::fetch(addr, path, Some(&admin), &[]),
                        )
                        .await;
                        let now = SystemTime::now();
                        let mut s = seen.lock().unwrap();
                        let reply = match r {
                            Ok(Ok(reply)) if reply.status == 200 => reply,
                            _ => {
                                s.errors += 1;
                                continue;
                            }
                        };
                        if !reply.warnings().is_empty() {
                            s.partial += 1;
                            s.example_warning.get_or_insert(reply.warnings());
                        }
                        let v: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
                        let items = v["items"].as_array().cloned().unwrap_or_default();
                        let mut got = BTreeSet::new();
                        for item in &items {
                            let name = item["metadata"]["name"].as_str().unwrap_or_default();
                            let key = match item["metadata"]["namespace"].as_str() {
                                Some(ns) => format!("{ns}/{name}"),
                                None => name.to_string(),
                            };
                            got.insert(key);
                            let age = age_of(item["timestamp"].as_str().unwrap_or_default(), now);
                            s.max_age = s.max_age.max(age);
                        }
                        let lacking: Vec<String> = want.difference(&got).cloned().collect();
                        if is_nodes {
                            s.node_answers += 1;
                            if !lacking.is_empty() {
                                s.missing_node_answers += 1;
                                s.example_missing.get_or_insert((i, lacking));
                            }
                        } else {
                            s.pod_answers += 1;
                            if !lacking.is_empty() {
                                s.missing_pod_answers += 1;
                                s.example_missing.get_or_insert((i, lacking.into_iter().take(5).collect()));
                            }
                        }
                    }
                }));
            }
        }
        Observer { seen, stop, tasks }
    }

    /// Stops polling and returns what was seen.
    pub async fn stop(self) -> Seen {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.seen.lock().unwrap().clone()
    }
}
