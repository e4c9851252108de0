//! Peer transport: the wire format ([`wire`]), the HTTP client
//! ([`client`]), openraft's network traits over it ([`raft`]), the routes
//! the server mounts (`server`) and the binding of every request's sender
//! to its client certificate ([`bind`], with `introductions` of ids this
//! node does not know yet).

pub mod bind;
pub mod client;
pub(crate) mod introductions;
pub mod raft;
pub(crate) mod server;
pub mod wire;
