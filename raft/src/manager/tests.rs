//! Unit tests of the failure detector's decisions.

use std::time::{Duration, Instant};

use super::detector::{Bounds, Flaps, Liveness, decide};
use crate::fixture::info;
use crate::state::{ClusterState, Command, MemberState};

/// Two Active members, `a` (1) and `b` (2), without ring parameters.
fn cluster() -> ClusterState {
    crate::fixture::state([(1, "a", MemberState::Active), (2, "b", MemberState::Active)], None)
}

const B: Bounds = Bounds { lease: Duration::from_secs(3), hysteresis: Duration::from_secs(1) };
const MS: fn(u64) -> Duration = Duration::from_millis;
/// Ready at any epoch.
const ANY: Option<u64> = Some(crate::network::wire::Readiness::ANY_EPOCH);

#[test]
fn silent_member_goes_down_only_after_the_lease() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    live.record(1, t0, true, false, ANY);
    live.record(2, t0, true, false, ANY);
    let s = cluster();
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2900), B, |_| true).is_empty());
    live.record(1, t0 + MS(2900), true, false, ANY);
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(3100), B, |_| true), vec![(2, MemberState::Down)]);
}

#[test]
fn never_heard_members_get_a_full_lease_from_start() {
    let t0 = Instant::now();
    let live = Liveness::new(t0, MS(1500));
    let s = cluster();
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2000), B, |_| true).is_empty());
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(3500), B, |_| true).len(), 2);
}

#[test]
fn unhealthy_heartbeats_count_as_silence() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    for i in 0..8 {
        live.record(1, t0 + MS(i * 500), true, false, ANY);
        live.record(2, t0 + MS(i * 500), i == 0, false, ANY);
    }
    assert_eq!(decide(&cluster(), &live, &Flaps::default(), t0 + MS(3500), B, |_| true), vec![(2, MemberState::Down)]);
}

#[test]
fn down_member_returns_after_hysteresis_and_only_when_caught_up() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::SetStates(vec![(2, MemberState::Down)]));
    live.record(1, t0, true, false, ANY);
    live.record(2, t0, true, false, ANY);
    live.record(2, t0 + MS(500), true, false, ANY);
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(600), B, |_| true).is_empty());
    live.record(2, t0 + MS(1000), true, false, ANY);
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(1100), B, |id| id != 2).is_empty());
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(1100), B, |_| true), vec![(2, MemberState::Active)]);
}

#[test]
fn leaving_member_is_not_made_active_again() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::SetStates(vec![(2, MemberState::Draining)]));
    for i in 0..5 {
        live.record(1, t0 + MS(i * 500), true, false, ANY);
        live.record(2, t0 + MS(i * 500), true, true, ANY);
    }
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2100), B, |_| true).is_empty());
}

#[test]
fn joining_and_draining_members_that_go_silent_are_committed_down() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::Join { id: 3, info: info("c") });
    s.apply(&Command::SetStates(vec![(2, MemberState::Draining)]));
    live.record(1, t0 + MS(3000), true, false, ANY);
    let mut got = decide(&s, &live, &Flaps::default(), t0 + MS(3100), B, |_| true);
    got.sort();
    assert_eq!(got, vec![(2, MemberState::Down), (3, MemberState::Down)]);
}

#[test]
fn a_member_that_does_not_hold_its_points_yet_stays_out_of_the_ring() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::Join { id: 3, info: info("c") });
    for i in 0..5 {
        live.record(1, t0 + MS(i * 500), true, false, ANY);
        live.record(2, t0 + MS(i * 500), true, false, ANY);
        live.record(3, t0 + MS(i * 500), true, false, None);
    }
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2100), B, |_| true).is_empty(), "joining held");
    live.record(3, t0 + MS(2500), true, false, ANY);
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(2600), B, |_| true), vec![(3, MemberState::Active)]);
}

#[test]
fn a_flapping_member_waits_twice_as_long_each_time_it_comes_back() {
    let t0 = Instant::now();
    let mut flaps = Flaps::default();
    let base = Duration::from_secs(1);
    assert_eq!(flaps.hysteresis(2, t0, base), base);
    flaps.down(2, t0);
    assert_eq!(flaps.hysteresis(2, t0, base), base, "one outage is not flapping");
    flaps.down(2, t0 + MS(5000));
    flaps.down(2, t0 + MS(9000));
    assert_eq!(flaps.hysteresis(2, t0 + MS(9000), base), base * 4);
    for i in 0..20 {
        flaps.down(2, t0 + MS(10_000 + i));
    }
    assert_eq!(flaps.hysteresis(2, t0 + MS(11_000), base), super::detector::MAX_HYSTERESIS);
    assert_eq!(flaps.hysteresis(2, t0 + MS(400_000), base), base, "old outages are forgotten");
    let mut s = cluster();
    s.apply(&Command::SetStates(vec![(2, MemberState::Down)]));
    let mut live = Liveness::new(t0 + MS(9000), MS(1500));
    let mut f = Flaps::default();
    for t in [0, 4000, 8000] {
        f.down(2, t0 + MS(t));
    }
    for i in 0..8 {
        live.record(1, t0 + MS(9000 + i * 500), true, false, ANY);
        live.record(2, t0 + MS(9000 + i * 500), true, false, ANY);
    }
    assert!(decide(&s, &live, &f, t0 + MS(11_600), B, |_| true).is_empty(), "damped: needs 4 s of health");
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(11_600), B, |_| true), vec![(2, MemberState::Active)]);
}

