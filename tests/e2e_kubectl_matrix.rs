//! Every kubectl users have (1.27 to 1.33, the `kubectl.1.NN` binaries
//! beside the dispatcher) against one cluster: `top node`, `top pod -A`,
//! `top pod --containers` and `get nodes.metrics.k8s.io` print the
//! simulated kubelets' true usage as kubectl rounds it (CPU millicores
//! rounded up, memory MiB rounded down). Headers differ between versions,
//! so rows are read without them and only the values are compared.

mod common;

use std::path::{Path, PathBuf};

use common::{Cluster, cpu_nanos, kubectl_cpu, kubectl_mem, kubectl_percents, kubectl_version, memory_bytes, rows};

const VERSIONS: [&str; 7] = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"];

/// Every version's binary; fails naming every missing one before a cluster starts.
fn every_kubectl() -> Vec<(&'static str, PathBuf)> {
    let (found, missing): (Vec<_>, Vec<_>) =
        VERSIONS.iter().map(|v| (*v, kubectl_version(v))).partition(|(_, r)| r.is_ok());
    let missing: Vec<String> = missing.into_iter().map(|(_, r)| r.unwrap_err()).collect();
    assert!(missing.is_empty(), "the kubectl matrix needs every version:\n{}", missing.join("\n"));
    found.into_iter().map(|(v, r)| (v, r.unwrap())).collect()
}

/// Runs `kubectl` with its own discovery cache, so each version discovers
/// the API itself instead of reading another version's cache.
async fn run(c: &Cluster, version: &str, kubectl: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let cache = format!("--cache-dir={}", c.env.work_dir.join(format!("kube-cache-{version}")).display());
    let mut all = vec![cache.as_str()];
    all.extend_from_slice(args);
    all.push("--no-headers");
    rows(&c.kubectl_bin_ok(kubectl, &all).await)
}

fn find<'a>(table: &'a [Vec<String>], key: &[&str], what: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r.len() >= key.len() && r.iter().zip(key).all(|(a, b)| a == b))
        .unwrap_or_else(|| panic!("{what}: no row {key:?} in {table:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubectl_from_1_27_to_1_33_prints_the_true_usage() {
    let kubectls = every_kubectl();
    let c = Cluster::start(3, 4, "2s").await;
    c.wait_for_metrics().await;
    let spec = &c.env.spec;
    let fleet = &c.env.fleet;
    let namespace = "team-a";
    let pods = spec.nodes.iter().flat_map(|n| n.pods.iter().map(move |p| (n, p)));
    let total_pods = pods.clone().count();
    let containers_in_ns: usize =
        pods.clone().filter(|(_, p)| p.namespace == namespace).map(|(_, p)| p.containers.len()).sum();
    assert!(containers_in_ns > 0, "the generated cluster has {namespace} pods");

    for (version, kubectl) in &kubectls {
        let what = |cmd: &str| format!("kubectl {version} {cmd}");

        // top node: NAME CPU CPU% MEMORY MEMORY%.
        let table = run(&c, version, kubectl, &["top", "node"]).await;
        assert_eq!(table.len(), spec.nodes.len(), "{}: {table:?}", what("top node"));
        for node in &spec.nodes {
            let row = find(&table, &[&node.name], &what("top node"));
            let truth = fleet.true_node_usage(&node.name).unwrap();
            let (cpu_pct, mem_pct) = kubectl_percents(node, truth.cpu_nanocores, truth.memory_bytes);
            let want = [kubectl_cpu(truth.cpu_nanocores), cpu_pct, kubectl_mem(truth.memory_bytes), mem_pct];
            assert_eq!(&row[1..5], &want, "{}: {}", what("top node"), node.name);
        }

        // top pod -A: NAMESPACE NAME CPU MEMORY, summed over containers.
        let table = run(&c, version, kubectl, &["top", "pod", "-A"]).await;
        assert_eq!(table.len(), total_pods, "{}: {table:?}", what("top pod -A"));
        for (node, pod) in pods.clone() {
            let row = find(&table, &[&pod.namespace, &pod.name], &what("top pod -A"));
            let truth = fleet.true_pod_usage(&node.name, &pod.namespace, &pod.name).unwrap();
            let want = [kubectl_cpu(truth.cpu_nanocores), kubectl_mem(truth.memory_bytes)];
            assert_eq!(&row[2..4], &want, "{}: {}/{}", what("top pod -A"), pod.namespace, pod.name);
        }

        // top pod --containers -n team-a: POD NAME CPU MEMORY, per container.
        let table = run(&c, version, kubectl, &["top", "pod", "--containers", "-n", namespace]).await;
        assert_eq!(table.len(), containers_in_ns, "{}: {table:?}", what("top pod --containers"));
        for (_, pod) in pods.clone().filter(|(_, p)| p.namespace == namespace) {
            for ct in &pod.containers {
                let row = find(&table, &[&pod.name, &ct.name], &what("top pod --containers"));
                let want = [kubectl_cpu(ct.cpu_nanocores), kubectl_mem(ct.memory_bytes)];
                assert_eq!(&row[2..4], &want, "{}: {}/{}", what("top pod --containers"), pod.name, ct.name);
            }
        }

        // get nodes.metrics.k8s.io: the server's Table, NAME CPU MEMORY
        // WINDOW, with the API's quantities; rounded as top rounds them.
        let table = run(&c, version, kubectl, &["get", "nodes.metrics.k8s.io"]).await;
        assert_eq!(table.len(), spec.nodes.len(), "{}: {table:?}", what("get nodes.metrics.k8s.io"));
        for node in &spec.nodes {
            let row = find(&table, &[&node.name], &what("get nodes.metrics.k8s.io"));
            let truth = fleet.true_node_usage(&node.name).unwrap();
            let got = [kubectl_cpu(cpu_nanos(&row[1]).round() as u64), kubectl_mem(memory_bytes(&row[2]))];
            let want = [kubectl_cpu(truth.cpu_nanocores), kubectl_mem(truth.memory_bytes)];
            assert_eq!(got, want, "{}: {} row {row:?}", what("get nodes.metrics.k8s.io"), node.name);
            assert!(row[3].ends_with('s'), "{}: window cell {row:?}", what("get nodes.metrics.k8s.io"));
        }
    }
}
