//! Tests of the ownership layer. Golden values pin the hash and the placement
//! (a changed function must fail here, not move owners in a rolling update);
//! a naive scan over all points cross-checks the ring; the movement and
//! balance properties are the ones users notice (a replica leaving moves only
//! its kubelets, the split is even). Every ring built here passes `check()`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use proptest::prelude::*;
use raft::fixture::{self, info};
use raft::state::RingParams;
use raft::{ClusterState, Command, MemberState, NodeId};

use super::hash::{finalise, fnv1a};
use super::*;
use crate::scrape::scheduler::offset_fraction;
use sim::cluster::SplitMix;

const CURRENT: RingParams = RingParams::CURRENT;

fn params(vnodes: u32) -> RingParams {
    RingParams { hash_version: HASH_VERSION, vnodes }
}

/// `(100 + i, names[i])`: explicit members with ids unrelated to their names.
fn members(names: &[String]) -> Vec<(NodeId, String)> {
    names.iter().enumerate().map(|(i, n)| (100 + i as NodeId, n.clone())).collect()
}

/// A ring of `members` that passed `check()`.
fn ring(p: RingParams, members: &[(NodeId, String)]) -> Ring {
    let ring = Ring::new(p, 7, members.iter().cloned()).expect("valid ring parameters");
    if let Err(e) = ring.check() {
        panic!("{e} (members {members:?}, {p})");
    }
    ring
}

/// StatefulSet-style names `prefix-0 .. prefix-(n-1)`.
fn family(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The simulator's node names `node-0 .. node-(k-1)`.
fn sim_nodes(k: usize) -> Vec<String> {
    family("node", k)
}

/// `k` distinct pseudo-random DNS-label-like names drawn from `seed`.
fn random_names(seed: u64, k: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-.";
    let mut rng = SplitMix::new(seed);
    let mut names = BTreeSet::new();
    while names.len() < k {
        let len = rng.range(3, 30);
        names.insert((0..len).map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64) as usize] as char).collect());
    }
    names.into_iter().collect()
}

/// The first `rf` holders by scanning every point: repeatedly, the member
/// whose point has the smallest clockwise distance from the key (`point −
/// key`, wrapping), 0 when they are equal (hashring's `get` takes a point
/// equal to the key, and wraps past the largest point to the smallest),
/// among the members not yet taken. Points are placed by the specification's
/// bytes, not by the ring's `Hash` impl.
fn naive(points: &[(u64, NodeId)], node: &str, rf: usize) -> Vec<NodeId> {
    let k = hash64(node.as_bytes());
    let mut taken: Vec<NodeId> = Vec::new();
    while taken.len() < rf {
        let next = points
            .iter()
            .filter(|(_, id)| !taken.contains(id))
            .map(|(h, id)| (h.wrapping_sub(k), *id))
            .min()
            .map(|p| p.1);
        match next {
            Some(id) => taken.push(id),
            None => break,
        }
    }
    taken
}

fn spec_points(p: RingParams, members: &[(NodeId, String)]) -> Vec<(u64, NodeId)> {
    let point = |name: &str, i: u32| hash64(&[name.as_bytes(), &[0xff], &i.to_le_bytes()].concat());
    members.iter().flat_map(|(id, name)| (0..p.vnodes).map(move |i| (point(name, i), *id))).collect()
}

/// Kubelets per member.
fn counts(ring: &Ring, nodes: &[String]) -> BTreeMap<NodeId, usize> {
    let mut counts: BTreeMap<NodeId, usize> = ring.members().map(|(id, _)| (id, 0)).collect();
    for n in nodes {
        if let Some(owner) = ring.owner(n) {
            *counts.entry(owner).or_default() += 1;
        }
    }
    counts
}

fn max_over_mean(ring: &Ring, nodes: &[String]) -> f64 {
    let max = counts(ring, nodes).into_values().max().unwrap_or(0);
    max as f64 * ring.len() as f64 / nodes.len() as f64
}

