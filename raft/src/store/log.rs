//! The durable Raft log: an append-only WAL file (`raft.wal`) of versioned
//! records (entries, truncations, purges), replayed into memory on open,
//! plus the vote in its own atomically replaced file (`vote`), and so the
//! last committed log id (`committed`): a node restarted with its data dir
//! applies what it had committed at once (openraft re-applies the log up to
//! it on start), so it knows its ring before it hears from the leader.
//!
//! - Every write and its fsync run on a blocking thread, never on a runtime
//!   worker, and complete before openraft hears the entries are durable.
//! - A torn or corrupt tail (a frame failing its checksum) is cut off on
//!   open and reported. A record that passes its checksum but is of a newer
//!   version, or does not decode, stops the open with an error naming the
//!   file, the byte and the version: it was written by another release, and
//!   starting over would silently wipe the replica's Raft state.
//! - A write that fails (ENOSPC, EIO) is cut back off the file, recorded as
//!   the node's fault, and every later write is refused (fail-stop).
//!
//! Must not interpret commands.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::disk::{self, Disk};
use super::error::{StoreError, io_at};
use super::wal::{self, HEADER_LEN, Tail};
use crate::codec;
use crate::fault::{Faults, StorageOp};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_MAGIC: &[u8; 8] = b"HARAFTWL";
const VOTE_MAGIC: &[u8; 8] = b"HARAFTVT";
const COMMITTED_MAGIC: &[u8; 8] = b"HARAFTCM";
/// Version of the committed file's content (openraft's log id).
const COMMITTED_VERSION: u32 = 1;
/// Version of the encoding of a log record ([`Record`], openraft's entry in
/// it and our `Command`). Bump it whenever that encoding changes in a way an
/// older build would misread; an older build then refuses the record by its
/// version. (A command variant added at the end needs no bump: an older
/// build fails to decode it, which is refused as well, never cut off.)
pub const RECORD_VERSION: u32 = 1;
/// Version of the vote file's content (openraft's vote).
const VOTE_VERSION: u32 = 1;
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

/// What openraft reads; never held across file I/O.
struct Mem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    dead_bytes: u64,
}

/// The WAL file; locked only on blocking threads.
struct Wal {
    file: File,
    /// Length of the file up to its last durable record.
    len: u64,
    /// Why writing is refused: an earlier write failed.
    broken: Option<String>,
}

/// Where the files are and how to reach them.
struct Files {
    path: PathBuf,
    vote_path: PathBuf,
    committed_path: PathBuf,
    disk: Disk,
}

/// The log store; clones share the same log (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<Mutex<Mem>>,
    wal: Arc<Mutex<Wal>>,
    files: Arc<Files>,
    faults: Faults,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Frames `records` in the current format.
fn encode(records: &[Record]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for r in records {
        buf.extend(wal::frame(&wal::content(RECORD_VERSION, &codec::encode(r)?))?);
    }
    Ok(buf)
}

/// Reads the value of an atomically replaced file (`None` when absent),
/// refusing one of a newer release or one that does not decode.
fn read_value<T: serde::de::DeserializeOwned>(
    disk: &Disk,
    path: &Path,
    magic: &[u8; 8],
    version: u32,
    what: &str,
) -> Result<Option<T>, StoreError> {
    let Some((version, bytes)) = wal::read_atomic(disk, path, magic, version)? else { return Ok(None) };
    codec::decode(&bytes).map(Some).map_err(|e| StoreError::Undecodable {
        path: path.to_path_buf(),
        what: what.into(),
        version,
        reason: e.to_string(),
    })
}

/// Replays the frames of a WAL in `format` into `mem`; returns where the
/// valid records end.
fn replay(path: &Path, bytes: &[u8], format: u32, mem: &mut Mem) -> Result<usize, StoreError> {
    let (frames, tail) = wal::frames(bytes, HEADER_LEN);
    for (offset, payload) in frames {
        let what = || format!("the record at byte {offset}");
        let Some((version, value)) = wal::split_content(format, payload) else {
            return Err(StoreError::Damaged {
                path: path.to_path_buf(),
                reason: format!("{} is too short to carry its version", what()),
            });
        };
        if version > RECORD_VERSION {
            return Err(StoreError::Version { path: path.to_path_buf(), what: what(), version, max: RECORD_VERSION });
        }
        let record: Record = codec::decode(value).map_err(|e| StoreError::Undecodable {
            path: path.to_path_buf(),
            what: what(),
            version,
            reason: e.to_string(),
        })?;
        match record {
            Record::Entry(e) => {
                mem.entries.insert(e.log_id.index, e);
            }
            Record::Truncate(from) => {
                mem.entries.split_off(&from);
            }
            Record::Purge(upto) => {
                mem.entries = mem.entries.split_off(&(upto.index + 1));
                mem.last_purged = Some(upto);
            }
        }
    }
    Ok(match tail {
        Tail::Clean => bytes.len(),
        Tail::Torn { offset } | Tail::Corrupt { offset } => offset,
    })
}

