//! Who owns which kubelet and who holds copies of its points, as a pure
//! function of the committed cluster state (Raft's [`raft::ClusterState`]:
//! its ring parameters, replication factor and Active members) and the
//! kubelet names: [`hash`] is the one stable hash, [`ring`] the one place
//! that computes owners and holders, [`view`] what one replica acts on at one
//! epoch. Written as Garage writes its cluster layout: plain data, a pure
//! computation, a `check()` of invariants, tests beside it. This module must
//! not do I/O, read clocks or informers, or commit anything; moving points
//! between holders is `replica`'s job, scraping `scrape`'s.

pub mod hash;
pub mod ring;
pub mod view;

pub use hash::{HASH_VERSION, StableBuildHasher, StableHasher, hash64};
pub use ring::{Holders, MAX_HOLDERS, MAX_VNODES, Ring, RingError, RingViolation};
pub use view::{Fallback, MemberEntry, Mode, Ownership};

#[cfg(test)]
mod tests;
