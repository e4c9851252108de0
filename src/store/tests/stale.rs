//! Beyond the reference: a failed scrape keeps the node's last good points
//! servable for `resolution + max_staleness` after the newest sample.

use super::*;

/// Two good scrapes of node1 (with pod ns/p) at +15 and +30, resolution 15 s.
fn two_scrapes(staleness_s: u64) -> (Store, Arc<SelfMetrics>) {
    let (store, metrics) = new_store(15, staleness_s);
    for (ts, cpu) in [(15, 10.0), (30, 25.0)] {
        let p = pod("ns", "p", vec![container("c", None, ts, cpu, MIB)]);
        store.store_scrape("node1", batch(Some(node_point(ts, cpu, 2 * MIB)), vec![p]), at(ts));
    }
    (store, metrics)
}

fn sample_age(metrics: &SelfMetrics, node: &str) -> f64 {
    metrics.node_sample_age.get_or_create(&vec![("node", node.to_string())]).get()
}

#[test]
fn failed_node_is_served_stale_with_its_true_timestamp_within_the_bound() {
    let (store, metrics) = two_scrapes(30);
    store.scrape_failed("node1", at(45));
    assert_eq!(metrics.served_stale_nodes.get(), 1);
    assert!((sample_age(&metrics, "node1") - 15.0).abs() < 1e-9);
    // Bound: newest sample (+30) + resolution (15) + staleness (30) = +75.
    for now in [45, 60, 75] {
        let n = store.node("node1", at(now)).expect("served stale");
        assert_eq!((n.timestamp, n.window_ns, n.usage.cpu_nanocores), (at(30), 15 * S, 1_000_000_000), "now +{now}");
        let p = store.pod("ns", "p", at(now)).expect("pod served stale");
        assert_eq!((p.timestamp, p.window_ns), (at(30), 15 * S));
        assert_eq!(store.pods_where(None, |_| true, at(now)).len(), 1, "listed stale too, +{now}");
    }
    assert!(store.ready());
    // Past the bound a node's pods are listed no more than read.
    assert!(store.pods_where(None, |_| true, at(76)).is_empty());
}

#[test]
fn failed_node_is_gone_once_its_newest_sample_is_past_the_bound() {
    let (store, metrics) = two_scrapes(30);
    store.scrape_failed("node1", at(45));
    assert_eq!(store.node("node1", at(76)), None);
    assert_eq!(store.pod("ns", "p", at(76)), None);
    // The next write prunes it: gauges and readiness follow.
    store.scrape_failed("node1", at(76));
    assert_eq!(metrics.served_stale_nodes.get(), 0);
    assert_eq!(storage_points(&metrics, "node"), 0);
    assert_eq!(storage_points(&metrics, "container"), 0);
    assert!(!store.ready());
    assert_eq!(store.newest_sample("node1"), None);
}

#[test]
fn other_nodes_scrapes_prune_expired_stale_nodes() {
    let (store, metrics) = two_scrapes(30);
    store.scrape_failed("node1", at(45));
    store.store_scrape("node2", batch(Some(node_point(80, 1.0, MIB)), vec![]), at(80));
    assert_eq!(metrics.served_stale_nodes.get(), 0);
    assert_eq!(store.newest_sample("node1"), None);
}

#[test]
fn zero_staleness_removes_a_failed_node_and_its_pods_at_once() {
    let (store, metrics) = two_scrapes(0);
    store.scrape_failed("node1", at(45));
    assert_eq!(store.node("node1", at(45)), None);
    assert_eq!(store.pod("ns", "p", at(45)), None);
    assert_eq!(metrics.served_stale_nodes.get(), 0);
    // Reference timeline: the next success has no prev, so a second gap follows.
    let p = pod("ns", "p", vec![container("c", None, 60, 40.0, MIB)]);
    store.store_scrape("node1", batch(Some(node_point(60, 40.0, 2 * MIB)), vec![p]), at(60));
    assert_eq!(store.node("node1", at(60)), None);
}

#[test]
fn success_after_a_failure_within_the_bound_is_rated_across_the_gap() {
    let (store, metrics) = two_scrapes(30);
    store.scrape_failed("node1", at(45));
    let p = pod("ns", "p", vec![container("c", None, 60, 40.0, MIB)]);
    store.store_scrape("node1", batch(Some(node_point(60, 40.0, 2 * MIB)), vec![p]), at(60));
    assert_eq!(metrics.served_stale_nodes.get(), 0);
    let n = store.node("node1", at(61)).expect("fresh again");
    assert_eq!((n.timestamp, n.window_ns, n.usage.cpu_nanocores), (at(60), 30 * S, 500_000_000));
    // Staleness is honest for every node, failed or not: a sample older than
    // resolution + max-staleness is not served.
    assert_eq!(store.node("node1", at(2_000)), None);
    assert_eq!(store.pod("ns", "p", at(60)).map(|p| p.window_ns), Some(30 * S));
}

#[test]
fn success_after_the_bound_starts_over() {
    let (store, _) = two_scrapes(30);
    store.scrape_failed("node1", at(45));
    store.store_scrape("node1", batch(Some(node_point(90, 40.0, 2 * MIB)), vec![]), at(90));
    assert_eq!(store.node("node1", at(90)), None, "expired points must not serve as prev");
}

#[test]
fn forget_node_drops_its_points_and_sample_age_series() {
    let (store, metrics) = two_scrapes(30);
    assert!(metrics.encode().contains("ha_metrics_server_node_sample_age_seconds{node=\"node1\"}"));
    store.forget_node("node1");
    assert_eq!(store.node("node1", at(30)), None);
    assert_eq!(store.pod("ns", "p", at(30)), None);
    assert!(!metrics.encode().contains("node=\"node1\""));
}
