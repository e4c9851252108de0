//! The merge updates what a node reported before in place; it must hold
//! exactly what the merge it replaced held, which rebuilt every pod of the
//! node from the batch. That merge is kept here as the reference, and random
//! sequences of scrapes, copies, backfills, failures, role changes and
//! prunes run on two stores, one merging each way; after every step the two
//! must hold the same nodes, pods, series, pod lists and counts, and the
//! store's own counts and pod lists must agree with a recount from scratch.

use super::*;
use crate::model::NodeBatch;
use crate::store::Origin;
use crate::store::series::{Series, next_container, next_node};
use crate::store::{Counts, Held, NodeEntry, PodEntry};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The merge as it was before pods were updated in place: the node's entry
/// and every pod it reported are taken out, and each reported pod is built
/// anew from the batch, with the taken-out entry as its previous points.
fn rebuilding_merge(store: &Store, node: &str, batch: NodeBatch, now: UnixNanos, held: Held) {
    let mut inner = store.write_lock();
    let expired = store.expire(&mut inner, now);
    let old = inner.take_node(node);
    let mut old_pods: HashMap<(String, String), PodEntry> = HashMap::new();
    if let Some(old) = &old {
        for (ns, name) in &old.pods {
            let ours = inner.pods.get(ns).and_then(|m| m.get(name)).is_some_and(|p| p.node == node);
            if ours && let Some(p) = inner.remove_pod(ns, name) {
                old_pods.insert((ns.clone(), name.clone()), p);
            }
        }
    }
    let series = batch.node.map(|p| next_node(old.as_ref().and_then(|o| o.series.as_ref()), p));
    let mut newest = series.map(|s| s.last.timestamp);
    let mut keys = Vec::with_capacity(batch.pods.len());
    for pod in batch.pods {
        let key = (pod.namespace, pod.name);
        let old_pod = match old_pods.remove(&key) {
            Some(p) => Some(p),
            None => match inner.pods.get(&key.0).and_then(|m| m.get(&key.1)) {
                Some(p) if p.node == node => continue,
                Some(_) => store.move_pod(&mut inner, &key.0, &key.1, node),
                None => None,
            },
        };
        let containers = pod
            .containers
            .into_iter()
            .map(|c| {
                newest = newest.max(Some(c.point.timestamp));
                let old = old_pod.as_ref().and_then(|o| {
                    o.containers.binary_search_by(|(n, _)| n.as_str().cmp(&c.name)).ok().map(|i| &o.containers[i].1)
                });
                (c.name, next_container(old, c.point, store.resolution_ns))
            })
            .collect();
        let entry = PodEntry { node: node.to_string(), held, merged: 0, containers };
        inner.insert_pod(key.0.clone(), key.1.clone(), entry);
        keys.push(key);
    }
    inner.insert_node(
        node.to_string(),
        NodeEntry { held, series, pods: keys, newest, failed: false, received: now, origin: Origin::Scraped },
    );
    store.publish(&inner);
    drop(inner);
    if held == Held::Owned {
        store.set_sample_age(node, newest, now);
    }
    for gone in expired {
        store.set_sample_age(&gone, None, now);
    }
}

const NODES: [&str; 3] = ["n0", "n1", "n2"];
const PODS: [(&str, &str); 5] = [("a", "p0"), ("a", "p1"), ("b", "p0"), ("b", "p2"), ("c", "p3")];
/// The container names a pod reports: parser-like lists (sorted, unique)
/// and, as a peer's batch might hold, unsorted and repeated ones.
const SHAPES: [&[&str]; 7] =
    [&[], &["app"], &["app", "log"], &["app", "log", "sidecar"], &["log", "app"], &["sidecar", "app"], &["app", "app"]];

/// One container point, relative to the step's time: seconds back, CPU
/// seconds, and which start time (none, long ago, inside the
/// fresh-container window, just restarted, restarted a while ago).
type PointSpec = (i64, u64, u8);

