//! Real kubectl 1.32 against the router (plain HTTP on a loopback block):
//! discovery, Table output and `top` decoding as users see them. Skipped with
//! a note when `kubectl.1.32` is not installed beside the `kubectl` dispatcher.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::testkit::sample;
use crate::api::router;
use sim::addr::Block;

fn kubectl_1_32() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let dispatcher = std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.exists())?;
    let real = std::fs::canonicalize(dispatcher).ok()?;
    let versioned = real.parent()?.join("kubectl.1.32");
    versioned.exists().then_some(versioned)
}

fn run(bin: &PathBuf, dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HOME", dir)
        .output()
        .expect("run kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_reads_tables_and_top_output() {
    let Some(bin) = kubectl_1_32() else {
        eprintln!("kubectl.1.32 not installed: skipping");
        return;
    };
    let block = Block::acquire().expect("address block");
    let listener = tokio::net::TcpListener::bind((block.aux(0), 0)).await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (state, _) = sample().state();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state)).with_graceful_shutdown(stop.cancelled_owned()).await
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"http://{addr}\"}}}}]\n\
         contexts: [{{name: t, context: {{cluster: t, user: u, namespace: default}}}}]\n\
         current-context: t\nusers: [{{name: u, user: {{}}}}]\n"
    );
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write kubeconfig");
    let path = dir.path().to_path_buf();
    let results = tokio::task::spawn_blocking(move || {
        [
            run(&bin, &path, &["get", "nodes.metrics.k8s.io", "--request-timeout=20s"]),
            run(&bin, &path, &["get", "pods.metrics.k8s.io", "-A", "--request-timeout=20s"]),
            run(&bin, &path, &["top", "pod", "-A", "--request-timeout=20s"]),
            run(&bin, &path, &["top", "pod", "--containers", "-l", "app=web", "--request-timeout=20s"]),
            run(&bin, &path, &["get", "nodes.metrics.k8s.io", "node-x", "--request-timeout=20s"]),
        ]
    });
    let results =
        tokio::time::timeout(Duration::from_secs(120), results).await.expect("kubectl in time").expect("join");
    cancel.cancel();
    let _ = server.await;

    let (ok, out, err) = &results[0];
    assert!(ok, "get nodes: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "CPU", "MEMORY", "WINDOW"], "{out}");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["node-a", "183412345n", "1578344Ki", "15.012s"]);
    assert_eq!(lines.len(), 4, "{out}");

    let (ok, out, err) = &results[1];
    assert!(ok, "get pods -A: {err}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["default", "web-1", "10m", "15Mi", "30s"]),
        "{out}"
    );

    let (ok, out, err) = &results[2];
    assert!(ok, "top pod -A: {err}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["kube-system", "coredns-1", "8m", "14Mi"]),
        "{out}"
    );

    let (ok, out, err) = &results[3];
    assert!(ok, "top pod --containers: {err}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web-1", "sidecar", "5m", "10Mi"]),
        "{out}"
    );

    let (ok, _, err) = &results[4];
    assert!(!ok);
    assert!(err.contains("Error from server (NotFound): nodes \"node-x\" not found"), "{err}");
}
