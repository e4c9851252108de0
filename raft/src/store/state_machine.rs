//! The state machine: applies committed commands to the in-memory
//! [`ClusterState`], publishes it on a watch channel, and keeps snapshots in
//! one atomically replaced file (`snapshot`). The log holds everything after
//! the snapshot, so the state machine itself is rebuilt on restart.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

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

/// The applied cluster state and its snapshot file.
pub struct StateMachine {
    path: PathBuf,
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
            last_applied: None,
            last_membership: StoredMembership::default(),
            state: ClusterState::default(),
            tx,
            snapshots_built: 0,
        };
        if let Some(bytes) = wal::read_atomic(&sm.path, SNAPSHOT_MAGIC)? {
            let file: SnapshotFile = codec::decode(&bytes)?;
            let state: ClusterState = codec::decode(&file.data)?;
            sm.last_applied = file.meta.last_log_id;
            sm.last_membership = file.meta.last_membership;
            sm.state = state;
            sm.publish();
        }
        Ok(sm)
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
        wal::write_atomic(&self.path, SNAPSHOT_MAGIC, &bytes).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
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
        let state: ClusterState = codec::decode(&data).map_err(|e| StorageIOError::read_snapshot(sig.clone(), &e))?;
        let file = SnapshotFile { meta: meta.clone(), data };
        let bytes = codec::encode(&file).map_err(|e| StorageIOError::write_snapshot(sig.clone(), &e))?;
        wal::write_atomic(&self.path, SNAPSHOT_MAGIC, &bytes).map_err(|e| StorageIOError::write_snapshot(sig, &e))?;
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
