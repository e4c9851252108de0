//! Several replica processes form one Raft cluster over mutual TLS on
//! their peer ports: bootstrap, leader loss by SIGKILL, restart with the
//! same or an empty data dir, and refusal of peers without a cluster
//! certificate. Protocol bounds are asserted with generous slack; the
//! measured times are printed (`--nocapture`) for the closing note.

mod common;

use std::time::{Duration, Instant};

use common::raft_cluster::RaftCluster;
use raft::MemberState;
use sim::client::try_get;

/// The lease the replicas run with (the default) and the bound DESIGN.md
/// promises: a dead member is committed Down within lease + 2 s.
const LEASE: Duration = Duration::from_secs(3);
const SLACK: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_bootstrap_into_one_cluster_and_serve_kubectl() {
    let r = RaftCluster::start(3).await;
    let views = r.settled(&[0, 1, 2], 3).await.unwrap_or_else(|| panic!("no single cluster\n{}", r.c.log_tail(0)));
    let epochs: Vec<u64> = views.iter().map(|v| v.epoch).collect();
    assert!(epochs.iter().all(|e| *e == epochs[0]), "replicas disagree on the epoch: {epochs:?}");
    assert_eq!(views.iter().filter(|v| v.is_leader()).count(), 1, "exactly one leader");
    r.c.wait_for_metrics().await;
    // The human status view.
    let observer = r.c.env.peer_observer().unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["cluster", "--peer", &r.c.env.peer_addr(1).to_string()])
        .arg("--peer-ca-file")
        .arg(&observer.ca)
        .arg("--peer-cert-file")
        .arg(&observer.cert)
        .arg("--peer-key-file")
        .arg(&observer.key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("3 active") && text.contains("replica-0") && text.contains("replica-2"), "{text}");
    // The same facts in /metrics.
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    // The gauges are refreshed every second.
    let epoch = r.status(1).await.unwrap().epoch;
    let shown = sim::wait::until(Duration::from_secs(20), async || {
        let (code, metrics) = sim::client::direct_get(r.c.env.replica_addr(1), "/metrics", Some(&admin), &[]).await;
        code == 200
            && metrics.contains(&format!("ha_metrics_server_raft_epoch {epoch}"))
            && metrics.contains("ha_metrics_server_raft_members{state=\"Active\"} 3")
    })
    .await
    .is_some();
    assert!(shown, "raft gauges never showed epoch {epoch} and 3 Active members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_elects_a_new_one_and_commits_it_down_then_it_rejoins() {
    let mut r = RaftCluster::start(3).await;
    let views = r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    let leader_name = views[0].leader.clone().expect("settled views name a leader").1;
    let dead = sim::leader::replica_index(&leader_name).expect("a replica-N name");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    let killed_at = Instant::now();
    r.c.replicas[dead].signal(libc::SIGKILL);
    let mut new_leader_after = None;
    let mut down_after = None;
    sim::wait::until(LEASE * SLACK + Duration::from_secs(10), async || {
        for &i in &survivors {
            if let Some(v) = r.status(i).await {
                if new_leader_after.is_none() && v.leader.as_ref().is_some_and(|(_, n)| *n != leader_name) {
                    new_leader_after = Some(killed_at.elapsed());
                }
                let dead_state = v.members.iter().find(|m| m.name == leader_name).map(|m| m.state);
                if down_after.is_none() && dead_state == Some(MemberState::Down) {
                    down_after = Some(killed_at.elapsed());
                }
            }
        }
        new_leader_after.is_some() && down_after.is_some()
    })
    .await;
    let ok = new_leader_after.is_some() && down_after.is_some();
    assert!(
        ok,
        "no new leader ({new_leader_after:?}) or dead leader not Down ({down_after:?})\n{}",
        r.c.log_tail(survivors[0])
    );
    let down = down_after.unwrap();
    println!(
        "measured: leader SIGKILL -> new leader {:?}, -> old leader committed Down {:?}",
        new_leader_after.unwrap(),
        down
    );
    assert!(down <= (LEASE + Duration::from_secs(2)) * SLACK, "Down after {down:?}, bound lease + 2 s with slack");

    // Restart with the same data dir: the same member comes back Active.
    let mut args = r.c.env.replica_args(dead, &r.c.resolution);
    args.extend(r.c.env.cluster_args(dead, 3).unwrap());
    let log = r.c.env.work_dir.join(format!("replica-{dead}-again.log"));
    r.c.replicas[dead] = sim::env::ReplicaProcess::spawn(&common::binary(), &args, &log).unwrap();
    let views = r.settled(&[0, 1, 2], 3).await.expect("restarted member back Active");
    let back = views[dead].members.iter().filter(|m| m.name == leader_name).count();
    assert_eq!(back, 1, "the restarted replica is one member, not two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_an_empty_data_dir_rejoins_as_a_new_incarnation() {
    let mut r = RaftCluster::start(3).await;
    let before = r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    let old = before[0].members.iter().find(|m| m.name == "replica-2").unwrap().clone();
    r.c.replicas[2].signal(libc::SIGKILL);
    sim::wait::expect("replica-2 to exit after SIGKILL", Duration::from_secs(10), async || {
        r.c.replicas[2].try_wait().is_some()
    })
    .await;
    std::fs::remove_dir_all(r.c.env.work_dir.join("replica-2").join("data")).unwrap();
    let mut args = r.c.env.replica_args(2, &r.c.resolution);
    args.extend(r.c.env.cluster_args(2, 3).unwrap());
    let log = r.c.env.work_dir.join("replica-2-fresh.log");
    r.c.replicas[2] = sim::env::ReplicaProcess::spawn(&common::binary(), &args, &log).unwrap();
    let after = r
        .settled(&[0, 1, 2], 3)
        .await
        .unwrap_or_else(|| panic!("fresh incarnation never Active\n{}", r.c.replicas[2].log_text()));
    let new = after[0].members.iter().find(|m| m.name == "replica-2").unwrap();
    assert_ne!(new.id, old.id, "an empty data dir must not reuse the old node id");
    assert!(new.incarnation > old.incarnation, "incarnation {} after {}", new.incarnation, old.incarnation);
    assert_eq!(after[0].members.iter().filter(|m| m.name == "replica-2").count(), 1, "the old incarnation is retired");
    for (i, p) in r.c.replicas.iter_mut().enumerate() {
        assert!(p.try_wait().is_none(), "replica {i} exited (a panic?)\n{}", p.log_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_port_refuses_callers_without_a_cluster_certificate() {
    let r = RaftCluster::start(3).await;
    r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    let peer = r.c.env.peer_addr(0);
    let path = ha_metrics_server::member::status::VIEW_PATH;
    assert!(try_get(peer, path, None, &[]).await.is_err(), "no client certificate must be refused");
    let rogue = tls::pki::Ca::new("rogue").unwrap().issue_client("replica-9", &[]).unwrap();
    assert!(try_get(peer, path, Some(&rogue), &[]).await.is_err(), "a certificate from another CA must be refused");
    // A client certificate from the user-facing client CA is not a peer either.
    let user = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    assert!(try_get(peer, path, Some(&user), &[]).await.is_err());
    assert!(r.status(0).await.is_some(), "a cluster certificate is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_ring_as_draining_and_restart_makes_it_active_again() {
    let mut r = RaftCluster::start(3).await;
    r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    r.c.replicas[1].signal(libc::SIGTERM);
    let exited = sim::wait::until_some(Duration::from_secs(30), async || r.c.replicas[1].try_wait()).await;
    assert!(
        exited.is_some_and(|s| s.success()),
        "SIGTERM must end the replica cleanly: {exited:?}\n{}",
        r.c.replicas[1].log_text()
    );
    // The leaving replica waited for the Draining commit; the survivors
    // apply it within a heartbeat or two.
    let draining = sim::wait::until(Duration::from_secs(10), async || {
        let mut seen = 0;
        for i in [0, 2] {
            if let Some(v) = r.status(i).await
                && let Some(m) = v.members.iter().find(|m| m.name == "replica-1")
                && matches!(m.state, MemberState::Draining | MemberState::Down)
            {
                seen += 1;
            }
        }
        seen == 2
    })
    .await
    .is_some();
    assert!(draining, "the survivors never saw replica-1 leave the ring");
    assert!(r.c.replicas[1].log_text().contains("left the ring"), "{}", r.c.replicas[1].log_text());
    let mut args = r.c.env.replica_args(1, &r.c.resolution);
    args.extend(r.c.env.cluster_args(1, 3).unwrap());
    let log = r.c.env.work_dir.join("replica-1-again.log");
    r.c.replicas[1] = sim::env::ReplicaProcess::spawn(&common::binary(), &args, &log).unwrap();
    r.settled(&[0, 1, 2], 3).await.expect("the same replica is Active again after a rolling restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_replica_count_removes_the_terminated_replica_from_raft() {
    let mut r = RaftCluster::start(3).await;
    r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    // As `kubectl scale statefulset --replicas=2`: the count drops, then the
    // highest ordinal gets SIGTERM.
    r.c.env.set_replica_count(2);
    r.c.replicas[2].signal(libc::SIGTERM);
    let exited = sim::wait::until_some(Duration::from_secs(30), async || r.c.replicas[2].try_wait()).await;
    assert!(exited.is_some_and(|s| s.success()), "replica-2 did not exit cleanly\n{}", r.c.replicas[2].log_text());
    assert!(r.c.replicas[2].log_text().contains("ScaleDown"), "{}", r.c.replicas[2].log_text());
    let gone = sim::wait::until(Duration::from_secs(30), async || {
        let mut ok = 0;
        for i in [0, 1] {
            if let Some(v) = r.status(i).await
                && v.members.len() == 2
                && v.members.iter().all(|m| m.name != "replica-2" && m.voter && m.state == MemberState::Active)
            {
                ok += 1;
            }
        }
        ok == 2
    })
    .await
    .is_some();
    assert!(gone, "replica-2 still listed after scale-down: {:?}", r.status(0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_three_to_five_and_back_keeps_one_cluster() {
    let mut r = RaftCluster::start(3).await;
    let before = r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    // Two more replicas, not in the declared list: they join through it.
    r.c.env.set_replica_count(5);
    for i in 3..5 {
        let mut args = r.c.env.replica_args(i, &r.c.resolution);
        args.extend(r.c.env.cluster_args(i, 3).unwrap());
        let log = r.c.env.work_dir.join(format!("replica-{i}.log"));
        r.c.replicas.push(sim::env::ReplicaProcess::spawn(&common::binary(), &args, &log).unwrap());
    }
    let five = r.settled(&[0, 1, 2, 3, 4], 5).await.expect("five Active members");
    let voters = five[0].members.iter().filter(|m| m.voter).count();
    assert_eq!(voters, 3, "beyond --voters the newcomers are learners that still own shards");
    let bumps = five[0].epoch - before[0].epoch;
    assert!(bumps <= 2, "two members joined, epoch moved by {bumps}");
    // Back to three: the two highest ordinals leave for good.
    r.c.env.set_replica_count(3);
    for i in [4, 3] {
        r.c.replicas[i].signal(libc::SIGTERM);
    }
    r.settled(&[0, 1, 2], 3).await.expect("back to three Active members");
    let removed = sim::wait::until(Duration::from_secs(30), async || {
        r.status(0).await.is_some_and(|v| v.members.iter().all(|m| m.name != "replica-3" && m.name != "replica-4"))
    })
    .await
    .is_some();
    assert!(removed, "scaled-down replicas still listed: {:?}", r.status(0).await);
}
