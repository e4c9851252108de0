//! Node rules: N1–N7, R1, T1, T2.

use super::*;
use crate::model::Usage;
use crate::store::usage::{UsageError, resource_usage};

#[test]
fn n1_node_is_served_from_its_second_scrape_with_rate_window_and_timestamp() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(10, 10.0, 2 * MIB)), vec![]), at(10));
    assert_eq!(read_node(&store, "node1"), None, "one point cannot give a rate");
    store.store_scrape("node1", batch(Some(node_point(20, 20.0, 3 * MIB)), vec![]), at(20));
    let n = read_node(&store, "node1").expect("served after two scrapes");
    assert_eq!(n.usage, Usage { cpu_nanocores: 1_000_000_000, memory_bytes: 3 * MIB });
    assert_eq!((n.timestamp, n.window_ns), (at(20), 10 * S));
    assert_eq!(read_node(&store, "unknown"), None);
    // Third reference batch without the node: a failed scrape (reference mode).
    store.scrape_failed("node1", at(30));
    assert_eq!(read_node(&store, "node1"), None);
}

#[test]
fn n1_scrape_without_node_point_forgets_the_node() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(10, 10.0, 2 * MIB)), vec![]), at(10));
    store.store_scrape("node1", batch(Some(node_point(20, 20.0, 3 * MIB)), vec![]), at(20));
    store.store_scrape("node1", batch(None, vec![]), at(30));
    assert_eq!(read_node(&store, "node1"), None);
    store.store_scrape("node1", batch(Some(node_point(40, 40.0, 3 * MIB)), vec![]), at(40));
    assert_eq!(read_node(&store, "node1"), None, "the old last point was forgotten with the node");
}

#[test]
fn n2_identical_scrape_stored_twice_is_not_served() {
    let (store, _) = new_store(15, 0);
    let b = batch(Some(node_point(10, 10.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", None, 10, 1.0, MIB)])]);
    store.store_scrape("node1", b.clone(), at(10));
    store.store_scrape("node1", b, at(25));
    assert_eq!(read_node(&store, "node1"), None);
    assert_eq!(read_pod(&store, "ns", "p"), None);
    assert!(!store.ready());
}

#[test]
fn n3_storage_points_count_nodes_with_a_previous_point() {
    let (store, metrics) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(10, 10.0, 2 * MIB)), vec![]), at(10));
    assert_eq!(storage_points(&metrics, "node"), 0);
    store.store_scrape("node1", batch(Some(node_point(20, 20.0, 3 * MIB)), vec![]), at(20));
    assert_eq!(storage_points(&metrics, "node"), 1);
    store.forget_node("node1");
    assert_eq!(storage_points(&metrics, "node"), 0);
}

#[test]
fn n4_cpu_decrease_hides_the_node() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(10, 50.0, MIB)), vec![]), at(10));
    store.store_scrape("node1", batch(Some(node_point(20, 10.0, MIB)), vec![]), at(20));
    assert_eq!(read_node(&store, "node1"), None, "counter went down");
    store.store_scrape("node1", batch(Some(node_point(30, 5.0, MIB)), vec![]), at(30));
    assert_eq!(read_node(&store, "node1"), None, "reboot: counter went down again");
    store.store_scrape("node1", batch(Some(node_point(40, 15.0, MIB)), vec![]), at(40));
    assert_eq!(read_node(&store, "node1").map(|n| n.usage.cpu_nanocores), Some(1_000_000_000), "consistent again");
}

#[test]
fn n5_sample_older_than_the_previous_one_is_not_served() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(15, 10.0, MIB)), vec![]), at(15));
    store.store_scrape("node1", batch(Some(node_point(35, 20.0, MIB)), vec![]), at(35));
    store.store_scrape("node1", batch(Some(node_point(5, 30.0, MIB)), vec![]), at(45));
    assert_eq!(read_node(&store, "node1"), None);
}

#[test]
fn n6_sample_between_previous_and_last_keeps_the_previous_point() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(15, 10.0, MIB)), vec![]), at(15));
    store.store_scrape("node1", batch(Some(node_point(35, 20.0, MIB)), vec![]), at(35));
    store.store_scrape("node1", batch(Some(node_point(25, 35.0, MIB)), vec![]), at(45));
    let n = read_node(&store, "node1").expect("served");
    assert_eq!((n.usage.cpu_nanocores, n.window_ns, n.timestamp), (2_500_000_000, 10 * S, at(25)));
}

