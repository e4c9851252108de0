//! The server's own peer messages (query fan-out, copies of points), beside
//! Raft's: paths and bodies, in one place. They travel in Raft's envelope
//! (protocol version, cluster id, sender, target) with its codec and decode
//! limits; every route answers with the bare reply type. Replies carry data,
//! never a verdict: the asking replica decides what a missing part means.
//!
//! These shapes are those of peer protocol 2, unchanged in protocol 3, so a
//! replica of either release answers the other during a rolling upgrade.

use serde::{Deserialize, Serialize};

use raft::NodeId;

use crate::model::{NodeBatch, NodeUsage, PodUsage};

/// Route paths on the peer port.
pub mod path {
    /// Usage of named nodes.
    pub const NODES: &str = "/metrics/v1/nodes";
    /// Usage of the pods a query selects.
    pub const PODS: &str = "/metrics/v1/pods";
    /// Points pushed to a node's other holders (copies) or new owner (handover).
    pub const PUSH: &str = "/metrics/v1/push";
    /// The last two points of named nodes, pulled by a member about to own them.
    pub const POINTS: &str = "/metrics/v1/points";
}

/// Which of the answering replica's points to answer from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The nodes it scrapes itself (its own or in an unreachable owner's
    /// place), whether it has scraped them yet or holds copies of them.
    Owned,
    /// The nodes the given member (an owner that does not answer) owns, from
    /// the copies held here.
    BackupOf(NodeId),
    /// Anything held here: the last resort while ownership is moving and
    /// the replicas' epochs differ.
    Any,
}

/// Points sent to another member: after each scrape to the node's other
/// holders (copies), or at an ownership change to the node's new owner (a
/// handover) and its new holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The sender's epoch.
    pub epoch: u64,
    /// A handover (the receiver owns these nodes now) rather than a backup.
    pub handover: bool,
    /// `(node, batch)`, oldest first per node.
    pub points: Vec<(String, NodeBatch)>,
}

/// A [`Push`] as the sender encodes it, borrowing the batches it holds
/// (the same bytes on the wire).
#[derive(Debug, Clone, Serialize)]
pub struct PushOut<'a> {
    /// See [`Push::epoch`].
    pub epoch: u64,
    /// See [`Push::handover`].
    pub handover: bool,
    /// See [`Push::points`].
    pub points: Vec<(&'a str, &'a NodeBatch)>,
}

/// What the receiver did with a [`Push`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    /// Batches newer than what it held, merged.
    pub taken: usize,
}

/// The last two points of these nodes, from whatever the receiver holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsQuery {
    /// The asker's epoch.
    pub epoch: u64,
    /// Node names.
    pub names: Vec<String>,
}

/// Per node, the batches that rebuild its last two points (empty: none held).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsReply {
    /// `(node, batches)`.
    pub points: Vec<(String, Vec<NodeBatch>)>,
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
