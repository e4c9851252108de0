//! The durable Raft log: an append-only WAL file (`raft.wal`) of entries,
//! truncations and purges, replayed into memory on open, plus the vote in its
//! own atomically replaced file (`vote`). Every write is fsynced before
//! openraft hears it is durable. A damaged tail is cut off on open and
//! reported, never replayed. Must not interpret commands.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::wal::{self, HEADER_LEN, Tail};
use crate::codec;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_MAGIC: &[u8; 8] = b"HARAFTWL";
const VOTE_MAGIC: &[u8; 8] = b"HARAFTVT";
/// Rewrite the WAL without purged entries once it holds this many dead bytes.
const COMPACT_DEAD_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to and including this log id are gone.
    Purge(LogId),
}

/// What opening the log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut off the end of the WAL because they were torn or corrupt.
    pub lost_bytes: u64,
}

struct Inner {
    path: PathBuf,
    vote_path: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    dead_bytes: u64,
}

/// The log store; clones share the same log (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, cutting off a damaged tail.
    pub fn open(dir: &Path) -> io::Result<(LogStore, Recovery)> {
        let path = dir.join("raft.wal");
        let vote_path = dir.join("vote");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut lost_bytes = 0;
        let mut keep = bytes.len();
        if bytes.is_empty() {
            let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
            f.write_all(&wal::header(LOG_MAGIC))?;
            f.sync_all()?;
            wal::sync_dir(&path)?;
        } else {
            wal::check_header(&path, &bytes, LOG_MAGIC)?;
            let (frames, tail) = wal::frames(&bytes, HEADER_LEN);
            let mut good_end = match tail {
                Tail::Clean => bytes.len(),
                Tail::Torn { offset } | Tail::Corrupt { offset } => offset,
            };
            for (offset, payload) in frames {
                let record: Record = match codec::decode(payload) {
                    Ok(r) => r,
                    Err(_) => {
                        good_end = offset;
                        break;
                    }
                };
                match record {
                    Record::Entry(e) => {
                        entries.insert(e.log_id.index, e);
                    }
                    Record::Truncate(from) => {
                        entries.split_off(&from);
                    }
                    Record::Purge(upto) => {
                        entries = entries.split_off(&(upto.index + 1));
                        last_purged = Some(upto);
                    }
                }
            }
            if good_end < bytes.len() {
                lost_bytes = (bytes.len() - good_end) as u64;
                keep = good_end;
                tracing::warn!(path = %path.display(), lost_bytes, "raft log has a damaged tail; cutting it off");
            }
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        if lost_bytes > 0 {
            file.set_len(keep as u64)?;
            file.sync_all()?;
        }
        let vote = match wal::read_atomic(&vote_path, VOTE_MAGIC)? {
            Some(b) => Some(
                codec::decode(&b)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", vote_path.display())))?,
            ),
            None => None,
        };
        let inner = Inner { path, vote_path, file, entries, last_purged, vote, dead_bytes: 0 };
        Ok((LogStore { inner: Arc::new(Mutex::new(inner)) }, Recovery { lost_bytes }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Index of the last entry, if any (for tests and status).
    pub fn last_index(&self) -> Option<u64> {
        let g = self.lock();
        g.entries.keys().next_back().copied().or(g.last_purged.map(|l| l.index))
    }
}

impl Inner {
    fn write_records(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            let payload = codec::encode(r)?;
            buf.extend(wal::frame(&payload)?);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Rewrites the WAL with only live records once enough bytes are dead.
    fn maybe_compact(&mut self) -> io::Result<()> {
        if self.dead_bytes < COMPACT_DEAD_BYTES {
            return Ok(());
        }
        let tmp = self.path.with_extension("wal.tmp");
        {
            let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp)?;
            let mut buf = wal::header(LOG_MAGIC).to_vec();
            if let Some(p) = self.last_purged {
                buf.extend(wal::frame(&codec::encode(&Record::Purge(p))?)?);
            }
            for e in self.entries.values() {
                buf.extend(wal::frame(&codec::encode(&Record::Entry(e.clone()))?)?);
            }
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        wal::sync_dir(&self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.dead_bytes = 0;
        Ok(())
    }
}

fn write_err(e: io::Error) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let g = self.lock();
        let last = g.entries.values().next_back().map(|e| e.log_id).or(g.last_purged);
        Ok(LogState { last_purged_log_id: g.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut g = self.lock();
        let bytes = codec::encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        wal::write_atomic(&g.vote_path, VOTE_MAGIC, &bytes).map_err(|e| StorageIOError::write_vote(&e))?;
        g.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.lock();
        let records: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
        match g.write_records(&records) {
            Ok(()) => {
                for r in records {
                    if let Record::Entry(e) = r {
                        g.entries.insert(e.log_id.index, e);
                    }
                }
                drop(g);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = io::Error::new(e.kind(), e.to_string());
                drop(g);
                callback.log_io_completed(Err(msg));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut g = self.lock();
        g.write_records(&[Record::Truncate(log_id.index)]).map_err(write_err)?;
        let gone = g.entries.split_off(&log_id.index);
        g.dead_bytes += gone.len() as u64 * 64;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut g = self.lock();
        g.write_records(&[Record::Purge(log_id)]).map_err(write_err)?;
        let kept = g.entries.split_off(&(log_id.index + 1));
        let gone = std::mem::replace(&mut g.entries, kept);
        g.dead_bytes += gone.len() as u64 * 128;
        g.last_purged = Some(log_id);
        g.maybe_compact().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    /// Writes records to the file only (memory is what replay rebuilds).
    fn write(store: &LogStore, records: &[Record]) {
        store.lock().write_records(records).unwrap();
    }

    #[test]
    fn replay_applies_truncate_and_purge_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (store, rec) = LogStore::open(dir.path()).unwrap();
        assert_eq!(rec.lost_bytes, 0);
        let records: Vec<Record> = (1..=5).map(|i| Record::Entry(entry(i))).collect();
        write(&store, &records);
        write(&store, &[Record::Truncate(4), Record::Purge(entry(1).log_id)]);
        drop(store);
        let (store, rec) = LogStore::open(dir.path()).unwrap();
        assert_eq!(rec.lost_bytes, 0);
        assert_eq!(store.lock().entries.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        drop(store);

        let wal = dir.path().join("raft.wal");
        let len = std::fs::metadata(&wal).unwrap().len();
        let f = OpenOptions::new().write(true).open(&wal).unwrap();
        f.set_len(len - 2).unwrap();
        let (store, rec) = LogStore::open(dir.path()).unwrap();
        assert!(rec.lost_bytes > 0);
        // The purge record was the torn one: entries 2 and 3 survive, 1 is back
        // (it was only purged, which is harmless), and the file is clean again.
        assert_eq!(store.lock().entries.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        drop(store);
        let (_, rec) = LogStore::open(dir.path()).unwrap();
        assert_eq!(rec.lost_bytes, 0);
    }

    #[test]
    fn compaction_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(dir.path()).unwrap();
        write(&store, &(1..=10).map(|i| Record::Entry(entry(i))).collect::<Vec<_>>());
        {
            let mut g = store.lock();
            g.last_purged = Some(entry(6).log_id);
            g.entries = (7..=10).map(|i| (i, entry(i))).collect();
            g.dead_bytes = COMPACT_DEAD_BYTES;
            g.maybe_compact().unwrap();
        }
        drop(store);
        let (store, rec) = LogStore::open(dir.path()).unwrap();
        assert_eq!(rec.lost_bytes, 0);
        let g = store.lock();
        assert_eq!(g.entries.keys().copied().collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(g.last_purged, Some(entry(6).log_id));
    }
}
