//! Samples from the future (issue 18, finding 4): a kubelet whose clock runs
//! an hour ahead, end to end through the parse the scraper runs, the
//! owner's store and a backup on another replica; and the store's own
//! guards against points from the future that reach it by other ways.

use super::*;
use crate::model::MetricsReader;
use crate::scrape::parse::{BodyError, parse_checked};
use crate::store::clock::FUTURE_ALLOWANCE_NS;
use crate::store::{Held, Origin};
use sim::kubelet::render::{ContainerSample, KubeletSample, PodSample, render};

/// True CPU rates of the simulated node and its one container, in cores.
const NODE_CORES: f64 = 0.5;
const CONTAINER_CORES: f64 = 0.25;

/// What the kubelet answers at true time `+t` s with its clock `offset` s off.
fn kubelet_body(t: i64, offset: i64) -> Vec<u8> {
    let stamp_ms = (at(t) + offset * S) / 1_000_000;
    let sample = KubeletSample {
        node: Some((100.0 + NODE_CORES * t as f64, 2e9, stamp_ms)),
        pods: vec![PodSample {
            namespace: "ns".into(),
            name: "p".into(),
            containers: vec![ContainerSample {
                name: "c".into(),
                cpu_seconds: 10.0 + CONTAINER_CORES * t as f64,
                memory_bytes: 5e7,
                start_time_seconds: (T0 / S - 3_600) as f64,
                timestamp_ms: stamp_ms,
            }],
        }],
    };
    render(&sample).into_bytes()
}

fn nanocores(cores: f64) -> u64 {
    (cores * 1e9) as u64
}

/// The owner's scrape at true time `+t` s: the scraper's path (parse, then
/// store or fail), and the backup push to another replica on success.
fn scrape(owner: &Store, backup: &Store, t: i64, offset: i64) -> Result<(), BodyError> {
    let (requested, received) = (at(t), at(t) + S / 10);
    match parse_checked(&kubelet_body(t, offset), "node-a", requested, received) {
        Ok(batch) => {
            owner.store_scrape("node-a", batch.clone(), received);
            assert!(
                backup.store_replica("node-a", batch, received, Held::Copy, Origin::Member(9)),
                "backup refused a true batch at +{t} s"
            );
            Ok(())
        }
        Err(e) => {
            owner.scrape_failed("node-a", received);
            Err(e)
        }
    }
}

/// What the two replicas served for the node at one moment.
type Served = [Option<crate::model::NodeUsage>; 2];

/// Every answer either store gives at `+tenths / 10` s: never from the
/// future, and with the true rates whenever it is served.
fn check_answers(stores: [&Store; 2], tenths: i64) -> Served {
    let now = T0 + tenths * S / 10;
    for store in stores {
        if let Some(n) = store.node("node-a", now) {
            assert!(n.timestamp <= now + FUTURE_ALLOWANCE_NS, "node served from the future at {tenths}: {n:?}");
            assert!(n.usage.cpu_nanocores.abs_diff(nanocores(NODE_CORES)) <= 1, "node rate at {tenths}: {n:?}");
        }
        if let Some(p) = store.pod("ns", "p", now) {
            assert!(p.timestamp <= now + FUTURE_ALLOWANCE_NS, "pod served from the future at {tenths}: {p:?}");
            let cpu = p.containers[0].usage.cpu_nanocores;
            assert!(cpu.abs_diff(nanocores(CONTAINER_CORES)) <= 1, "pod rate at {tenths}: {p:?}");
        }
    }
    stores.map(|s| s.node("node-a", now))
}

/// Scrapes every 15 s from +0 to `until` s with the kubelet's clock an hour
/// ahead during `jump`, checking every answer of both replicas (the owner
/// and a backup) ten times a second; returns what they served, by tenth of
/// a second.
fn hour_ahead(jump: std::ops::Range<i64>, until: i64) -> Vec<Served> {
    let (owner, metrics) = new_store(15, 30);
    let backup = Store::new(Duration::from_secs(15), Duration::from_secs(30), metrics);
    let mut served = Vec::new();
    for t in (0..=until).step_by(15) {
        let ahead = jump.contains(&t);
        match scrape(&owner, &backup, t, if ahead { 3_600 } else { 0 }) {
            Ok(()) => assert!(!ahead, "a batch an hour ahead was taken at +{t} s"),
            Err(e) => {
                assert!(ahead, "a true batch was refused at +{t} s: {e}");
                assert_eq!(e.reason(), "future_timestamp", "{e}");
                assert!(e.to_string().contains("node-a") && e.to_string().contains("3599"), "{e}");
            }
        }
        for tenths in t * 10..(t + 15) * 10 {
            served.push(check_answers([&owner, &backup], tenths));
        }
    }
    served
}

