//! The real kubectl 1.32 against the stand-in: discovery (aggregated v2),
//! tables, and `kubectl top` through the aggregation proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Harness;
use super::backend::Backend;
use crate::apiserver::KubeconfigUser;

/// The real kubectl 1.32 (beside the dispatcher on PATH, or installed on first use).
fn kubectl_132() -> PathBuf {
    crate::tools::kubectl("1.32", "the stand-in apiserver is tested against the real kubectl")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs kubectl with a deadline; returns (exit code, stdout, stderr).
async fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(kubectl_132());
    cmd.args(args).env("KUBECONFIG", kubeconfig).env("HOME", home).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl within 60 s")
        .expect("kubectl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_gets_nodes_and_pods_in_all_namespaces_with_the_dev_kubeconfig() {
    let h = Harness::start().await;
    let kc = h.kubeconfig("dev", KubeconfigUser::dev_user());
    let (code, out, err) = kubectl(&kc, h.dir.path(), &["get", "nodes"]).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("STATUS") && lines[0].contains("VERSION"), "{out}");
    for node in &h.spec.nodes {
        assert!(lines.iter().any(|l| l.starts_with(&node.name) && l.contains("Ready")), "{} missing: {out}", node.name);
    }
    let (code, out, err) = kubectl(&kc, h.dir.path(), &["get", "pods", "-A"]).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.lines().next().is_some_and(|l| l.starts_with("NAMESPACE") && l.contains("READY")), "{out}");
    let pods: Vec<_> = h.spec.nodes.iter().flat_map(|n| &n.pods).collect();
    assert_eq!(out.lines().count(), pods.len() + 1, "{out}");
    for p in pods {
        assert!(
            out.lines().any(|l| l.starts_with(&p.namespace) && l.contains(&p.name) && l.contains("Running")),
            "{out}"
        );
    }
    let (code, out, err) = kubectl(&kc, h.dir.path(), &["get", "pods", "-A", "-l", "app=web", "-o", "name"]).await;
    assert_eq!(code, 0, "{err}");
    let web = h.spec.nodes.iter().flat_map(|n| &n.pods).filter(|p| p.labels["app"] == "web").count();
    assert_eq!(out.lines().count(), web, "{out}");
}

#[tokio::test]
async fn kubectl_top_node_discovers_metrics_api_and_reads_through_the_proxy() {
    let h = Harness::start().await;
    let backend = Backend::start(h.block.replica(0).into(), &h.server.front_proxy_ca_pem(), &h.spec).await;
    h.server.set_metrics_backends(vec![backend.addr]);
    let kc = h.kubeconfig("dev", KubeconfigUser::dev_user());
    let (code, out, err) = kubectl(&kc, h.dir.path(), &["top", "node"]).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    // 250m of 4 cores = 6 %, 1Gi of 16Gi = 6 %.
    for node in &h.spec.nodes {
        let line =
            out.lines().find(|l| l.starts_with(&node.name)).unwrap_or_else(|| panic!("{} missing: {out}", node.name));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1..], ["250m", "6%", "1024Mi", "6%"], "{line}");
    }
    let s = &backend.seen()[0];
    assert_eq!(s.header_values("x-remote-user"), ["dev-user"]);
    assert_eq!(s.header_values("x-remote-group"), ["dev-team", "system:authenticated"]);

    let (code, out, err) = kubectl(&kc, h.dir.path(), &["api-resources", "--api-group=metrics.k8s.io"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NodeMetrics") && out.contains("PodMetrics"), "{out}");

    h.server.set_metrics_backends(Vec::new());
    let (code, _, err) = kubectl(&kc, h.dir.path(), &["top", "node"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("ServiceUnavailable"), "{err}");
}
