//! The openraft type configuration: our command, result and node types.

use std::io::Cursor;

use crate::state::{Command, CommandResult, MemberInfo};

pub use crate::state::NodeId;

openraft::declare_raft_types!(
    /// Raft types of the membership cluster.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = MemberInfo,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft handle of this crate.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// Raft metrics.
pub type Metrics = openraft::RaftMetrics<NodeId, MemberInfo>;
