//! What the request-handling, shutdown, authentication and audit flags of
//! metrics-server 0.9 do to the real binary: a slow kube-apiserver (the
//! stand-in's reviews made slow) meets --request-timeout, the in-flight
//! limits and --shutdown-send-retry-after; an unreadable authentication
//! ConfigMap meets --authentication-tolerate-lookup-failure and
//! --livez-grace-period; the audit log and webhook receive one event per
//! stage of each request the policy selects.

mod common;
mod flagkit;

use std::time::{Duration, Instant};

use flagkit::{exited, send, serving};
use http::Method;
use sim::client::{fetch, try_get};

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

async fn replica(c: &common::Cluster, i: usize, extra: &[String]) -> flagkit::Started {
    let mut args = c.env.replica_args(i, "2s");
    args.extend(extra.iter().cloned());
    serving(&args, c.env.replica_addr(i), &c.env.work_dir.join(format!("replica-{i}.log"))).await
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reviews_meet_the_request_timeout_and_the_in_flight_limits() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let timeout = replica(&c, 0, &flags(&["--request-timeout=1s"])).await;
    let limited = replica(&c, 1, &flags(&["--max-requests-inflight=1"])).await;
    let mutating = replica(&c, 2, &flags(&["--max-mutating-requests-inflight=1"])).await;
    c.env.apiserver.add_token("dev-token", "dev-user", &["dev-team"]);
    let dev = c.env.apiserver.issue_client_cert("dev-user", &["dev-team"]).unwrap();
    c.env.apiserver.set_review_delays(Duration::from_secs(4), Duration::from_secs(4));

    // A TokenReview slower than --request-timeout: 504 Timeout, on time.
    let started = Instant::now();
    let r = fetch(timeout.addr, NODES, None, &[("Authorization", "Bearer dev-token")]).await.unwrap();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.body.contains(r#""reason":"Timeout""#), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());

    // One request waiting on its SubjectAccessReview holds the only slot:
    // the next gets 429, the probes still answer.
    let reviews = c.env.apiserver.subject_access_reviews();
    let (addr, cert) = (limited.addr, dev.clone());
    let held = tokio::spawn(async move { fetch(addr, NODES, Some(&cert), &[]).await });
    sim::wait::expect("the first request to reach its review", Duration::from_secs(30), async || {
        c.env.apiserver.subject_access_reviews() > reviews
    })
    .await;
    let r = fetch(limited.addr, NODES, Some(&dev), &[]).await.unwrap();
    assert_eq!((r.status, r.headers["retry-after"].to_str().unwrap()), (429, "1"), "{}", r.body);
    assert_eq!(try_get(limited.addr, "/livez", None, &[]).await.unwrap().0, 200);
    assert_eq!(held.await.unwrap().unwrap().status, 200);

    // The mutating limit counts POSTs only.
    let reviews = c.env.apiserver.subject_access_reviews();
    let (addr, cert) = (mutating.addr, dev.clone());
    let held = tokio::spawn(async move { send(addr, Method::POST, NODES, Some(&cert), &[]).await });
    sim::wait::expect("the POST to reach its review", Duration::from_secs(30), async || {
        c.env.apiserver.subject_access_reviews() > reviews
    })
    .await;
    let r = send(mutating.addr, Method::POST, NODES, Some(&dev), &[]).await.unwrap();
    assert_eq!(r.status, 429, "a second POST: {}", r.body);
    c.env.apiserver.set_review_delays(Duration::ZERO, Duration::ZERO);
    let r = fetch(mutating.addr, NODES, Some(&dev), &[]).await.unwrap();
    assert_eq!(r.status, 200, "a GET is not limited by the mutating limit: {}", r.body);
    assert_ne!(held.await.unwrap().unwrap().status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delays_then_answers_retry_after_while_requests_drain() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let dev = c.env.apiserver.issue_client_cert("dev-user", &["dev-team"]).unwrap();
    let mut delayed = replica(&c, 0, &flags(&["--shutdown-delay-duration=3s"])).await;
    let mut retry = replica(&c, 1, &flags(&["--shutdown-send-retry-after"])).await;

    // --shutdown-delay-duration: readiness fails at once, requests are
    // still served during the delay.
    delayed.process.signal(libc::SIGTERM);
    sim::wait::expect("/readyz to fail", Duration::from_secs(10), async || {
        try_get(delayed.addr, "/readyz", None, &[]).await.is_ok_and(|(code, _)| code == 500)
    })
    .await;
    assert_eq!(fetch(delayed.addr, NODES, Some(&dev), &[]).await.unwrap().status, 200, "served during the delay");
    assert!(exited(&mut delayed.process, Duration::from_secs(60)).await.is_some_and(|s| s.success()));

    // --shutdown-send-retry-after: with a request in flight, new ones get
    // 429 Retry-After: 5 and Connection: close; the probes are answered;
    // the process exits once the request in flight is done.
    c.env.apiserver.set_review_delays(Duration::ZERO, Duration::from_secs(5));
    let reviews = c.env.apiserver.subject_access_reviews();
    let (addr, cert) = (retry.addr, dev.clone());
    let in_flight = tokio::spawn(async move { fetch(addr, NODES, Some(&cert), &[]).await });
    sim::wait::expect("the request to be in flight", Duration::from_secs(30), async || {
        c.env.apiserver.subject_access_reviews() > reviews
    })
    .await;
    retry.process.signal(libc::SIGTERM);
    // Draining once readiness fails: a request sent before that would wait
    // out the 5 s review like the one in flight.
    sim::wait::expect("/readyz to fail", Duration::from_secs(4), async || {
        try_get(retry.addr, "/readyz", None, &[]).await.is_ok_and(|(code, _)| code == 500)
    })
    .await;
    let refused = sim::wait::until(Duration::from_secs(4), async || {
        fetch(retry.addr, NODES, Some(&dev), &[]).await.is_ok_and(|r| r.status == 429)
    })
    .await;
    assert!(refused.is_some(), "no 429 while the request drained");
    let r = fetch(retry.addr, NODES, Some(&dev), &[]).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "5");
    assert_eq!(r.body, "The apiserver is shutting down, please try again later.\n");
    assert_eq!(try_get(retry.addr, "/readyz", None, &[]).await.unwrap().0, 500, "probes are answered, failing");
    assert!(retry.process.try_wait().is_none(), "still listening while the request drains");
    assert_eq!(in_flight.await.unwrap().unwrap().status, 200, "the request in flight finished");
    assert!(exited(&mut retry.process, Duration::from_secs(60)).await.is_some_and(|s| s.success()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authentication_configmap_lookup_flags() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    // A kubeconfig whose kube-apiserver never answers.
    let dead = std::net::TcpListener::bind((c.env.block.aux(1), 0)).unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let text = std::fs::read_to_string(&c.env.files.server_kubeconfig).unwrap();
    let url = c.env.apiserver.url();
    let dead_kubeconfig = c.env.work_dir.join("dead.kubeconfig");
    std::fs::write(&dead_kubeconfig, text.replace(&url, &format!("https://{dead_addr}"))).unwrap();
    let at = |i: usize, extra: &[&str]| {
        let mut args = c.env.replica_args(i, "2s");
        args.push(format!("--kubeconfig={}", dead_kubeconfig.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let log = c.env.work_dir.join("strict.log");
    let mut strict = sim::env::ReplicaProcess::spawn(&common::binary(), &at(0, &[]), &log).unwrap();
    let status = exited(&mut strict, Duration::from_secs(90)).await.expect("exits without the ConfigMap");
    assert!(!status.success());
    let text = strict.log_text();
    assert!(text.contains("extension-apiserver-authentication") && text.contains("tolerate-lookup-failure"), "{text}");

    // Tolerated: it runs; /livez fails on the informers it cannot sync,
    // unless --livez-grace-period covers them.
    let tolerant_addr = c.env.replica_addr(1);
    let log = c.env.work_dir.join("tolerant.log");
    let tolerant =
        sim::env::ReplicaProcess::spawn(&common::binary(), &at(1, &["--authentication-tolerate-lookup-failure"]), &log)
            .unwrap();
    sim::wait::expect("the tolerant replica to answer", common::STARTUP, async || {
        try_get(tolerant_addr, "/livez", None, &[]).await.is_ok()
    })
    .await;
    assert_eq!(try_get(tolerant_addr, "/livez", None, &[]).await.unwrap().0, 500);
    drop(tolerant);
    let graced = serving(
        &at(2, &["--authentication-tolerate-lookup-failure", "--livez-grace-period=1h"]),
        c.env.replica_addr(2),
        &c.env.work_dir.join("graced.log"),
    )
    .await;
    let (_, verbose) = try_get(graced.addr, "/livez?verbose", None, &[]).await.unwrap();
    assert!(verbose.contains("[+]metadata-informer-sync ok"), "{verbose}");

    // --authentication-skip-lookup: the front proxy is not trusted without
    // the ConfigMap (nor a --requestheader-client-ca-file).
    let proxy = c.env.apiserver.front_proxy_client();
    let as_dev = [("X-Remote-User", "dev-user"), ("X-Remote-Group", "dev-team")];
    let normal = replica(&c, 3, &[]).await;
    let skip = replica(&c, 4, &flags(&["--authentication-skip-lookup"])).await;
    assert_eq!(fetch(normal.addr, NODES, Some(&proxy), &as_dev).await.unwrap().status, 200);
    assert_eq!(fetch(skip.addr, NODES, Some(&proxy), &as_dev).await.unwrap().status, 401);
}

/// The audit events in a log file (one JSON object a line).
fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event ({e}): {l}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_and_webhook_get_an_event_per_stage_as_the_policy_says() {
    let c = common::Cluster::start_empty(1, 1, "2s").await;
    let fixtures = flagkit::Fixtures::new(&c.env, &c.env.work_dir.join("fixtures"), c.env.block.aux(0).into()).await;
    let log_path = c.env.work_dir.join("audit/audit.log");
    let policy = format!("--audit-policy-file={}", fixtures.values["policy"]);
    let logged = replica(&c, 0, &[policy.clone(), format!("--audit-log-path={}", log_path.display())]).await;
    let hooked = replica(
        &c,
        1,
        &[
            policy,
            format!("--audit-webhook-config-file={}", fixtures.values["webhook_kubeconfig"]),
            "--audit-webhook-mode=blocking".into(),
        ],
    )
    .await;
    let dev = c.env.apiserver.issue_client_cert("dev-user", &["dev-team"]).unwrap();
    let alice = c.env.apiserver.issue_client_cert("alice", &[]).unwrap();

    let r = fetch(logged.addr, NODES, Some(&dev), &[("Audit-ID", "id-dev")]).await.unwrap();
    assert_eq!((r.status, r.headers["audit-id"].to_str().unwrap()), (200, "id-dev"));
    assert_eq!(fetch(logged.addr, NODES, Some(&alice), &[("Audit-ID", "id-alice")]).await.unwrap().status, 403);
    assert_eq!(fetch(logged.addr, NODES, None, &[("Audit-ID", "id-anon")]).await.unwrap().status, 401);
    assert_eq!(try_get(logged.addr, "/livez", None, &[]).await.unwrap().0, 200);

    let got = events(&log_path);
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|e| {
            (
                e["auditID"].as_str().unwrap().into(),
                e["stage"].as_str().unwrap().into(),
                e["level"].as_str().unwrap().into(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary,
        [
            s("id-dev", "RequestReceived", "Metadata"),
            s("id-dev", "ResponseComplete", "Metadata"),
            s("id-alice", "RequestReceived", "RequestResponse"),
            s("id-alice", "ResponseComplete", "RequestResponse"),
            s("id-anon", "ResponseStarted", "Metadata"),
            s("id-anon", "ResponseComplete", "Metadata"),
        ],
        "one event per stage, none for /livez (level None)"
    );
    let done = &got[1];
    assert_eq!(done["kind"], "Event");
    assert_eq!(done["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(done["verb"], "list");
    assert_eq!(done["requestURI"], NODES);
    assert_eq!(done["user"]["username"], "dev-user");
    assert_eq!(
        done["objectRef"],
        serde_json::json!({"resource": "nodes", "apiGroup": "metrics.k8s.io", "apiVersion": "v1beta1"})
    );
    assert_eq!(done["responseStatus"]["code"], 200);
    assert_eq!(done["annotations"]["authorization.k8s.io/decision"], "allow");
    assert!(done.get("responseObject").is_none(), "Metadata has no bodies");
    let forbidden = &got[3];
    assert_eq!(forbidden["responseStatus"]["reason"], "Forbidden");
    assert_eq!(forbidden["annotations"]["authorization.k8s.io/decision"], "forbid");
    assert_eq!(forbidden["responseObject"]["kind"], "Status", "RequestResponse records the body");
    assert_eq!(got[5]["responseStatus"]["message"], "Authentication failed, no credentials provided");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777, 0o600);

    // The webhook gets EventLists, in blocking mode before the answer.
    assert_eq!(fetch(hooked.addr, NODES, Some(&dev), &[("Audit-ID", "id-hook")]).await.unwrap().status, 200);
    let lists = fixtures.webhook.lock().unwrap().clone();
    let items: Vec<&serde_json::Value> = lists.iter().flat_map(|l| l["items"].as_array().unwrap()).collect();
    assert_eq!(lists[0]["kind"], "EventList");
    assert_eq!(lists[0]["apiVersion"], "audit.k8s.io/v1");
    let stages: Vec<&str> = items.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["RequestReceived", "ResponseComplete"]);
    assert!(items.iter().all(|e| e["auditID"] == "id-hook"));
}
