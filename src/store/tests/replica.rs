//! Points that arrive from another replica (copies, handovers): never
//! older over newer, a handover rebuilds the same series, a copy becomes
//! owned by the next scrape, and pruning what is no longer refreshed.

use super::*;
use crate::store::{Held, Origin};

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
    assert!(!store.store_replica("node1", late, at(31), Held::Copy, Origin::Member(9)), "an older batch is refused");
    let same = batch(Some(node_point(30, 25.0, 2 * MIB)), vec![]);
    assert!(
        !store.store_replica("node1", same, at(31), Held::Copy, Origin::Member(9)),
        "the same batch twice is refused"
    );
    assert_eq!((store.node("node1", at(46)), store.pod("ns", "p", at(46))), before);
    let newer =
        batch(Some(node_point(45, 40.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 45, 7.0, MIB)])]);
    assert!(store.store_replica("node1", newer, at(46), Held::Copy, Origin::Member(9)));
    assert_eq!(store.node("node1", at(46)).unwrap().timestamp, at(45));
}

#[test]
fn a_handover_rebuilds_the_same_series_in_another_store() {
    let (from, metrics) = new_store(15, 30);
    two_scrapes(&from);
    let to = Store::new(Duration::from_secs(15), Duration::from_secs(30), metrics);
    let batches = from.export("node1");
    assert_eq!(batches.len(), 2, "previous and last points");
    for b in batches {
        assert!(to.store_replica("node1", b, at(31), Held::Owned, Origin::Member(9)));
    }
    assert_eq!(to.node("node1", at(46)), from.node("node1", at(46)));
    assert_eq!(to.pod("ns", "p", at(46)), from.pod("ns", "p", at(46)));
    assert!(to.node("node1", at(46)).is_some(), "a rate right after the handover");
    assert!(from.export("missing").is_empty());
}

#[test]
fn a_copy_counts_apart_and_the_first_scrape_here_extends_it_into_a_rate() {
    let (from, _) = new_store(15, 30);
    two_scrapes(&from);
    let (holder, metrics) = new_store(15, 30);
    for b in from.export("node1") {
        assert!(holder.store_replica("node1", b, at(31), Held::Copy, Origin::Member(9)));
    }
    assert_eq!(holder.held("node1"), Some(Held::Copy));
    assert_eq!(holder.node("node1", at(46)), from.node("node1", at(46)), "a copy is served as it is");
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_nodes 1"), "{text}");
    assert!(text.contains("ha_metrics_server_backup_points{type=\"node\"} 1"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"node\"} 0"), "{text}");
    // The holder becomes the owner: its first scrape already has a previous point.
    holder.store_scrape("node1", batch(Some(node_point(45, 40.0, 2 * MIB)), vec![]), at(45));
    assert_eq!(holder.held("node1"), Some(Held::Owned));
    let usage = holder.node("node1", at(46)).expect("a rate from the copy and one scrape");
    assert_eq!((usage.timestamp, usage.window_ns), (at(45), 15_000_000_000));
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_nodes 0"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"node\"} 1"), "{text}");
    // A copy arriving late never replaces the newer own points, and keeps the role.
    assert!(!holder.store_replica(
        "node1",
        batch(Some(node_point(30, 25.0, 2 * MIB)), vec![]),
        at(46),
        Held::Copy,
        Origin::Member(9)
    ));
    assert_eq!(holder.held("node1"), Some(Held::Owned));
}

#[test]
fn a_released_node_is_kept_as_a_copy_and_counted_as_one() {
    let (store, metrics) = new_store(15, 30);
    two_scrapes(&store);
    assert!(store.set_held("node1", Held::Copy));
    assert_eq!(store.held("node1"), Some(Held::Copy));
    assert!(store.node("node1", at(46)).is_some() && store.pod("ns", "p", at(46)).is_some());
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_points{type=\"container\"} 1"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"container\"} 0"), "{text}");
    assert!(!store.set_held("missing", Held::Owned));
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
    // ... but a copy whose owner stopped sending goes after three resolutions.
    assert!(reference.set_held("node1", Held::Copy));
    assert_eq!(reference.prune(at(74)), 0);
    assert_eq!(reference.prune(at(76)), 1);
}