#[derive(Debug, Clone)]
struct BatchSpec {
    node: Option<(i64, u64)>,
    /// Pods by index into [`PODS`] (repeats allowed), the index of their
    /// container names in [`SHAPES`], and those containers' points.
    pods: Vec<(usize, usize, [PointSpec; 3])>,
}

#[derive(Debug, Clone)]
enum Step {
    Merge { node: usize, batch: BatchSpec, owned: bool },
    SetPrev { node: usize, batch: BatchSpec, replace: bool },
    Failed { node: usize },
    Forget { node: usize },
    SetHeld { node: usize, owned: bool },
    Prune,
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    let point = (0i64..25, 0u64..6, 0u8..5);
    let pod = (0..PODS.len(), prop_oneof![3 => 1..4usize, 2 => 0..SHAPES.len()], [point.clone(), point.clone(), point]);
    (proptest::option::weighted(0.8, (0i64..25, 0u64..6)), proptest::collection::vec(pod, 0..6))
        .prop_map(|(node, pods)| BatchSpec { node, pods })
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0..NODES.len();
    prop_oneof![
        10 => (node.clone(), batch_spec(), prop::bool::weighted(0.8))
            .prop_map(|(node, batch, owned)| Step::Merge { node, batch, owned }),
        1 => (node.clone(), batch_spec(), any::<bool>())
            .prop_map(|(node, batch, replace)| Step::SetPrev { node, batch, replace }),
        1 => node.clone().prop_map(|node| Step::Failed { node }),
        1 => node.clone().prop_map(|node| Step::Forget { node }),
        1 => (node, any::<bool>()).prop_map(|(node, owned)| Step::SetHeld { node, owned }),
        1 => Just(Step::Prune),
    ]
}

fn build(spec: &BatchSpec, now: UnixNanos) -> NodeBatch {
    let point = |back: i64, cpu: u64| {
        let ts = now - back * S;
        Point { timestamp: ts, cpu_cumulative_ns: cpu * S as u64, memory_bytes: MIB, start_time: None }
    };
    let pods = spec
        .pods
        .iter()
        .map(|&(i, shape, points)| {
            let containers = SHAPES[shape]
                .iter()
                .zip(points)
                .map(|(name, (back, cpu, start))| {
                    let mut p = point(back, cpu);
                    p.start_time = match start {
                        0 => None,
                        1 => Some(T0),
                        2 => Some(p.timestamp - 12 * S),
                        3 => Some(p.timestamp - 3 * S),
                        _ => Some(p.timestamp - 40 * S),
                    };
                    ContainerPoint { name: name.to_string(), point: p }
                })
                .collect();
            PodPoints { namespace: PODS[i].0.to_string(), name: PODS[i].1.to_string(), containers }
        })
        .collect();
    NodeBatch { node: spec.node.map(|(back, cpu)| point(back, cpu)), pods }
}

fn held(owned: bool) -> Held {
    if owned { Held::Owned } else { Held::Copy }
}

fn apply(store: &Store, step: &Step, now: UnixNanos, rebuilding: bool) {
    match step {
        Step::Merge { node, batch, owned } => {
            let (node, batch) = (NODES[*node], build(batch, now));
            if rebuilding {
                rebuilding_merge(store, node, batch, now, held(*owned));
            } else {
                store.merge(node, batch, now, held(*owned), Origin::Scraped);
            }
        }
        Step::SetPrev { node, batch, replace } => {
            store.set_prev(NODES[*node], &build(batch, now), *replace);
        }
        Step::Failed { node } => store.scrape_failed(NODES[*node], now),
        Step::Forget { node } => store.forget_node(NODES[*node]),
        Step::SetHeld { node, owned } => {
            store.set_held(NODES[*node], held(*owned));
        }
        Step::Prune => {
            store.prune(now);
        }
    }
}

type NodeView = (Held, Option<Series>, Vec<(String, String)>, Option<UnixNanos>, bool);
type PodView = (String, Held, Vec<(String, Series)>);

