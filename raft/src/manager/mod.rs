//! The membership manager: how this replica gets into the cluster
//! (`bootstrap`), tells everyone it is alive (`heartbeat`), and, while it
//! leads, turns liveness into committed states and keeps the Raft membership
//! in line with the cluster state (`leader`). The pure failure-detector
//! logic is in [`detector`].

pub(crate) mod bootstrap;
pub mod detector;
pub(crate) mod heartbeat;
pub(crate) mod leader;
pub(crate) mod sync;

#[cfg(test)]
mod tests;
