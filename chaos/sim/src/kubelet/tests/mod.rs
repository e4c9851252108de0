//! Tests of the simulated kubelets over real HTTPS: the text format, the
//! true rates, authentication, certificates, scrape counters, the model knobs
//! and a 1,000-node fleet. Fault knobs are in `faults`; `testkit` is their
//! strict text checker, HTTPS client and fleet fixture.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use super::{FleetError, FleetOptions, KubeletFleet};
use crate::cluster::{ContainerSpec, PodPhase, PodSpec};
use testkit::{Fixture, TOKEN, client, container_sample, get, parse_strict, rss_bytes, single};
use tls::pki::Ca;

mod faults;
mod testkit;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn scraped_text_is_kubelet_format_with_the_spec_truth() {
    let fx = Fixture::start(2, None).await;
    let node = &fx.spec.nodes[0];
    let before = now_ms();
    let f = fx.scrape_ok(&node.name).await;
    let after = now_ms();
    let names: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_start_time_seconds",
            "node_cpu_usage_seconds_total",
            "node_memory_working_set_bytes",
            "pod_cpu_usage_seconds_total",
            "pod_memory_working_set_bytes",
            "resource_scrape_error",
            "scrape_error",
        ]
    );
    let containers: usize = node.pods.iter().map(|p| p.containers.len()).sum();
    for (name, (kind, samples)) in &f {
        let expected_kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        assert_eq!(kind, expected_kind, "{name}");
        for s in samples {
            let untimed = name == "container_start_time_seconds" || name.ends_with("scrape_error");
            match s.timestamp_ms {
                None => assert!(untimed, "{name} lacks a timestamp"),
                Some(ts) => {
                    assert!(!untimed, "{name} has a timestamp");
                    assert!((before..=after).contains(&ts), "{name} timestamp {ts} not in {before}..={after}");
                }
            }
        }
        if name.starts_with("container_") {
            assert_eq!(samples.len(), containers, "{name}");
            assert!(samples.iter().all(|s| s.labels.len() == 3));
        }
        if name.starts_with("pod_") {
            assert_eq!(samples.len(), node.pods.len(), "{name}");
        }
    }
    assert_eq!(single(&f, "node_memory_working_set_bytes").value, node.memory_bytes as f64);
    assert_eq!(single(&f, "resource_scrape_error").value, 0.0);
    for pod in &node.pods {
        for c in &pod.containers {
            let mem = container_sample(&f, "container_memory_working_set_bytes", &pod.namespace, &pod.name, &c.name)
                .expect("container series");
            assert_eq!(mem.value, c.memory_bytes as f64);
            let start = container_sample(&f, "container_start_time_seconds", &pod.namespace, &pod.name, &c.name)
                .expect("start series");
            let age = before as f64 / 1000.0 - start.value;
            assert!((3600.0..3700.0).contains(&age), "{} started {age}s ago", c.name);
        }
    }
}

