//! Sharding, end to end: three replica processes of the real binary over 60
//! simulated nodes split the kubelets by the committed ring, so each kubelet
//! is scraped once per resolution by the whole cluster, and any replica —
//! asked directly or through the stand-in's aggregation proxy — answers any
//! request completely, correctly and with the same items. An owner that
//! stops answering makes answers partial, with a Warning header kubectl
//! prints.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::raft_cluster::RaftCluster;
use common::{cpu_nanos, kubectl_cpu, kubectl_mem, memory_bytes, rows};
use serde_json::Value;
use sim::client::fetch;
use sim::scrapes::{Count, Window, unix_ms};
use tls::pki::CertPair;

const NODES: usize = 60;
const PODS: usize = 3;
const RESOLUTION: Duration = Duration::from_secs(2);

/// The API paths the checks ask every replica.
fn paths(c: &common::Cluster) -> Vec<String> {
    let node = &c.env.spec.nodes[7];
    let pod = &node.pods[1];
    vec![
        "/apis/metrics.k8s.io/v1beta1/nodes".to_string(),
        "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
        // The HPA's query: a namespaced list with a label selector.
        "/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods?labelSelector=app%3Dweb".to_string(),
        format!("/apis/metrics.k8s.io/v1beta1/nodes/{}", node.name),
        format!("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}", pod.namespace, pod.name),
    ]
}

/// GETs `path` from replica `i` with an admin certificate: (status, JSON, warnings).
async fn get(r: &RaftCluster, admin: &CertPair, i: usize, path: &str) -> (u16, Value, Vec<String>) {
    match fetch(r.c.env.replica_addr(i), path, Some(admin), &[]).await {
        Ok(reply) => (reply.status, serde_json::from_str(&reply.body).unwrap_or(Value::Null), reply.warnings()),
        Err(e) => panic!("GET {path} from replica {i}: {e}"),
    }
}

/// The items of a list, or the object itself, without `metadata.creationTimestamp`
/// (the time of the request).
fn items(v: &Value) -> Vec<Value> {
    let mut list = match v.get("items") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![v.clone()],
    };
    for item in &mut list {
        if let Some(m) = item.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("creationTimestamp");
        }
    }
    list
}

/// Checks served usage against the simulator's truth (CPU within 2%, memory exact).
fn assert_true_usage(r: &RaftCluster, item: &Value) {
    let name = item["metadata"]["name"].as_str().unwrap_or_default();
    let env = &r.c.env;
    let close = |got: f64, want: u64, what: &str| {
        let tolerance = (want as f64 * 0.02).max(1_000_000.0);
        assert!((got - want as f64).abs() <= tolerance, "{what}: served {got}, true {want}");
    };
    if let Some(ns) = item["metadata"]["namespace"].as_str() {
        let node = env.spec.nodes.iter().find(|n| n.pods.iter().any(|p| p.name == name)).expect("pod in spec");
        let pod = node.pods.iter().find(|p| p.name == name).expect("pod");
        for c in item["containers"].as_array().expect("containers") {
            let cname = c["name"].as_str().unwrap_or_default();
            let truth = pod.containers.iter().find(|s| s.name == cname).expect("container in spec");
            close(
                cpu_nanos(c["usage"]["cpu"].as_str().unwrap_or("0")),
                truth.cpu_nanocores,
                &format!("{ns}/{name}/{cname} cpu"),
            );
            assert_eq!(
                memory_bytes(c["usage"]["memory"].as_str().unwrap_or("0")),
                truth.memory_bytes,
                "{name}/{cname} memory"
            );
        }
    } else {
        let truth = env.fleet.true_node_usage(name).expect("node truth");
        close(cpu_nanos(item["usage"]["cpu"].as_str().unwrap_or("0")), truth.cpu_nanocores, &format!("{name} cpu"));
        assert_eq!(memory_bytes(item["usage"]["memory"].as_str().unwrap_or("0")), truth.memory_bytes, "{name} memory");
    }
}

