//! Replay, versions, failed writes and where the fsync runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::fault::Fault;
use crate::store::disk::Call;

fn entry(index: u64) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
}

fn open(dir: &Path) -> Result<(LogStore, Recovery), StoreError> {
    LogStore::open(dir, Disk::default(), Faults::default())
}

/// Writes records to the file only (memory is what replay rebuilds).
fn write(store: &LogStore, records: &[Record]) {
    lock(&store.wal).append(&store.files, &encode(records).unwrap()).unwrap();
}

fn indexes(store: &LogStore) -> Vec<u64> {
    lock(&store.mem).entries.keys().copied().collect()
}

/// Appends raw bytes to the WAL behind the store's back.
fn append_raw(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = OpenOptions::new().append(true).open(dir.join("raft.wal")).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn replay_applies_truncate_and_purge_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.lost_bytes, 0);
    let records: Vec<Record> = (1..=5).map(|i| Record::Entry(entry(i))).collect();
    write(&store, &records);
    write(&store, &[Record::Truncate(4), Record::Purge(entry(1).log_id)]);
    drop(store);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.lost_bytes, 0);
    assert_eq!(indexes(&store), vec![2, 3]);
    drop(store);

    let wal = dir.path().join("raft.wal");
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 2).unwrap();
    let (store, rec) = open(dir.path()).unwrap();
    assert!(rec.lost_bytes > 0);
    // The purge record was the torn one: entries 2 and 3 survive, 1 is back
    // (it was only purged, which is harmless), and the file is clean again.
    assert_eq!(indexes(&store), vec![1, 2, 3]);
    drop(store);
    let (_, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.lost_bytes, 0);
}

#[tokio::test]
async fn compaction_keeps_live_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    write(&store, &(1..=10).map(|i| Record::Entry(entry(i))).collect::<Vec<_>>());
    {
        let mut g = lock(&store.mem);
        g.last_purged = Some(entry(6).log_id);
        g.entries = (7..=10).map(|i| (i, entry(i))).collect();
        g.dead_bytes = COMPACT_DEAD_BYTES;
    }
    store.maybe_compact().await.unwrap();
    assert_eq!(lock(&store.mem).dead_bytes, 0);
    drop(store);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!(rec.lost_bytes, 0);
    assert_eq!(indexes(&store), vec![7, 8, 9, 10]);
    assert_eq!(lock(&store.mem).last_purged, Some(entry(6).log_id));
}

#[test]
fn a_record_of_a_newer_version_stops_the_open_naming_file_byte_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    write(&store, &[Record::Entry(entry(1))]);
    drop(store);
    let at = std::fs::metadata(dir.path().join("raft.wal")).unwrap().len();
    append_raw(dir.path(), &wal::frame(&wal::content(RECORD_VERSION + 6, b"a record from the future")).unwrap());
    let before = std::fs::read(dir.path().join("raft.wal")).unwrap();

    let err = open(dir.path()).err().expect("a newer record refuses the open");
    assert!(matches!(&err, StoreError::Version { version, .. } if *version == RECORD_VERSION + 6), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().join("raft.wal").display().to_string()), "{msg}");
    assert!(msg.contains(&format!("record at byte {at}")) && msg.contains(&format!("version {}", RECORD_VERSION + 6)));
    assert_eq!(std::fs::read(dir.path().join("raft.wal")).unwrap(), before, "nothing was cut off");
}

/// A WAL as the first release wrote it: format 1, bare records.
fn legacy_wal(dir: &Path, records: &[Vec<u8>]) {
    let mut bytes = LOG_MAGIC.to_vec();
    bytes.extend(wal::LEGACY_FORMAT.to_le_bytes());
    for r in records {
        bytes.extend(wal::frame(r).unwrap());
    }
    std::fs::write(dir.join("raft.wal"), bytes).unwrap();
}

#[test]
fn a_checksummed_record_that_does_not_decode_stops_the_open_instead_of_being_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    // A command variant this build does not know (as a newer release would
    // write): its checksum is right, so it is no torn write.
    let unknown_variant = vec![9u8, 1, 2, 3];
    legacy_wal(dir.path(), &[codec::encode(&Record::Entry(entry(1))).unwrap(), unknown_variant]);
    let err = open(dir.path()).err().expect("an undecodable record refuses the open");
    assert!(matches!(&err, StoreError::Undecodable { version: 1, .. }), "{err}");
    assert!(err.to_string().contains("raft.wal"), "{err}");
}

