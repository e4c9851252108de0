//! The tables keyed by senders' own ids stay bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn strangers_are_capped_and_expire_while_members_stay() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, Duration::from_millis(1500));
    let members = [1u64, 2, 3];
    let known = |id: NodeId| members.contains(&id);
    for id in members {
        live.record(id, t0, true, false, None);
    }
    // A flood of made-up senders, one per millisecond.
    for i in 0..10_000u64 {
        let now = t0 + Duration::from_millis(i);
        live.record(1_000 + i, now, true, false, None);
        live.prune(known, now);
    }
    assert_eq!(live.seen.len(), members.len() + MAX_STRANGERS);
    assert!(members.iter().all(|id| live.seen.contains_key(id)), "members are never evicted");
    assert!(live.seen.contains_key(&(1_000 + 9_999)), "the most recent stranger is kept");
    assert!(!live.seen.contains_key(&1_000), "the oldest stranger is gone");

    live.prune(known, t0 + Duration::from_secs(10) + STRANGER_TTL);
    assert_eq!(live.seen.keys().copied().collect::<Vec<_>>(), members.to_vec(), "silent strangers expire");
}

#[test]
fn a_sender_that_becomes_a_member_is_kept_past_the_ttl() {
    let t0 = Instant::now();
    let mut versions: BTreeMap<NodeId, (u32, Instant)> = BTreeMap::new();
    versions.insert(7, (2, t0));
    versions.insert(8, (2, t0));
    bound(&mut versions, |id| id == 7, |v| v.1, t0 + STRANGER_TTL * 2);
    assert_eq!(versions.keys().copied().collect::<Vec<_>>(), vec![7]);
}

#[test]
fn flaps_of_former_members_and_old_downs_are_forgotten() {
    let t0 = Instant::now();
    let mut flaps = Flaps::default();
    flaps.down(1, t0);
    flaps.down(2, t0);
    flaps.down(3, t0 + FLAP_WINDOW);
    flaps.prune(|id| id != 2, t0 + FLAP_WINDOW + Duration::from_secs(1));
    assert_eq!(flaps.downs.keys().copied().collect::<Vec<_>>(), vec![3]);
}
