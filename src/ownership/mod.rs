//! Who owns which kubelet, as a pure function of the committed cluster state
//! (Raft's [`raft::ClusterState`]: its ring parameters and Active members) and
//! the kubelet names: [`hash`] is the one stable hash, [`ring`] the one place
//! that computes owners and successors, [`plan`] one member's share and what
//! changed. Written as Garage writes its cluster layout: plain data, a pure
//! computation, a `check()` of invariants, tests beside it. This module must
//! not do I/O, read clocks or informers, or commit anything; applying a plan
//! (scraping, handover) is the caller's job.

pub mod hash;
pub mod plan;
pub mod ring;
pub mod view;

pub use hash::{HASH_VERSION, StableBuildHasher, StableHasher, hash64};
pub use plan::{Diff, Plan, diff};
pub use ring::{MAX_VNODES, Ring, RingError, RingViolation};
pub use view::{Fallback, MemberEntry, Mode, Ownership};

#[cfg(test)]
mod tests;
