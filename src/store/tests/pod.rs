//! Pod rules: P1–P13, plus pods that move or vanish between scrapes.

use super::*;
use crate::model::{ContainerUsage, Usage};

/// Stores a batch holding one pod `ns/p` on `node1`.
fn scrape(store: &Store, containers: Vec<ContainerPoint>) {
    let now = containers.iter().map(|c| c.point.timestamp).max().unwrap_or(T0);
    store.store_scrape("node1", batch(None, vec![pod("ns", "p", containers)]), now);
}

#[test]
fn p1_pod_is_served_from_its_second_scrape() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", None, 120, 1.0, 4 * MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
    scrape(&store, vec![container("c", None, 125, 6.0, 5 * MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served");
    assert_eq!(
        p.containers,
        vec![ContainerUsage { name: "c".into(), usage: Usage { cpu_nanocores: 1_000_000_000, memory_bytes: 5 * MIB } }]
    );
    assert_eq!((p.timestamp, p.window_ns), (at(125), 5 * S));
}

#[test]
fn p2_pod_time_is_that_of_the_container_with_the_earliest_timestamp() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("a", None, 110, 1.0, MIB), container("b", None, 115, 1.0, MIB)]);
    scrape(&store, vec![container("a", None, 120, 2.0, MIB), container("b", None, 125, 3.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served");
    assert_eq!((p.timestamp, p.window_ns), (at(120), 10 * S));
    assert_eq!(p.containers.len(), 2);
}

#[test]
fn p3_repeated_scrape_of_a_new_pod_is_not_served() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", None, 120, 1.0, MIB)]);
    scrape(&store, vec![container("c", None, 120, 1.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
}

#[test]
fn p4_storage_points_count_containers_with_a_previous_point() {
    let (store, metrics) = new_store(60, 0);
    scrape(&store, vec![container("a", None, 110, 1.0, MIB), container("b", None, 110, 1.0, MIB)]);
    assert_eq!(storage_points(&metrics, "container"), 0);
    scrape(&store, vec![container("a", None, 120, 2.0, MIB), container("b", None, 120, 3.0, MIB)]);
    assert_eq!(storage_points(&metrics, "container"), 2);
    store.store_scrape("node1", batch(None, vec![]), at(130));
    assert_eq!(storage_points(&metrics, "container"), 0, "pod no longer reported");
}

#[test]
fn p5_restarted_container_is_rated_from_its_start_time() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", Some(0), 10, 1.0, MIB)]);
    scrape(&store, vec![container("c", Some(15), 25, 5.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served through the fresh-container path");
    assert_eq!(p.containers[0].usage.cpu_nanocores, 500_000_000);
    assert_eq!((p.timestamp, p.window_ns), (at(25), 10 * S));
}

#[test]
fn p5_restart_outside_the_fresh_window_hides_the_pod_for_one_scrape() {
    let (store, _) = new_store(15, 0);
    scrape(&store, vec![container("c", Some(0), 100, 10.0, MIB)]);
    scrape(&store, vec![container("c", Some(0), 115, 20.0, MIB)]);
    assert!(read_pod(&store, "ns", "p").is_some());
    // Restarted at +117, sampled at +145: 28 s old (≥ resolution), after the old last point.
    scrape(&store, vec![container("c", Some(117), 145, 30.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
    scrape(&store, vec![container("c", Some(117), 160, 31.5, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p").map(|p| p.containers[0].usage.cpu_nanocores), Some(100_000_000));
}

#[test]
fn p6_cpu_decrease_returns_the_pod_without_that_container() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", None, 120, 5.0, MIB)]);
    scrape(&store, vec![container("c", None, 125, 1.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("pod still returned");
    assert!(p.containers.is_empty());
    assert_eq!((p.timestamp, p.window_ns), (at(125), 5 * S));
}

#[test]
fn p6_only_the_decreasing_container_is_left_out() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("a", None, 120, 5.0, MIB), container("b", None, 120, 5.0, MIB)]);
    scrape(&store, vec![container("a", None, 125, 1.0, MIB), container("b", None, 125, 10.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served");
    let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["b"]);
}

#[test]
fn p7_sample_older_than_the_previous_one_is_not_served() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", None, 115, 1.0, MIB)]);
    scrape(&store, vec![container("c", None, 125, 2.0, MIB)]);
    scrape(&store, vec![container("c", None, 105, 3.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
}

#[test]
fn p8_sample_between_previous_and_last_keeps_the_previous_point() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", None, 115, 10.0, MIB)]);
    scrape(&store, vec![container("c", None, 125, 20.0, MIB)]);
    scrape(&store, vec![container("c", None, 120, 35.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served");
    assert_eq!(p.containers[0].usage.cpu_nanocores, 5_000_000_000);
    assert_eq!(p.window_ns, 5 * S);
}

#[test]
fn p9_long_running_container_needs_two_scrapes() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", Some(0), 120, 10.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
}

#[test]
fn p10_fresh_container_is_served_after_one_scrape() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", Some(0), 10, 10.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("fresh container served at once");
    assert_eq!(p.containers[0].usage.cpu_nanocores, 1_000_000_000);
    assert_eq!((p.timestamp, p.window_ns), (at(10), 10 * S));
}

#[test]
fn p11_container_started_after_its_sample_or_under_ten_seconds_ago_is_not_served() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", Some(20), 10, 10.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None, "start after sample");
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("c", Some(0), 9, 10.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None, "9 s old");
}

#[test]
fn p12_zero_start_time_gives_the_normal_two_scrape_behaviour() {
    let (store, _) = new_store(60, 0);
    let zero = Some(-(T0 / S)); // start time 0 = the Unix epoch
    scrape(&store, vec![container("c", zero, 120, 1.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
    scrape(&store, vec![container("c", zero, 125, 6.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p").map(|p| p.containers[0].usage.cpu_nanocores), Some(1_000_000_000));
}

#[test]
fn p13_container_appearing_in_the_second_scrape_hides_the_pod() {
    let (store, _) = new_store(60, 0);
    scrape(&store, vec![container("a", None, 120, 1.0, MIB)]);
    scrape(&store, vec![container("a", None, 125, 2.0, MIB), container("sidecar", None, 125, 2.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p"), None);
    scrape(&store, vec![container("a", None, 130, 3.0, MIB), container("sidecar", None, 130, 3.0, MIB)]);
    assert_eq!(read_pod(&store, "ns", "p").map(|p| p.containers.len()), Some(2));
}

#[test]
fn pod_reported_by_a_new_node_replaces_the_old_entry() {
    let (store, metrics) = new_store(60, 0);
    let on = |node: &str, ts: i64, cpu: f64| {
        store.store_scrape(
            node,
            batch(None, vec![pod("ns", "web-0", vec![container("c", None, ts, cpu, MIB)])]),
            at(ts),
        );
    };
    on("node-a", 100, 1.0);
    on("node-a", 110, 2.0);
    on("node-b", 120, 4.0);
    // The pod's points moved with it: node-b's first report already has a prev.
    assert_eq!(read_pod(&store, "ns", "web-0").map(|p| p.window_ns), Some(10 * S));
    // node-a no longer reporting it, or failing, does not touch node-b's pod.
    store.store_scrape("node-a", batch(None, vec![]), at(125));
    store.scrape_failed("node-a", at(126));
    assert_eq!(read_pod(&store, "ns", "web-0").map(|p| p.containers[0].usage.cpu_nanocores), Some(200_000_000));
    assert_eq!(storage_points(&metrics, "container"), 1);
    store.forget_node("node-b");
    assert_eq!(read_pod(&store, "ns", "web-0"), None);
    assert_eq!(storage_points(&metrics, "container"), 0);
}

#[test]
fn pods_of_other_nodes_survive_a_scrape_of_one_node() {
    let (store, _) = new_store(60, 0);
    for ts in [100, 110] {
        for n in ["node-a", "node-b"] {
            let p = pod("ns", n, vec![container("c", None, ts, ts as f64, MIB)]);
            store.store_scrape(n, batch(Some(node_point(ts, ts as f64, MIB)), vec![p]), at(ts));
        }
    }
    store.store_scrape("node-a", batch(None, vec![]), at(120));
    assert_eq!(read_pod(&store, "ns", "node-a"), None);
    assert!(read_pod(&store, "ns", "node-b").is_some());
    assert!(read_node(&store, "node-b").is_some());
    assert!(store.ready());
}

#[test]
fn a_pod_no_longer_reported_is_forgotten_and_uncounted_while_the_others_stay() {
    let (store, metrics) = new_store(60, 0);
    let both = |ts: i64, cpu: f64| {
        let pods = ["p", "q"].map(|n| pod("ns", n, vec![container("c", None, ts, cpu, MIB)]));
        batch(Some(node_point(ts, cpu, MIB)), pods.to_vec())
    };
    store.store_scrape("node1", both(100, 1.0), at(100));
    store.store_scrape("node1", both(110, 2.0), at(110));
    assert_eq!(storage_points(&metrics, "container"), 2);
    let only_q = pod("ns", "q", vec![container("c", None, 120, 4.0, MIB)]);
    store.store_scrape("node1", batch(Some(node_point(120, 3.0, MIB)), vec![only_q]), at(120));
    assert_eq!((read_pod(&store, "ns", "p"), store.node_of_pod("ns", "p")), (None, None));
    let q = read_pod(&store, "ns", "q").expect("q still served");
    assert_eq!((q.containers[0].usage.cpu_nanocores, q.window_ns), (200_000_000, 10 * S));
    assert_eq!(storage_points(&metrics, "container"), 1);
    assert_eq!(store.pod_keys(None), [("ns".to_string(), "q".to_string())]);
    // Reported again, p starts over: one point, neither served nor counted.
    store.store_scrape("node1", both(130, 5.0), at(130));
    assert_eq!(read_pod(&store, "ns", "p"), None);
    assert_eq!(storage_points(&metrics, "container"), 1);
    assert!(store.ready());
}

#[test]
fn a_container_dropped_from_a_pod_is_forgotten_and_starts_over_when_back() {
    let (store, metrics) = new_store(60, 0);
    let both = |ts, cpu| vec![container("a", None, ts, cpu, MIB), container("b", None, ts, cpu, MIB)];
    scrape(&store, both(100, 1.0));
    scrape(&store, both(110, 2.0));
    assert_eq!(storage_points(&metrics, "container"), 2);
    scrape(&store, vec![container("a", None, 120, 3.0, MIB)]);
    let p = read_pod(&store, "ns", "p").expect("served with the container left");
    let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(p.containers[0].usage.cpu_nanocores, 100_000_000);
    assert_eq!(storage_points(&metrics, "container"), 1);
    // b is back: its old series went with it, so the pod waits for b (as P13)
    // while a's series goes on.
    scrape(&store, both(130, 4.0));
    assert_eq!(read_pod(&store, "ns", "p"), None);
    assert_eq!(storage_points(&metrics, "container"), 1);
    scrape(&store, both(140, 5.0));
    let p = read_pod(&store, "ns", "p").expect("served with both");
    assert_eq!(p.containers.iter().map(|c| c.usage.cpu_nanocores).collect::<Vec<_>>(), [100_000_000; 2]);
    assert_eq!(storage_points(&metrics, "container"), 2);
}

#[test]
fn a_pod_that_moves_to_another_node_and_back_keeps_its_series_and_one_entry() {
    let (store, metrics) = new_store(60, 0);
    let on = |node: &str, ts: i64, cpu: f64| {
        let p = pod("ns", "web-0", vec![container("c", None, ts, cpu, MIB)]);
        store.store_scrape(node, batch(None, vec![p]), at(ts));
    };
    on("node-a", 100, 1.0);
    on("node-a", 110, 2.0);
    on("node-b", 120, 4.0);
    on("node-a", 130, 7.0);
    let p = read_pod(&store, "ns", "web-0").expect("served");
    assert_eq!((p.containers[0].usage.cpu_nanocores, p.window_ns), (300_000_000, 10 * S));
    assert_eq!(store.node_of_pod("ns", "web-0").as_deref(), Some("node-a"));
    assert_eq!(storage_points(&metrics, "container"), 1);
    assert!(store.pods_where(None, |n| n == "node-b", at(130)).is_empty());
    let held = store.pods_where(None, |n| n == "node-a", at(130));
    assert_eq!(held.len(), 1);
    assert_eq!((&held[0].0.1, held[0].1.as_str(), Some(&held[0].2)), (&"web-0".to_string(), "node-a", Some(&p)));
    assert!(store.pods_where(Some("other"), |_| true, at(130)).is_empty());
    // node-b's next scrape without it, and forgetting node-b, leave it alone.
    store.store_scrape("node-b", batch(None, vec![]), at(135));
    store.forget_node("node-b");
    assert!(read_pod(&store, "ns", "web-0").is_some());
    assert_eq!(storage_points(&metrics, "container"), 1);
    // node-a no longer reporting it removes it.
    store.store_scrape("node-a", batch(None, vec![]), at(140));
    assert_eq!(read_pod(&store, "ns", "web-0"), None);
    assert_eq!(storage_points(&metrics, "container"), 0);
}

#[test]
fn a_pod_reported_twice_in_one_scrape_keeps_the_first_report() {
    let (store, metrics) = new_store(60, 0);
    let twice = |ts: i64, first: f64, second: f64| {
        let p = |cpu, memory| pod("ns", "p", vec![container("c", None, ts, cpu, memory)]);
        let q = pod("ns", "q", vec![container("c", None, ts, first, MIB)]);
        batch(None, vec![p(first, MIB), q, p(second, 9 * MIB)])
    };
    store.store_scrape("node1", twice(100, 1.0, 50.0), at(100));
    store.store_scrape("node1", twice(110, 2.0, 0.5), at(110));
    let p = read_pod(&store, "ns", "p").expect("served from the first reports");
    assert_eq!(
        p.containers,
        vec![ContainerUsage { name: "c".into(), usage: Usage { cpu_nanocores: 100_000_000, memory_bytes: MIB } }]
    );
    assert_eq!(storage_points(&metrics, "container"), 2);
    assert_eq!(store.pods_where(None, |_| true, at(110)).len(), 2, "each pod listed once");
}
