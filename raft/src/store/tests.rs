//! Opening a data dir: damaged copies are bounded.

use super::*;

#[test]
fn only_the_newest_damaged_copies_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    for stamp in [10u128, 50, 20, 40, 30] {
        std::fs::create_dir_all(dir.path().join(format!("damaged-{stamp}"))).unwrap();
        std::fs::write(dir.path().join(format!("damaged-{stamp}/raft.wal")), b"x").unwrap();
    }
    std::fs::create_dir_all(dir.path().join("damaged-notes")).unwrap();
    prune_damaged(dir.path(), 3);
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, vec!["damaged-30", "damaged-40", "damaged-50", "damaged-notes"]);
}

#[test]
fn a_damaged_log_is_moved_aside_and_old_copies_are_pruned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &Path| {
        super::open(dir, "r0", "c", watch::channel(ClusterState::default()).0, Disk::default(), Faults::default())
    };
    let first = open(dir.path()).unwrap();
    assert!(first.fresh);
    drop(first);
    for stamp in 1..=5u128 {
        std::fs::create_dir_all(dir.path().join(format!("damaged-{stamp}"))).unwrap();
    }
    // A torn tail: a frame header promising more bytes than there are.
    let wal = dir.path().join("raft.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes.extend(100u32.to_le_bytes());
    bytes.extend([0u8; 10]);
    std::fs::write(&wal, bytes).unwrap();
    let second = open(dir.path()).unwrap();
    assert!(second.fresh, "a torn tail still makes a new incarnation");
    let aside = second.quarantined.clone().expect("moved aside");
    assert!(aside.join("raft.wal").exists());
    let damaged = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("damaged-"))
        .count();
    assert_eq!(damaged, KEEP_DAMAGED, "the new copy and the newest older ones are kept");
}
