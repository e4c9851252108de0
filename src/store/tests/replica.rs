//! Points that arrive from another replica (backups, handovers): never
//! older over newer, a handover rebuilds the same series, adoption, and
//! pruning what is no longer refreshed.

use super::*;
use crate::store::Role;

fn two_scrapes(store: &Store) {
    let b1 = batch(Some(node_point(15, 10.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 15, 1.0, MIB)])]);
    let b2 =
        batch(Some(node_point(30, 25.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 30, 4.0, MIB)])]);
    store.store_scrape("node1", b1, at(15));
    store.store_scrape("node1", b2, at(30));
}

#[test]
fn a_late_replicated_point_never_replaces_a_newer_one() {
    let (store, _) = new_store(15, 30);
    two_scrapes(&store);
    let before = (store.node("node1", at(46)), store.pod("ns", "p", at(46)));
    let late = batch(Some(node_point(20, 99.0, 9 * MIB)), vec![]);
    assert!(!store.store_replica("node1", late, at(31)), "an older batch is refused");
    let same = batch(Some(node_point(30, 25.0, 2 * MIB)), vec![]);
    assert!(!store.store_replica("node1", same, at(31)), "the same batch twice is refused");
    assert_eq!((store.node("node1", at(46)), store.pod("ns", "p", at(46))), before);
    let newer =
        batch(Some(node_point(45, 40.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 45, 7.0, MIB)])]);
    assert!(store.store_replica("node1", newer, at(46)));
    assert_eq!(store.node("node1", at(46)).unwrap().timestamp, at(45));
}

#[test]
fn a_handover_rebuilds_the_same_series_in_another_store() {
    let (from, metrics) = new_store(15, 30);
    two_scrapes(&from);
    let to = Store::with_role(Duration::from_secs(15), Duration::from_secs(30), metrics, Role::Serving);
    let batches = from.export("node1");
    assert_eq!(batches.len(), 2, "previous and last points");
    for b in batches {
        assert!(to.store_replica("node1", b, at(31)));
    }
    assert_eq!(to.node("node1", at(46)), from.node("node1", at(46)));
    assert_eq!(to.pod("ns", "p", at(46)), from.pod("ns", "p", at(46)));
    assert!(to.node("node1", at(46)).is_some(), "a rate right after the handover");
    assert!(from.export("missing").is_empty());
}

#[test]
fn adopting_a_backed_up_node_serves_it_at_once_and_keeps_newer_own_points() {
    let (serving, metrics) = new_store(15, 30);
    let backups = Store::with_role(Duration::from_secs(15), Duration::from_secs(30), metrics.clone(), Role::Backup);
    two_scrapes(&backups);
    assert!(serving.node("node1", at(46)).is_none());
    assert!(serving.adopt("node1", &backups, at(31)));
    assert_eq!(serving.node("node1", at(46)), backups.node("node1", at(46)));
    // Backups count apart from what is served.
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_nodes 1"), "{text}");
    assert!(text.contains("ha_metrics_server_backup_points{type=\"node\"} 1"), "{text}");
    // A node this store already scraped more recently is left as it is.
    serving.store_scrape("node1", batch(Some(node_point(45, 40.0, 2 * MIB)), vec![]), at(45));
    assert!(!serving.adopt("node1", &backups, at(46)));
    assert_eq!(serving.node("node1", at(46)).unwrap().timestamp, at(45));
}

#[test]
fn points_no_longer_refreshed_are_pruned_and_not_served_past_the_bound() {
    let (store, _) = new_store(15, 30);
    two_scrapes(&store);
    // Within resolution + max-staleness (45 s) of the newest sample: served.
    assert!(store.node("node1", at(74)).is_some());
    // Beyond it, not served even though no scrape failed (a node moved away).
    assert!(store.node("node1", at(76)).is_none());
    assert!(store.pod("ns", "p", at(76)).is_none());
    assert_eq!(store.prune(at(74)), 0);
    assert_eq!(store.prune(at(76)), 1);
    assert_eq!(store.newest_sample("node1"), None);
    // The reference behaviour keeps what it scraped until a scrape fails.
    let (reference, _) = new_store(15, 0);
    two_scrapes(&reference);
    assert_eq!(reference.prune(at(1_000)), 0);
    assert!(reference.node("node1", at(1_000)).is_some());
}