/// Whether every replica holds a backup it can compute a rate from (two
/// points) of exactly the nodes it is the successor of by the committed ring.
async fn backups_complete(r: &RaftCluster, admin: &CertPair) -> bool {
    for i in 0..3 {
        let Some(status) = r.full_status(i).await else { return false };
        let want = status.shares.get(&format!("replica-{i}")).map_or(0, |s| s.backups);
        let (code, text) =
            sim::client::try_get(r.c.env.replica_addr(i), "/metrics", Some(admin), &[]).await.unwrap_or_default();
        let gauge = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<usize>().ok())
        };
        let held = gauge("ha_metrics_server_backup_nodes");
        let with_a_rate = gauge("ha_metrics_server_backup_points{type=\"node\"}");
        if code != 200 || held != Some(want) || with_a_rate != Some(want) {
            return false;
        }
    }
    true
}

async fn sharded_cluster() -> (RaftCluster, CertPair) {
    let r = RaftCluster::start_on(3, NODES, PODS, "2s", &[]).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster with a committed ring");
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    let complete = sim::wait::until(Duration::from_secs(90), async || {
        let mut ok = 0;
        for i in 0..3 {
            let (code, v, _) = get(&r, &admin, i, "/apis/metrics.k8s.io/v1beta1/nodes").await;
            ok += usize::from(code == 200 && items(&v).len() == NODES);
        }
        ok == 3
    })
    .await;
    assert!(complete.is_some(), "not every replica served all {NODES} nodes\n{}", r.c.log_tail(0));
    (r, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_scrape_each_kubelet_once_per_resolution_and_any_of_them_answers_alike() {
    let (r, admin) = sharded_cluster().await;

    // Exactly once per resolution, for ten resolutions, with one owner per
    // kubelet: exactly ten scrapes each, eleven or nine only for a node whose
    // phase puts a scrape within 300 ms of the window's edges.
    let from = SystemTime::now() + RESOLUTION;
    let to = from + RESOLUTION * 10;
    sim::wait::expect("ten resolutions to pass", RESOLUTION * 14, async || SystemTime::now() > to + RESOLUTION).await;
    let window = Window { from_ms: unix_ms(from), to_ms: unix_ms(to), resolution_ms: RESOLUTION.as_millis() as u64 };
    let log = r.c.env.fleet.scrapes_since(from);
    let nodes = r.c.env.spec.nodes.iter().map(|n| n.name.as_str());
    let v = sim::scrapes::exactly_once(sim::scrapes::reached(&log), nodes, window, Count::Exact { edge_ms: 300 });
    assert!(v.violations.is_empty(), "not exactly once: {:?}", v.violations);
    let mut per_owner: BTreeMap<Option<IpAddr>, usize> = BTreeMap::new();
    for (node, owners) in &v.scrapers {
        assert_eq!(owners.len(), 1, "{node} was scraped by {owners:?}");
        *per_owner.entry(*owners.iter().next().unwrap()).or_default() += 1;
    }
    assert_eq!(per_owner.len(), 3, "every replica owns a share: {per_owner:?}");
    println!("kubelets per owner over 10 resolutions: {per_owner:?}");

    // Any replica, directly: complete, true and identical items.
    for path in paths(&r.c) {
        // A scrape landing between two reads makes them differ; ask again.
        let agreed = sim::wait::until_some(Duration::from_secs(30), async || {
            let mut answers = Vec::new();
            for i in 0..3 {
                let (code, v, warnings) = get(&r, &admin, i, &path).await;
                assert_eq!(code, 200, "{path} from replica {i}: {v}");
                assert!(warnings.is_empty(), "{path} from replica {i} is partial: {warnings:?}");
                answers.push(items(&v));
            }
            answers.windows(2).all(|w| w[0] == w[1]).then(|| answers.swap_remove(0))
        })
        .await;
        let items = agreed.unwrap_or_else(|| panic!("replicas never agreed on {path}"));
        for item in &items {
            assert_true_usage(&r, item);
        }
        let want = match path.as_str() {
            p if p.ends_with("/nodes") => NODES,
            p if p.ends_with("/pods") => NODES * PODS,
            p if p.contains("labelSelector") => {
                r.c.env
                    .spec
                    .nodes
                    .iter()
                    .flat_map(|n| &n.pods)
                    .filter(|p| p.namespace == "team-a" && p.labels.get("app").map(String::as_str) == Some("web"))
                    .count()
            }
            _ => 1,
        };
        assert_eq!(items.len(), want, "{path}");
    }

    // Through the aggregation proxy pinned to each replica in turn.
    for i in 0..3 {
        r.c.env.route_metrics_to(&[i]);
        for path in paths(&r.c) {
            let v = r.c.get_raw(&path).await.unwrap_or_else(|| panic!("{path} through the proxy to replica {i}"));
            assert!(!items(&v).is_empty(), "{path} via replica {i}");
        }
    }
    r.c.env.route_metrics_to(&[0, 1, 2]);

    // kubectl through the round-robin proxy.
    let out = r.c.kubectl_ok(&["top", "node", "--no-headers"]).await;
    let table = rows(&out);
    assert_eq!(table.len(), NODES, "{out}");
    for node in &r.c.env.spec.nodes {
        let row = table.iter().find(|row| row[0] == node.name).unwrap_or_else(|| panic!("{} missing", node.name));
        let truth = r.c.env.fleet.true_node_usage(&node.name).unwrap();
        assert_eq!(row[1], kubectl_cpu(truth.cpu_nanocores), "cpu of {}", node.name);
        assert_eq!(row[3], kubectl_mem(truth.memory_bytes), "memory of {}", node.name);
    }
    let out = r.c.kubectl_ok(&["top", "pod", "-A", "--no-headers"]).await;
    assert_eq!(rows(&out).len(), NODES * PODS, "{out}");
    let out = r.c.kubectl_ok(&["top", "pod", "-n", "team-a", "--containers", "--no-headers"]).await;
    for row in rows(&out) {
        let node = r.c.env.spec.nodes.iter().find(|n| n.pods.iter().any(|p| p.name == row[0])).expect("pod");
        let pod = node.pods.iter().find(|p| p.name == row[0]).unwrap();
        let c = pod.containers.iter().find(|c| c.name == row[1]).expect("container");
        assert_eq!(row[2], kubectl_cpu(c.cpu_nanocores), "cpu of {}/{}", row[0], row[1]);
        assert_eq!(row[3], kubectl_mem(c.memory_bytes), "memory of {}/{}", row[0], row[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_that_stop_answering_before_they_are_down_make_answers_partial_with_a_warning_kubectl_prints() {
    // A long lease keeps the stopped replicas Active (not yet committed
    // Down). At replication factor 2, with one stopped, the other holder's
    // copies fill its part; with two stopped, a node whose two holders are
    // both silent is missing, and the answer says so.
    let r =
        RaftCluster::start_on(3, 12, 2, "2s", &["--lease=60s", "--fanout-deadline=1s", "--replication-factor=2"]).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster with a committed ring");
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    let asked = 0;
    sim::wait::expect("every node served", Duration::from_secs(90), async || {
        let (code, v, _) = get(&r, &admin, asked, "/apis/metrics.k8s.io/v1beta1/nodes").await;
        code == 200 && items(&v).len() == 12
    })
    .await;
    // Backups need two points after the ring was committed.
    sim::wait::expect(
        "every successor to hold two points of each node it backs up",
        Duration::from_secs(60),
        async || backups_complete(&r, &admin).await,
    )
    .await;
    r.c.replicas[1].signal(libc::SIGSTOP);
    let (code, v, warnings) = get(&r, &admin, asked, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(code, 200);
    assert_eq!(items(&v).len(), 12, "one silent owner is covered by its successor's backups: {warnings:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    r.c.replicas[2].signal(libc::SIGSTOP);
    let (code, v, warnings) = get(&r, &admin, asked, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    let served = items(&v).len();
    // kubectl prints the warning (through the proxy pinned to the live replica).
    r.c.env.route_metrics_to(&[asked]);
    let out = r.c.kubectl(&["top", "node"]).await;
    for i in [1, 2] {
        r.c.replicas[i].signal(libc::SIGCONT);
    }
    assert_eq!(code, 200);
    let status = r.full_status(0).await.expect("status");
    let own = status.shares.get("replica-0").map_or(0, |s| s.owned);
    assert!(served >= own && served < 12, "served {served} of 12 nodes, {own} of them its own");
    assert!(!warnings.is_empty(), "a partial answer without a Warning");
    for w in &warnings {
        assert!(w.contains("partial answer") && (w.contains("replica-1") || w.contains("replica-2")), "{w}");
        assert!(w.contains("of 12 nodes missing"), "{w}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning:") && stderr.contains("partial answer"), "kubectl printed: {stderr}");
}
