//! Durable storage under the data dir: this incarnation's identity, the Raft
//! log and vote ([`log`]), the state machine and its snapshots
//! ([`state_machine`]), all framed by [`wal`]. Decides when a data dir can be
//! trusted; a log that lost bytes (torn or corrupt tail) may have lost entries
//! the leader already counted, so it is moved aside and the replica starts as
//! a new incarnation instead of reverting its log under the old id (which
//! openraft's leader treats as a bug).

pub mod log;
pub mod state_machine;
pub mod wal;

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec;
use crate::state::{ClusterState, NodeId};
pub use log::{LogStore, Recovery};
pub use state_machine::StateMachine;

const IDENTITY_MAGIC: &[u8; 8] = b"HARAFTID";
const RAFT_FILES: [&str; 4] = ["raft.wal", "vote", "snapshot", "identity"];

/// Who this data dir belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Raft node id of this incarnation.
    pub node_id: NodeId,
    /// Replica name the dir was created for.
    pub name: String,
    /// Cluster the dir belongs to.
    pub cluster_id: String,
}

/// An opened data dir.
pub struct Opened {
    /// This incarnation.
    pub identity: Identity,
    /// The Raft log and vote.
    pub log: LogStore,
    /// The state machine.
    pub state_machine: StateMachine,
    /// True when this is a new incarnation (empty or untrustworthy data dir).
    pub fresh: bool,
    /// Where damaged files were moved, if they were.
    pub quarantined: Option<PathBuf>,
}

/// Errors opening the data dir.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a named path.
    #[error("data dir {path}: {source}")]
    Io {
        /// The file or dir.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The data dir belongs to another replica or cluster.
    #[error(
        "data dir {path} belongs to replica {found_name} of cluster {found_cluster}, not {name} of {cluster}; use another --data-dir or empty it"
    )]
    Foreign {
        /// The dir.
        path: PathBuf,
        /// Name recorded in the dir.
        found_name: String,
        /// Cluster recorded in the dir.
        found_cluster: String,
        /// Our name.
        name: String,
        /// Our cluster.
        cluster: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// A random node id (never 0): std's per-process random hash keys mixed
/// with the clock and pid.
pub fn random_node_id() -> NodeId {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Opens `dir` for replica `name` of `cluster_id`.
pub fn open(dir: &Path, name: &str, cluster_id: &str, tx: watch::Sender<ClusterState>) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let id_path = dir.join("identity");
    let existing: Option<Identity> = match wal::read_atomic(&id_path, IDENTITY_MAGIC).map_err(io_at(&id_path))? {
        Some(b) => Some(codec::decode(&b).map_err(io_at(&id_path))?),
        None => None,
    };
    let mut quarantined = None;
    if let Some(id) = &existing {
        if id.name != name || id.cluster_id != cluster_id {
            return Err(StoreError::Foreign {
                path: dir.to_path_buf(),
                found_name: id.name.clone(),
                found_cluster: id.cluster_id.clone(),
                name: name.to_string(),
                cluster: cluster_id.to_string(),
            });
        }
        let (log, recovery) = LogStore::open(dir).map_err(io_at(dir))?;
        if recovery.lost_bytes == 0 {
            let state_machine = StateMachine::open(dir, tx).map_err(io_at(dir))?;
            return Ok(Opened { identity: id.clone(), log, state_machine, fresh: false, quarantined: None });
        }
        drop(log);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let aside = dir.join(format!("damaged-{nanos}"));
        tracing::warn!(member = id.node_id, dir = %aside.display(), lost_bytes = recovery.lost_bytes,
            "raft log lost acknowledged bytes; starting as a new incarnation");
        quarantined = Some(aside);
    }
    // New incarnation: move any leftovers aside, then persist the identity first.
    let aside = quarantined.clone().unwrap_or_else(|| dir.join("stale"));
    for f in RAFT_FILES {
        let p = dir.join(f);
        if p.exists() {
            std::fs::create_dir_all(&aside).map_err(io_at(&aside))?;
            std::fs::rename(&p, aside.join(f)).map_err(io_at(&p))?;
        }
    }
    let identity = Identity { node_id: random_node_id(), name: name.to_string(), cluster_id: cluster_id.to_string() };
    let bytes = codec::encode(&identity).map_err(io_at(&id_path))?;
    wal::write_atomic(&id_path, IDENTITY_MAGIC, &bytes).map_err(io_at(&id_path))?;
    let (log, _) = LogStore::open(dir).map_err(io_at(dir))?;
    let state_machine = StateMachine::open(dir, tx).map_err(io_at(dir))?;
    Ok(Opened { identity, log, state_machine, fresh: true, quarantined })
}
