//! Raft-replicated ring membership for ha-metrics-server.
//!
//! Every replica runs one [`Node`]: a durable openraft 0.9 node whose state
//! machine is the [`ClusterState`] (`epoch` and members with their ring
//! state). The server mounts [`Node::routes`] on its peer listener, follows
//! [`Node::state`] to rebuild its ring, reports scrape health with
//! [`Node::set_scrape_healthy`] and calls [`Node::leave`] on SIGTERM.
//!
//! Decisions worth knowing:
//! - Node ids are random per data dir; an empty (or damaged) data dir is a
//!   new incarnation that joins through the cluster and retires the old one.
//!   A log that lost bytes on disk is never trusted under its old id.
//! - Bootstrap needs every declared initial member to answer (hello) and
//!   initializes with the ids they reported; nothing initializes alone.
//! - Every member heartbeats every member (every 500 ms); the leader's
//!   failure detector commits Down after `lease` of silence or unhealthy
//!   scraping, Active after `hysteresis` of health; a new leader judges by
//!   its own table, so a dead leader is Down about one lease after death.
//! - Joining/Down/Draining → Active is automatic once healthy and caught up
//!   (Draining only if the member no longer says it is leaving).
//! - A node whose Raft store fails (ENOSPC, EIO), whose Raft core stops, or
//!   whose membership task keeps panicking has a [`Fault`]: it heartbeats
//!   "unhealthy" from then on (so it is committed Down), and
//!   [`Node::failed`] tells the server when to take the replica down.
//! - Every peer request is bound to its client certificate
//!   (`network::bind`): the sender an envelope names must be the member
//!   the certificate names, a sender no member knows is refused except on
//!   hello and join, and a join must name its joiner by name and address.
//!   Ids this node does not know yet are learned from members' hello
//!   replies, never from the sender's word.
//! - openraft 0.9 campaigns after its leader lease (`election_timeout_max`)
//!   plus a random `[min, max)`: defaults 0.5–1 s give 1.5–2 s.
//!
//! Layout (as openraft's raft-kv-memstore example): [`store`] (durable log,
//! vote, snapshots, state machine), [`network`] (wire format, client,
//! routes), [`manager`] (the membership manager: bootstrap, heartbeats, failure detector,
//! reconcile), [`state`] (the pure replicated state), [`node`] (the node).
//! With the `test-support` feature (tests only), `fixture` builds committed
//! states for unit tests.

mod app;
pub mod codec;
pub mod config;
pub mod fault;
#[cfg(any(test, feature = "test-support"))]
pub mod fixture;
pub mod manager;
pub mod network;
pub mod node;
pub mod state;
pub mod store;
pub mod types;
pub mod view;

pub use config::{ConfigError, RaftConfig};
pub use fault::{Fault, StorageFault, StorageOp};
pub use network::client::{CallError, PeerClient, ReplySize};
pub use network::wire::LeaveMode;
pub use node::{Error, Node};
pub use state::{ClusterState, Command, CommandResult, Member, MemberInfo, MemberState, NodeId, Retired};
pub use view::{ClusterView, MemberView, Role};