#[tokio::test]
async fn two_scrapes_over_https_give_the_true_rates() {
    let fx = Fixture::start(2, None).await;
    let node = &fx.spec.nodes[1];
    let first = fx.scrape_ok(&node.name).await;
    // A rate needs two samples at least a second apart.
    let stamp = |f: &testkit::Families| single(f, "node_cpu_usage_seconds_total").timestamp_ms.unwrap_or(0);
    let second = crate::wait::expect_some("a sample a second after the first", Duration::from_secs(10), async || {
        let next = fx.scrape_ok(&node.name).await;
        (stamp(&next) >= stamp(&first) + 1_000).then_some(next)
    })
    .await;
    let rate = |family: &str, a: &testkit::Sample, b: &testkit::Sample| {
        let dt = (b.timestamp_ms.unwrap() - a.timestamp_ms.unwrap()) as f64 / 1000.0;
        assert!(dt >= 1.0, "{family}: interval {dt}s");
        (b.value - a.value) / dt * 1e9
    };
    let close = |what: &str, got: f64, truth: u64| {
        let err = (got - truth as f64).abs() / truth as f64;
        assert!(err < 0.001, "{what}: measured {got} nanocores, truth {truth}");
    };
    let n1 = single(&first, "node_cpu_usage_seconds_total");
    let n2 = single(&second, "node_cpu_usage_seconds_total");
    close("node", rate("node", &n1, &n2), node.cpu_nanocores);
    for pod in &node.pods {
        for c in &pod.containers {
            let family = "container_cpu_usage_seconds_total";
            let a = container_sample(&first, family, &pod.namespace, &pod.name, &c.name).unwrap();
            let b = container_sample(&second, family, &pod.namespace, &pod.name, &c.name).unwrap();
            close(&c.name, rate(family, &a, &b), c.cpu_nanocores);
            let truth = fx.fleet.true_usage(&node.name, &pod.namespace, &pod.name, &c.name).unwrap();
            assert_eq!(truth.cpu_nanocores, c.cpu_nanocores);
        }
        let pick = |f: &testkit::Families| {
            f["pod_cpu_usage_seconds_total"].1.iter().find(|s| s.label("pod") == Some(&pod.name)).cloned().unwrap()
        };
        let truth: u64 = pod.containers.iter().map(|c| c.cpu_nanocores).sum();
        close(&pod.name, rate("pod", &pick(&first), &pick(&second)), truth);
    }
}