/// What the owner served at `+secs` s.
fn owner_at(served: &[Served], secs: i64) -> Option<crate::model::NodeUsage> {
    served[(secs * 10) as usize][0].clone()
}

#[test]
fn an_hour_ahead_kubelet_is_refused_and_no_replica_serves_its_future_or_a_made_up_rate() {
    // One scrape an hour ahead, shorter than the staleness bound (45 s).
    let served = hour_ahead(30..45, 60);
    // During the jump the last true points are served; their true age shows.
    assert_eq!(owner_at(&served, 40).expect("served during the jump").timestamp, at(15));
    // The first true scrape after the jump serves at once, over the honest window.
    let after = owner_at(&served, 46).expect("served right after the clock came back");
    assert_eq!((after.timestamp, after.window_ns), (at(45), 30 * S));
    assert_eq!(served[460][1], Some(after), "the backup serves the same");
}

#[test]
fn after_a_jump_longer_than_the_staleness_bound_the_node_is_missing_then_served_from_true_points() {
    let served = hour_ahead(30..90, 120);
    assert!(owner_at(&served, 59).is_some(), "last true points served within the bound");
    assert!(owner_at(&served, 61).is_none(), "not served past the bound: no honest point is left");
    // First true scrape at +90 s: one point; the second one gives a rate.
    assert!(owner_at(&served, 91).is_none());
    let back = owner_at(&served, 106).expect("served from the second true scrape on");
    assert_eq!((back.timestamp, back.window_ns), (at(105), 15 * S));
    assert_eq!(served[1060][1], Some(back), "the backup serves the same");
}

#[test]
fn a_replicated_batch_from_the_future_is_refused_and_counted() {
    let (store, metrics) = new_store(15, 30);
    let ahead =
        batch(Some(node_point(3_615, 20.0, MIB)), vec![pod("ns", "p", vec![container("c", None, 3_615, 1.0, MIB)])]);
    assert!(!store.store_replica("node-a", ahead, at(15), Held::Copy, Origin::Member(9)));
    assert_eq!(store.newest_sample("node-a"), None);
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_future_samples_total{node=\"node-a\"} 2"), "{text}");
    // Within the allowance it is taken.
    let skewed = batch(Some(node_point(16, 20.0, MIB)), vec![]);
    assert!(store.store_replica("node-a", skewed, at(15), Held::Copy, Origin::Member(9)));
    metrics.forget_node("node-a");
    assert!(!metrics.encode().contains("future_samples_total{node=\"node-a\"}"));
}

#[test]
fn a_held_point_from_the_future_never_blocks_true_ones() {
    // A backup holding a point an hour ahead (pushed before this rule, or
    // taken while this replica's own clock was ahead).
    let (store, _) = new_store(15, 30);
    store.store_scrape("node-a", batch(Some(node_point(3_600, 50.0, MIB)), vec![]), at(3_600));
    assert!(store.node("node-a", at(20)).is_none(), "a node whose newest point is from the future is not served");
    let t1 = batch(Some(node_point(15, 10.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 15, 1.0, MIB)])]);
    let t2 = batch(Some(node_point(30, 25.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 30, 4.0, MIB)])]);
    assert!(
        store.store_replica("node-a", t1, at(16), Held::Copy, Origin::Member(9)),
        "a true point replaces one from the future"
    );
    assert!(store.store_replica("node-a", t2, at(31), Held::Copy, Origin::Member(9)));
    let served = store.node("node-a", at(31)).expect("served from the true points");
    assert_eq!((served.timestamp, served.window_ns, served.usage.cpu_nanocores), (at(30), 15 * S, 1_000_000_000));
    assert_eq!(store.pod("ns", "p", at(31)).unwrap().containers[0].usage.cpu_nanocores, 200_000_000);
}