#[test]
fn a_handover_landing_after_the_new_owners_first_scrape_gives_a_rate_at_once() {
    let (old_owner, metrics) = new_store(15, 30);
    two_scrapes(&old_owner);
    let new_owner = Store::new(Duration::from_secs(15), Duration::from_secs(30), metrics);
    // The new owner's catch-up scrape lands first: one point, no rate.
    let first =
        batch(Some(node_point(40, 33.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 40, 6.0, MIB)])]);
    new_owner.store_scrape("node1", first, at(40));
    assert!(new_owner.node("node1", at(41)).is_none() && new_owner.pod("ns", "p", at(41)).is_none());
    // Then the handover: older points, kept as the previous ones.
    let mut took = Vec::new();
    for b in old_owner.export("node1") {
        took.push(new_owner.store_replica("node1", b, at(41), Held::Owned, Origin::Member(9)));
    }
    assert_eq!(took, [true, false], "the old owner's last points fill the gap, its previous ones find none left");
    let node = new_owner.node("node1", at(41)).expect("a node rate at once");
    assert_eq!(
        (node.timestamp, node.window_ns),
        (at(40), 10_000_000_000),
        "over the old owner's last and the first scrape"
    );
    let usage = new_owner.pod("ns", "p", at(41)).expect("a pod rate at once");
    assert_eq!(usage.timestamp, at(40));
    // A container that restarted in between takes nothing from before.
    let restarted =
        batch(Some(node_point(55, 40.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(50), 55, 0.5, MIB)])]);
    let fresh = Store::new(Duration::from_secs(15), Duration::from_secs(30), Arc::new(SelfMetrics::new(15.0)));
    fresh.store_scrape("node1", restarted, at(55));
    for b in old_owner.export("node1") {
        fresh.store_replica("node1", b, at(56), Held::Owned, Origin::Member(9));
    }
    assert!(fresh.node("node1", at(56)).is_some(), "the node's own series has no start time");
    assert!(fresh.pod("ns", "p", at(56)).is_none(), "no rate across a restart");
}

#[test]
fn a_holder_whose_previous_point_differs_serves_the_owners_rate_once_a_pair_arrives() {
    // The owner scraped at 15 and 30; the holder missed the copy of 15 and
    // scraped the node itself at 20 while cut off.
    let (owner, _) = new_store(15, 30);
    two_scrapes(&owner);
    let (holder, _) = new_store(15, 30);
    let own = batch(Some(node_point(20, 14.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 20, 2.0, MIB)])]);
    holder.store_scrape("node1", own, at(20));
    let mut export = owner.export("node1");
    let (last, prev) = (export.remove(0), export.remove(0));
    // One at a time, the holder's rate is over its own point at 20.
    let (alone, _) = new_store(15, 30);
    alone.store_scrape("node1", batch(Some(node_point(20, 14.0, MIB)), vec![]), at(20));
    assert!(alone.store_replica("node1", last.clone(), at(31), Held::Copy, Origin::Member(9)));
    assert_ne!(alone.node("node1", at(31)), owner.node("node1", at(31)), "a rate over another previous point");
    // As a pair, in either order, exactly the owner's.
    assert_eq!(
        holder.store_replica_pair(
            "node1",
            (prev.clone(), last.clone()),
            at(31),
            Held::Copy,
            (Origin::Member(9), false)
        ),
        1
    );
    assert_eq!(holder.node("node1", at(31)), owner.node("node1", at(31)));
    assert_eq!(holder.pod("ns", "p", at(31)), owner.pod("ns", "p", at(31)));
    // A pair no newer than what is held changes nothing held newer.
    assert_eq!(holder.store_replica_pair("node1", (last, prev), at(31), Held::Copy, (Origin::Member(9), false)), 0);
    assert_eq!(holder.node("node1", at(31)), owner.node("node1", at(31)));
}

#[test]
fn a_pair_never_gives_a_restarted_container_a_previous_point_from_before_the_restart() {
    let (owner, _) = new_store(15, 30);
    two_scrapes(&owner);
    let (holder, _) = new_store(15, 30);
    let mut export = owner.export("node1");
    let (last, mut prev) = (export.remove(0), export.remove(0));
    // The previous point as a different start of the container.
    prev.pods[0].containers[0].point.start_time = Some(at(1));
    holder.store_replica_pair("node1", (prev, last), at(31), Held::Copy, (Origin::Member(9), false));
    assert!(holder.pod("ns", "p", at(31)).is_none(), "no rate across a restart");
    assert_eq!(holder.node("node1", at(31)), owner.node("node1", at(31)), "the node's own pair still counts");
}

