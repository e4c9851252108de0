//! The peer RPC wire format: every request is an [`Envelope`] (protocol
//! version, cluster id, sender and target node ids, body) encoded with
//! [`crate::codec`]; the paths and bodies of every route live here and only
//! here. Replies are the bare reply type with HTTP 200; a refused request gets
//! a 4xx/5xx status with a plain-text reason.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::state::{MemberInfo, NodeId};

/// Version of the peer protocol this release speaks. Release step rule: a
/// node accepts requests of its own version and the one before
/// ([`MIN_PROTOCOL_VERSION`]), sends every message whose shape both share as
/// the older version ([`BASE_VERSION`]) and a message whose shape changed
/// only to a peer heard speaking the newer one (every request says, in
/// [`PROTOCOL_HEADER`], the highest version its sender speaks), and uses a
/// feature that needs new replicated data only once every member speaks the
/// version that introduced it (see [`REPLICATION_SINCE`]). A rolling upgrade
/// by one release therefore never splits the cluster.
pub const PROTOCOL_VERSION: u32 = 3;
/// The oldest protocol version still accepted (the previous release's).
pub const MIN_PROTOCOL_VERSION: u32 = 2;
/// The version messages go out as when their shape is the same in every
/// version accepted (the previous release accepts it).
pub const BASE_VERSION: u32 = MIN_PROTOCOL_VERSION;
/// The protocol version that introduced committed ring parameters
/// (`Command::SetRing`); the leader commits them only when every member
/// has been heard speaking at least this version.
pub const RING_SINCE: u32 = 2;
/// The protocol version that introduced the replication factor
/// (`Command::SetReplication`, heartbeats that carry each member's wish).
pub const REPLICATION_SINCE: u32 = 3;
/// Request header carrying the highest protocol version the sender speaks
/// (older releases ignore it).
pub const PROTOCOL_HEADER: &str = "x-ha-protocol";
/// `to` value of requests addressed to whoever listens at an address
/// (hello and manage), because the sender does not know the target's id yet.
pub const ANY_NODE: NodeId = 0;
/// Header carrying the sender's node id in hex (for logs and test fault layers).
pub const FROM_HEADER: &str = "x-ha-raft-from";

/// Route paths, relative to the peer listener's root.
pub mod path {
    /// openraft AppendEntries.
    pub const APPEND: &str = "/raft/v1/append";
    /// openraft RequestVote.
    pub const VOTE: &str = "/raft/v1/vote";
    /// openraft InstallSnapshot (chunked).
    pub const SNAPSHOT: &str = "/raft/v1/snapshot";
    /// Our liveness heartbeat.
    pub const HEARTBEAT: &str = "/raft/v1/heartbeat";
    /// Who are you, and which cluster do you know.
    pub const HELLO: &str = "/raft/v1/hello";
    /// Membership requests forwarded to the leader (join, drain, leave).
    pub const MANAGE: &str = "/raft/v1/manage";
    /// The receiver's last applied log index (protocol 2): a restarted node
    /// asks the leader, then waits to have applied as much before it trusts
    /// its ring.
    pub const APPLIED: &str = "/raft/v1/applied";
}

/// Every peer request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u32,
    /// Cluster id of the sender; must equal the receiver's.
    pub cluster_id: String,
    /// Node id of the sender.
    pub from: NodeId,
    /// Node id the sender means to reach, or [`ANY_NODE`] where allowed.
    pub to: NodeId,
    /// The request.
    pub body: T,
}

/// The fields of [`Envelope`] before the body, in the same order, so a
/// receiver checks version, cluster and target before decoding the body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeHead {
    /// See [`Envelope::protocol_version`].
    pub protocol_version: u32,
    /// See [`Envelope::cluster_id`].
    pub cluster_id: String,
    /// See [`Envelope::from`].
    pub from: NodeId,
    /// See [`Envelope::to`].
    pub to: NodeId,
}