#[tokio::test]
async fn requests_without_an_accepted_token_get_401() {
    let fx = Fixture::start(1, None).await;
    let url = fx.fleet.url("node-0").unwrap();
    let (status, body) = get(&fx.client, &url, None).await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, "Unauthorized"));
    let (status, _) = get(&fx.client, &url, Some("wrong")).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&fx.client, &url, Some(TOKEN)).await.unwrap().0, StatusCode::OK);
    // A rotation: the old token stops working, the new one works.
    fx.fleet.set_accepted_tokens(vec!["rotated".to_string()]);
    assert_eq!(get(&fx.client, &url, Some(TOKEN)).await.unwrap().0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&fx.client, &url, Some("rotated")).await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn other_paths_are_404_and_anonymous_fleets_need_no_token() {
    let fx = Fixture::start(1, Some(FleetOptions::anonymous())).await;
    let addr = fx.fleet.addr("node-0").unwrap();
    let (status, _) = get(&fx.client, &format!("https://{addr}/stats/summary"), None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&fx.client, &fx.fleet.url("node-0").unwrap(), None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    parse_strict(&body).unwrap();
}

#[tokio::test]
async fn client_certificate_from_the_client_ca_is_accepted_without_token() {
    let client_ca = Ca::new("kubelet-client-ca").unwrap();
    let opts = FleetOptions { client_ca_pem: Some(client_ca.cert_pem().to_string()), ..FleetOptions::default() };
    let fx = Fixture::start(1, Some(opts)).await;
    let url = fx.fleet.url("node-0").unwrap();
    let pair = client_ca.issue_client("system:serviceaccount:kube-system:metrics-server", &[]).unwrap();
    let with_cert = client(fx.fleet.ca_pem(), Some(&pair));
    assert_eq!(get(&with_cert, &url, None).await.unwrap().0, StatusCode::OK);
    assert_eq!(get(&fx.client, &url, None).await.unwrap().0, StatusCode::UNAUTHORIZED);
    // A certificate from another CA fails the handshake, as on a kubelet.
    let stranger = Ca::new("other").unwrap().issue_client("mallory", &[]).unwrap();
    assert!(get(&client(fx.fleet.ca_pem(), Some(&stranger)), &url, None).await.is_err());
}

#[tokio::test]
async fn untrusted_certificate_fails_verification_on_that_node_only() {
    let opts = FleetOptions { untrusted_cert_nodes: vec!["node-1".into()], ..FleetOptions::with_tokens([TOKEN]) };
    let fx = Fixture::start(2, Some(opts)).await;
    let err = fx.scrape("node-1").await.expect_err("certificate must not verify");
    assert!(err.contains("Certificate") || err.contains("certificate"), "{err}");
    fx.scrape_ok("node-0").await;
    // Trusting the other CA works, and switching back restores the fleet CA.
    let other = client(fx.fleet.untrusted_ca_pem(), None);
    let url = fx.fleet.url("node-1").unwrap();
    assert_eq!(get(&other, &url, Some(TOKEN)).await.unwrap().0, StatusCode::OK);
    fx.fleet.set_untrusted_cert("node-1", false).unwrap();
    let fresh = client(fx.fleet.ca_pem(), None);
    assert_eq!(get(&fresh, &url, Some(TOKEN)).await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn scrape_counts_count_per_node() {
    let fx = Fixture::start(3, None).await;
    assert_eq!(fx.fleet.total_scrapes(), 0);
    assert_eq!(fx.fleet.last_scrape("node-0"), None);
    let before = SystemTime::now() - Duration::from_millis(1);
    for _ in 0..3 {
        fx.scrape_ok("node-0").await;
    }
    fx.scrape_ok("node-2").await;
    assert_eq!(fx.fleet.scrape_count("node-0"), 3);
    assert_eq!(fx.fleet.scrape_count("node-1"), 0);
    assert_eq!(fx.fleet.scrape_count("node-2"), 1);
    assert_eq!(fx.fleet.scrape_count("no-such-node"), 0);
    assert_eq!(fx.fleet.total_scrapes(), 4);
    let last = fx.fleet.last_scrape("node-2").expect("scraped");
    assert!(last >= before && last <= SystemTime::now(), "{last:?}");
    assert_eq!(fx.fleet.last_scrape("node-1"), None);
    fx.fleet.reset_scrape_counts();
    assert_eq!((fx.fleet.scrape_count("node-0"), fx.fleet.total_scrapes()), (0, 0));
}

#[tokio::test]
async fn pods_and_usage_change_at_runtime_with_continuous_counters() {
    let fx = Fixture::start(1, None).await;
    let pod = fx.spec.nodes[0].pods[0].clone();
    let (ns, name, c) = (pod.namespace.as_str(), pod.name.as_str(), pod.containers[0].name.as_str());
    let family = "container_cpu_usage_seconds_total";
    let cpu = |f: &testkit::Families| container_sample(f, family, ns, name, c).map(|s| s.value);

    let before = fx.scrape_ok("node-0").await;
    fx.fleet.set_usage("node-0", ns, name, c, 3_000_000_000, 123_456_789).unwrap();
    let after = fx.scrape_ok("node-0").await;
    assert!(cpu(&after) >= cpu(&before), "the counter stays monotonic across a rate change");
    let truth = fx.fleet.true_usage("node-0", ns, name, c).unwrap();
    assert_eq!((truth.cpu_nanocores, truth.memory_bytes), (3_000_000_000, 123_456_789));
    let mem = container_sample(&after, "container_memory_working_set_bytes", ns, name, c).unwrap();
    assert_eq!(mem.value, 123_456_789.0);

    let restart_at = SystemTime::now();
    fx.fleet.restart_container("node-0", ns, name, c).unwrap();
    let restarted = fx.scrape_ok("node-0").await;
    assert!(cpu(&restarted).unwrap() < 1.0, "counter restarted: {:?}", cpu(&restarted));
    let start = container_sample(&restarted, "container_start_time_seconds", ns, name, c).unwrap().value;
    let restart_s = restart_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((start - restart_s).abs() < 1.0, "start {start} vs restart {restart_s}");

    let new_pod = PodSpec {
        namespace: "team-b".into(),
        name: "batch-1".into(),
        labels: Default::default(),
        phase: PodPhase::Running,
        containers: vec![ContainerSpec { name: "worker".into(), cpu_nanocores: 7_500_000, memory_bytes: 1 << 20 }],
    };
    fx.fleet.add_pod("node-0", new_pod.clone()).unwrap();
    assert!(matches!(fx.fleet.add_pod("node-0", new_pod), Err(FleetError::DuplicatePod { .. })));
    let with_new = fx.scrape_ok("node-0").await;
    assert!(container_sample(&with_new, family, "team-b", "batch-1", "worker").is_some());
    assert_eq!(fx.fleet.true_pod_usage("node-0", "team-b", "batch-1").unwrap().cpu_nanocores, 7_500_000);
    fx.fleet.remove_pod("node-0", ns, name).unwrap();
    let without = fx.scrape_ok("node-0").await;
    assert!(cpu(&without).is_none());
    assert!(matches!(fx.fleet.remove_pod("node-0", ns, name), Err(FleetError::UnknownPod { .. })));
    assert!(matches!(fx.fleet.restart_container("node-9", ns, name, c), Err(FleetError::UnknownNode { .. })));
}

#[tokio::test]
async fn thousand_node_fleet_starts_and_serves_every_node() {
    use futures::StreamExt;
    let rss_before = rss_bytes().unwrap_or(0);
    let started = Instant::now();
    let fx = Fixture::start(1000, None).await;
    let start_time = started.elapsed();
    let rss_started = rss_bytes().unwrap_or(0);
    let names: Vec<String> = fx.fleet.node_names().map(String::from).collect();
    assert_eq!(names.len(), 1000);
    let scraped = Instant::now();
    let fxr = &fx;
    let failures: Vec<String> = futures::stream::iter(names.iter())
        .map(|name| async move {
            match fxr.scrape(name).await {
                Ok((StatusCode::OK, body)) if parse_strict(&body).is_ok() => None,
                other => Some(format!("{name}: {other:?}")),
            }
        })
        .buffer_unordered(32)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    let scrape_time = scraped.elapsed();
    assert!(failures.is_empty(), "{} nodes failed, first: {:?}", failures.len(), failures.first());
    assert!(names.iter().all(|n| fx.fleet.scrape_count(n) == 1));
    assert_eq!(fx.fleet.total_scrapes(), 1000);
    let rendering = Instant::now();
    let bytes: usize = names.iter().map(|n| fx.fleet.render(n).unwrap().len()).sum();
    let render_time = rendering.elapsed();
    eprintln!(
        "1000-node fleet: start {start_time:?}, RSS +{} MiB after start ({} MiB total), \
         1000 scrapes (new TLS connection each, 32 at a time) in {scrape_time:?}, RSS {} MiB after; \
         rendering {} bytes/node takes {:?}/node",
        rss_started.saturating_sub(rss_before) >> 20,
        rss_started >> 20,
        rss_bytes().unwrap_or(0) >> 20,
        bytes / names.len(),
        render_time / names.len() as u32,
    );
    fx.fleet.shutdown().await;
}

#[tokio::test]
async fn start_fails_with_the_node_name_when_an_address_is_taken() {
    let fx = Fixture::start(1, None).await;
    let err = KubeletFleet::start(&fx.spec, FleetOptions::anonymous(), Default::default()).await.err().unwrap();
    assert!(matches!(&err, FleetError::Bind { node, .. } if node == "node-0"), "{err}");
    assert!(err.to_string().contains("node-0"));
}

#[tokio::test]
async fn sample_lag_puts_timestamps_behind_the_scrape() {
    let lag = Duration::from_millis(400);
    let opts = FleetOptions { sample_lag: lag, ..FleetOptions::with_tokens([TOKEN]) };
    let fx = Fixture::start(1, Some(opts)).await;
    let before = now_ms();
    let f = fx.scrape_ok("node-0").await;
    let after = now_ms();
    let ts = single(&f, "node_cpu_usage_seconds_total").timestamp_ms.unwrap();
    let lag_ms = lag.as_millis() as i64;
    assert!((before - lag_ms..=after - lag_ms).contains(&ts), "{ts} not {lag_ms} ms behind {before}..={after}");
}
