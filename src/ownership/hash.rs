//! The one stable 64-bit hash of this project (ring hash version 1), used to
//! place members and kubelets on the ring and to spread scrape offsets.
//! It owns the function's specification and its golden values; it must not
//! change what a given input hashes to (that would move owners between two
//! builds sharing an epoch), and nothing here may use std's `DefaultHasher`,
//! `RandomState` or SipHash, whose output is not promised across releases.
//!
//! Specification, bytes in, number out:
//!
//! 1. FNV-1a 64 over the input bytes: start at `0xcbf2_9ce4_8422_2325`; for
//!    each byte `b`, `h ^= b; h = h.wrapping_mul(0x0000_0100_0000_01b3)`.
//! 2. The SplitMix64 finaliser (FNV alone leaves the high bits of similar
//!    names clustered): `h = (h ^ h >> 30) * 0xbf58_476d_1ce4_e5b9;
//!    h = (h ^ h >> 27) * 0x94d0_49bb_1331_11eb; h ^= h >> 31` (wrapping).
//!
//! [`StableHasher`] feeds the same bytes through [`std::hash::Hasher`]: FNV is
//! a byte stream, so `write(a); write(b)` equals `write(a ++ b)`, every integer
//! is written as its little-endian bytes (`usize`/`isize` as 8 bytes), and
//! `finish` applies the finaliser. std's own `Hash` impls for `str`, slices
//! and collections add separators and length prefixes that std may change, so
//! the ring hashes only its own key types, which call `write` and `write_u32`.

use std::hash::{BuildHasher, Hasher};

/// The ring hash version this module implements.
pub const HASH_VERSION: u32 = 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds `bytes` into an FNV-1a 64 state (step 1 of the specification).
pub(super) fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The SplitMix64 finaliser (step 2 of the specification); a bijection.
pub(super) fn finalise(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The hash of `bytes` (hash version 1).
pub fn hash64(bytes: &[u8]) -> u64 {
    finalise(fnv1a(FNV_OFFSET, bytes))
}

/// [`hash64`] as a [`Hasher`]: the hash of everything written so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableHasher {
    /// FNV-1a state over the bytes written so far (not yet finalised).
    state: u64,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher { state: FNV_OFFSET }
    }
}

macro_rules! little_endian {
    ($($method:ident($t:ty)),* $(,)?) => {
        $(fn $method(&mut self, i: $t) {
            self.write(&i.to_le_bytes());
        })*
    };
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = fnv1a(self.state, bytes);
    }

    little_endian!(
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
    );

    /// As a `u64`, so 32- and 64-bit platforms agree.
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    /// As an `i64`, so 32- and 64-bit platforms agree.
    fn write_isize(&mut self, i: isize) {
        self.write_i64(i as i64);
    }

    fn finish(&self) -> u64 {
        finalise(self.state)
    }
}

/// Builds [`StableHasher`]s; the hasher the ring is built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StableBuildHasher;

impl BuildHasher for StableBuildHasher {
    type Hasher = StableHasher;

    fn build_hasher(&self) -> StableHasher {
        StableHasher::default()
    }
}
