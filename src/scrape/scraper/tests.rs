//! What the scraper does at an ownership change besides scraping.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::MetricsReader;
use crate::scrape::client::{KubeletClientConfig, KubeletTls};
use crate::store::Role;
use crate::store::tests::{MIB, at, batch, container, node_point, pod};

#[test]
fn a_released_node_keeps_its_points_as_a_backup_so_the_new_owners_first_push_gives_a_rate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(SelfMetrics::new(15.0));
    let store = Arc::new(Store::new(Duration::from_secs(15), Duration::from_secs(30), metrics.clone()));
    let backups =
        Arc::new(Store::with_role(Duration::from_secs(15), Duration::from_secs(30), metrics.clone(), Role::Backup));
    let client = KubeletClient::new(KubeletClientConfig::new(KubeletTls::Insecure)).expect("kubelet client");
    let scraper = KubeletScraper::new(client, "https", store.clone(), metrics.clone())
        .with_peers(backups.clone(), Arc::new(Pusher::new(16, metrics)));
    // This replica scraped node1 twice, then the ring gave it to member 7.
    let b1 = batch(Some(node_point(15, 10.0, MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 15, 1.0, MIB)])]);
    let b2 =
        batch(Some(node_point(30, 25.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 30, 4.0, MIB)])]);
    store.store_scrape("node1", b1, at(15));
    store.store_scrape("node1", b2, at(30));
    scraper.release("node1", Some(7));
    assert_eq!(backups.export("node1"), store.export("node1"), "both points kept as a backup");
    // The new owner's first (and, if it dies now, only) push.
    let first =
        batch(Some(node_point(45, 40.0, 2 * MIB)), vec![pod("ns", "p", vec![container("c", Some(0), 45, 7.0, MIB)])]);
    assert!(backups.store_replica("node1", first, at(46)));
    // Past the staleness bound of this replica's own points, the backup
    // still serves a rate from the pushed point.
    assert!(store.node("node1", at(76)).is_none(), "the own points alone are stale by now");
    let served = backups.node("node1", at(76)).expect("a rate from the kept and the pushed point");
    assert_eq!(served.timestamp, at(45));
    assert!(backups.pod("ns", "p", at(76)).is_some());
}
