//! Tests of the ownership layer. Golden values pin the hash (a changed
//! function must fail here, not move owners in a rolling update).

use std::hash::{BuildHasher, Hasher};

use super::hash::{finalise, fnv1a};
use super::*;
use crate::scrape::scheduler::offset_fraction;

// ---- the hash ----

#[test]
fn fnv1a_matches_the_published_test_vectors() {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    assert_eq!(fnv1a(OFFSET, b""), OFFSET);
    assert_eq!(fnv1a(OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(finalise(0), 0, "the SplitMix64 mix maps 0 to 0");
}

/// Golden values of hash version 1, computed by an independent
/// implementation of the specification; changing the function fails here.
#[test]
fn hash64_golden_values_are_pinned() {
    let golden: [(&[u8], u64); 7] = [
        (b"", 0xf52a_15e9_a9b5_e89b),
        (b"a", 0x02c0_bdbf_4814_20f8),
        (b"node-0", 0x39d5_7125_ce55_4e2b),
        (b"node-1", 0x1395_0d4e_f307_e655),
        (b"node-9999", 0x6e73_3c22_6657_eede),
        (b"metrics-server-0", 0x869f_15cc_dd8b_c0d8),
        (b"ip-10-0-1-17.ec2.internal", 0x4faa_c493_83eb_c2f0),
    ];
    for (bytes, want) in golden {
        assert_eq!(hash64(bytes), want, "hash64({:?})", String::from_utf8_lossy(bytes));
    }
    let point = |name: &[u8], i: u32| hash64(&[name, &[0xff], &i.to_le_bytes()].concat());
    assert_eq!(point(b"metrics-server-0", 0), 0x4270_6009_271f_6af2);
    assert_eq!(point(b"metrics-server-0", 1), 0x6741_b454_4e4e_6e81);
    assert_eq!(point(b"replica-4", 16383), 0x4d6c_5371_e917_92b0);
}

#[test]
fn stable_hasher_streams_bytes_and_writes_integers_little_endian_on_every_platform() {
    let mut h = StableBuildHasher.build_hasher();
    h.write(b"node");
    h.write(b"-1");
    assert_eq!(h.finish(), hash64(b"node-1"), "write(a); write(b) must equal write(a ++ b)");
    assert_eq!(h.finish(), h.finish(), "finish must not change the state");

    let mut h = StableHasher::default();
    h.write_u8(1);
    h.write_u16(0x0203);
    h.write_u32(0x0405_0607);
    h.write_u64(0x0809_0a0b_0c0d_0e0f);
    h.write_u128(0x1011_1213_1415_1617_1819_1a1b_1c1d_1e1f);
    h.write_usize(7);
    h.write_isize(-2);
    assert_eq!(h.finish(), 0xc741_ef7c_2a27_13a6);

    let bytes = |f: &dyn Fn(&mut StableHasher)| {
        let mut h = StableHasher::default();
        f(&mut h);
        h.finish()
    };
    assert_eq!(bytes(&|h| h.write_i8(-1)), hash64(&[0xff]));
    assert_eq!(bytes(&|h| h.write_i16(-2)), hash64(&(-2i16).to_le_bytes()));
    assert_eq!(bytes(&|h| h.write_i32(-3)), hash64(&(-3i32).to_le_bytes()));
    assert_eq!(bytes(&|h| h.write_i64(-4)), hash64(&(-4i64).to_le_bytes()));
    assert_eq!(bytes(&|h| h.write_i128(-5)), hash64(&(-5i128).to_le_bytes()));
    assert_eq!(bytes(&|h| h.write_usize(9)), hash64(&9u64.to_le_bytes()), "usize is 8 bytes everywhere");
}

#[test]
fn scrape_offsets_keep_their_values_after_moving_to_the_shared_hash() {
    assert_eq!(offset_fraction("node-1"), 0.07649310281251998);
    assert_eq!(offset_fraction("node-1"), (hash64(b"node-1") >> 11) as f64 / (1u64 << 53) as f64);
}