fn member_names(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,14}", size).prop_map(|s| s.into_iter().collect())
}

fn node_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(prop_oneof![4 => "[a-z0-9][a-z0-9.-]{0,30}", 1 => "\\PC{0,12}"], 1..40)
}

/// Mostly few points (wrap-around and neighbouring points of one member are
/// common), sometimes as many as in production.
fn vnodes() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 1u32..=64, 1 => Just(1024u32), 1 => Just(CURRENT.vnodes)]
}

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

// ---- building the ring ----

/// A state whose members `r0 ..` have ids 1 .. and the given states.
fn state_with(states: &[MemberState], ring: Option<RingParams>) -> ClusterState {
    fixture::state(states.iter().enumerate().map(|(i, st)| (i as NodeId + 1, format!("r{i}"), *st)), ring)
}

#[test]
fn the_ring_is_built_from_the_active_members_and_the_committed_params_only() {
    use MemberState::*;
    let s = state_with(&[Active, Joining, Active, Draining, Down, Active], Some(params(64)));
    let ring = Ring::from_state(&s).expect("committed params");
    ring.check().expect("invariants");
    assert_eq!(ring.members().collect::<Vec<_>>(), [(1, "r0"), (3, "r2"), (6, "r5")]);
    assert_eq!((ring.epoch(), ring.params()), (s.epoch, params(64)));
    for node in sim_nodes(200) {
        assert!(matches!(ring.owner(&node), Some(1 | 3 | 6)), "{node} owned by a member that is not Active");
    }
}

#[test]
fn uncommitted_or_unknown_ring_params_are_typed_errors_and_nobody_owns() {
    let active = [MemberState::Active; 2];
    assert_eq!(Ring::from_state(&state_with(&active, None)).unwrap_err(), RingError::NotCommitted);
    let v2 = RingParams { hash_version: 2, vnodes: 64 };
    let err = Ring::from_state(&state_with(&active, Some(v2))).unwrap_err();
    assert_eq!(err, RingError::UnknownHashVersion { version: 2, known: 1 });
    assert!(err.to_string().contains("hash version 2"), "{err}");
    for vnodes in [0, MAX_VNODES + 1] {
        let err = Ring::from_state(&state_with(&active, Some(params(vnodes)))).unwrap_err();
        assert_eq!(err, RingError::BadVnodes { vnodes });
    }
}

#[test]
fn a_ring_without_active_members_owns_nothing() {
    let ring = Ring::from_state(&state_with(&[MemberState::Joining], Some(CURRENT))).expect("committed params");
    ring.check().expect("invariants");
    assert!(ring.is_empty());
    assert_eq!((ring.owner("node-0"), ring.successor("node-0")), (None, None));
    assert!(sim_nodes(10).iter().all(|n| ring.holders(n, 3).is_empty()));
}

#[test]
fn a_single_member_owns_everything_and_has_no_successor() {
    let ring = ring(CURRENT, &members(&family("metrics-server", 1)));
    for node in sim_nodes(100) {
        assert_eq!((ring.owner(&node), ring.successor(&node)), (Some(100), None));
    }
}

#[test]
fn members_with_the_same_id_or_name_are_refused() {
    let dup_name = [(1, "a".to_string()), (2, "a".to_string())];
    assert_eq!(
        Ring::new(CURRENT, 1, dup_name).unwrap_err(),
        RingError::DuplicateName { name: "a".into(), first: 1, second: 2 }
    );
    let dup_id = [(1, "a".to_string()), (1, "b".to_string())];
    assert_eq!(Ring::new(CURRENT, 1, dup_id).unwrap_err(), RingError::DuplicateId { id: 1 });
}

