//! The state machine: applies committed commands to the in-memory
//! [`ClusterState`], publishes it on a watch channel, and keeps snapshots in
//! one atomically replaced file (`snapshot`). The log holds everything after
//! the snapshot, so the state machine itself is rebuilt on restart. A
//! snapshot of a newer version (or one that does not decode) stops the open
//! with an error naming the file; snapshot file I/O runs on blocking threads
//! and a failure is recorded as the node's fault.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::disk::{self, Disk};
use super::error::StoreError;
use super::wal;
use crate::codec;
use crate::fault::{Faults, StorageOp};
use crate::state::{ClusterState, CommandResult, MemberInfo, NodeId};
use crate::types::{Entry, LogId, StorageError, TypeConfig};

const SNAPSHOT_MAGIC: &[u8; 8] = b"HARAFTSN";
/// Version of the snapshot file's content ([`SnapshotFile`] and the
/// `ClusterState` encoding in it). Bump it whenever either changes; an older
/// build then refuses the snapshot by its version instead of misreading it.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, MemberInfo>,
    data: Vec<u8>,
}

/// Whether this node instance may still write its snapshot file. openraft
/// builds snapshots in a task of its own that `Raft::shutdown` does not
/// wait for; a builder finishing after its node stopped would overwrite the
/// file under the next instance on the same data dir, leaving that
/// instance a snapshot ahead of what it applied (openraft then panics). The
/// node closes the gate once stopped; a write holds the lock for its whole
/// length, so closing also waits for a write in progress.
#[derive(Debug, Clone)]
pub struct SnapshotGate(Arc<Mutex<bool>>);

impl SnapshotGate {
    fn new() -> SnapshotGate {
        SnapshotGate(Arc::new(Mutex::new(true)))
    }

    /// Refuses every later snapshot write; returns once none is under way.
    pub fn close(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }

    /// Runs `write` unless the gate is closed.
    fn write(&self, write: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(io::Error::other(GateClosed));
        }
        write()
    }
}

/// The refusal of a closed [`SnapshotGate`] (the node stopped: no fault).
#[derive(Debug, thiserror::Error)]
#[error("the node stopped; its snapshot is not written")]
struct GateClosed;

impl GateClosed {
    fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<GateClosed>())
    }
}

/// The applied cluster state and its snapshot file.
pub struct StateMachine {
    files: Arc<SnapshotFiles>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership<NodeId, MemberInfo>,
    state: ClusterState,
    tx: watch::Sender<ClusterState>,
    snapshots_built: u64,
}

/// The snapshot file, how to reach it, and where its failures go.
struct SnapshotFiles {
    path: PathBuf,
    disk: Disk,
    gate: SnapshotGate,
    faults: Faults,
}

impl SnapshotFiles {
    /// Reads the snapshot file (blocking).
    fn read(&self) -> Result<Option<SnapshotFile>, StoreError> {
        let Some((version, bytes)) = wal::read_atomic(&self.disk, &self.path, SNAPSHOT_MAGIC, SNAPSHOT_VERSION)? else {
            return Ok(None);
        };
        let undecodable = |e: io::Error| StoreError::Undecodable {
            path: self.path.clone(),
            what: "the snapshot".into(),
            version,
            reason: e.to_string(),
        };
        let file: SnapshotFile = codec::decode(&bytes).map_err(undecodable)?;
        ClusterState::decode(&file.data).map_err(undecodable)?;
        Ok(Some(file))
    }

    /// Replaces the snapshot file on a blocking thread unless the gate is
    /// closed; a failure is recorded as the node's fault.
    async fn write(self: &Arc<Self>, file: &SnapshotFile) -> io::Result<()> {
        let bytes = codec::encode(file)?;
        let me = self.clone();
        let r = disk::blocking(move || {
            me.gate.write(|| wal::write_atomic(&me.disk, &me.path, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &bytes))
        })
        .await;
        match r {
            Err(e) if !GateClosed::is(&e) => {
                self.faults.storage(StorageOp::WriteSnapshot, &self.path, &e);
                Err(e)
            }
            r => r,
        }
    }
}

impl StateMachine {
    /// Opens the state machine under `dir`, restoring the last snapshot (a
    /// snapshot of a newer release is refused). Blocking.
    pub fn open(
        dir: &Path,
        tx: watch::Sender<ClusterState>,
        disk: Disk,
        faults: Faults,
    ) -> Result<StateMachine, StoreError> {
        let files = Arc::new(SnapshotFiles { path: dir.join("snapshot"), disk, gate: SnapshotGate::new(), faults });
        let mut sm = StateMachine {
            files,
            last_applied: None,
            last_membership: StoredMembership::default(),
            state: ClusterState::default(),
            tx,
            snapshots_built: 0,
        };
        if let Some(file) = sm.files.read()? {
            // `read` checked that the state decodes.
            let state = ClusterState::decode(&file.data)
                .map_err(|e| StoreError::Damaged { path: sm.files.path.clone(), reason: e.to_string() })?;
            sm.last_applied = file.meta.last_log_id;
            sm.last_membership = file.meta.last_membership;
            sm.state = state;
            sm.publish();
        }
        Ok(sm)
    }

