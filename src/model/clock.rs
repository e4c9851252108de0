//! This replica's wall clock, checked against its kubelets'.
//!
//! Every judgment of a point in time (is a sample from the future, how old is
//! it, is a node stale) reads [`now_nanos`]. A replica whose host clock is
//! wrong (an NTP step, a VM restored from a snapshot, a host that never
//! synced) would otherwise judge every true sample by a false clock: 30 s
//! behind, every kubelet sample looks from the future and is refused, and so
//! is every peer's; 30 s ahead, every sample looks 30 s old.
//!
//! The kubelets are the reference: each answer carries the kubelet's clock in
//! its `Date` header (Go's HTTP server always sends it, at one-second
//! resolution). [`KubeletClocks`] keeps, per kubelet scraped recently, how far
//! its clock was ahead of this host's when the answer arrived, and when at
//! least [`MIN_KUBELETS`] agree (the median, so a minority of kubelets with
//! wrong clocks moves nothing) that this host is off by more than
//! [`TRUSTED_WITHIN_NS`], [`now_nanos`] is corrected by that much; and a step
//! of the host clock against the monotonic one is undone at once, until the
//! kubelets confirm or refute it, so served time never jumps. Served
//! samples still carry the timestamps the kubelets gave them: only this
//! replica's idea of "now" moves. Timers and leases run on the monotonic
//! clock and never read this.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UnixNanos;

/// The one clock of the process, like the host clock it corrects.
static CLOCK: Mutex<Clock> = Mutex::new(Clock::new());

/// The current wall-clock time as [`UnixNanos`]: the host clock, corrected
/// by how far the kubelets agree it is off, and with any step of the host
/// clock undone until they confirm it.
pub fn now_nanos() -> UnixNanos {
    let (system, mono) = (system_nanos(), Instant::now());
    match CLOCK.lock() {
        Ok(mut c) => c.now(system, mono),
        Err(_) => system,
    }
}

