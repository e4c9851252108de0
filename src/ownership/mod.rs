//! Who owns which kubelet, as a pure function of the committed cluster state
//! and the kubelet names. So far: [`hash`], the one stable hash. This module
//! must not do I/O, read clocks or informers, or commit anything.

pub mod hash;

pub use hash::{HASH_VERSION, StableBuildHasher, StableHasher, hash64};

#[cfg(test)]
mod tests;
