//! Raft-replicated ring membership for ha-metrics-server.
//!
//! Every replica runs one [`Node`]: a durable openraft 0.9 node whose state
//! machine is the [`ClusterState`] (`epoch` and members with their ring
//! state). The server mounts [`Node::routes`] on its peer listener, follows
//! [`Node::state`] to rebuild its ring, reports scrape health with
//! [`Node::set_scrape_healthy`] and calls [`Node::leave`] on SIGTERM.
//!
//! Layout (as openraft's raft-kv-memstore example): [`store`] (durable log,
//! vote, snapshots, state machine), [`network`] (wire format, client,
//! routes), [`membership`] (bootstrap, heartbeats, failure detector,
//! reconcile), [`state`] (the pure replicated state), [`node`] (the node).

mod app;
pub mod codec;
pub mod config;
pub mod membership;
pub mod network;
pub mod node;
pub mod state;
pub mod status;
pub mod store;
pub mod types;

pub use config::RaftConfig;
pub use network::client::{CallError, PeerClient};
pub use network::wire::LeaveMode;
pub use node::{Error, Node};
pub use state::{
    ClusterState, Command, CommandResult, Member, MemberInfo, MemberState, NodeId, Retired,
};
pub use status::{MemberStatus, Role, StatusView};