#[test]
fn n6_frozen_kubelet_timestamps_keep_serving_the_previous_rate() {
    let (store, _) = new_store(15, 0);
    store.store_scrape("node1", batch(Some(node_point(15, 10.0, MIB)), vec![]), at(15));
    store.store_scrape("node1", batch(Some(node_point(30, 40.0, MIB)), vec![]), at(30));
    let before = read_node(&store, "node1").expect("served");
    for tick in 1..4 {
        store.store_scrape("node1", batch(Some(node_point(30, 40.0, MIB)), vec![]), at(30 + 15 * tick));
        assert_eq!(read_node(&store, "node1"), Some(before.clone()), "tick {tick}");
    }
}

#[test]
fn n7_zero_start_time_does_not_change_node_rules() {
    let (store, _) = new_store(15, 0);
    let mut p = node_point(10, 10.0, MIB);
    p.start_time = Some(0);
    store.store_scrape("node1", batch(Some(p), vec![]), at(10));
    let mut q = node_point(20, 20.0, MIB);
    q.start_time = Some(0);
    store.store_scrape("node1", batch(Some(q), vec![]), at(20));
    assert_eq!(read_node(&store, "node1").map(|n| n.usage.cpu_nanocores), Some(1_000_000_000));
}

#[test]
fn r1_ready_needs_both_a_servable_node_and_a_servable_pod() {
    let p = |ts, cpu| vec![pod("ns", "p", vec![container("c", None, ts, cpu, MIB)])];
    let (nodes_only, _) = new_store(15, 0);
    nodes_only.store_scrape("n", batch(Some(node_point(10, 1.0, MIB)), vec![]), at(10));
    nodes_only.store_scrape("n", batch(Some(node_point(20, 2.0, MIB)), vec![]), at(20));
    assert!(!nodes_only.ready());
    let (pods_only, _) = new_store(15, 0);
    pods_only.store_scrape("n", batch(None, p(10, 1.0)), at(10));
    pods_only.store_scrape("n", batch(None, p(20, 2.0)), at(20));
    assert!(!pods_only.ready());
    let (both, _) = new_store(15, 0);
    both.store_scrape("n", batch(Some(node_point(10, 1.0, MIB)), p(10, 1.0)), at(10));
    assert!(!both.ready());
    both.store_scrape("n", batch(Some(node_point(20, 2.0, MIB)), p(20, 2.0)), at(20));
    assert!(both.ready());
    both.forget_node("n");
    assert!(!both.ready());
}

fn pt(ts: UnixNanos, cpu: u64, start: Option<UnixNanos>) -> Point {
    Point { timestamp: ts, cpu_cumulative_ns: cpu, memory_bytes: 7, start_time: start }
}

#[test]
fn t1_rate_is_cpu_delta_over_window_truncated_and_decreases_are_refused() {
    let r = resource_usage(&pt(T0 + 10_000_000, 300, None), &pt(T0, 100, None)).expect("rate");
    assert_eq!(r.usage, Usage { cpu_nanocores: 20_000, memory_bytes: 7 });
    assert_eq!((r.timestamp, r.window_ns), (T0 + 10_000_000, 10_000_000));
    assert_eq!(resource_usage(&pt(T0 + S, 300, Some(1)), &pt(T0, 100, Some(2))), Err(UsageError::StartTimeDecreased));
    assert_eq!(resource_usage(&pt(T0 + S, 300, None), &pt(T0, 100, Some(2))), Err(UsageError::StartTimeDecreased));
    assert_eq!(resource_usage(&pt(T0 + S, 99, None), &pt(T0, 100, None)), Err(UsageError::CpuDecreased));
    assert_eq!(resource_usage(&pt(T0, 200, None), &pt(T0, 100, None)), Err(UsageError::EmptyWindow));
    // 1 ns over 3 s truncates to 0 nanocores.
    assert_eq!(resource_usage(&pt(T0 + 3 * S, 1, None), &pt(T0, 0, None)).map(|r| r.usage.cpu_nanocores), Ok(0));
}

#[test]
fn t2_rates_above_i64_max_are_kept_whole_for_the_api_to_format() {
    let r = resource_usage(&pt(T0 + S / 2, u64::MAX / 2, None), &pt(T0, 0, None)).expect("rate");
    assert!(r.usage.cpu_nanocores > i64::MAX as u64, "{}", r.usage.cpu_nanocores);
}
