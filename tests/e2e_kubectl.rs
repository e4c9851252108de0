//! `kubectl top` and `kubectl get` of the real kubectl 1.32, through the
//! stand-in apiserver's aggregation proxy, against the real binary: the
//! numbers printed must be the simulated kubelets' true rates as kubectl
//! rounds them.

mod common;

use common::{Cluster, kubectl_cpu, kubectl_mem, kubectl_percents, rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_node_prints_every_nodes_true_usage() {
    let c = Cluster::start(3, 4, "2s").await;
    c.wait_for_metrics().await;
    let out = c.kubectl_ok(&["top", "node"]).await;
    let table = rows(&out);
    assert_eq!(table[0], ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]);
    assert_eq!(table.len(), 1 + c.env.spec.nodes.len(), "{out}");
    for node in &c.env.spec.nodes {
        let row = table.iter().find(|r| r[0] == node.name).unwrap_or_else(|| panic!("{} missing:\n{out}", node.name));
        let truth = c.env.fleet.true_node_usage(&node.name).unwrap();
        assert_eq!(row[1], kubectl_cpu(truth.cpu_nanocores), "cpu of {}", node.name);
        assert_eq!(row[3], kubectl_mem(truth.memory_bytes), "memory of {}", node.name);
        let (cpu_pct, mem_pct) = kubectl_percents(node, truth.cpu_nanocores, truth.memory_bytes);
        assert_eq!((&row[2], &row[4]), (&cpu_pct, &mem_pct), "percentages of {}", node.name);
    }
    let one = &c.env.spec.nodes[1];
    let out = c.kubectl_ok(&["top", "node", &one.name, "--no-headers"]).await;
    let truth = c.env.fleet.true_node_usage(&one.name).unwrap();
    let (cpu_pct, mem_pct) = kubectl_percents(one, truth.cpu_nanocores, truth.memory_bytes);
    assert_eq!(
        rows(&out),
        vec![vec![
            one.name.clone(),
            kubectl_cpu(truth.cpu_nanocores),
            cpu_pct,
            kubectl_mem(truth.memory_bytes),
            mem_pct
        ]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_pod_all_namespaces_containers_and_selector_match_truth() {
    let c = Cluster::start(2, 6, "2s").await;
    c.wait_for_metrics().await;

    // -A: every running pod, CPU and memory summed over its containers.
    let out = c.kubectl_ok(&["top", "pod", "-A", "--no-headers"]).await;
    let table = rows(&out);
    let total: usize = c.env.spec.nodes.iter().map(|n| n.pods.len()).sum();
    assert_eq!(table.len(), total, "{out}");
    for node in &c.env.spec.nodes {
        for pod in &node.pods {
            let row = table
                .iter()
                .find(|r| r[0] == pod.namespace && r[1] == pod.name)
                .unwrap_or_else(|| panic!("{} missing", pod.name));
            let truth = c.env.fleet.true_pod_usage(&node.name, &pod.namespace, &pod.name).unwrap();
            assert_eq!(row[2], kubectl_cpu(truth.cpu_nanocores), "cpu of {}", pod.name);
            let mem: u64 = pod.containers.iter().map(|c| c.memory_bytes).sum();
            assert_eq!(row[3], kubectl_mem(mem), "memory of {}", pod.name);
        }
    }

    // -n team-a --containers: one row per container.
    let out = c.kubectl_ok(&["top", "pod", "-n", "team-a", "--containers", "--no-headers"]).await;
    let table = rows(&out);
    let mut expected = 0;
    for node in &c.env.spec.nodes {
        for pod in node.pods.iter().filter(|p| p.namespace == "team-a") {
            for ct in &pod.containers {
                expected += 1;
                let row = table
                    .iter()
                    .find(|r| r[0] == pod.name && r[1] == ct.name)
                    .unwrap_or_else(|| panic!("{}/{} missing:\n{out}", pod.name, ct.name));
                assert_eq!(row[2], kubectl_cpu(ct.cpu_nanocores));
                assert_eq!(row[3], kubectl_mem(ct.memory_bytes));
            }
        }
    }
    assert!(expected > 0, "the generated cluster has team-a pods");
    assert_eq!(table.len(), expected, "{out}");

    // -l app=web in default: exactly the matching pods.
    let out = c.kubectl_ok(&["top", "pod", "-l", "app=web", "-A", "--no-headers"]).await;
    let got: Vec<String> = rows(&out).into_iter().map(|r| format!("{}/{}", r[0], r[1])).collect();
    let mut want: Vec<String> = c
        .env
        .spec
        .nodes
        .iter()
        .flat_map(|n| n.pods.iter())
        .filter(|p| p.labels.get("app").map(String::as_str) == Some("web"))
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert!(!want.is_empty());
    assert_eq!(got_sorted, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_nodes_metrics_prints_a_table() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let out = c.kubectl_ok(&["get", "nodes.metrics.k8s.io"]).await;
    let table = rows(&out);
    assert_eq!(table[0], ["NAME", "CPU", "MEMORY", "WINDOW"], "{out}");
    assert_eq!(table.len(), 3, "{out}");
    for node in &c.env.spec.nodes {
        let row = table.iter().find(|r| r[0] == node.name).unwrap();
        assert!(row[1].ends_with('n') || row[1].ends_with('m') || row[1].ends_with('u'), "cpu cell {}", row[1]);
        assert!(row[3].ends_with('s'), "window cell {}", row[3]);
    }
    let out = c.kubectl_ok(&["get", "pods.metrics.k8s.io", "-A"]).await;
    assert!(rows(&out)[0].starts_with(&["NAMESPACE".to_string(), "NAME".to_string()]), "{out}");
}