/// Liveness heartbeat, sent by every member to every other member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender's replica name.
    pub name: String,
    /// Whether the sender's scraping is healthy.
    pub scrape_healthy: bool,
    /// Whether the sender is leaving (drain requested); it must not be made Active again.
    pub leaving: bool,
    /// The epoch at which the sender holds the last points of the nodes it
    /// would own if made Active (a precondition of every way into Active,
    /// valid only at that epoch); [`Readiness::ANY_EPOCH`] for a member
    /// without handover; `None`: not ready.
    pub ready_to_own: Option<u64>,
    /// The replication factor the sender is configured with (protocol 3;
    /// `None` from a previous-release sender). The leader commits a factor
    /// only when every member asks for the same one.
    pub replication: Option<u32>,
    /// Kubelets the sender owns and has failed to scrape in its recent
    /// rounds (protocol 3; at most [`MAX_FAILING`]).
    pub failing: Vec<String>,
}

/// Most failing kubelets one heartbeat lists.
pub const MAX_FAILING: usize = 1024;

/// Values of [`Heartbeat::ready_to_own`].
pub struct Readiness;

impl Readiness {
    /// Ready at whatever epoch (crate users without handover).
    pub const ANY_EPOCH: u64 = u64::MAX;

    /// Whether a member saying `ready` may be made Active at `epoch`.
    pub fn holds(ready: Option<u64>, epoch: u64) -> bool {
        ready.is_some_and(|e| e == epoch || e == Readiness::ANY_EPOCH)
    }
}

/// [`Heartbeat`] in protocol version 2 (no replication factor, no failing kubelets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatV2 {
    /// See [`Heartbeat::name`].
    pub name: String,
    /// See [`Heartbeat::scrape_healthy`].
    pub scrape_healthy: bool,
    /// See [`Heartbeat::leaving`].
    pub leaving: bool,
    /// See [`Heartbeat::ready_to_own`].
    pub ready_to_own: Option<u64>,
}

impl From<HeartbeatV2> for Heartbeat {
    /// A version-2 sender asks for no replication factor and lists no failing kubelets.
    fn from(h: HeartbeatV2) -> Heartbeat {
        Heartbeat {
            name: h.name,
            scrape_healthy: h.scrape_healthy,
            leaving: h.leaving,
            ready_to_own: h.ready_to_own,
            replication: None,
            failing: Vec::new(),
        }
    }
}

impl From<&Heartbeat> for HeartbeatV2 {
    fn from(h: &Heartbeat) -> HeartbeatV2 {
        HeartbeatV2 {
            name: h.name.clone(),
            scrape_healthy: h.scrape_healthy,
            leaving: h.leaving,
            ready_to_own: h.ready_to_own,
        }
    }
}

/// Reply to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The leader as the receiver knows it.
    pub leader: Option<NodeId>,
}

/// Reply to hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The replier's node id.
    pub node_id: NodeId,
    /// The replier's name and addresses.
    pub info: MemberInfo,
    /// Whether the replier belongs to an initialized cluster.
    pub initialized: bool,
    /// Raft voters the replier knows.
    pub voters: BTreeSet<NodeId>,
    /// Raft nodes (voters and learners) the replier knows.
    pub nodes: BTreeMap<NodeId, MemberInfo>,
    /// The leader the replier knows.
    pub leader: Option<(NodeId, MemberInfo)>,
}

/// How a replica leaves. The server decides: `ScaleDown` when this replica
/// is not coming back (its StatefulSet ordinal is at or above the desired
/// replica count, or the operator said so); `Restart` otherwise (rolling
/// update, node drain, plain SIGTERM), which keeps the voters stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaveMode {
    /// Leave the ring, stay in Raft (rolling restart): committed Draining only;
    /// the same data dir comes back and is made Active again.
    Restart,
    /// Leave for good (replica count lowered): Draining, then retired and
    /// removed from the Raft membership.
    ScaleDown,
}

/// A membership request, handled by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Manage {
    /// The sender joins the ring with this info.
    Join(MemberInfo),
    /// The sender leaves the ring (commit Draining).
    Drain,
    /// The sender is gone for good (commit retirement).
    Retire,
}

/// Reply to a membership request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManageReply {
    /// Committed; the epoch after the change.
    Done {
        /// Epoch after the change.
        epoch: u64,
    },
    /// The receiver is not the leader; ask this one.
    NotLeader {
        /// The leader, if known.
        leader: Option<MemberInfo>,
    },
    /// Refused, with the reason.
    Refused(String),
}
