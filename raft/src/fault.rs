//! Why a node can no longer take part in Raft ([`Fault`]) and the one cell
//! that records it ([`Faults`]). The store records a failed read, write or
//! fsync here before openraft hears of it; the node records openraft
//! stopping on its own and a membership task that keeps dying. The first
//! fault wins and is never cleared: a node that faulted stays faulted until
//! its process restarts. Decides nothing about what to do next (the node's
//! heartbeats read it, the server exits on it).

use std::fmt;
use std::io;
use std::path::PathBuf;

use tokio::sync::watch;

/// The storage operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageOp {
    /// Appending entries to the log (`raft.wal`), fsync included.
    AppendLog,
    /// Recording a truncation in the log.
    TruncateLog,
    /// Recording a purge in the log.
    PurgeLog,
    /// Rewriting the log without purged entries.
    CompactLog,
    /// Replacing the vote file.
    SaveVote,
    /// Replacing the file of the last committed log id.
    SaveCommitted,
    /// Writing a snapshot (built here or received from the leader).
    WriteSnapshot,
    /// Reading the snapshot back.
    ReadSnapshot,
}

impl fmt::Display for StorageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageOp::AppendLog => "appending to the raft log",
            StorageOp::TruncateLog => "truncating the raft log",
            StorageOp::PurgeLog => "purging the raft log",
            StorageOp::CompactLog => "compacting the raft log",
            StorageOp::SaveVote => "saving the vote",
            StorageOp::SaveCommitted => "saving the committed log id",
            StorageOp::WriteSnapshot => "writing the snapshot",
            StorageOp::ReadSnapshot => "reading the snapshot",
        })
    }
}

/// A failed storage operation, as the store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFault {
    /// What was being done.
    pub op: StorageOp,
    /// The file it was done to.
    pub path: PathBuf,
    /// The kind of I/O error (`StorageFull` for ENOSPC, `Other` for EIO, ...).
    pub kind: io::ErrorKind,
    /// The error as the OS reported it.
    pub error: String,
}

impl StorageFault {
    /// A fault of `op` on `path` from `e`.
    pub fn new(op: StorageOp, path: impl Into<PathBuf>, e: &io::Error) -> StorageFault {
        StorageFault { op, path: path.into(), kind: e.kind(), error: e.to_string() }
    }
}

impl fmt::Display for StorageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.error)
    }
}

/// Why this node stopped being a working Raft member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The data dir failed under the Raft store (ENOSPC, EIO, ...).
    #[error("raft storage failed: {0}")]
    Storage(StorageFault),
    /// openraft stopped with a fatal error the store did not report itself.
    #[error("raft stopped: {0}")]
    RaftStopped(String),
    /// A membership task kept panicking and was given up on.
    #[error("membership task {task} kept failing: {reason}")]
    TaskDied {
        /// The task.
        task: &'static str,
        /// Its last panic.
        reason: String,
    },
}

impl Fault {
    /// The short name used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Storage(_) => "storage",
            Fault::RaftStopped(_) => "raft_stopped",
            Fault::TaskDied { .. } => "task_died",
        }
    }
}

/// The fault cell of one node; clones share it.
#[derive(Debug, Clone)]
pub struct Faults {
    tx: watch::Sender<Option<Fault>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { tx: watch::channel(None).0 }
    }
}

impl Faults {
    /// Records `fault` unless one is recorded already; logs it once, at error level.
    pub fn record(&self, fault: Fault) {
        self.tx.send_if_modified(|cur| {
            if cur.is_some() {
                return false;
            }
            tracing::error!(kind = fault.kind(), fault = %fault,
                "this replica can no longer take part in raft; it reports itself unhealthy from now on");
            *cur = Some(fault);
            true
        });
    }

    /// Records a failed storage operation.
    pub fn storage(&self, op: StorageOp, path: impl Into<PathBuf>, e: &io::Error) {
        self.record(Fault::Storage(StorageFault::new(op, path, e)));
    }

    /// The recorded fault, if any.
    pub fn get(&self) -> Option<Fault> {
        self.tx.borrow().clone()
    }

    /// Whether a fault is recorded.
    pub fn is_set(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Waits for a fault.
    pub async fn wait(&self) -> Fault {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`: it cannot be dropped while we wait.
        let fault = rx.wait_for(Option::is_some).await.ok().and_then(|f| f.clone());
        match fault {
            Some(f) => f,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_fault_wins_and_wakes_waiters() {
        let faults = Faults::default();
        let waiter = {
            let f = faults.clone();
            tokio::spawn(async move { f.wait().await })
        };
        let enospc = io::Error::from(io::ErrorKind::StorageFull);
        faults.storage(StorageOp::AppendLog, "/d/raft.wal", &enospc);
        faults.record(Fault::RaftStopped("later".into()));
        let got = waiter.await.unwrap();
        assert_eq!(got, faults.get().unwrap());
        let Fault::Storage(s) = got else { panic!("expected a storage fault") };
        assert_eq!((s.op, s.kind), (StorageOp::AppendLog, io::ErrorKind::StorageFull));
        assert!(s.to_string().starts_with("appending to the raft log /d/raft.wal: "), "{s}");
    }
}