#[test]
fn readiness_counts_only_at_the_epoch_it_was_prepared_for() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::Join { id: 3, info: info("c") });
    let epoch = s.epoch;
    for i in 0..5 {
        live.record(1, t0 + MS(i * 500), true, false, ANY);
        live.record(2, t0 + MS(i * 500), true, false, ANY);
        live.record(3, t0 + MS(i * 500), true, false, Some(epoch + 1));
    }
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2100), B, |_| true).is_empty(), "prepared for another epoch");
    live.record(3, t0 + MS(2500), true, false, Some(epoch));
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(2600), B, |_| true), vec![(3, MemberState::Active)]);
}

#[test]
fn failing_reports_are_committed_when_they_differ_and_a_silent_members_list_stays() {
    use super::leader::failing_diff;
    let mut s = cluster();
    let report = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(failing_diff(&s, |_| report(&[])), None, "nothing reported, nothing committed");
    let got = failing_diff(&s, |id| if id == 2 { report(&["n2", "n1", "n1"]) } else { report(&[]) });
    assert_eq!(got, Some(vec![(2, vec!["n1".to_string(), "n2".to_string()])]), "sorted, without repeats");
    s.apply(&Command::SetFailing(got.unwrap()));
    assert_eq!(failing_diff(&s, |id| if id == 2 { report(&["n1", "n2"]) } else { report(&[]) }), None);
    assert_eq!(failing_diff(&s, |id| if id == 2 { None } else { report(&[]) }), None, "silent: kept as committed");
    assert_eq!(failing_diff(&s, |_| report(&[])), Some(vec![(2, Vec::new())]), "recovered: cleared");
}

/// Three members, none Active yet: a cold start of the whole cluster.
fn cold() -> ClusterState {
    crate::fixture::state(
        [(1, "a", MemberState::Joining), (2, "b", MemberState::Down), (3, "c", MemberState::Joining)],
        None,
    )
}

/// Heartbeats every 500 ms from `from` to `to` (ms after `t0`), healthy for those in `healthy`.
fn beats(live: &mut Liveness, t0: Instant, (from, to): (u64, u64), ids: &[u64], healthy: impl Fn(u64, u64) -> bool) {
    for ms in (from..=to).step_by(500) {
        for id in ids {
            live.record(*id, t0 + MS(ms), healthy(*id, ms), false, ANY);
        }
    }
}

fn sorted(mut v: Vec<(u64, MemberState)>) -> Vec<(u64, MemberState)> {
    v.sort();
    v
}

#[test]
fn at_a_cold_start_members_that_qualify_wait_for_the_others_heard_from() {
    let t0 = Instant::now();
    let s = cold();
    let active = |ids: &[u64]| ids.iter().map(|id| (*id, MemberState::Active)).collect::<Vec<_>>();
    // 1 and 2 healthy from the start, 3 from 1 s on: all three together.
    let mut live = Liveness::new(t0, MS(1500));
    beats(&mut live, t0, (0, 1500), &[1, 2, 3], |id, ms| id != 3 || ms >= 1000);
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(1600), B, |_| true).is_empty(), "3 is heard: waited for");
    beats(&mut live, t0, (2000, 2000), &[1, 2, 3], |_, _| true);
    assert_eq!(sorted(decide(&s, &live, &Flaps::default(), t0 + MS(2100), B, |_| true)), active(&[1, 2, 3]));
    // 3 never healthy: the others go once they have qualified for the gather time.
    let mut live = Liveness::new(t0, MS(1500));
    beats(&mut live, t0, (0, 3000), &[1, 2, 3], |id, _| id != 3);
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2900), B, |_| true).is_empty());
    // (3, unhealthy for the lease, goes Down at the same time.)
    let mut want = active(&[1, 2]);
    want.push((3, MemberState::Down));
    assert_eq!(sorted(decide(&s, &live, &Flaps::default(), t0 + MS(3100), B, |_| true)), want);
    // 3 never heard from: waited for while this replica has listened less
    // than the heartbeat gap (its first heartbeat may be on its way), not after.
    let mut live = Liveness::new(t0 + MS(1000), MS(1500));
    beats(&mut live, t0, (0, 2000), &[1, 2], |_, _| true);
    assert!(decide(&s, &live, &Flaps::default(), t0 + MS(2100), B, |_| true).is_empty(), "started 1.1 s ago");
    assert_eq!(sorted(decide(&s, &live, &Flaps::default(), t0 + MS(2600), B, |_| true)), active(&[1, 2]));
    // A peer heard from that has not joined the state yet (the declared
    // members join one per round): waited for, for the gather time.
    let s2 = crate::fixture::state([(1, "a", MemberState::Joining), (2, "b", MemberState::Joining)], None);
    let mut live = Liveness::new(t0, MS(1500));
    beats(&mut live, t0, (0, 3000), &[1, 2, 4], |id, _| id != 4);
    assert!(decide(&s2, &live, &Flaps::default(), t0 + MS(1100), B, |_| true).is_empty(), "4 is heard");
    assert_eq!(sorted(decide(&s2, &live, &Flaps::default(), t0 + MS(3100), B, |_| true)), active(&[1, 2]));
}

#[test]
fn with_a_member_active_a_qualifying_member_does_not_wait_for_others() {
    let t0 = Instant::now();
    let mut s = cold();
    s.apply(&Command::SetStates(vec![(1, MemberState::Active)]));
    let mut live = Liveness::new(t0, MS(1500));
    beats(&mut live, t0, (0, 1000), &[1, 2, 3], |id, _| id != 3);
    assert_eq!(decide(&s, &live, &Flaps::default(), t0 + MS(1100), B, |_| true), vec![(2, MemberState::Active)]);
}
