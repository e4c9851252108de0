//! Peer transport: the wire format ([`wire`]), the HTTP client
//! ([`client`]), openraft's network traits over it ([`raft`]) and the routes
//! the server mounts (`server`).

pub mod client;
pub mod raft;
pub(crate) mod server;
pub mod wire;