/// The host's wall clock, uncorrected.
pub fn system_nanos() -> UnixNanos {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A jump of the host clock against the monotonic one beyond this is a step
/// (an NTP step, `date -s`), not the slew NTP does in the normal course.
pub const STEP_NS: i64 = 1_000_000_000;

/// How many kubelets must have answered recently before their clocks are
/// trusted over this host's: one kubelet alone never moves it, two must
/// agree. A replica of a big cluster scrapes hundreds; a replica of a small
/// one may own only two nodes and must still be able to follow them.
pub const MIN_KUBELETS: usize = 2;

/// How far the kubelets may disagree with this host before it is corrected:
/// the `Date` header truncates to whole seconds, so synced hosts look up to
/// 1 s (plus the request's latency) apart; anything beyond is the host.
pub const TRUSTED_WITHIN_NS: i64 = 1_000_000_000;

/// The correction the kubelets' leads (their clock minus this host's, one per
/// kubelet) call for: their median once at least [`MIN_KUBELETS`] voted and it
/// is beyond [`TRUSTED_WITHIN_NS`], else none. For an even count, of the two
/// middle votes the one nearer zero: a correction needs a strict majority of
/// the kubelets on its side, never the average of two camps. Pure.
pub fn correction(leads: &mut [i64]) -> i64 {
    if leads.len() < MIN_KUBELETS {
        return 0;
    }
    leads.sort_unstable();
    let n = leads.len();
    let median = if n % 2 == 1 {
        leads[n / 2]
    } else {
        let (low, high) = (leads[n / 2 - 1], leads[n / 2]);
        if low.signum() != high.signum() {
            0
        } else if low.abs() <= high.abs() {
            low
        } else {
            high
        }
    };
    if median.abs() > TRUSTED_WITHIN_NS { median } else { 0 }
}

/// The corrected clock: the host clock plus `skew`, which follows the
/// kubelets' votes and undoes steps of the host clock. Pure: callers pass
/// the host clock and the monotonic one.
#[derive(Debug)]
pub struct Clock {
    /// The host clock and the monotonic clock when last read.
    anchor: Option<(UnixNanos, Instant)>,
    /// Added to the host clock.
    skew: i64,
    /// Per kubelet: its clock minus the host's (as the host clock reads
    /// now: shifted with every step), and when that was heard.
    leads: Option<HashMap<String, (i64, Instant)>>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

impl Clock {
    pub const fn new() -> Clock {
        Clock { anchor: None, skew: 0, leads: None }
    }

    /// The corrected time when the host clock reads `system` and the
    /// monotonic one `mono`. A host clock that moved against the monotonic
    /// one by more than [`STEP_NS`] since the last reading was stepped:
    /// the step is undone (time served stays continuous) and every
    /// kubelet's lead shifts with it, so their next votes confirm or undo it.
    pub fn now(&mut self, system: UnixNanos, mono: Instant) -> UnixNanos {
        if let Some((was, then)) = self.anchor {
            let elapsed = i64::try_from(mono.saturating_duration_since(then).as_nanos()).unwrap_or(i64::MAX);
            let step = system.saturating_sub(was.saturating_add(elapsed));
            if step.abs() > STEP_NS {
                self.skew = self.skew.saturating_sub(step);
                for (lead, _) in self.leads.iter_mut().flat_map(|l| l.values_mut()) {
                    *lead = lead.saturating_sub(step);
                }
                tracing::warn!(
                    step_seconds = step as f64 / 1e9,
                    skew_seconds = self.skew as f64 / 1e9,
                    "the host clock was stepped; keeping time across the step until the kubelets' clocks confirm it"
                );
            }
        }
        self.anchor = Some((system, mono));
        system.saturating_add(self.skew)
    }

    /// Records that `node`'s kubelet said it was `date` (its `Date` header)
    /// when the host clock read `system`; votes older than `window` no
    /// longer count. Returns the correction now applied.
    pub fn observe(&mut self, node: &str, date: UnixNanos, system: UnixNanos, mono: Instant, window: Duration) -> i64 {
        self.now(system, mono);
        // `Date` is truncated to the second: its middle is the best guess.
        let lead = date.saturating_add(500_000_000).saturating_sub(system);
        let leads = self.leads.get_or_insert_with(HashMap::new);
        leads.insert(node.to_string(), (lead, mono));
        leads.retain(|_, (_, at)| mono.saturating_duration_since(*at) <= window);
        let mut votes: Vec<i64> = leads.values().map(|(l, _)| *l).collect();
        let skew = correction(&mut votes);
        let before = std::mem::replace(&mut self.skew, skew);
        if (before == 0) != (skew == 0) || (before - skew).abs() > TRUSTED_WITHIN_NS {
            tracing::warn!(
                skew_seconds = skew as f64 / 1e9,
                kubelets = votes.len(),
                "this host's clock disagrees with its kubelets'; judging samples by theirs"
            );
        }
        skew
    }
}

/// The kubelets' clocks as this replica's scrapes see them, voting in the
/// process's clock.
#[derive(Debug)]
pub struct KubeletClocks {
    /// How long a kubelet's reading counts: two resolutions, so every
    /// kubelet this replica scrapes now votes and one it no longer scrapes
    /// (its node moved to another owner, or left) soon stops.
    window: Duration,
}

impl KubeletClocks {
    /// Clocks of kubelets scraped every `resolution`.
    pub fn new(resolution: Duration) -> KubeletClocks {
        KubeletClocks { window: resolution * 2 }
    }

    /// Records that `node`'s kubelet said it was `date` (its `Date` header)
    /// as its answer arrived; returns the correction now applied.
    pub fn observe(&self, node: &str, date: UnixNanos) -> i64 {
        let (system, mono) = (system_nanos(), Instant::now());
        match CLOCK.lock() {
            Ok(mut c) => c.observe(node, date, system, mono, self.window),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn one_kubelet_alone_never_moves_the_clock() {
        assert_eq!(correction(&mut []), 0);
        assert_eq!(correction(&mut [30 * S]), 0);
        assert_eq!(correction(&mut [30 * S, 0]), 0);
        assert_eq!(correction(&mut [30 * S, 29 * S]), 29 * S);
    }

    #[test]
    fn a_majority_of_kubelets_ahead_moves_the_clock_by_their_median() {
        assert_eq!(correction(&mut [30 * S, 29 * S, 31 * S]), 30 * S);
        assert_eq!(correction(&mut [-30 * S, -30 * S, -30 * S, 0]), -30 * S);
    }

    #[test]
    fn a_minority_of_wrong_kubelets_moves_nothing() {
        assert_eq!(correction(&mut [3600 * S, 0, -S / 2]), 0);
        assert_eq!(correction(&mut [3600 * S, 3600 * S, 0, 0, S / 2]), 0);
    }

    const W: Duration = Duration::from_secs(4);

    /// A clock whose three kubelets just said they are `lead` ahead of the
    /// host, with the start of the monotonic clock and the host time then.
    fn voted(lead: i64) -> (Clock, Instant, i64) {
        let (mut c, t0, t) = (Clock::new(), Instant::now(), 1_000_000 * S);
        for n in ["k-1", "k-2", "k-3"] {
            c.observe(n, t + lead - S / 2, t, t0, W);
        }
        (c, t0, t)
    }

    #[test]
    fn a_kubelet_no_longer_scraped_stops_voting() {
        let (mut c, t0, t) = (Clock::new(), Instant::now(), 1_000_000 * S);
        for n in ["old-1", "old-2", "old-3"] {
            c.observe(n, t, t, t0, W);
        }
        let later = t0 + Duration::from_secs(5);
        c.observe("new-1", t + 35 * S, t + 5 * S, later, W);
        assert_eq!(c.observe("new-2", t + 35 * S, t + 5 * S, later, W), 30 * S + S / 2);
        assert_eq!(c.now(t + 5 * S, later), t + 35 * S + S / 2);
    }

    #[test]
    fn a_step_of_the_host_clock_is_undone_until_the_kubelets_confirm_it() {
        let (mut c, t0, t) = voted(0);
        assert_eq!(c.now(t, t0), t);
        // Stepped 30 s back one second later: time served goes on.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(c.now(t + S - 30 * S, t1), t + S);
        // The kubelets, still on true time, agree: the correction stays.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(c.observe("k-1", t + 2 * S - S / 2, t + 2 * S - 30 * S, t2, W), 30 * S);
        assert_eq!(c.now(t + 2 * S - 30 * S, t2), t + 2 * S);
        // Stepped true again: undone at once, and the kubelets agree.
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(c.now(t + 3 * S, t3), t + 3 * S);
        assert_eq!(c.observe("k-2", t + 3 * S - S / 2, t + 3 * S, t3, W), 0);
    }

    #[test]
    fn a_step_the_kubelets_confirm_is_kept() {
        // The host was 30 s behind and the kubelets said so; NTP then steps
        // it right: the correction falls to zero with the step.
        let (mut c, t0, t) = voted(30 * S);
        assert_eq!(c.now(t, t0), t + 30 * S);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(c.now(t + 31 * S, t1), t + 31 * S);
        assert_eq!(c.observe("k-1", t + 31 * S - S / 2, t + 31 * S, t1, W), 0);
    }

    #[test]
    fn slew_and_pauses_are_not_steps() {
        let (mut c, t0, t) = (Clock::new(), Instant::now(), 1_000_000 * S);
        assert_eq!(c.now(t, t0), t);
        // 30 s stopped (SIGSTOP): both clocks moved alike.
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(c.now(t + 30 * S, t1), t + 30 * S);
        // Half a second of slew is left to NTP.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(c.now(t + 40 * S + S / 2, t2), t + 40 * S + S / 2);
    }

    #[test]
    fn two_camps_of_equal_size_move_nothing() {
        assert_eq!(correction(&mut [0, 0, 30 * S, 30 * S]), 0);
        assert_eq!(correction(&mut [0, 0, -30 * S, -30 * S]), 0);
        assert_eq!(correction(&mut [0, 30 * S, 30 * S, 30 * S]), 30 * S);
    }

    #[test]
    fn synced_hosts_a_second_apart_are_left_alone() {
        assert_eq!(correction(&mut [-S, S / 2, -S / 2, S]), 0);
    }

    #[test]
    fn the_correction_is_the_median_however_the_votes_spread() {
        // Property: with at least two votes, the correction is 0 or one
        // of the votes that at least half the votes are at or above and at
        // least half at or below, and a strict majority is on its side of
        // zero.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 10) as usize + 2;
            let votes: Vec<i64> =
                (0..n).map(|i| ((seed.rotate_left(i as u32 * 7) % 120) as i64 - 60) * S / 2).collect();
            let c = correction(&mut votes.clone());
            if c == 0 {
                continue;
            }
            assert!(c.abs() > TRUSTED_WITHIN_NS);
            let above = votes.iter().filter(|v| **v >= c).count();
            let below = votes.iter().filter(|v| **v <= c).count();
            assert!(above * 2 >= n && below * 2 >= n, "{votes:?} -> {c}");
            assert!(votes.contains(&c), "{votes:?} -> {c}");
            let same_side = votes.iter().filter(|v| v.signum() == c.signum() && v.abs() >= c.abs()).count();
            assert!(same_side * 2 > n, "{votes:?} -> {c}");
        }
    }
}
