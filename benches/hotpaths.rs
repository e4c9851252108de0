//! The hot paths, one case per run, for instruction counts that do not
//! depend on how loaded the machine is: `benches/hotpaths.sh` runs each case
//! under `valgrind --tool=callgrind`, collecting only inside the `measure_*`
//! function of that case, and divides by the repetitions and items.
//!
//! Cases: `parse` (one real-sized 30-pod kubelet body), `store` (one scrape
//! of 30 pods written into a store holding 1,000 nodes), `copy` (the same
//! scrape arriving at a backup holder as the owner sends it: the node's
//! previous and last points as one pair), `encode-node` (the
//! PodMetricsList of one node's 30 pods, as the API writes it), `encode-list`
//! (a 300,000-pod PodMetricsList); `encode-node-serde` and
//! `encode-list-serde` write the same through the serde encoder; `list-pods`
//! (the 300,000 running pods `top pod -A` selects from the pod index, in the
//! order served, with their keys: the first list after a change;
//! `list-pods-kept` the next ones) and `merge` (a `top pod -A` in a cluster
//! of three: the three members' parts, 300,000 pods, merged into the answer
//! for those keys). Run directly it also prints wall time per
//! repetition: `target/release/deps/hotpaths-* parse 1000`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::selector::{FieldSelector, LabelSelector};
use ha_metrics_server::api::encode::{Style, to_go_json};
use ha_metrics_server::api::selected_pods;
use ha_metrics_server::api::stream::{List, to_bytes};
use ha_metrics_server::api::types::{PodItem, Version, pod_list};
use ha_metrics_server::discovery::pods::PodIndex;
use ha_metrics_server::model::{ContainerUsage, ObjectMeta, PodUsage, Usage};
use ha_metrics_server::model::{Inventory, NodeBatch, PodKey, PodList};
use ha_metrics_server::peer::wire::PodAnswer;
use ha_metrics_server::query::plan::merge_pods;
use ha_metrics_server::scrape::parse::parse;
use ha_metrics_server::selfmetrics::SelfMetrics;
use ha_metrics_server::store::{Held, Origin, Store};
use sim::kubelet::render::{render, synthetic};

const T0_MS: i64 = 1_735_032_840_000;

fn body(t_ms: i64) -> Vec<u8> {
    render(&synthetic(30, 2, t_ms, 1)).into_bytes()
}

#[inline(never)]
fn measure_parse(body: &[u8], reps: usize) -> usize {
    let mut pods = 0;
    for _ in 0..reps {
        let batch = parse(std::hint::black_box(body), "node-0", T0_MS * 1_000_000).expect("valid body");
        pods += batch.pods.len();
    }
    pods
}

#[inline(never)]
fn measure_store(store: &Store, batches: Vec<NodeBatch>, now: i64) {
    for batch in batches {
        store.store_scrape("node-0", batch, now);
    }
}

#[inline(never)]
fn measure_copy(store: &Store, pairs: Vec<(NodeBatch, NodeBatch)>, now: i64) {
    for pair in pairs {
        store.store_replica_pair("node-0", pair, now, Held::Copy, (Origin::Member(1), true));
    }
}

#[inline(never)]
fn measure_encode(list: &List, reps: usize, now: i64) -> usize {
    let mut bytes = 0;
    for _ in 0..reps {
        bytes += to_bytes(std::hint::black_box(list), Version::V1beta1, now).len();
    }
    bytes
}

/// The same list through the serde encoder (what the API wrote before the
/// direct writer, and still writes for the pretty form).
#[inline(never)]
fn measure_encode_serde(items: &[PodItem], reps: usize, now: i64) -> usize {
    let mut bytes = 0;
    for _ in 0..reps {
        bytes += to_go_json(&pod_list(std::hint::black_box(items), Version::V1beta1, now), Style::Compact).len();
    }
    bytes
}

/// The pod index as the API sees it (an [`Inventory`] without nodes).
struct Pods(PodIndex);

impl Inventory for Pods {
    fn nodes(&self) -> Vec<ObjectMeta> {
        Vec::new()
    }
    fn node(&self, _: &str) -> Option<ObjectMeta> {
        None
    }
    fn pods(&self, namespace: Option<&str>, labels: &LabelSelector) -> Vec<Arc<ObjectMeta>> {
        self.0.select(namespace, labels)
    }
    fn pod_list(&self, namespace: Option<&str>, labels: &LabelSelector) -> PodList {
        self.0.list(namespace, labels)
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        self.0.get(namespace, name)
    }
    fn synced(&self) -> bool {
        true
    }
}

#[inline(never)]
fn measure_list(index: &Pods, reps: usize) -> usize {
    let (labels, fields) = (LabelSelector::everything(), FieldSelector::default());
    let mut n = 0;
    for _ in 0..reps {
        n += selected_pods(std::hint::black_box(index), None, &labels, &fields).len();
    }
    n
}

#[inline(never)]
fn measure_merge(keys: &[PodKey], answers: &[PodAnswer], reps: usize, now: i64) -> usize {
    let mut n = 0;
    for _ in 0..reps {
        n += merge_pods(std::hint::black_box(keys), answers, now).iter().filter(|u| u.is_some()).count();
    }
    n
}

