//! The state machine: applies committed commands to the in-memory
//! [`ClusterState`], publishes it on a watch channel, and keeps snapshots in
//! one atomically replaced file (`snapshot`). The log holds everything after
//! the snapshot, so the state machine itself is rebuilt on restart.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::wal;
use crate::codec;
use crate::state::{ClusterState, CommandResult, MemberInfo, NodeId};
use crate::types::{Entry, LogId, StorageError, TypeConfig};

const SNAPSHOT_MAGIC: &[u8; 8] = b"HARAFTSN";

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
            return Err(io::Error::other("the node stopped; its snapshot is not written"));
        }
        write()
    }
}

/// The applied cluster state and its snapshot file.
pub struct StateMachine {
    path: PathBuf,
    gate: SnapshotGate,
    last_applied: Option<LogId>,
    last_membership: StoredMembership<NodeId, MemberInfo>,
    state: ClusterState,
    tx: watch::Sender<ClusterState>,
    snapshots_built: u64,
}

impl StateMachine {
    /// Opens the state machine under `dir`, restoring the last snapshot.
    pub fn open(dir: &Path, tx: watch::Sender<ClusterState>) -> io::Result<StateMachine> {
        let path = dir.join("snapshot");
        let mut sm = StateMachine {
            path,
            gate: SnapshotGate::new(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            state: ClusterState::default(),
            tx,
            snapshots_built: 0,
        };
        if let Some(bytes) = wal::read_atomic(&sm.path, SNAPSHOT_MAGIC)? {
            let file: SnapshotFile = codec::decode(&bytes)?;
            let state = ClusterState::decode(&file.data)?;
            sm.last_applied = file.meta.last_log_id;
            sm.last_membership = file.meta.last_membership;
            sm.state = state;
            sm.publish();
        }
        Ok(sm)
    }

    /// The gate the node closes when it stops.
    pub fn gate(&self) -> SnapshotGate {
        self.gate.clone()
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

    fn read_snapshot(&self) -> io::Result<Option<SnapshotFile>> {
        match wal::read_atomic(&self.path, SNAPSHOT_MAGIC)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

/// Builds a snapshot from a copy of the state taken when it was requested.
pub struct Builder {
    path: PathBuf,
    gate: SnapshotGate,
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
        let bytes = codec::encode(&file).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        self.gate
            .write(|| wal::write_atomic(&self.path, SNAPSHOT_MAGIC, &bytes))
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
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
            path: self.path.clone(),
            gate: self.gate.clone(),
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
        let bytes = codec::encode(&file).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        self.gate
            .write(|| wal::write_atomic(&self.path, SNAPSHOT_MAGIC, &bytes))
            .map_err(|e| StorageIOError::write_snapshot(sig, &e))?;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.state = state;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let file = self.read_snapshot().map_err(|e| StorageIOError::read_snapshot(None, &e))?;
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
        let mut sm = StateMachine::open(dir.path(), tx).unwrap();
        let mut early = sm.get_snapshot_builder().await;
        early.build_snapshot().await.expect("an open node writes its snapshot");
        assert!(dir.path().join("snapshot").exists());
        let before = std::fs::read(dir.path().join("snapshot")).unwrap();

        let mut late = sm.get_snapshot_builder().await;
        sm.gate().close();
        assert!(late.build_snapshot().await.is_err(), "a closed gate refuses the write");
        assert_eq!(std::fs::read(dir.path().join("snapshot")).unwrap(), before, "the file is untouched");
    }
}
