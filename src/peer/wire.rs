//! The server's own peer messages (query fan-out), beside Raft's: paths and
//! bodies, in one place. They travel in Raft's envelope (protocol version,
//! cluster id, sender, target) with its codec and decode limits; every route
//! answers with the bare reply type. Replies carry data, never a verdict:
//! the asking replica decides what a missing part means.

use serde::{Deserialize, Serialize};

use crate::model::{NodeUsage, PodUsage};

/// Route paths on the peer port.
pub mod path {
    /// Usage of named nodes.
    pub const NODES: &str = "/metrics/v1/nodes";
    /// Usage of the pods a query selects.
    pub const PODS: &str = "/metrics/v1/pods";
}

/// Which of the answering replica's points to answer from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The nodes it scrapes itself.
    Owned,
}

/// Usage of these nodes, from what the receiver holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesQuery {
    /// The asker's epoch (for logs and mismatch diagnosis).
    pub epoch: u64,
    /// Which points.
    pub source: Source,
    /// Node names.
    pub names: Vec<String>,
}

/// The nodes the receiver could serve (absent ones are not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesReply {
    /// The receiver's epoch when it answered.
    pub epoch: u64,
    /// `(name, usage)` of each servable node.
    pub items: Vec<(String, NodeUsage)>,
}

/// Usage of the pods a list (or get) selects, from what the receiver holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodsQuery {
    /// The asker's epoch.
    pub epoch: u64,
    /// Which points.
    pub source: Source,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// The raw label selector (empty: everything).
    pub labels: String,
    /// The raw field selector (empty: everything).
    pub fields: String,
    /// One pod, `(namespace, name)`, for a get.
    pub one: Option<(String, String)>,
}

/// One pod the receiver could serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodAnswer {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node that reported it (lets the asker route the next get of it).
    pub node: String,
    /// Its usage.
    pub usage: PodUsage,
}

/// The pods the receiver could serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodsReply {
    /// The receiver's epoch when it answered.
    pub epoch: u64,
    /// The pods.
    pub items: Vec<PodAnswer>,
}