/// A pod index of `n` running pods, 30 per node, in three namespaces, as
/// the pod watcher fills it.
fn pod_index(n: usize, now: i64) -> Pods {
    let index = PodIndex::default();
    for item in pod_items(n, now) {
        index.apply(ObjectMeta::clone(&item.meta));
    }
    Pods(index)
}

fn pod_items(n: usize, now: i64) -> Vec<PodItem> {
    (0..n)
        .map(|i| PodItem {
            meta: Arc::new(ObjectMeta {
                name: format!("web-{}-{}", i / 30, i % 30),
                namespace: Some(["default", "kube-system", "team-a"][i % 3].to_string()),
                labels: BTreeMap::from([
                    ("app".to_string(), "web".to_string()),
                    ("deployment".to_string(), format!("web-{}", i / 300)),
                    ("tier".to_string(), "frontend".to_string()),
                ]),
            }),
            usage: PodUsage {
                timestamp: now - 3_000_000_000,
                window_ns: 15_000_000_000,
                containers: (0..1 + i % 2)
                    .map(|c| ContainerUsage {
                        name: if c == 0 { "web".to_string() } else { "sidecar-1".to_string() },
                        usage: Usage { cpu_nanocores: 12_345_678 + i as u64, memory_bytes: 123_456_789 },
                    })
                    .collect(),
            },
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let case = args.next().unwrap_or_else(|| "parse".to_string());
    let reps: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(100);
    let now = (T0_MS + 1000) * 1_000_000;
    let start = Instant::now();
    let (items, unit) = match case.as_str() {
        "parse" => {
            let b = body(T0_MS);
            measure_parse(&b, reps);
            (b.len(), "bytes")
        }
        "store" | "copy" => {
            let store = Store::new(Duration::from_secs(15), Duration::ZERO, Arc::new(SelfMetrics::new(15.0)));
            // Warm: the store holds 1,000 nodes, then node-0 is scraped `reps` more times.
            for n in 0..1000 {
                let b = body(T0_MS);
                store.store_scrape(&format!("node-{n}"), parse(&b, "x", 0).expect("valid"), now);
            }
            // Scrape 0 is the first copy's previous point.
            let batches: Vec<NodeBatch> =
                (0..=reps as i64).map(|i| parse(&body(T0_MS + i * 15_000), "node-0", 0).expect("valid")).collect();
            let pods = batches[0].pods.len();
            let until = now + reps as i64 * 15_000_000_000;
            let start;
            if case == "copy" {
                let pairs = batches.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
                start = Instant::now();
                measure_copy(&store, pairs, until);
            } else {
                start = Instant::now();
                measure_store(&store, batches.into_iter().skip(1).collect(), until);
            }
            report(&case, reps, pods, "pods", start.elapsed());
            return;
        }
        "encode-node" | "encode-node-serde" => {
            let items = pod_items(30, now);
            if case == "encode-node" {
                measure_encode(&List::Pods(items), reps, now);
            } else {
                measure_encode_serde(&items, reps, now);
            }
            (30, "pods")
        }
        "encode-list" | "encode-list-serde" => {
            let items = pod_items(300_000, now);
            let start;
            if case == "encode-list" {
                let list = List::Pods(items);
                start = Instant::now();
                measure_encode(&list, reps, now);
            } else {
                start = Instant::now();
                measure_encode_serde(&items, reps, now);
            }
            report(&case, reps, 300_000, "pods", start.elapsed());
            return;
        }
        "list-pods" | "list-pods-kept" => {
            let index = pod_index(300_000, now);
            if case == "list-pods-kept" {
                selected_pods(&index, None, &LabelSelector::everything(), &FieldSelector::default());
            }
            let start = Instant::now();
            measure_list(&index, reps);
            report(&case, reps, 300_000, "pods", start.elapsed());
            return;
        }
        "merge" => {
            // Three members' parts, each the pods of every third node in the
            // order a member lists them (by node), against the sorted keys.
            let items = pod_items(300_000, now);
            let mut keys: Vec<PodKey> =
                items.iter().map(|i| (i.meta.namespace.clone().unwrap_or_default(), i.meta.name.clone())).collect();
            keys.sort();
            let answers: Vec<PodAnswer> = (0..3)
                .flat_map(|part| items.iter().enumerate().filter(move |(i, _)| (i / 30) % 3 == part))
                .map(|(i, item)| PodAnswer {
                    namespace: item.meta.namespace.clone().unwrap_or_default(),
                    name: item.meta.name.clone(),
                    node: format!("node-{}", i / 30),
                    usage: item.usage.clone(),
                })
                .collect();
            let start = Instant::now();
            let served = measure_merge(&keys, &answers, reps, now);
            assert_eq!(served, 300_000 * reps, "every pod merged");
            report(&case, reps, 300_000, "pods", start.elapsed());
            return;
        }
        other => panic!(
            "unknown case {other} (parse, store, copy, encode-node[-serde], encode-list[-serde], list-pods[-kept], merge)"
        ),
    };
    report(&case, reps, items, unit, start.elapsed());
}

fn report(case: &str, reps: usize, items: usize, unit: &str, took: Duration) {
    let per = took.as_secs_f64() / reps.max(1) as f64;
    println!("{case}: {reps} reps of {items} {unit}, {:.1} µs per rep (wall time, machine-dependent)", per * 1e6);
}
