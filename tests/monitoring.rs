//! The operators' monitoring (deploy/monitoring): the kustomization renders
//! with the real kubectl, the rules and the dashboard are well-formed, and
//! every metric name they use is one a running replica really exports (read
//! from a live `/metrics` of a three-replica cluster). What the rules do is
//! tested with the real promtool (`prometheus_rules.rs`) and the real
//! Prometheus (`prometheus_live.rs`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::raft_cluster::RaftCluster;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");

/// The exported sample names of an OpenMetrics exposition: from each
/// `# TYPE` line, the family's sample names (`_total` for counters,
/// `_bucket/_sum/_count` for histograms).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Metric names used in PromQL text: `metrics_server_*` and
/// `ha_metrics_server_*` identifiers that are not recording-rule names
/// (those contain a colon).
fn referenced(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = promql.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < b.len() {
        if is_ident(b[i]) && (i == 0 || !is_ident(b[i - 1])) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word = &promql[start..i];
            if (word.starts_with("metrics_server_") || word.starts_with("ha_metrics_server_")) && !word.contains(':') {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{DIR}/prometheusrule.yaml")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).expect("prometheusrule.yaml is YAML");
    assert_eq!(v["kind"], "PrometheusRule");
    assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
    let mut exprs = Vec::new();
    for group in v["spec"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(
                rule["alert"].is_string() ^ rule["record"].is_string(),
                "a rule is an alert or a recording: {rule}"
            );
            if rule["alert"].is_string() {
                assert!(rule["labels"]["severity"].is_string(), "alert without severity: {rule}");
                assert!(rule["annotations"]["summary"].is_string(), "alert without summary: {rule}");
            }
            exprs.push(expr.to_string());
        }
    }
    exprs
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{DIR}/dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard.json is JSON");
    assert_eq!(v["uid"], "ha-metrics-server");
    v["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("target expr").to_string())
        .collect()
}

#[test]
fn the_monitoring_kustomization_renders_with_the_real_kubectl() {
    let kubectl = sim::env::kubectl_132().expect("kubectl.1.32");
    let out = std::process::Command::new(kubectl).args(["kustomize", DIR]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in ["kind: ServiceMonitor", "kind: PrometheusRule", "kind: ConfigMap", "grafana_dashboard: \"1\""] {
        assert!(text.contains(kind), "rendered monitoring lacks {kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_use_is_exported_by_a_running_replica() {
    let r = RaftCluster::start_on(3, 4, 2, "2s", &[]).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster");
    r.c.wait_for_metrics().await;
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    // Make the event-driven series exist: a failing kubelet (scrape errors),
    // and two silent peers (fan-out and push errors, partial answers).
    r.c.env.fleet.set_fault("node-0", sim::kubelet::Fault::Down).await.unwrap();
    for i in [1, 2] {
        r.c.replicas[i].signal(libc::SIGSTOP);
    }
    sim::wait::expect("a partial answer and failed pushes", Duration::from_secs(30), async || {
        let _ =
            sim::client::fetch(r.c.env.replica_addr(0), "/apis/metrics.k8s.io/v1beta1/nodes", Some(&admin), &[]).await;
        let (_, text) = sim::client::direct_get(r.c.env.replica_addr(0), "/metrics", Some(&admin), &[]).await;
        [
            "ha_metrics_server_fanout_errors_total",
            "ha_metrics_server_push_errors_total",
            "ha_metrics_server_scrape_errors_total",
        ]
        .iter()
        .all(|n| text.contains(n))
    })
    .await;
    for i in [1, 2] {
        r.c.replicas[i].signal(libc::SIGCONT);
    }
    let live = sim::wait::until(Duration::from_secs(30), async || {
        let (code, text) = sim::client::direct_get(r.c.env.replica_addr(0), "/metrics", Some(&admin), &[]).await;
        code == 200 && text.contains("ha_metrics_server_raft_members")
    })
    .await;
    assert!(live.is_some(), "no /metrics with the raft gauges");
    let (_, text) = sim::client::direct_get(r.c.env.replica_addr(0), "/metrics", Some(&admin), &[]).await;
    let exported = exported(&text);
    let mut used = BTreeSet::new();
    for e in rule_exprs().iter().chain(dashboard_exprs().iter()) {
        used.extend(referenced(e));
    }
    assert!(used.len() > 20, "suspiciously few names found: {used:?}");
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(unknown.is_empty(), "used but not exported: {unknown:?}\nexported: {exported:?}");
    println!("{} metric names used by rules and dashboard, all exported", used.len());
}

#[test]
fn name_extraction_skips_recording_rules_and_finds_every_family() {
    let got = referenced(
        "ha_metrics_server:coverage:ratio > 0 and rate(ha_metrics_server_api_requests_total{code=\"5xx\"}[5m]) \
         / metrics_server_storage_points",
    );
    let want: BTreeSet<String> = ["ha_metrics_server_api_requests_total", "metrics_server_storage_points"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    let e = exported("# TYPE a_total counter\n# TYPE x counter\n# TYPE h histogram\n# TYPE g gauge\n");
    assert!(e.contains("x_total") && e.contains("h_bucket") && e.contains("g"));
}