impl LogStore {
    /// Opens (or creates) the log under `dir`, cutting off a damaged tail and
    /// refusing records of another release. Blocking. Failed writes later
    /// are recorded in `faults`.
    pub fn open(dir: &Path, disk: Disk, faults: Faults) -> Result<(LogStore, Recovery), StoreError> {
        let path = dir.join("raft.wal");
        let vote_path = dir.join("vote");
        let committed_path = dir.join("committed");
        let bytes = disk.read(&path).map_err(io_at(&path))?.unwrap_or_default();
        let mut mem = Mem { entries: BTreeMap::new(), last_purged: None, vote: None, committed: None, dead_bytes: 0 };
        let mut lost_bytes = 0;
        let mut format = wal::FORMAT_VERSION;
        let mut len = bytes.len() as u64;
        if bytes.is_empty() {
            let mut f =
                disk.open(OpenOptions::new().create(true).write(true).truncate(true), &path).map_err(io_at(&path))?;
            disk.write_all(&mut f, &path, &wal::header(LOG_MAGIC)).map_err(io_at(&path))?;
            disk.sync_all(&f, &path).map_err(io_at(&path))?;
            disk.sync_dir(&path).map_err(io_at(&path))?;
            len = HEADER_LEN as u64;
        } else {
            format = wal::check_header(&path, &bytes, LOG_MAGIC)?;
            let good_end = replay(&path, &bytes, format, &mut mem)?;
            if good_end < bytes.len() {
                lost_bytes = (bytes.len() - good_end) as u64;
                len = good_end as u64;
                tracing::warn!(path = %path.display(), lost_bytes, "raft log has a damaged tail; cutting it off");
            }
        }
        let file = disk.open(OpenOptions::new().append(true), &path).map_err(io_at(&path))?;
        if lost_bytes > 0 {
            disk.set_len(&file, &path, len).map_err(io_at(&path))?;
            disk.sync_all(&file, &path).map_err(io_at(&path))?;
        }
        mem.vote = read_value(&disk, &vote_path, VOTE_MAGIC, VOTE_VERSION, "the vote")?;
        mem.committed = read_value(&disk, &committed_path, COMMITTED_MAGIC, COMMITTED_VERSION, "the committed log id")?;
        let files = Arc::new(Files { path, vote_path, committed_path, disk });
        let mut wal = Wal { file, len, broken: None };
        if format == wal::LEGACY_FORMAT && lost_bytes == 0 {
            let entries: Vec<Entry> = mem.entries.values().cloned().collect();
            rewrite(&files, &mut wal, mem.last_purged, &entries).map_err(io_at(&files.path))?;
            tracing::info!(path = %files.path.display(), format = wal::FORMAT_VERSION, "raft log rewritten in the current format");
        }
        let store = LogStore { mem: Arc::new(Mutex::new(mem)), wal: Arc::new(Mutex::new(wal)), files, faults };
        Ok((store, Recovery { lost_bytes }))
    }

    /// Index of the last entry, if any (for tests and status).
    pub fn last_index(&self) -> Option<u64> {
        let g = lock(&self.mem);
        g.entries.keys().next_back().copied().or(g.last_purged.map(|l| l.index))
    }

    /// Writes `records` durably (write and fsync on a blocking thread);
    /// a failure is recorded as the node's fault.
    async fn write(&self, op: StorageOp, records: Vec<Record>) -> io::Result<()> {
        let (wal, files) = (self.wal.clone(), self.files.clone());
        let r = match encode(&records) {
            Ok(buf) => disk::blocking(move || lock(&wal).append(&files, &buf)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            self.faults.storage(op, &self.files.path, e);
        }
        r
    }

    /// Appends entries durably and then makes them readable: what openraft's
    /// `append` does before it reports the entries flushed.
    pub async fn append_entries(&self, entries: Vec<Entry>) -> io::Result<()> {
        self.write(StorageOp::AppendLog, entries.iter().cloned().map(Record::Entry).collect()).await?;
        let mut g = lock(&self.mem);
        for e in entries {
            g.entries.insert(e.log_id.index, e);
        }
        Ok(())
    }

    /// Rewrites the WAL without purged entries once enough bytes are dead.
    async fn maybe_compact(&self) -> io::Result<()> {
        let (last_purged, entries) = {
            let g = lock(&self.mem);
            if g.dead_bytes < COMPACT_DEAD_BYTES {
                return Ok(());
            }
            (g.last_purged, g.entries.values().cloned().collect::<Vec<_>>())
        };
        let (wal, files) = (self.wal.clone(), self.files.clone());
        let r = disk::blocking(move || {
            let mut w = lock(&wal);
            w.refuse_if_broken()?;
            rewrite(&files, &mut w, last_purged, &entries)
        })
        .await;
        match r {
            Ok(()) => {
                lock(&self.mem).dead_bytes = 0;
                Ok(())
            }
            Err(e) => {
                self.faults.storage(StorageOp::CompactLog, &self.files.path, &e);
                Err(e)
            }
        }
    }
}

impl Wal {
    fn refuse_if_broken(&self) -> io::Result<()> {
        match &self.broken {
            Some(why) => Err(io::Error::other(format!("not written: an earlier write of the raft log failed ({why})"))),
            None => Ok(()),
        }
    }

