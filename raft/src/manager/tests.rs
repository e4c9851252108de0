//! Unit tests of the failure detector's decisions.

use std::time::{Duration, Instant};

use super::detector::{Bounds, Liveness, decide};
use crate::state::{ClusterState, Command, MemberInfo, MemberState};

fn info(name: &str) -> MemberInfo {
    MemberInfo { name: name.into(), api_addr: format!("{name}:1"), peer_addr: format!("{name}:2") }
}

fn cluster() -> ClusterState {
    let mut s = ClusterState::default();
    for (id, n) in [(1, "a"), (2, "b")] {
        s.apply(&Command::Join { id, info: info(n) });
    }
    s.apply(&Command::SetStates(vec![(1, MemberState::Active), (2, MemberState::Active)]));
    s
}

const B: Bounds = Bounds { lease: Duration::from_secs(3), hysteresis: Duration::from_secs(1) };
const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn silent_member_goes_down_only_after_the_lease() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    live.record(1, t0, true, false);
    live.record(2, t0, true, false);
    let s = cluster();
    assert!(decide(&s, &live, t0 + MS(2900), B, |_| true).is_empty());
    live.record(1, t0 + MS(2900), true, false);
    assert_eq!(decide(&s, &live, t0 + MS(3100), B, |_| true), vec![(2, MemberState::Down)]);
}

#[test]
fn never_heard_members_get_a_full_lease_from_start() {
    let t0 = Instant::now();
    let live = Liveness::new(t0, MS(1500));
    let s = cluster();
    assert!(decide(&s, &live, t0 + MS(2000), B, |_| true).is_empty());
    assert_eq!(decide(&s, &live, t0 + MS(3500), B, |_| true).len(), 2);
}

#[test]
fn unhealthy_heartbeats_count_as_silence() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    for i in 0..8 {
        live.record(1, t0 + MS(i * 500), true, false);
        live.record(2, t0 + MS(i * 500), i == 0, false);
    }
    assert_eq!(decide(&cluster(), &live, t0 + MS(3500), B, |_| true), vec![(2, MemberState::Down)]);
}

#[test]
fn down_member_returns_after_hysteresis_and_only_when_caught_up() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::SetStates(vec![(2, MemberState::Down)]));
    live.record(1, t0, true, false);
    live.record(2, t0, true, false);
    live.record(2, t0 + MS(500), true, false);
    assert!(decide(&s, &live, t0 + MS(600), B, |_| true).is_empty());
    live.record(2, t0 + MS(1000), true, false);
    assert!(decide(&s, &live, t0 + MS(1100), B, |id| id != 2).is_empty());
    assert_eq!(decide(&s, &live, t0 + MS(1100), B, |_| true), vec![(2, MemberState::Active)]);
}

#[test]
fn leaving_member_is_not_made_active_again() {
    let t0 = Instant::now();
    let mut live = Liveness::new(t0, MS(1500));
    let mut s = cluster();
    s.apply(&Command::SetStates(vec![(2, MemberState::Draining)]));
    for i in 0..5 {
        live.record(1, t0 + MS(i * 500), true, false);
        live.record(2, t0 + MS(i * 500), true, true);
    }
    assert!(decide(&s, &live, t0 + MS(2100), B, |_| true).is_empty());
}
