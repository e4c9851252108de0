//! What operators and their probes see: metrics-server's exact probe bodies
//! and its six `metrics_server_*` self-metric families on `/metrics`.

mod common;

use common::Cluster;
use sim::client::direct_get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_self_metrics_match_metrics_server() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let addr = c.env.replica_addr(0);
    let (code, body) = direct_get(addr, "/readyz?verbose", None, &[]).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n\
         [+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-storage-ready ok\n\
         [+]metric-informer-sync ok\n[+]metadata-informer-sync ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    let (code, body) = direct_get(addr, "/livez?verbose", None, &[]).await;
    assert_eq!(code, 200);
    assert!(
        body.ends_with("[+]metric-collection-timely ok\n[+]metadata-informer-sync ok\nlivez check passed\n"),
        "{body}"
    );

    // Who may read /metrics is decided by SubjectAccessReview; system:masters
    // may read anything.
    let admin = c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    let (code, text) = direct_get(addr, "/metrics", Some(&admin), &[]).await;
    assert_eq!(code, 200, "{text}");
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("metrics_server_"))
        .collect();
    families.sort();
    assert_eq!(
        families,
        [
            "metrics_server_api_metric_freshness_seconds",
            "metrics_server_kubelet_last_request_time_seconds",
            "metrics_server_kubelet_request",
            "metrics_server_kubelet_request_duration_seconds",
            "metrics_server_manager_tick_duration_seconds",
            "metrics_server_storage_points",
        ]
    );
    assert!(text.contains("metrics_server_kubelet_request_total{success=\"true\"}"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"node\"} 2"), "{text}");
    assert!(text.contains("metrics_server_kubelet_last_request_time_seconds{node=\"node-0\"}"), "{text}");
}
