//! Credentials as operators write them: a token file that ends in a newline,
//! as `echo "$TOKEN" > file` writes it, works for the kube-apiserver client
//! (a kubeconfig's `tokenFile`) and for the kubelets (`--kubelet-token-file`),
//! as it does for client-go, which trims the token.

mod common;

use std::path::{Path, PathBuf};

use common::Cluster;

/// The service-account token the stand-in apiserver and the kubelets accept.
fn service_account_token(c: &Cluster) -> String {
    let token = std::fs::read_to_string(&c.env.files.kubelet_token).expect("read the kubelet token");
    assert!(!token.is_empty() && token.trim() == token, "the harness writes the token bare: {token:?}");
    token
}

/// Writes `token` and a newline to `name` in the cluster's work dir.
fn write_token_with_newline(c: &Cluster, name: &str, token: &str) -> PathBuf {
    let path = c.env.work_dir.join(name);
    std::fs::write(&path, format!("{token}\n")).expect("write the token file");
    path
}

/// The replica's own kubeconfig with its inline `token:` replaced by `tokenFile: <file>`.
fn kubeconfig_with_token_file(c: &Cluster, token_file: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&c.env.files.server_kubeconfig).expect("read the server kubeconfig");
    let quoted = serde_json::Value::String(token_file.display().to_string()).to_string();
    let mut replaced = 0;
    let out: Vec<String> = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("token: ") {
            Some(_) => {
                replaced += 1;
                format!("    tokenFile: {quoted}")
            }
            None => line.to_string(),
        })
        .collect();
    assert_eq!(replaced, 1, "the server kubeconfig has one inline token:\n{text}");
    let path = c.env.work_dir.join("token-file.kubeconfig");
    std::fs::write(&path, out.join("\n") + "\n").expect("write the kubeconfig");
    path
}

/// `args` with every `--name=...` flag removed, then `--name=value` added when given.
fn replace_flag(mut args: Vec<String>, name: &str, value: Option<&Path>) -> Vec<String> {
    let prefix = format!("--{name}=");
    args.retain(|a| !a.starts_with(&prefix));
    if let Some(v) = value {
        args.push(format!("{prefix}{}", v.display()));
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_token_file_ending_in_a_newline_is_trimmed_like_client_go() {
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    let token = write_token_with_newline(&c, "service-account.token", &service_account_token(&c));
    let kubeconfig = kubeconfig_with_token_file(&c, &token);
    let args = c.env.replica_args(0, &c.resolution);
    let args = replace_flag(args, "kubeconfig", Some(&kubeconfig));
    // Without --kubelet-token-file the kubelets get the kubeconfig's token
    // file too, as metrics-server's kubelet client does.
    let args = replace_flag(args, "kubelet-token-file", None);
    c.spawn_replica_args(0, args);
    c.env.route_metrics_to(&[0]);
    c.wait_for_metrics().await;
    let log = c.replicas[0].log_text();
    assert!(!log.contains("invalid bearer token"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_token_file_ending_in_a_newline_is_accepted_by_the_kubelets() {
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    let token = write_token_with_newline(&c, "kubelet-newline.token", &service_account_token(&c));
    let args = c.env.replica_args(0, &c.resolution);
    let args = replace_flag(args, "kubelet-token-file", Some(&token));
    c.spawn_replica_args(0, args);
    c.env.route_metrics_to(&[0]);
    c.wait_for_metrics().await;
    // Every node is served, so every kubelet accepted the trimmed token.
    assert_eq!(c.served_nodes().await.len(), c.env.spec.nodes.len());
}
