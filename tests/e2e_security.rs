//! Security on by default, end to end against the real binary: delegated
//! authentication (front proxy, client certificates, tokens) and
//! authorization (SubjectAccessReview) through the stand-in apiserver,
//! verified kubelets and rotating credentials.

mod common;

use std::time::Duration;

use common::{Cluster, STARTUP};
use sim::apiserver::KubeconfigUser;
use sim::client::direct_get;
use sim::kubelet::Fault;

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_forged_requests_are_refused_and_probes_are_open() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let addr = c.env.replica_addr(0);

    let (code, body) = direct_get(addr, NODES, None, &[]).await;
    assert_eq!(code, 401, "no certificate and no token: {body}");
    assert!(body.contains("\"kind\":\"Status\"") && body.contains("Unauthorized"), "{body}");

    // X-Remote-User without a front-proxy certificate is never trusted.
    let (code, _) =
        direct_get(addr, NODES, None, &[("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters")]).await;
    assert_eq!(code, 401, "forged identity headers must not authenticate");

    // A certificate from a CA the server does not trust.
    let rogue = tls::pki::Ca::new("rogue").unwrap().issue_client("admin", &["system:masters"]).unwrap();
    let (code, _) = direct_get(addr, NODES, Some(&rogue), &[]).await;
    assert_eq!(code, 401, "client certificate from an unknown CA");

    // A client certificate from the cluster's client CA authenticates as its
    // CN; headers claiming someone else change nothing.
    let dev = c.env.apiserver.issue_client_cert("dev-user", &["dev-team"]).unwrap();
    let (code, body) = direct_get(addr, NODES, Some(&dev), &[("X-Remote-User", "admin")]).await;
    assert_eq!(code, 200, "{body}");
    let eve = c.env.apiserver.issue_client_cert("eve", &["outsiders"]).unwrap();
    let (code, body) =
        direct_get(addr, NODES, Some(&eve), &[("X-Remote-User", "dev-user"), ("X-Remote-Group", "dev-team")]).await;
    assert_eq!(code, 403, "eve must be denied whatever headers she sends: {body}");
    assert!(
        body.contains("\"reason\":\"Forbidden\"")
            && body.contains("User \\\"eve\\\" cannot list resource \\\"nodes\\\""),
        "{body}"
    );

    // A certificate from the front-proxy CA whose CN is not an allowed name
    // is refused outright, headers or not.
    let impostor = c.env.apiserver.issue_front_proxy_cert("not-the-front-proxy").unwrap();
    let (code, body) =
        direct_get(addr, NODES, Some(&impostor), &[("X-Remote-User", "dev-user"), ("X-Remote-Group", "dev-team")])
            .await;
    assert_eq!(code, 401, "front-proxy certificate with a CN outside requestheader-allowed-names: {body}");

    // Bearer tokens are checked with TokenReview.
    c.env.apiserver.add_token("token-of-dev-user", "dev-user", &["dev-team"]);
    let (code, body) = direct_get(addr, NODES, None, &[("Authorization", "Bearer token-of-dev-user")]).await;
    assert_eq!(code, 200, "a valid bearer token: {body}");
    let (code, _) = direct_get(addr, NODES, None, &[("Authorization", "Bearer made-up")]).await;
    assert_eq!(code, 401, "an unknown bearer token");

    // The front proxy's own certificate with identity headers is trusted.
    let proxy = c.env.apiserver.front_proxy_client();
    let (code, body) =
        direct_get(addr, NODES, Some(&proxy), &[("X-Remote-User", "dev-user"), ("X-Remote-Group", "dev-team")]).await;
    assert_eq!(code, 200, "{body}");

    for probe in ["/healthz", "/livez", "/readyz", "/readyz?verbose"] {
        let (code, body) = direct_get(addr, probe, None, &[]).await;
        assert_eq!(code, 200, "{probe} without credentials: {body}");
    }
    let (code, _) = direct_get(addr, "/metrics", None, &[]).await;
    assert_eq!(code, 401, "/metrics needs credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_user_without_rights_is_forbidden_by_subject_access_review() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let eve = c.env.work_dir.join("eve.kubeconfig");
    c.env
        .apiserver
        .write_kubeconfig(&eve, KubeconfigUser::ClientCert { user: "eve".into(), groups: vec!["outsiders".into()] })
        .unwrap();
    let k = sim::env::kubectl_132().unwrap();
    let out = tokio::process::Command::new(k)
        .arg("--kubeconfig")
        .arg(&eve)
        .args(["top", "node"])
        .env("HOME", &c.env.work_dir)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Forbidden") && err.contains("eve"), "kubectl as eve: {err}");
    let reviews_before = c.env.apiserver.subject_access_reviews();
    // The dev user is allowed and its answer is cached: a burst of requests
    // costs at most a few reviews.
    for _ in 0..5 {
        c.kubectl_ok(&["top", "node"]).await;
    }
    let extra = c.env.apiserver.subject_access_reviews() - reviews_before;
    assert!(extra <= 4, "{extra} SubjectAccessReviews for 5 requests: answers are not cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_front_proxy_ca_is_honoured_without_restart() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let addr = c.env.replica_addr(0);
    let as_dev = [("X-Remote-User", "dev-user"), ("X-Remote-Group", "dev-team")];
    let old = c.env.apiserver.front_proxy_client();
    c.env.apiserver.rotate_front_proxy_ca().unwrap();
    let new = c.env.apiserver.front_proxy_client();
    // The aggregation proxy now presents a certificate from the new CA; the
    // server picks the new CA up from the ConfigMap watch, and the old CA
    // (gone from the ConfigMap) stops being trusted.
    let ok = sim::wait::until(STARTUP, async || c.kubectl(&["top", "node"]).await.status.success()).await.is_some();
    assert!(ok, "kubectl never worked again after the front-proxy CA rotated\n{}", c.log_tail(0));
    let (code, body) = direct_get(addr, NODES, Some(&new), &as_dev).await;
    assert_eq!(code, 200, "the new front-proxy certificate: {body}");
    let (code, _) = direct_get(addr, NODES, Some(&old), &as_dev).await;
    assert_eq!(code, 401, "the old front-proxy certificate after rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_with_an_unverifiable_certificate_fails_alone() {
    let c = Cluster::start(3, 2, "3s").await;
    c.wait_for_metrics().await;
    c.env.fleet.set_untrusted_cert("node-1", true).unwrap();
    // The new certificate applies to new connections, as when a real kubelet
    // rotates its certificate: drop the pooled connection by restarting it.
    c.env.fleet.set_fault("node-1", Fault::Down).await.unwrap();
    c.env.fleet.set_fault("node-1", Fault::None).await.unwrap();
    let gone = sim::wait::until(STARTUP, async || {
        let served: Vec<String> = c.served_nodes().await.into_iter().map(|i| i.key).collect();
        assert!(served.contains(&"node-0".to_string()) && served.contains(&"node-2".to_string()), "{served:?}");
        !served.contains(&"node-1".to_string())
    })
    .await
    .is_some();
    assert!(gone, "node-1 with an untrusted certificate was still served");
    assert!(c.log_tail(0).contains("node-1"), "the failure is logged with the node name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_kubelet_token_file_is_used_on_the_next_scrape() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let new_token = "rotated-token-0123456789";
    // Both tokens are valid during the rotation, as with bound tokens.
    let old = std::fs::read_to_string(&c.env.files.kubelet_token).unwrap();
    c.env.fleet.set_accepted_tokens(vec![old.clone(), new_token.to_string()]);
    let tmp = c.env.files.kubelet_token.with_extension("new");
    std::fs::write(&tmp, new_token).unwrap();
    std::fs::rename(&tmp, &c.env.files.kubelet_token).unwrap();
    // Give the server the token-recheck interval, then revoke the old token:
    // scrapes must keep succeeding with the new one.
    let switched = sim::wait::until(Duration::from_secs(30), async || {
        c.env.fleet.set_accepted_tokens(vec![new_token.to_string()]);
        let before = c.env.fleet.scrape_count("node-0");
        let advanced =
            sim::wait::until(Duration::from_secs(6), async || c.env.fleet.scrape_count("node-0") > before + 1).await;
        advanced.is_some() && c.served_nodes().await.len() == 2
    })
    .await
    .is_some();
    assert!(switched, "scrapes did not use the rotated token\n{}", c.log_tail(0));
}
