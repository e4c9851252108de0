//! Bootstrap from the declared member list: one cluster, never two, and no
//! initialization while a declared member is unreachable.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use raft::{MemberState, Role};
use support::{Cluster, settled, slack, wait_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_declared_members_bootstrap_into_one_cluster_with_three_voters() {
    let mut c = Cluster::new(3, 3, 3);
    c.start_all(&[0, 1, 2]).await;
    let took = wait_cluster(&c, "3 Active members and one leader", slack(Duration::from_secs(10)), |c| {
        settled(c, &["r0", "r1", "r2"])
    })
    .await;
    println!("bootstrap to 3 Active: {took:?}");
    let st = c.statuses();
    for (_, s) in &st {
        assert_eq!(s.members.len(), 3, "{s}");
        assert!(s.members.iter().all(|m| m.voter && m.incarnation == 1), "{s}");
    }
    println!("{}", st[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_bootstraps_never_make_two_clusters() {
    for round in 0..3 {
        let mut c = Cluster::new(3, 3, 3);
        // Start all three as close together as possible.
        c.start_all(&[2, 0, 1]).await;
        wait_cluster(&c, "one settled cluster", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
            .await;
        let ids: Vec<BTreeSet<u64>> =
            c.running().map(|(_, n)| n.state().borrow().members.keys().copied().collect()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "round {round}: replicas disagree on members: {ids:?}");
        let own: BTreeSet<u64> = c.running().map(|(_, n)| n.id()).collect();
        assert_eq!(ids[0], own, "round {round}: the cluster must consist of exactly the three running incarnations");
        let leaders = c.statuses().iter().filter(|(_, s)| s.role == Role::Leader).count();
        assert_eq!(leaders, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cluster_is_initialized_while_a_declared_member_is_unreachable() {
    let mut c = Cluster::new(3, 3, 3);
    c.start_all(&[0, 1]).await;
    // r0 and r1 hello each other every bootstrap attempt (300 ms apart, each
    // at most one RPC deadline); were they to initialize without r2, their
    // membership and then a leader would show within an attempt and an
    // election. Watched continuously for twice that long.
    let cfg = c.config(0);
    let window = (cfg.rpc_timeout + cfg.election_timeout_max) * 2;
    let alone = sim::wait::holds_for(window, async || {
        c.statuses().iter().all(|(_, s)| s.members.is_empty() && s.leader.is_none())
    })
    .await;
    assert!(alone.is_ok(), "initialized without r2 after {alone:?}:\n{}", c.status_table());
    c.start(2).await;
    wait_cluster(&c, "one cluster once r2 is up", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
        .await;
    let s = c.node(2).view();
    assert!(s.members.iter().all(|m| m.state == MemberState::Active));
}