#[test]
fn the_owners_window_wins_when_a_stand_in_scraped_the_same_sample() {
    // The owner scraped at 15 and 30; a stand-in scraped the same sample at
    // 30 but its previous one at 20.
    let (owner, _) = new_store(15, 30);
    two_scrapes(&owner);
    let (standin, _) = new_store(15, 30);
    for (t, cpu, c) in [(20, 14.0, 2.0), (30, 25.0, 4.0)] {
        let b =
            batch(Some(node_point(t, cpu, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), t, c, MIB)])]);
        standin.store_scrape("node1", b, at(t));
    }
    assert_ne!(standin.node("node1", at(31)), owner.node("node1", at(31)));
    let mut export = owner.export("node1");
    let pair = (export.remove(0), export.remove(0));
    // From a member that is not the node's owner: the held sample stays as it is.
    assert_eq!(standin.store_replica_pair("node1", pair.clone(), at(31), Held::Copy, (Origin::Member(9), false)), 0);
    assert_ne!(standin.node("node1", at(31)), owner.node("node1", at(31)));
    // From its owner: the owner's window.
    assert_eq!(standin.store_replica_pair("node1", pair, at(31), Held::Copy, (Origin::Member(9), true)), 1);
    assert_eq!(standin.node("node1", at(31)), owner.node("node1", at(31)));
    assert_eq!(standin.pod("ns", "p", at(31)), owner.pod("ns", "p", at(31)));
}

#[test]
fn a_pair_older_than_one_own_scrape_backfills_with_its_newer_point() {
    // The new owner scraped once (at 45) before the old owner's pair (15, 30) landed.
    let (from, _) = new_store(15, 30);
    two_scrapes(&from);
    let (to, _) = new_store(15, 30);
    let own =
        batch(Some(node_point(45, 40.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 45, 7.0, MIB)])]);
    to.store_scrape("node1", own, at(45));
    let mut export = from.export("node1");
    let (last, prev) = (export.remove(0), export.remove(0));
    assert_eq!(
        to.store_replica_pair("node1", (prev, last), at(46), Held::Owned, (Origin::Member(9), false)),
        1,
        "one backfill"
    );
    let node = to.node("node1", at(46)).expect("a rate at once");
    assert_eq!(node.window_ns, at(45) - at(30), "over the old owner's last point, not its previous one");
}

#[test]
fn a_copy_scraped_here_counts_its_pods_as_scraped_and_keeps_their_series() {
    let (store, metrics) = new_store(15, 30);
    let b = |t: i64, cpu: f64| {
        batch(Some(node_point(t, cpu, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), t, cpu, MIB)])])
    };
    assert!(store.store_replica("node1", b(15, 1.0), at(15), Held::Copy, Origin::Member(9)));
    assert!(store.store_replica("node1", b(30, 2.0), at(30), Held::Copy, Origin::Member(9)));
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_points{type=\"container\"} 1"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"container\"} 0"), "{text}");
    store.store_scrape("node1", b(45, 4.0), at(45));
    let text = metrics.encode();
    assert!(text.contains("ha_metrics_server_backup_points{type=\"container\"} 0"), "{text}");
    assert!(text.contains("metrics_server_storage_points{type=\"container\"} 1"), "{text}");
    let p = store.pod("ns", "p", at(46)).expect("rated over the copy's last point");
    assert_eq!((p.window_ns, p.containers[0].usage.cpu_nanocores), (15 * S, 133_333_333));
    assert!(store.ready());
}

#[test]
fn an_older_copy_of_a_node_sets_no_previous_point_on_a_pod_now_reported_by_another_node() {
    let (store, _) = new_store(15, 30);
    // The pod moved: node2 reports it now (one point, no rate yet); node1
    // no longer lists it.
    store.store_scrape("node2", batch(None, vec![pod("ns", "p", vec![container("c", Some(0), 30, 4.0, MIB)])]), at(30));
    store.store_scrape("node1", batch(Some(node_point(30, 25.0, 2 * MIB)), vec![]), at(30));
    // A late copy of node1's older scrape still lists it.
    let late =
        batch(Some(node_point(15, 10.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 15, 1.0, MIB)])]);
    assert!(
        store.store_replica("node1", late, at(31), Held::Copy, Origin::Member(9)),
        "node1's series takes the older point"
    );
    assert!(store.node("node1", at(31)).is_some(), "node1 has a rate over the backfilled point");
    assert_eq!(
        store.pod("ns", "p", at(31)),
        None,
        "the pod's series is node2's: node1's old point is not its previous"
    );
}