/// Everything a store holds and publishes, but the merge stamps.
#[derive(Debug, PartialEq)]
struct View {
    nodes: BTreeMap<String, NodeView>,
    pods: BTreeMap<(String, String), PodView>,
    failed: BTreeSet<String>,
    counts: [Counts; 2],
    /// The store's gauges, sorted; sample ages without their value (set to
    /// the wall clock's age when a role changes).
    gauges: Vec<String>,
}

fn view(store: &Store, metrics: &SelfMetrics) -> View {
    let inner = store.read_lock();
    let nodes =
        inner.nodes.iter().map(|(n, e)| (n.clone(), (e.held, e.series, e.pods.clone(), e.newest, e.failed))).collect();
    let pods = inner
        .pods
        .iter()
        .flat_map(|(ns, m)| {
            m.iter().map(move |(n, p)| ((ns.clone(), n.clone()), (p.node.clone(), p.held, p.containers.clone())))
        })
        .collect();
    let mut gauges: Vec<String> = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match l.split_once("} ") {
            Some((labels, _)) if l.starts_with("ha_metrics_server_node_sample_age") => labels.to_string(),
            _ => l.to_string(),
        })
        .collect();
    gauges.sort();
    View { nodes, pods, failed: inner.failed.clone(), counts: inner.counts, gauges }
}

/// The counts and pod lists the store keeps, against a recount: every pod
/// is listed once by the node it names, with that node's role, every listed
/// pod names its node, and the failed set is the failed entries.
fn check_bookkeeping(store: &Store) -> Result<(), TestCaseError> {
    let inner = store.read_lock();
    let mut counts = [Counts::default(); 2];
    for (node, e) in &inner.nodes {
        let c = &mut counts[e.held.index()];
        c.nodes += 1;
        c.node_points += usize::from(e.series.is_some_and(|s| s.prev.is_some()));
        prop_assert_eq!(e.failed, inner.failed.contains(node), "failed set, node {}", node);
        let listed: BTreeSet<_> = e.pods.iter().collect();
        prop_assert_eq!(listed.len(), e.pods.len(), "{} lists a pod twice: {:?}", node, e.pods);
        for (ns, name) in &e.pods {
            let p = inner.pods.get(ns).and_then(|m| m.get(name));
            prop_assert_eq!(p.map(|p| p.node.as_str()), Some(node.as_str()), "{} lists {}/{}", node, ns, name);
        }
    }
    prop_assert!(inner.failed.iter().all(|n| inner.nodes.contains_key(n)), "failed {:?}", inner.failed);
    for (ns, pods) in &inner.pods {
        prop_assert!(!pods.is_empty(), "empty namespace {} kept", ns);
        for (name, p) in pods {
            let e = inner.nodes.get(&p.node);
            let listed = e.is_some_and(|e| e.pods.iter().any(|(n, m)| n == ns && m == name));
            prop_assert!(listed, "{}/{} on {} is not in its list", ns, name, p.node);
            prop_assert_eq!(e.map(|e| e.held), Some(p.held), "{}/{} role", ns, name);
            let points = p.points();
            let c = &mut counts[p.held.index()];
            c.container_points += points;
            c.pod_points += usize::from(points > 0);
        }
    }
    prop_assert_eq!(counts, inner.counts, "counts against a recount");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn merging_in_place_holds_what_rebuilding_every_pod_held(
        staleness in prop_oneof![Just(0u64), Just(30u64)],
        steps in proptest::collection::vec((0i64..20, step()), 1..40),
    ) {
        let (store, metrics) = new_store(15, staleness);
        let (reference, reference_metrics) = new_store(15, staleness);
        let mut now = at(100);
        for (i, (dt, step)) in steps.iter().enumerate() {
            now += dt * S;
            apply(&store, step, now, false);
            apply(&reference, step, now, true);
            check_bookkeeping(&store)?;
            prop_assert_eq!(view(&store, &metrics), view(&reference, &reference_metrics), "after step {}: {:?}", i, step);
        }
    }
}