    /// The gate the node closes when it stops.
    pub fn gate(&self) -> SnapshotGate {
        self.files.gate.clone()
    }

    fn publish(&self) {
        let state = self.state.clone();
        self.tx.send_if_modified(|cur| {
            if *cur != state {
                *cur = state;
                true
            } else {
                false
            }
        });
    }
}

/// Builds a snapshot from a copy of the state taken when it was requested.
pub struct Builder {
    files: Arc<SnapshotFiles>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership<NodeId, MemberInfo>,
    state: ClusterState,
    id: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = codec::encode(&self.state).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.id),
            None => format!("empty-{}", self.id),
        };
        let meta =
            SnapshotMeta { last_log_id: self.last_applied, last_membership: self.last_membership.clone(), snapshot_id };
        let file = SnapshotFile { meta: meta.clone(), data: data.clone() };
        self.files.write(&file).await.map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership<NodeId, MemberInfo>), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(CommandResult { epoch: self.state.epoch, refused: None }),
                EntryPayload::Normal(cmd) => results.push(self.state.apply(&cmd)),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    results.push(CommandResult { epoch: self.state.epoch, refused: None });
                }
            }
        }
        self.publish();
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        Builder {
            files: self.files.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            state: self.state.clone(),
            id: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, MemberInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let sig = Some(meta.signature());
        let state = ClusterState::decode(&data).map_err(|e| StorageIOError::read_snapshot(sig.clone(), &e))?;
        let file = SnapshotFile { meta: meta.clone(), data };
        self.files.write(&file).await.map_err(|e| StorageIOError::write_snapshot(sig, &e))?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.state = state;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let files = self.files.clone();
        let read = disk::blocking(move || files.read().map_err(StoreError::into_io)).await;
        let file = read.map_err(|e| {
            self.files.faults.storage(StorageOp::ReadSnapshot, &self.files.path, &e);
            StorageIOError::read_snapshot(None, &e)
        })?;
        Ok(file.map(|f| Snapshot { meta: f.meta, snapshot: Box::new(Cursor::new(f.data)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_builder_that_outlives_its_node_does_not_write_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = watch::channel(ClusterState::default());
        let mut sm = StateMachine::open(dir.path(), tx, Disk::default(), Faults::default()).unwrap();
        let mut early = sm.get_snapshot_builder().await;
        early.build_snapshot().await.expect("an open node writes its snapshot");
        assert!(dir.path().join("snapshot").exists());
        let before = std::fs::read(dir.path().join("snapshot")).unwrap();

        let mut late = sm.get_snapshot_builder().await;
        sm.gate().close();
        assert!(late.build_snapshot().await.is_err(), "a closed gate refuses the write");
        assert_eq!(std::fs::read(dir.path().join("snapshot")).unwrap(), before, "the file is untouched");
    }

    #[tokio::test]
    async fn a_snapshot_of_a_newer_version_or_that_does_not_decode_stops_the_open_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let open = |dir: &Path| {
            StateMachine::open(dir, watch::channel(ClusterState::default()).0, Disk::default(), Faults::default())
        };
        let mut sm = open(dir.path()).unwrap();
        sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        drop(sm);
        let path = dir.path().join("snapshot");
        let (_, bytes) = wal::read_atomic(&Disk::default(), &path, SNAPSHOT_MAGIC, SNAPSHOT_VERSION).unwrap().unwrap();
        assert!(open(dir.path()).is_ok());

        wal::write_atomic(&Disk::default(), &path, SNAPSHOT_MAGIC, SNAPSHOT_VERSION + 1, &bytes).unwrap();
        let err = open(dir.path()).err().expect("a newer snapshot refuses the open");
        assert!(matches!(&err, StoreError::Version { version, .. } if *version == SNAPSHOT_VERSION + 1), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");

        let mut file: SnapshotFile = codec::decode(&bytes).unwrap();
        file.data.extend(b"a field this build does not know");
        wal::write_atomic(&Disk::default(), &path, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &codec::encode(&file).unwrap())
            .unwrap();
        let err = open(dir.path()).err().expect("an undecodable snapshot refuses the open");
        assert!(matches!(&err, StoreError::Undecodable { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
}
