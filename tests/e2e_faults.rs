//! A kubelet that is killed, slow, hanging, broken, frozen or reset affects
//! only its own node and pods: every other node keeps being served with
//! fresh samples, and the faulty node's last good metrics are served with
//! their true timestamp for the bounded staleness, then dropped.

mod common;

use std::time::Duration;

use common::{Cluster, STARTUP};
use sim::kubelet::Fault;

/// Waits until `node` is absent from the served list while every other node
/// stays served, checking the others on every poll.
async fn only_node_disappears(c: &Cluster, node: &str, within: Duration) {
    let others: Vec<String> = c.env.spec.nodes.iter().map(|n| n.name.clone()).filter(|n| n != node).collect();
    let gone = sim::wait::until(within, async || {
        let served: Vec<String> = c.served_nodes().await.into_iter().map(|i| i.key).collect();
        for o in &others {
            assert!(
                served.contains(o),
                "healthy node {o} vanished while {node} was faulty; served {served:?}\n{}",
                c.log_tail(0)
            );
        }
        !served.iter().any(|n| n == node)
    })
    .await
    .is_some();
    assert!(gone, "{node} was still served after its kubelet failed for {within:?}");
    let pods = c.served_pods().await;
    for p in c.pods_of(node) {
        assert!(!pods.contains(&p), "pod {p} of the failed node is still served");
    }
    for o in &others {
        for p in c.pods_of(o) {
            assert!(pods.contains(&p), "pod {p} of healthy node {o} is missing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_500_and_malformed_kubelets_drop_only_their_own_nodes() {
    let c = Cluster::start(4, 3, "3s").await;
    c.wait_for_metrics().await;
    let before = c.served_nodes().await;
    c.env.fleet.set_fault("node-0", Fault::Down).await.unwrap();
    // Within the staleness bound (2 × 3 s) node-0 is still served with the
    // timestamp of its last good sample, which no longer advances.
    let old_ts = before.iter().find(|i| i.key == "node-0").unwrap().timestamp.expect("a timestamp");
    let served = c.served_nodes().await;
    let now = served.iter().find(|i| i.key == "node-0").expect("node-0 still served within the staleness bound");
    let ts = now.timestamp.expect("a timestamp");
    assert!(ts >= old_ts, "timestamp went back from {old_ts} to {ts}");
    only_node_disappears(&c, "node-0", STARTUP).await;

    c.env.fleet.set_fault("node-1", Fault::Http500).await.unwrap();
    let gone =
        sim::wait::until(STARTUP, async || !c.served_nodes().await.iter().any(|i| i.key == "node-1")).await.is_some();
    assert!(gone, "node-1 answering 500 was still served");
    c.env.fleet.set_fault("node-2", Fault::Malformed).await.unwrap();
    let gone = sim::wait::until(STARTUP, async || {
        let served: Vec<String> = c.served_nodes().await.into_iter().map(|i| i.key).collect();
        assert!(served.contains(&"node-3".to_string()), "healthy node-3 vanished: {served:?}");
        !served.contains(&"node-2".to_string())
    })
    .await
    .is_some();
    assert!(gone, "node-2 with a malformed body was still served");

    // Recovery: healthy again, node-0 comes back after two good scrapes.
    c.env.fleet.set_fault("node-0", Fault::None).await.unwrap();
    let back =
        sim::wait::until(STARTUP, async || c.served_nodes().await.iter().any(|i| i.key == "node-0")).await.is_some();
    assert!(back, "node-0 did not come back after its kubelet recovered\n{}", c.log_tail(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_hanging_kubelets_time_out_alone() {
    let c = Cluster::start(3, 2, "3s").await;
    c.wait_for_metrics().await;
    // The replica's request timeout is half the resolution (1.5 s).
    c.env.fleet.set_fault("node-1", Fault::Slow(Duration::from_secs(5))).await.unwrap();
    c.env.fleet.set_fault("node-2", Fault::Hang).await.unwrap();
    let others_fresh = sim::wait::until(STARTUP, async || {
        let served = c.served_nodes().await;
        let names: Vec<&str> = served.iter().map(|i| i.key.as_str()).collect();
        assert!(names.contains(&"node-0"), "healthy node-0 vanished: {names:?}\n{}", c.log_tail(0));
        !names.contains(&"node-1") && !names.contains(&"node-2")
    })
    .await
    .is_some();
    assert!(others_fresh, "slow and hanging nodes were served past the staleness bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_timestamps_keep_the_previous_rate_and_do_not_touch_other_nodes() {
    // A staleness bound longer than the test, so only the freeze is observed.
    let c = Cluster::start_with(2, 2, "2s", &["--max-staleness=60s"]).await;
    c.wait_for_metrics().await;
    c.env.fleet.set_fault("node-0", Fault::FrozenTimestamps).await.unwrap();
    // Waits until node-1 is served a newer sample than now: one more period.
    let next_period = || async {
        let before = c.get_raw("/apis/metrics.k8s.io/v1beta1/nodes/node-1").await.expect("node-1 served");
        let moved = sim::wait::until(STARTUP, async || {
            let now = c.get_raw("/apis/metrics.k8s.io/v1beta1/nodes/node-1").await;
            now.is_some_and(|n| n["timestamp"] != before["timestamp"])
        })
        .await
        .is_some();
        assert!(moved, "node-1 stopped advancing while node-0 was frozen");
    };
    // After two periods node-0 has been scraped since the freeze; from then
    // on it is served the same sample (same timestamp, same rate) while
    // node-1 keeps moving.
    next_period().await;
    next_period().await;
    let first = c.get_raw("/apis/metrics.k8s.io/v1beta1/nodes/node-0").await.expect("node-0 served");
    next_period().await;
    next_period().await;
    let now = c.get_raw("/apis/metrics.k8s.io/v1beta1/nodes/node-0").await.expect("node-0 still served");
    assert_eq!(now["timestamp"], first["timestamp"], "a frozen kubelet's timestamp cannot advance");
    assert_eq!(now["usage"], first["usage"], "a frozen kubelet's previous rate is kept");
    let truth = c.env.fleet.true_node_usage("node-0").unwrap();
    let cpu = common::cpu_nanos(now["usage"]["cpu"].as_str().unwrap());
    let truth = truth.cpu_nanocores as f64;
    assert!((cpu - truth).abs() < truth / 100.0, "frozen node-0 serves cpu {cpu}n, true {truth}n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_reset_is_never_served_as_a_negative_or_huge_rate() {
    let c = Cluster::start(2, 2, "2s").await;
    c.wait_for_metrics().await;
    let truth = c.env.fleet.true_node_usage("node-0").unwrap();
    c.env.fleet.set_fault("node-0", Fault::CounterReset).await.unwrap();
    // Whatever is served for node-0 while the counters restart is either the
    // old pair or a pair entirely after the reset: never a bogus rate. The
    // pair that straddles the reset is made by the next two scrapes, within
    // two resolutions (R = 2 s) of it; the check watches four, and fails at
    // the first bad answer.
    let window = Duration::from_secs(2) * 4;
    sim::wait::expect_holds("a sane node-0 rate and node-1 served after a counter reset", window, async || {
        if let Some(n) = c.get_raw("/apis/metrics.k8s.io/v1beta1/nodes/node-0").await {
            let cpu = n["usage"]["cpu"].as_str().unwrap_or_default().to_string();
            let nanos = common::cpu_nanos(&cpu);
            let ratio = nanos / truth.cpu_nanocores as f64;
            assert!(
                (0.95..1.05).contains(&ratio),
                "node-0 served cpu {cpu} after a counter reset (true {})",
                truth.cpu_nanocores
            );
        }
        c.served_nodes().await.iter().any(|i| i.key == "node-1")
    })
    .await;
}
