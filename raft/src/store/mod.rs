//! Durable storage under the data dir: this incarnation's identity, the Raft
//! log and vote ([`log`]), the state machine and its snapshots
//! ([`state_machine`]), all framed by [`wal`] and reached through [`disk`].
//! Decides when a data dir can be trusted; a log that lost bytes (torn or
//! corrupt tail) may have lost entries the leader already counted, so it is
//! moved aside (`damaged-<time>`, the newest [`KEEP_DAMAGED`] kept) and the
//! replica starts as a new incarnation instead of reverting its log under
//! the old id (which openraft's leader treats as a bug). Files of another
//! release are never moved aside: they stop the start ([`StoreError`]).

pub mod disk;
pub mod error;
pub mod log;
pub mod state_machine;
pub mod wal;

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec;
use crate::fault::Faults;
use crate::state::{ClusterState, NodeId};
pub use disk::Disk;
pub use error::StoreError;
use error::io_at;
pub use log::{LogStore, Recovery};
pub use state_machine::StateMachine;

const IDENTITY_MAGIC: &[u8; 8] = b"HARAFTID";
/// Version of the identity file's content.
const IDENTITY_VERSION: u32 = 1;
const RAFT_FILES: [&str; 4] = ["raft.wal", "vote", "snapshot", "identity"];
/// How many `damaged-*` copies are kept (the newest); older ones are deleted.
pub const KEEP_DAMAGED: usize = 3;

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

/// A random node id (never 0): std's per-process random hash keys mixed
/// with the clock and pid.
pub fn random_node_id() -> NodeId {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Opens `dir` for replica `name` of `cluster_id`. Blocking. Storage
/// failures after the open are recorded in `faults`.
pub fn open(
    dir: &Path,
    name: &str,
    cluster_id: &str,
    tx: watch::Sender<ClusterState>,
    disk: Disk,
    faults: Faults,
) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let id_path = dir.join("identity");
    let existing: Option<Identity> = match wal::read_atomic(&disk, &id_path, IDENTITY_MAGIC, IDENTITY_VERSION)? {
        Some((_, b)) => Some(codec::decode(&b).map_err(io_at(&id_path))?),
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
        let (log, recovery) = LogStore::open(dir, disk.clone(), faults.clone())?;
        if recovery.lost_bytes == 0 {
            let state_machine = StateMachine::open(dir, tx, disk, faults)?;
            prune_damaged(dir, KEEP_DAMAGED);
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
    prune_damaged(dir, KEEP_DAMAGED);
    let identity = Identity { node_id: random_node_id(), name: name.to_string(), cluster_id: cluster_id.to_string() };
    let bytes = codec::encode(&identity).map_err(io_at(&id_path))?;
    wal::write_atomic(&disk, &id_path, IDENTITY_MAGIC, IDENTITY_VERSION, &bytes).map_err(io_at(&id_path))?;
    let (log, _) = LogStore::open(dir, disk.clone(), faults.clone())?;
    let state_machine = StateMachine::open(dir, tx, disk, faults)?;
    Ok(Opened { identity, log, state_machine, fresh: true, quarantined })
}

/// Deletes all but the newest `keep` `damaged-<nanos>` dirs under `dir`,
/// logging each. A failure is logged and skipped: it never stops a start.
pub fn prune_damaged(dir: &Path, keep: usize) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the data dir for old damaged copies");
            return;
        }
    };
    let mut damaged: Vec<(u128, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let stamp = e.file_name().to_str()?.strip_prefix("damaged-")?.parse::<u128>().ok()?;
            Some((stamp, e.path()))
        })
        .collect();
    damaged.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
    for (_, path) in damaged.into_iter().skip(keep) {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::info!(dir = %path.display(), keep, "deleted an old copy of a damaged raft log"),
            Err(e) => tracing::warn!(dir = %path.display(), error = %e, "cannot delete an old damaged raft log copy"),
        }
    }
}

#[cfg(test)]
mod tests;
