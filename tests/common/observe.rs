//! A background observer for failover tests: polls the node list (every
//! 500 ms) and the pod list (every 2 s) of chosen replicas directly, and
//! records what a client would notice — a missing node or pod, the age of
//! the oldest served sample, a value other than the simulator's true usage,
//! errors, partial answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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
    /// Served items whose CPU or memory is not the simulator's true usage
    /// (2 % or 1 millicore / 1 MiB), with an example.
    pub wrong_values: usize,
    pub example_wrong: Option<String>,
    /// Answers with a Warning header, and the first one's warnings.
    pub partial: usize,
    pub example_warning: Option<Vec<String>>,
    /// Replicas that gave at least one complete node list, and pod list.
    pub complete_nodes_from: BTreeSet<usize>,
    pub complete_pods_from: BTreeSet<usize>,
}

impl Seen {
    /// Whether every one of `replicas` gave a complete node list and a complete pod list.
    pub fn saw_whole(&self, replicas: &[usize]) -> bool {
        replicas.iter().all(|i| self.complete_nodes_from.contains(i) && self.complete_pods_from.contains(i))
    }

    /// Whether no answer lacked a node or pod and no sample was older than `max_age`.
    pub fn no_gap(&self, max_age: Duration) -> bool {
        self.missing_node_answers == 0
            && self.missing_pod_answers == 0
            && self.wrong_values == 0
            && self.max_age <= max_age
    }
}

/// A running observer; [`Observer::stop`] returns what it saw.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
        let truth = Arc::new(truth_of(c));
        let mut tasks = Vec::new();
        for &i in which {
            let addr = c.env.replica_addr(i);
            for (path, every, want) in [
                (sim::answer::NODES, Duration::from_millis(500), nodes.clone()),
                (sim::answer::PODS, Duration::from_secs(2), pods.clone()),
            ] {
                let (seen, stop, admin, truth) = (seen.clone(), stop.clone(), admin.clone(), truth.clone());
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
                        let r = sim::answer::fetch(addr, path, &admin, Duration::from_secs(5)).await;
                        let now = SystemTime::now();
                        let mut s = seen.lock().unwrap();
                        let answer = match r {
                            Ok(answer) if answer.status == 200 => answer,
                            _ => {
                                s.errors += 1;
                                continue;
                            }
                        };
                        if !answer.warnings.is_empty() {
                            s.partial += 1;
                            s.example_warning.get_or_insert(answer.warnings.clone());
                        }
                        for item in &answer.items {
                            if let Some(wrong) = wrong_value(&truth, item) {
                                s.wrong_values += 1;
                                s.example_wrong.get_or_insert(format!("replica {i}: {wrong}"));
                            }
                        }
                        let oldest = answer.items.iter().map(|i| i.age(now)).max().unwrap_or_default();
                        s.max_age = s.max_age.max(oldest);
                        let got = answer.keys();
                        let lacking: Vec<String> = want.difference(&got).cloned().collect();
                        if lacking.is_empty() {
                            let from = if is_nodes { &mut s.complete_nodes_from } else { &mut s.complete_pods_from };
                            from.insert(i);
                        }
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

    /// What it has seen so far (it keeps polling).
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every one of `replicas` gave a complete node and pod list
    /// (the observer has seen the healthy state before a fault).
    pub async fn saw_whole(&self, replicas: &[usize]) {
        let what = format!("complete answers from replicas {replicas:?}");
        sim::wait::expect(&what, Duration::from_secs(30), async || self.seen().saw_whole(replicas)).await;
    }

    /// Keeps watching for `window` (the time the protocol has to show a gap
    /// after a failover), ending early at the first answer that lacks
    /// something or serves a sample older than `max_age`; the caller's
    /// assertions on [`Observer::stop`]'s result then report it.
    pub async fn watch(&self, window: Duration, max_age: Duration) {
        if let Err(after) = sim::wait::holds_for(window, async || self.seen().no_gap(max_age)).await {
            eprintln!("a gap {after:?} into the {window:?} watch: {:?}", self.seen());
        }
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

/// The simulator's true usage (CPU nanocores, memory bytes) of every node
/// (by name) and pod (by `namespace/name`); rates are constant in these tests.
fn truth_of(c: &super::Cluster) -> BTreeMap<String, (f64, f64)> {
    let mut truth = BTreeMap::new();
    for n in &c.env.spec.nodes {
        if let Ok(t) = c.env.fleet.true_node_usage(&n.name) {
            truth.insert(n.name.clone(), (t.cpu_nanocores as f64, t.memory_bytes as f64));
        }
        for p in &n.pods {
            if let Ok(t) = c.env.fleet.true_pod_usage(&n.name, &p.namespace, &p.name) {
                truth.insert(format!("{}/{}", p.namespace, p.name), (t.cpu_nanocores as f64, t.memory_bytes as f64));
            }
        }
    }
    truth
}

/// What is wrong with `item`'s values, if anything: CPU within 2 % (or one
/// millicore), memory within 2 % (or 1 MiB) of the truth.
fn wrong_value(truth: &BTreeMap<String, (f64, f64)>, item: &sim::answer::Item) -> Option<String> {
    let (cpu, memory) = *truth.get(&item.key)?;
    let close = |got: f64, want: f64, floor: f64| (got - want).abs() <= (want * 0.02).max(floor);
    (!(close(item.cpu_nanocores, cpu, 1e6) && close(item.memory_bytes, memory, 1_048_576.0))).then(|| {
        format!("{}: cpu {} (true {cpu}), memory {} (true {memory})", item.key, item.cpu_nanocores, item.memory_bytes)
    })
}
