//! A damaged log tail (crash mid-write, or bytes corrupted on disk) is cut
//! off on restart: nothing crashes, the replica comes back, and no committed
//! entry is lost cluster-wide.

mod support;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use raft::{MemberState, Role};
use support::{Cluster, settled, slack, wait_cluster};

async fn damaged_tail_restart(damage: fn(&std::path::Path), hit_leader: bool) {
    let mut c = Cluster::new(3, 3, 3);
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    let leader = c.agreed_leader().expect("leader");
    let victim = if hit_leader { leader } else { (leader + 1) % 3 };
    let observer = (victim + 1) % 3;
    let name = c.replicas[victim].name.clone();
    let committed_before = c.node(leader).view().last_applied.expect("applied");
    let state_before = c.state(leader);
    c.kill(victim).await;
    damage(&c.replicas[victim].dir.join("raft.wal"));
    c.start(victim).await;
    let took = wait_cluster(&c, "damaged replica back and Active", slack(Duration::from_secs(15)), |c| {
        settled(c, &["r0", "r1", "r2"]) && c.node(observer).view().members.iter().all(|m| m.voter)
    })
    .await;
    println!(
        "damaged-tail restart: Active again after {took:?}, new incarnation: {}",
        c.node(victim).is_new_incarnation()
    );
    for (i, s) in c.statuses() {
        assert_ne!(s.role, Role::Stopped, "replica {i} stopped:\n{s}");
        assert!(s.last_applied.unwrap_or(0) >= committed_before, "replica {i} lost committed entries:\n{s}");
    }
    let after = c.state(observer);
    assert!(after.epoch >= state_before.epoch);
    for (id, m) in &state_before.members {
        if m.info.name != name {
            assert!(after.members.contains_key(id), "member {} lost", m.info.name);
        }
    }
    assert_eq!(c.member_state(observer, &name), Some(MemberState::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_last_bytes_of_the_log_are_cut_off_and_no_committed_entry_is_lost() {
    damaged_tail_restart(
        |wal| {
            let mut f = OpenOptions::new().write(true).open(wal).expect("open wal");
            let len = f.seek(SeekFrom::End(0)).expect("seek");
            f.seek(SeekFrom::Start(len - 3)).expect("seek");
            f.write_all(&[0xde, 0xad, 0xbe]).expect("corrupt");
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_is_cut_off_and_no_committed_entry_is_lost() {
    damaged_tail_restart(
        |wal| {
            let f = OpenOptions::new().write(true).open(wal).expect("open wal");
            let len = f.metadata().expect("len").len();
            f.set_len(len - 5).expect("truncate");
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_log_tail_on_the_leader_is_cut_off_and_no_committed_entry_is_lost() {
    damaged_tail_restart(
        |wal| {
            let mut f = OpenOptions::new().write(true).open(wal).expect("open wal");
            let len = f.seek(SeekFrom::End(0)).expect("seek");
            f.seek(SeekFrom::Start(len - 1)).expect("seek");
            f.write_all(&[0x5a]).expect("corrupt");
        },
        true,
    )
    .await;
}

/// Appends one checksummed frame holding `payload` to the WAL in `dir`.
fn append_frame(dir: &std::path::Path, payload: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(dir.join("raft.wal")).expect("open wal");
    f.write_all(&raft::store::wal::frame(payload).expect("frame")).expect("append");
}

/// The data dir's files and their bytes, for "nothing was changed".
fn snapshot_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).expect("read")))
        .collect();
    files.sort();
    files
}

/// A rollback after a format change: the log holds a record of a newer
/// version. The replica must refuse to start and say why, never start over
/// as a new incarnation (which wipes its Raft state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_record_of_a_newer_version_stops_the_start_naming_the_file_and_version() {
    let mut c = Cluster::new(1, 1, 1);
    c.start(0).await;
    wait_cluster(&c, "single replica up", slack(Duration::from_secs(10)), |c| settled(c, &["r0"])).await;
    c.kill(0).await;
    let dir = c.replicas[0].dir.clone();
    let mut newer = 77u32.to_le_bytes().to_vec();
    newer.extend(b"an entry in a format from the future");
    append_frame(&dir, &newer);
    let before = snapshot_of(&dir);

    let start = raft::Node::start(c.config(0), raft::PeerClient::plain(), tokio_util::sync::CancellationToken::new());
    let err = match start.await {
        Ok(node) => panic!("started anyway (new incarnation: {})", node.is_new_incarnation()),
        Err(e) => e.to_string(),
    };
    println!("start refused: {err}");
    assert!(err.contains(&dir.join("raft.wal").display().to_string()), "{err}");
    assert!(err.contains("version 77"), "{err}");
    assert_eq!(snapshot_of(&dir), before, "the data dir was left as it was");
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("damaged-")),
        "nothing was moved aside"
    );
}
