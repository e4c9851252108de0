//! Planned lifecycle: graceful leave for a restart, snapshots for late
//! joiners and restarts, and refusal of misaddressed peer RPCs.

mod support;

use std::time::Duration;

use raft::network::wire::{
    ANY_NODE, Envelope, HeartbeatAck, HeartbeatV2, HelloReply, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, path,
};
use raft::{CallError, LeaveMode, MemberState, PeerClient};
use support::{Cluster, settled, slack, wait_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_drains_first_and_comes_back_active_with_the_same_voters() {
    let mut c = Cluster::new(3, 3, 3);
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    let leader = c.agreed_leader().expect("leader");
    // Drain the leader itself: the hardest case.
    let epoch = c.node(leader).drain().await.expect("drain");
    assert_eq!(c.member_state(leader, &c.replicas[leader].name.clone()), Some(MemberState::Draining));
    // Still draining after more than the hysteresis (after which a healthy
    // member not leaving would be made Active again): leaving members stay
    // out. Once a follower has applied the drain, it is watched
    // continuously for twice the hysteresis.
    let name = c.replicas[leader].name.clone();
    let other = (leader + 1) % 3;
    let drained =
        |c: &Cluster| c.member_state(other, &name) == Some(MemberState::Draining) && c.state(other).epoch == epoch;
    wait_cluster(&c, "a follower to apply the drain", slack(Duration::from_secs(2)), drained).await;
    let window = c.config(leader).hysteresis * 2;
    let out = sim::wait::holds_for(window, async || drained(&c)).await;
    assert!(out.is_ok(), "the draining leader came back after {out:?}:\n{}", c.status_table());
    c.node(leader).leave(LeaveMode::Restart).await.expect("leave");
    let voters_before: Vec<u64> = c.node(leader).view().members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    c.kill(leader).await;
    c.start(leader).await;
    wait_cluster(&c, "restarted member Active", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
        .await;
    let voters_after: Vec<u64> = c.node(leader).view().members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    assert_eq!(voters_before, voters_after, "a rolling restart keeps the same voters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bring_a_late_joiner_and_a_restart_up_to_date() {
    let mut c = Cluster::new(4, 3, 3);
    c.tune = |cfg| {
        cfg.snapshot_after = 3;
        cfg.logs_kept_after_snapshot = 0;
    };
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    let leader = c.agreed_leader().expect("leader");
    // Churn a little so the log is snapshotted and purged.
    for _ in 0..3 {
        c.node(leader).drain().await.expect("drain");
        c.node(leader).leave(LeaveMode::Restart).await.expect("leave");
        c.kill(leader).await;
        c.start(leader).await;
        wait_cluster(&c, "back", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    }
    for r in &c.replicas[..3] {
        assert!(r.dir.join("snapshot").exists(), "{} has no snapshot", r.name);
    }
    c.start(3).await;
    let took = wait_cluster(&c, "late joiner Active", slack(Duration::from_secs(15)), |c| {
        settled(c, &["r0", "r1", "r2", "r3"])
    })
    .await;
    println!("late joiner via snapshot: Active after {took:?}");
    let want = c.state(0);
    c.kill(3).await;
    c.start(3).await;
    wait_cluster(&c, "restarted joiner has the state", slack(Duration::from_secs(15)), |c| {
        c.state(3).members.keys().eq(want.members.keys()) && settled(c, &["r0", "r1", "r2", "r3"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_rpcs_with_a_wrong_version_cluster_or_target_are_refused() {
    let mut c = Cluster::new(1, 1, 1);
    c.start(0).await;
    wait_cluster(&c, "single-member cluster", slack(Duration::from_secs(10)), |c| settled(c, &["r0"])).await;
    let addr = c.replicas[0].addr.to_string();
    let id = c.node(0).id();
    let client = PeerClient::plain();
    let env = |v: u32, cluster: &str, to: u64| Envelope {
        protocol_version: v,
        cluster_id: cluster.to_string(),
        from: 42,
        to,
        body: (),
    };
    let t = Duration::from_secs(5);
    let ok: HelloReply =
        client.call(&addr, path::HELLO, &env(PROTOCOL_VERSION, "test-cluster", ANY_NODE), t).await.expect("hello");
    assert_eq!(ok.node_id, id);
    let addressed: HelloReply =
        client.call(&addr, path::HELLO, &env(PROTOCOL_VERSION, "test-cluster", id), t).await.expect("hello");
    assert!(addressed.initialized);
    // The previous release's protocol is still spoken (rolling upgrades).
    let previous: HelloReply = client
        .call(&addr, path::HELLO, &env(MIN_PROTOCOL_VERSION, "test-cluster", ANY_NODE), t)
        .await
        .expect("hello in the previous protocol version");
    assert_eq!(previous.node_id, id);
    for (e, what) in [
        (env(PROTOCOL_VERSION + 1, "test-cluster", id), "version"),
        (env(MIN_PROTOCOL_VERSION - 1, "test-cluster", id), "version"),
        (env(PROTOCOL_VERSION, "other-cluster", id), "cluster"),
        (env(PROTOCOL_VERSION, "test-cluster", id ^ 1), "node"),
    ] {
        let r: Result<HelloReply, CallError> = client.call(&addr, path::HELLO, &e, t).await;
        match r {
            Err(CallError::Refused { status: 409, reason, .. }) => assert!(reason.contains(what), "{reason}"),
            other => panic!("{what} mismatch was not refused: {other:?}"),
        }
    }
    // A heartbeat in the previous release's shape (no ready_to_own) is heard.
    let v1 = Envelope {
        protocol_version: MIN_PROTOCOL_VERSION,
        cluster_id: "test-cluster".to_string(),
        from: 42,
        to: id,
        body: HeartbeatV2 { name: "old-replica".into(), scrape_healthy: true, leaving: false, ready_to_own: None },
    };
    let ack: Result<HeartbeatAck, CallError> = client.call(&addr, path::HEARTBEAT, &v1, t).await;
    assert!(ack.is_ok(), "a version-1 heartbeat was refused: {ack:?}");
    // A Raft RPC is never addressed to "any node".
    let r: Result<HelloReply, CallError> =
        client.call(&addr, path::VOTE, &env(PROTOCOL_VERSION, "test-cluster", ANY_NODE), t).await;
    assert!(matches!(r, Err(CallError::Refused { status: 409, .. })), "{r:?}");
    // Garbage is a 400, not a panic.
    let r: Result<HelloReply, CallError> =
        client.call(&addr, path::APPEND, &env(PROTOCOL_VERSION, "test-cluster", id), t).await;
    assert!(matches!(r, Err(CallError::Refused { status: 400, .. })), "{r:?}");
}
