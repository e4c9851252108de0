//! A replica whose Raft store fails (ENOSPC, EIO) stops claiming to be
//! healthy: it records the fault, its heartbeats say unhealthy, the leader
//! commits it Down, and a restart with a working disk resumes the same
//! incarnation. Faults are injected through the store's disk seam, and for
//! real with a full tmpfs under the data dir where mounting is allowed.

mod support;

use std::io::{self, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raft::store::Disk;
use raft::store::disk::Call;
use raft::{Fault, MemberState, StorageOp};
use support::{Cluster, settled, slack, wait_cluster};

/// A disk that fails every write of `raft.wal` with ENOSPC once armed.
fn failing_disk(armed: Arc<AtomicBool>) -> Disk {
    Disk::with_injector(Arc::new(move |call, path: &Path| {
        if armed.load(Ordering::SeqCst) && call == Call::Write && path.ends_with("raft.wal") {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }))
}

/// Waits until `victim` has a fault and every other running replica has it
/// committed Down; returns how long that took.
async fn faulted_and_down(c: &Cluster, victim: usize, limit: Duration) -> Duration {
    let name = c.replicas[victim].name.clone();
    wait_cluster(c, "the faulty replica committed Down", limit, |c| {
        c.node(victim).fault().is_some()
            && c.running()
                .filter(|(i, _)| *i != victim)
                .all(|(i, _)| c.member_state(i, &name) == Some(MemberState::Down))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_log_writes_fail_reports_the_fault_and_is_committed_down() {
    let mut c = Cluster::new(4, 3, 3);
    let armed: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    for (r, a) in c.replicas.iter_mut().zip(&armed) {
        r.disk = failing_disk(a.clone());
    }
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    let leader = c.agreed_leader().expect("leader");
    let victim = (leader + 1) % 3;
    assert!(c.node(victim).fault().is_none());

    armed[victim].store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    // A joiner makes the leader replicate entries: the victim's append fails.
    c.start(3).await;
    let lease = c.node(leader).lease();
    let took = faulted_and_down(&c, victim, slack(lease + Duration::from_secs(5))).await;
    println!("log write failed → fault recorded and committed Down in {took:?} (lease {lease:?})");

    let Some(Fault::Storage(f)) = c.node(victim).fault() else {
        panic!("not a storage fault: {:?}", c.node(victim).fault())
    };
    assert_eq!((f.op, f.kind), (StorageOp::AppendLog, io::ErrorKind::StorageFull), "{f}");
    assert_eq!(f.path, c.replicas[victim].dir.join("raft.wal"));
    assert!(c.node(victim).view().fault.is_some_and(|v| v.contains("raft.wal")), "the status view says why");
    // It stays Down (its heartbeats keep saying unhealthy) for well over
    // the hysteresis after which a healthy member would be Active again.
    let name = c.replicas[victim].name.clone();
    let window = Duration::from_secs(3);
    let left = sim::wait::until(window, async || c.member_state(leader, &name) != Some(MemberState::Down)).await;
    assert!(left.is_none(), "the faulty replica left Down within {window:?}, {:?} after the fault", t0.elapsed());

    // The same data dir on a working disk: the same incarnation comes back.
    let id = c.node(victim).id();
    c.kill(victim).await;
    armed[victim].store(false, Ordering::SeqCst);
    c.start(victim).await;
    assert!(!c.node(victim).is_new_incarnation(), "the failed write left no torn tail behind");
    assert_eq!(c.node(victim).id(), id);
    wait_cluster(&c, "the restarted replica Active again", slack(Duration::from_secs(15)), |c| {
        settled(c, &["r0", "r1", "r2", "r3"])
    })
    .await;
}

/// Whether this process may make a private mount namespace (root, or
/// CAP_SYS_ADMIN); the real-filesystem test runs only where it may.
fn can_mount() -> bool {
    Command::new("unshare").args(["--mount", "--propagation", "private", "true"]).status().is_ok_and(|s| s.success())
}

const IN_NAMESPACE: &str = "HA_RAFT_TEST_IN_MOUNT_NAMESPACE";

/// Fills the filesystem holding `dir` until it has no space left.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // The last partial chunk may have left a few bytes free: take them too.
    while f.write_all(&[0u8; 512]).is_ok() {}
}

/// A real ENOSPC: the data dirs are small tmpfs mounts (in a private mount
/// namespace, so nothing outlives the test process); the victim's is
/// filled up. Snapshots after every 2 entries make its next write a new
/// file, which a full filesystem refuses whatever slack the log's last page has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_under_the_data_dir_is_a_fault_and_a_restart_with_space_resumes() {
    const NAME: &str = "a_full_filesystem_under_the_data_dir_is_a_fault_and_a_restart_with_space_resumes";
    if std::env::var_os(IN_NAMESPACE).is_none() {
        if !can_mount() {
            eprintln!("SKIPPED {NAME}: this process may not create a mount namespace (needs CAP_SYS_ADMIN)");
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
            .env(IN_NAMESPACE, "1")
            .status()
            .expect("re-run in a mount namespace");
        assert!(status.success(), "the test failed inside its mount namespace: {status}");
        return;
    }
    let mut c = Cluster::new(4, 3, 3);
    c.tune = |cfg| cfg.snapshot_after = 2;
    for r in &c.replicas[..3] {
        std::fs::create_dir_all(&r.dir).unwrap();
        let mounted =
            Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&r.dir).status().expect("mount");
        assert!(mounted.success(), "mounting a tmpfs at {}", r.dir.display());
    }
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    let leader = c.agreed_leader().expect("leader");
    let victim = (leader + 1) % 3;
    fill(&c.replicas[victim].dir);
    c.start(3).await;
    let lease = c.node(leader).lease();
    let took = faulted_and_down(&c, victim, slack(lease + Duration::from_secs(5))).await;
    let fault = c.node(victim).storage_fault().expect("a storage fault");
    println!("full filesystem → {fault} → committed Down in {took:?}");
    assert_eq!(fault.kind, io::ErrorKind::StorageFull, "{fault}");

    let id = c.node(victim).id();
    c.kill(victim).await;
    std::fs::remove_file(c.replicas[victim].dir.join("filler")).unwrap();
    c.start(victim).await;
    assert!(!c.node(victim).is_new_incarnation(), "no torn tail after the failed write");
    assert_eq!(c.node(victim).id(), id);
    wait_cluster(&c, "the restarted replica Active again", slack(Duration::from_secs(15)), |c| {
        settled(c, &["r0", "r1", "r2", "r3"])
    })
    .await;
}