    /// Appends `buf` and fsyncs; on failure cuts the file back to its last
    /// durable record and refuses every later write.
    fn append(&mut self, files: &Files, buf: &[u8]) -> io::Result<()> {
        self.refuse_if_broken()?;
        let d = &files.disk;
        let r = d.write_all(&mut self.file, &files.path, buf).and_then(|()| d.sync_data(&self.file, &files.path));
        match r {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.broken = Some(e.to_string());
                // What the failed write left must not look like a torn tail
                // on the next start (that would make it a new incarnation):
                // nothing of it was acknowledged.
                let cut =
                    d.set_len(&self.file, &files.path, self.len).and_then(|()| d.sync_data(&self.file, &files.path));
                match cut {
                    Ok(()) => tracing::warn!(path = %files.path.display(), len = self.len, error = %e,
                        "raft log write failed; cut the file back to its last durable record"),
                    Err(c) => tracing::error!(path = %files.path.display(), error = %e, cut_error = %c,
                        "raft log write failed and could not be cut back; the next start cuts it off as a damaged tail"),
                }
                Err(e)
            }
        }
    }
}

/// Replaces the WAL (write tmp, fsync, rename, fsync dir) with the current
/// format holding only the live records. Blocking.
fn rewrite(files: &Files, wal: &mut Wal, last_purged: Option<LogId>, entries: &[Entry]) -> io::Result<()> {
    let d = &files.disk;
    let tmp = files.path.with_extension("wal.tmp");
    let mut buf = wal::header(LOG_MAGIC).to_vec();
    let mut records: Vec<Record> = last_purged.map(Record::Purge).into_iter().collect();
    records.extend(entries.iter().cloned().map(Record::Entry));
    buf.extend(encode(&records)?);
    {
        let mut f = d.open(OpenOptions::new().create(true).write(true).truncate(true), &tmp)?;
        d.write_all(&mut f, &tmp, &buf)?;
        d.sync_all(&f, &tmp)?;
    }
    d.rename(&tmp, &files.path)?;
    d.sync_dir(&files.path)?;
    wal.file = d.open(OpenOptions::new().append(true), &files.path)?;
    wal.len = buf.len() as u64;
    Ok(())
}

fn write_err(e: io::Error) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.mem).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let g = lock(&self.mem);
        let last = g.entries.values().next_back().map(|e| e.log_id).or(g.last_purged);
        Ok(LogState { last_purged_log_id: g.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = codec::encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let files = self.files.clone();
        let r =
            disk::blocking(move || wal::write_atomic(&files.disk, &files.vote_path, VOTE_MAGIC, VOTE_VERSION, &bytes))
                .await;
        if let Err(e) = r {
            self.faults.storage(StorageOp::SaveVote, &self.files.vote_path, &e);
            return Err(StorageIOError::write_vote(&e).into());
        }
        lock(&self.mem).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.mem).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let Some(c) = committed else { return Ok(()) };
        if lock(&self.mem).committed == Some(c) {
            return Ok(());
        }
        let bytes = codec::encode(&c).map_err(|e| StorageIOError::write_logs(&e))?;
        let files = self.files.clone();
        let r = disk::blocking(move || {
            wal::write_atomic(&files.disk, &files.committed_path, COMMITTED_MAGIC, COMMITTED_VERSION, &bytes)
        })
        .await;
        if let Err(e) = r {
            self.faults.storage(StorageOp::SaveCommitted, &self.files.committed_path, &e);
            return Err(write_err(e));
        }
        lock(&self.mem).committed = Some(c);
        Ok(())
    }

    /// The saved committed log id, when the log still holds that entry (or
    /// purged it into a snapshot): a log cut back past it (a damaged tail)
    /// gives `None`, and the node waits for the leader's commit as before.
    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let g = lock(&self.mem);
        let Some(c) = g.committed else { return Ok(None) };
        let held = g.entries.get(&c.index).is_some_and(|e| e.log_id == c) || g.last_purged.is_some_and(|p| c <= p);
        if !held {
            tracing::warn!(committed = %c, "the saved committed log id is not in the raft log; waiting for the leader's");
            return Ok(None);
        }
        Ok(Some(c))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Durable first (write + fsync done), then readable, then reported.
        match self.append_entries(entries.into_iter().collect()).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(StorageOp::TruncateLog, vec![Record::Truncate(log_id.index)]).await.map_err(write_err)?;
        let mut g = lock(&self.mem);
        let gone = g.entries.split_off(&log_id.index);
        g.dead_bytes += gone.len() as u64 * 64;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(StorageOp::PurgeLog, vec![Record::Purge(log_id)]).await.map_err(write_err)?;
        {
            let mut g = lock(&self.mem);
            let kept = g.entries.split_off(&(log_id.index + 1));
            let gone = std::mem::replace(&mut g.entries, kept);
            g.dead_bytes += gone.len() as u64 * 128;
            g.last_purged = Some(log_id);
        }
        self.maybe_compact().await.map_err(write_err)
    }
}

#[cfg(test)]
mod tests;