#[test]
fn a_legacy_log_is_replayed_and_rewritten_in_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut records: Vec<Vec<u8>> = (1..=3).map(|i| codec::encode(&Record::Entry(entry(i))).unwrap()).collect();
    records.push(codec::encode(&Record::Truncate(3)).unwrap());
    legacy_wal(dir.path(), &records);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!((rec.lost_bytes, indexes(&store)), (0, vec![1, 2]));
    let bytes = std::fs::read(dir.path().join("raft.wal")).unwrap();
    assert_eq!(wal::check_header(Path::new("raft.wal"), &bytes, LOG_MAGIC).unwrap(), wal::FORMAT_VERSION);
    write(&store, &[Record::Entry(entry(3))]);
    drop(store);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!((rec.lost_bytes, indexes(&store)), (0, vec![1, 2, 3]));
}

#[tokio::test]
async fn a_failed_fsync_is_cut_back_recorded_as_the_fault_and_later_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let a = armed.clone();
    let disk = Disk::with_injector(Arc::new(move |call, path: &Path| {
        if a.load(Ordering::SeqCst) && call == Call::Sync && path.ends_with("raft.wal") {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }));
    let faults = Faults::default();
    let (store, _) = LogStore::open(dir.path(), disk, faults.clone()).unwrap();
    store.append_entries(vec![entry(1), entry(2)]).await.unwrap();
    let wal_path = dir.path().join("raft.wal");
    let durable = std::fs::metadata(&wal_path).unwrap().len();

    armed.store(true, Ordering::SeqCst);
    // The write itself lands; its fsync fails: the bytes must not stay.
    let err = store.append_entries(vec![entry(3)]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(std::fs::metadata(&wal_path).unwrap().len(), durable, "the failed write was cut back");
    assert_eq!(indexes(&store), vec![1, 2], "a failed entry is never readable");
    let Some(Fault::Storage(f)) = faults.get() else { panic!("no storage fault recorded") };
    assert_eq!((f.op, f.kind, f.path), (StorageOp::AppendLog, io::ErrorKind::StorageFull, wal_path.clone()));

    armed.store(false, Ordering::SeqCst);
    let again = store.append_entries(vec![entry(3)]).await.unwrap_err();
    assert!(again.to_string().contains("earlier write"), "{again}");
    assert_eq!(std::fs::metadata(&wal_path).unwrap().len(), durable);
    drop(store);
    let (store, rec) = open(dir.path()).unwrap();
    assert_eq!((rec.lost_bytes, indexes(&store)), (0, vec![1, 2]), "no torn tail: the same incarnation goes on");
}

/// On a runtime with one thread, an fsync that waits for another task of
/// that runtime completes only if it runs off the runtime's thread.
#[tokio::test(flavor = "current_thread")]
async fn log_writes_and_fsyncs_do_not_block_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let a = armed.clone();
    let disk = Disk::with_injector(Arc::new(move |call, path: &Path| {
        if a.load(Ordering::SeqCst) && call == Call::Sync {
            let waited = lock(&rx).recv_timeout(Duration::from_secs(10));
            return waited.map_err(|_| io::Error::other(format!("fsync of {} blocked the runtime", path.display())));
        }
        Ok(())
    }));
    let (mut store, _) = LogStore::open(dir.path(), disk, Faults::default()).unwrap();
    armed.store(true, Ordering::SeqCst);
    let release = {
        let tx = tx.clone();
        tokio::spawn(async move { tx.send(()) })
    };
    store.append_entries(vec![entry(1)]).await.expect("the append's fsync ran while the runtime was free");
    release.await.unwrap().unwrap();

    // The vote file: its fsync of the file and of the directory.
    let vote = Vote::new(2, 7);
    let release = tokio::spawn(async move { tx.send(()).and_then(|()| tx.send(())) });
    store.save_vote(&vote).await.expect("the vote's fsyncs ran while the runtime was free");
    release.await.unwrap().unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn the_committed_log_id_survives_a_restart_while_the_log_holds_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = open(dir.path()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None, "nothing saved yet");
    store.append_entries((1..=3).map(entry).collect()).await.unwrap();
    store.save_committed(Some(entry(2).log_id)).await.unwrap();
    drop(store);
    let (mut store, _) = open(dir.path()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(entry(2).log_id));
    // Purged into a snapshot: still a committed id openraft can start from.
    store.purge(entry(2).log_id).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(entry(2).log_id));
    // A later commit replaces it.
    store.save_committed(Some(entry(3).log_id)).await.unwrap();
    drop(store);
    let (mut store, _) = open(dir.path()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(entry(3).log_id));
    // A log cut back past it (its entry gone): not trusted, the node waits
    // for the leader's commit as without the file.
    store.truncate(entry(3).log_id).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None);
}

#[tokio::test]
async fn a_committed_file_of_a_newer_release_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let value = codec::encode(&entry(1).log_id).unwrap();
    wal::write_atomic(&Disk::default(), &dir.path().join("committed"), COMMITTED_MAGIC, COMMITTED_VERSION + 1, &value)
        .unwrap();
    let err = open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("committed"), "{err}");
}
