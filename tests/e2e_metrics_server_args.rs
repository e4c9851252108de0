//! metrics-server's own deployments run this binary unchanged: the args of
//! its `components.yaml`, of its `high-availability-1.21+.yaml` (two
//! replicas, each scraping every node, no peers) and of its Helm chart's
//! default values (through `helm template` of our chart) serve the
//! metrics kubectl reads. Only what a pod gets from its environment is
//! added: the kubeconfig (in a pod, the service account), the address to
//! bind (in a pod, every interface) and the kubelets' CA and token.

mod common;

use common::Cluster;

/// The container args of metrics-server v0.9's `components.yaml` (and of
/// `high-availability-1.21+.yaml`, whose patch does not change them).
const COMPONENTS_ARGS: [&str; 5] = [
    "--cert-dir=/tmp",
    "--secure-port=10250",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
];

/// What a pod's environment gives replica `i` of `c`.
fn environment(c: &Cluster, i: usize) -> Vec<String> {
    let f = &c.env.files;
    vec![
        format!("--kubeconfig={}", f.server_kubeconfig.display()),
        format!("--bind-address={}", c.env.replica_addr(i).ip()),
        format!("--kubelet-certificate-authority={}", f.kubelet_ca.display()),
        format!("--kubelet-token-file={}", f.kubelet_token.display()),
    ]
}

fn with_environment(c: &Cluster, i: usize, args: &[String]) -> Vec<String> {
    let mut all = environment(c, i);
    all.extend(args.iter().cloned());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_yaml_args_serve_metrics() {
    let mut c = Cluster::start_empty(3, 2, "15s").await;
    let args: Vec<String> = COMPONENTS_ARGS.iter().map(|s| s.to_string()).collect();
    c.spawn_replica_args(0, with_environment(&c, 0, &args));
    c.env.route_metrics_to(&[0]);
    c.wait_for_metrics().await;
    let pods = c.kubectl_ok(&["top", "pod", "-A", "--no-headers"]).await;
    assert_eq!(pods.lines().count(), 6, "{pods}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_availability_manifest_args_serve_metrics_from_both_replicas() {
    let mut c = Cluster::start_empty(3, 2, "15s").await;
    let args: Vec<String> = COMPONENTS_ARGS.iter().map(|s| s.to_string()).collect();
    for i in 0..2 {
        c.spawn_replica_args(i, with_environment(&c, i, &args));
    }
    c.env.route_metrics_to(&[0, 1]);
    c.wait_for_metrics().await;
    // Each replica answers on its own (no peers: each scrapes every node).
    let dev = c.env.apiserver.issue_client_cert("dev-user", &["dev-team"]).unwrap();
    for i in 0..2 {
        let ok = sim::wait::until(common::STARTUP, async || {
            let (code, body) =
                sim::client::direct_get(c.env.replica_addr(i), "/apis/metrics.k8s.io/v1beta1/nodes", Some(&dev), &[])
                    .await;
            code == 200
                && serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["items"].as_array().is_some_and(|a| a.len() == 3))
        })
        .await;
        assert!(ok.is_some(), "replica {i} does not serve every node:\n{}", c.log_tail(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_servers_chart_default_values_serve_metrics() {
    // The args our chart renders from metrics-server's chart's default values.
    let chart = format!("{}/deploy/helm/ha-metrics-server", env!("CARGO_MANIFEST_DIR"));
    let values = format!("{}/tests/data/metrics-server-chart-3.13-values.yaml", env!("CARGO_MANIFEST_DIR"));
    let helm = sim::tools::helm(
        "3.17.2",
        "the metrics-server args test renders deploy/helm with metrics-server's chart values",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(helm)
        .args(["template", "metrics-server", &chart, "--namespace", "kube-system", "--values", &values])
        .env("HOME", std::env::temp_dir())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args.len(), 5, "{args:?}");

    let mut c = Cluster::start_empty(3, 2, "15s").await;
    c.spawn_replica_args(0, with_environment(&c, 0, &args));
    c.env.route_metrics_to(&[0]);
    c.wait_for_metrics().await;
}
