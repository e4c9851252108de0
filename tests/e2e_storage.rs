//! A replica process whose data dir fills up says so and gets out of the
//! way: `/readyz?verbose` fails with the reason, `/metrics` counts the
//! fault, the others commit it Down, it exits non-zero (so the kubelet
//! restarts it), and started again with space on the same data dir it
//! comes back as the same member. The data dirs are small tmpfs mounts in
//! a private mount namespace, so the test needs CAP_SYS_ADMIN; elsewhere
//! it says it was skipped (the raft crate's injected-fault tests still run).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;
use common::raft_cluster::RaftCluster;
use raft::MemberState;

const LEASE: Duration = Duration::from_secs(3);
const SLACK: u32 = 4;
const IN_NAMESPACE: &str = "HA_E2E_IN_MOUNT_NAMESPACE";
const NAME: &str = "a_replica_whose_data_dir_fills_up_fails_readiness_is_committed_down_exits_and_comes_back";

/// Runs this test again inside a private mount namespace; `false` when
/// this process is already inside one (go on with the test).
fn rerun_in_mount_namespace() -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return false;
    }
    let allowed = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("SKIPPED {NAME}: this process may not create a mount namespace (needs CAP_SYS_ADMIN)");
        return true;
    }
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(IN_NAMESPACE, "1")
        .status()
        .expect("re-run in a mount namespace");
    assert!(status.success(), "the test failed inside its mount namespace: {status}");
    true
}

/// Fills the filesystem holding `dir`.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8; 512]).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_data_dir_fills_up_fails_readiness_is_committed_down_exits_and_comes_back() {
    if rerun_in_mount_namespace() {
        return;
    }
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    let mut args = Vec::new();
    for i in 0..3 {
        let mut a = c.env.replica_args(i, &c.resolution);
        a.extend(c.env.cluster_args(i, 3).unwrap());
        let data = c.env.work_dir.join(format!("replica-{i}")).join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&data).status();
        assert!(mounted.is_ok_and(|s| s.success()), "mounting a tmpfs at {}", data.display());
        c.spawn_replica_args(i, a.clone());
        args.push(a);
    }
    c.env.route_metrics_to(&[0, 1, 2]);
    c.env.set_replica_count(3);
    let mut r = RaftCluster { c };
    let views = r.settled(&[0, 1, 2], 3).await.expect("cluster formed");
    let leader: usize = views[0].leader.clone().unwrap().1.trim_start_matches("replica-").parse().unwrap();
    let victim = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let victim_name = format!("replica-{victim}");
    let victim_id = views[victim].id;

    // Full disk, then an election: the victim must write its vote, and cannot.
    fill(&r.c.env.work_dir.join(format!("replica-{victim}")).join("data"));
    let t0 = Instant::now();
    r.c.replicas[leader].signal(libc::SIGSTOP);
    let addr = r.c.env.replica_addr(victim);
    let mut seen = None;
    let said = sim::wait::until(LEASE * SLACK, async || {
        seen = sim::client::try_get(addr, "/readyz?verbose", None, &[]).await.ok();
        seen.as_ref().is_some_and(|(code, body)| *code == 500 && body.contains("[-]raft failed: raft storage failed"))
    })
    .await;
    r.c.replicas[leader].signal(libc::SIGCONT);
    let said = said.unwrap_or_else(|| panic!("readyz never gave the reason: {seen:?}\n{}", r.c.log_tail(victim)));
    let (_, body) = seen.unwrap();
    let line = body.lines().find(|l| l.starts_with("[-]raft")).unwrap_or_default().to_string();
    println!("measured: election after the disk filled → readiness fails with the reason in {said:?}: {line}");
    assert!(line.contains("No space left on device"), "{line}");

    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    let counted = sim::wait::until(Duration::from_secs(5), async || {
        let (code, m) = sim::client::direct_get(addr, "/metrics", Some(&admin), &[]).await;
        code == 200 && m.contains("ha_metrics_server_raft_fault{kind=\"storage\"} 1")
    })
    .await;
    assert!(counted.is_some(), "/metrics never showed the storage fault");

    let down = sim::wait::until((LEASE + Duration::from_secs(2)) * SLACK, async || {
        r.status(other)
            .await
            .is_some_and(|v| v.members.iter().any(|m| m.name == victim_name && m.state == MemberState::Down))
    })
    .await;
    let down = down.unwrap_or_else(|| panic!("the faulty replica was never committed Down\n{}", r.c.log_tail(other)));
    println!("measured: then committed Down {down:?} later ({:?} after the fill)", t0.elapsed());

    let mut status = None;
    let exited = sim::wait::until(LEASE * 2 * SLACK, async || {
        status = r.c.replicas[victim].try_wait();
        status.is_some()
    })
    .await;
    assert!(exited.is_some(), "the faulty replica did not exit\n{}", r.c.log_tail(victim));
    let status = status.unwrap();
    println!("measured: exited {status} {:?} after the fill", t0.elapsed());
    assert!(!status.success(), "a replica whose raft node failed must exit non-zero");
    let log = r.c.replicas[victim].log_text();
    assert!(log.contains("raft storage failed"), "its log says why:\n{}", r.c.log_tail(victim));

    // Space again: the same data dir is the same member, Active again.
    std::fs::remove_file(r.c.env.work_dir.join(format!("replica-{victim}")).join("data").join("filler")).unwrap();
    let log = r.c.env.work_dir.join(format!("replica-{victim}-again.log"));
    r.c.replicas[victim] = sim::env::ReplicaProcess::spawn(&common::binary(), &args[victim], &log).unwrap();
    let views = r.settled(&[0, 1, 2], 3).await.unwrap_or_else(|| panic!("not Active again\n{}", r.c.log_tail(victim)));
    let back: Vec<_> = views[other].members.iter().filter(|m| m.name == victim_name).collect();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, victim_id, "the restart resumed the same incarnation");
}