/// Points are keyed by name: a replica that comes back with an empty data dir
/// (new node id, same name) takes back exactly the kubelets it had.
#[test]
fn a_new_incarnation_of_a_replica_keeps_its_kubelets() {
    let mut s = state_with(&[MemberState::Active; 3], Some(params(256)));
    let before = Ring::from_state(&s).expect("committed params");
    s.apply(&Command::Join { id: 42, info: info("r1") });
    s.apply(&Command::SetStates(vec![(42, MemberState::Active)]));
    let after = Ring::from_state(&s).expect("committed params");
    after.check().expect("invariants");
    let renamed = |id: Option<NodeId>| id.map(|id| if id == 2 { 42 } else { id });
    for node in sim_nodes(1000) {
        assert_eq!(after.owner(&node), renamed(before.owner(&node)), "{node}");
        assert_eq!(after.successor(&node), renamed(before.successor(&node)), "{node}");
    }
}

/// Pins the whole placement (hash, point bytes, hashring's lookup rule):
/// computed by an independent implementation of the module's specification.
#[test]
fn owners_and_successors_of_a_pinned_ring_do_not_change() {
    let ms = members(&family("metrics-server", 3));
    let ring = ring(params(64), &ms);
    let golden = [
        ("node-0", 2, 1),
        ("node-1", 0, 2),
        ("node-2", 0, 2),
        ("node-3", 0, 2),
        ("node-4", 1, 0),
        ("node-5", 2, 0),
        ("node-6", 1, 2),
        ("node-7", 1, 2),
        ("node-8", 1, 2),
        ("node-9", 2, 0),
        ("node-10", 2, 1),
        ("node-11", 0, 1),
    ];
    for (node, owner, successor) in golden {
        assert_eq!(ring.owner(node), Some(ms[owner].0), "owner of {node}");
        assert_eq!(ring.successor(node), Some(ms[successor].0), "successor of {node}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn holders_at_every_factor_equal_a_naive_scan_over_all_points(
        names in member_names(1..=7), vnodes in vnodes(), nodes in node_names(), rf in 1usize..=5
    ) {
        let ms = members(&names);
        let ring = ring(params(vnodes), &ms);
        let points = spec_points(params(vnodes), &ms);
        for node in nodes.iter().chain(&names) {
            let holders = ring.holders(node, rf);
            let want = naive(&points, node, rf);
            prop_assert_eq!(holders.as_slice(), want.as_slice(), "{:?} rf {}", node, rf);
            prop_assert_eq!(holders.len(), rf.min(ms.len()), "rf distinct members, or all of them");
            let distinct: BTreeSet<NodeId> = holders.as_slice().iter().copied().collect();
            prop_assert_eq!(distinct.len(), holders.len(), "holders are distinct");
            prop_assert_eq!(holders.owner(), ring.owner(node));
            prop_assert_eq!(ring.successor(node), naive(&points, node, 2).get(1).copied());
        }
    }

    #[test]
    fn rings_built_in_any_member_order_agree_on_every_holder(
        (names, shuffled) in member_names(1..=7).prop_flat_map(|n| (Just(n.clone()), Just(n).prop_shuffle())),
        vnodes in vnodes(), nodes in node_names(), rf in 1usize..=5
    ) {
        let ms = members(&names);
        let by_name: BTreeMap<&String, NodeId> = ms.iter().map(|(id, n)| (n, *id)).collect();
        let reordered: Vec<(NodeId, String)> = shuffled.iter().map(|n| (by_name[n], n.clone())).collect();
        let (a, b) = (ring(params(vnodes), &ms), ring(params(vnodes), &reordered));
        for node in &nodes {
            prop_assert_eq!(a.holders(node, rf), b.holders(node, rf));
        }
    }

    #[test]
    fn removing_a_member_moves_only_the_copies_it_held(
        names in member_names(2..=7), gone in any::<prop::sample::Index>(), vnodes in vnodes(), seed in any::<u64>(),
        rf in 1usize..=5
    ) {
        let ms = members(&names);
        let gone = ms[gone.index(ms.len())].0;
        let rest: Vec<_> = ms.iter().filter(|(id, _)| *id != gone).cloned().collect();
        let (before, after) = (ring(params(vnodes), &ms), ring(params(vnodes), &rest));
        for node in random_names(seed, 300) {
            let (old, new) = (before.holders(&node, rf), after.holders(&node, rf));
            if !old.contains(gone) {
                prop_assert_eq!(old, new, "{} did not hold a copy on the removed member", node);
                continue;
            }
            // Its place goes to the next distinct member clockwise: every
            // other holder keeps its copy, in the same order.
            let kept: Vec<NodeId> = old.as_slice().iter().copied().filter(|id| *id != gone).collect();
            prop_assert_eq!(&new.as_slice()[..kept.len()], kept.as_slice(), "{}", node);
            let added: Vec<NodeId> = new.as_slice()[kept.len()..].to_vec();
            let expected_added = if old.len() == rf && ms.len() > rf { 1 } else { 0 };
            prop_assert_eq!(added.len(), expected_added, "{}: {:?} -> {:?}", node, old, new);
            prop_assert_eq!(
                after.owner(&node),
                if before.owner(&node) == Some(gone) { before.successor(&node) } else { before.owner(&node) }
            );
        }
    }
}

// ---- movement on addition and balance ----

/// Relative σ of one member's kubelet count, K kubelets over N members with
/// V points each: binomial sampling of the keys, sqrt((1 − 1/N)·N/K), plus
/// the ring's own arc noise, about 1/sqrt(V).
fn sigma(n: usize, k: usize, v: u32) -> f64 {
    let (n, k) = (n as f64, k as f64);
    ((1.0 - 1.0 / n) * n / k + 1.0 / f64::from(v)).sqrt()
}

/// The deterministic balance goal on the names the simulator generates and
/// both StatefulSet-style member families; prints the figures
/// (`cargo nextest run -p ha-metrics-server balance --no-capture`). It pins
/// `RingParams::CURRENT.vnodes`: fewer points (4,096) miss 1.05 here
/// (metrics-server-0..4 at 1.052).
#[test]
fn balance_of_ten_thousand_simulated_nodes_is_within_five_percent_at_three_to_five_members() {
    let nodes = sim_nodes(10_000);
    let mut worst = Vec::new();
    for prefix in ["metrics-server", "replica"] {
        for n in 3..=5 {
            let ring = ring(CURRENT, &members(&family(prefix, n)));
            let ratio = max_over_mean(&ring, &nodes);
            let counts: Vec<usize> = counts(&ring, &nodes).into_values().collect();
            println!("{prefix}-0..{}, {} vnodes: max/mean {ratio:.4} {counts:?}", n - 1, CURRENT.vnodes);
            if ratio > 1.05 {
                worst.push((prefix, n, ratio));
            }
        }
    }
    assert!(worst.is_empty(), "max/mean above 1.05: {worst:?}");
}

/// Build and lookup cost at five members, printed (dev profile, so an upper
/// bound); the assertion only catches a cost that grew by orders of magnitude.
#[test]
fn building_and_querying_the_ring_is_cheap() {
    let ms = members(&family("metrics-server", 5));
    let start = Instant::now();
    let ring = Ring::new(CURRENT, 1, ms.iter().cloned()).expect("valid ring parameters");
    let build = start.elapsed();
    let nodes = sim_nodes(10_000);
    let start = Instant::now();
    let owned = nodes.iter().filter(|n| ring.owner(n) == Some(100)).count();
    let owner = start.elapsed() / nodes.len() as u32;
    let start = Instant::now();
    let backed = nodes.iter().filter(|n| ring.successor(n) == Some(100)).count();
    let successor = start.elapsed() / nodes.len() as u32;
    let start = Instant::now();
    let held = nodes.iter().filter(|n| ring.holders(n, 3).contains(100)).count();
    let holders = start.elapsed() / nodes.len() as u32;
    println!(
        "5 members × {} vnodes: build {build:?}, owner {owner:?}/lookup, successor {successor:?}/lookup, \
         3 holders {holders:?}/lookup",
        CURRENT.vnodes
    );
    assert!(owned < backed + owned && backed > 0 && held >= owned + backed, "{owned} {backed} {held}");
    assert!(build.as_secs() < 10, "building a 5-member ring took {build:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A new member takes its fair share from everyone and nothing moves
    /// between old members. The new member's share is 1/(N+1) with absolute σ
    /// ≤ 1/(N+1)·sigma(N+1, K, V) ≈ 0.5 % at K = 10,000: + 3 % is over 5σ.
    #[test]
    fn adding_a_member_moves_about_its_share_and_only_to_it(
        names in member_names(3..=6), seed in any::<u64>()
    ) {
        let (old, new) = names.split_at(names.len() - 1);
        let ms = members(&names);
        let (before, after) = (ring(CURRENT, &ms[..old.len()]), ring(CURRENT, &ms));
        let newcomer = ms[old.len()].0;
        let nodes = random_names(seed, 10_000);
        let mut moved = 0;
        for node in &nodes {
            if after.owner(node) != before.owner(node) {
                prop_assert_eq!(after.owner(node), Some(newcomer), "{} moved between old members", node);
                moved += 1;
            }
        }
        let fraction = moved as f64 / nodes.len() as f64;
        let fair = 1.0 / ms.len() as f64;
        prop_assert!(fraction <= fair + 0.03, "adding {:?} to {:?} moved {:.3} (fair {:.3})", new, old, fraction, fair);
    }

    /// No pure hash can promise 1.05 for every name set: with K = 10,000 and
    /// N = 5 the sampling noise alone has σ ≈ 2 % per member, so some name
    /// sets land above 1.05 (the deterministic test above pins the simulator's
    /// names). 1 + 6σ (≈ 1.13 at N = 5) fails for one member with probability
    /// about 1e-9, so this cannot flake, yet still catches a ring that lost
    /// its virtual nodes (128 points alone give σ ≈ 9 %).
    #[test]
    fn balance_of_random_names_stays_within_six_sigma(
        members_seed in any::<u64>(), nodes_seed in any::<u64>(), n in 3usize..=5
    ) {
        let ring = ring(CURRENT, &members(&random_names(members_seed, n)));
        let nodes = random_names(nodes_seed, 10_000);
        let bound = 1.0 + 6.0 * sigma(n, nodes.len(), CURRENT.vnodes);
        let ratio = max_over_mean(&ring, &nodes);
        prop_assert!(ratio <= bound, "max/mean {:.4} > {:.4} at {} members", ratio, bound, n);
    }
}

// ---- shares ----

#[test]
fn every_kubelet_has_one_owner_and_its_copies_on_the_next_members() {
    let ms = members(&family("replica", 4));
    let ring = ring(params(1024), &ms);
    let nodes = sim_nodes(2000);
    for rf in 1..=4 {
        let mut held: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in &nodes {
            let h = ring.holders(n, rf);
            assert_eq!(h.len(), rf);
            for id in &h {
                *held.entry(*id).or_default() += 1;
            }
        }
        // Each member holds about rf/members of the kubelets.
        for (id, count) in held {
            let share = count as f64 / nodes.len() as f64;
            let want = rf as f64 / ms.len() as f64;
            assert!((share - want).abs() < 0.08, "member {id:x} holds {share:.3} at rf {rf}, expected about {want:.3}");
        }
    }
    assert_eq!(ring.holders("node-1", 9).len(), 4, "capped at the number of members");
}

#[test]
fn when_a_member_leaves_its_successors_gain_exactly_what_it_owned() {
    let ms = members(&family("metrics-server", 3));
    let nodes = sim_nodes(3000);
    let (before, after) = (ring(params(1024), &ms), ring(params(1024), &ms[1..]));
    let gone = ms[0].0;
    for node in &nodes {
        match before.owner(node) {
            Some(o) if o == gone => assert_eq!(after.owner(node), before.successor(node), "{node}"),
            other => assert_eq!(after.owner(node), other, "{node} moved although its owner stayed"),
        }
    }
}
