//! What the fan-out has seen of each member's answers: how fast it usually
//! answers (for the hedge delay) and whether it failed a moment ago (then
//! it is suspected and skipped in favour of its other holders at once,
//! without a per-request wait). Times are passed in, so the rules are
//! tested without clocks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raft::NodeId;

/// The shortest hedge delay: below this, a hedge only doubles the load.
pub const MIN_HEDGE: Duration = Duration::from_millis(20);
/// Weight of the newest latency in the moving average.
const ALPHA: f64 = 0.2;

/// How much a call asks for. The usual answer time of each size is learned
/// apart: a member answers an HPA's few pods in milliseconds and its whole
/// part of `top pod -A` in a second or more, and judged by the former the
/// latter would look slow every time and be hedged (asked again of the
/// member's other holders, doubling the largest work there is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// A few named nodes or pods, or what a label selector picks.
    Small,
    /// Everything a member holds of a resource (an unselected list).
    Large,
}

impl Size {
    fn index(self) -> usize {
        match self {
            Size::Small => 0,
            Size::Large => 1,
        }
    }

    /// Whether a failed call of this size makes its member a suspect: any
    /// failure of a small call, but not a large call that ran out of time
    /// (that says the member is slow at large answers, not that it is gone;
    /// a member that is gone stops its heartbeats too).
    pub fn suspects(self, timed_out: bool) -> bool {
        !(self == Size::Large && timed_out)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Times {
    /// Moving average of successful answers' latency, in seconds.
    avg: Option<f64>,
    /// Moving average of the squared deviation, in seconds².
    var: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// By [`Size::index`].
    times: [Times; 2],
    /// When it last failed or timed out.
    failed_at: Option<Instant>,
}

/// Per-member answer times and recent failures.
#[derive(Debug, Default)]
pub struct Latency {
    seen: Mutex<HashMap<NodeId, Seen>>,
}

impl Latency {
    /// Records a good answer of `id` to a call of `size` that took `took`.
    pub fn answered(&self, id: NodeId, size: Size, took: Duration) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(id).or_default();
        let t = &mut s.times[size.index()];
        let x = took.as_secs_f64();
        match t.avg {
            None => t.avg = Some(x),
            Some(avg) => {
                let d = x - avg;
                t.avg = Some(avg + ALPHA * d);
                t.var = (1.0 - ALPHA) * (t.var + ALPHA * d * d);
            }
        }
        s.failed_at = None;
    }

    /// Records that `id` failed or timed out at `now`.
    pub fn failed(&self, id: NodeId, now: Instant) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().failed_at = Some(now);
    }

    /// Whether `id` failed within `window` before `now`.
    pub fn failed_within(&self, id: NodeId, window: Duration, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&id).and_then(|s| s.failed_at).is_some_and(|t| now.saturating_duration_since(t) < window)
    }

    /// How long to wait for `id`'s answer to a call of `size` before also
    /// asking the next holder: about its usual answer time at that size
    /// plus three deviations (the tail the "tail at scale" technique cuts),
    /// at least [`MIN_HEDGE`], at most `cap`. A member never heard from at
    /// that size gets `cap`.
    pub fn hedge_after(&self, id: NodeId, size: Size, cap: Duration) -> Duration {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let t = seen.get(&id).map(|s| s.times[size.index()]);
        match t.and_then(|t| t.avg.map(|avg| avg + 3.0 * t.var.sqrt())) {
            Some(secs) => Duration::from_secs_f64(secs.max(0.0)).clamp(MIN_HEDGE, cap.max(MIN_HEDGE)),
            None => cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hedge_delay_follows_the_usual_answer_time_within_its_bounds() {
        let l = Latency::default();
        let cap = Duration::from_millis(500);
        assert_eq!(l.hedge_after(1, Size::Small, cap), cap, "never heard from: wait up to the cap");
        for _ in 0..50 {
            l.answered(1, Size::Small, Duration::from_millis(40));
        }
        let steady = l.hedge_after(1, Size::Small, cap);
        assert!(steady >= Duration::from_millis(39) && steady <= Duration::from_millis(60), "{steady:?}");
        for _ in 0..50 {
            l.answered(2, Size::Small, Duration::from_micros(300));
        }
        assert_eq!(l.hedge_after(2, Size::Small, cap), MIN_HEDGE);
        l.answered(3, Size::Small, Duration::from_secs(9));
        assert_eq!(l.hedge_after(3, Size::Small, cap), cap);
    }

    #[test]
    fn a_failure_is_suspected_for_the_window_and_forgiven_by_the_next_answer() {
        let l = Latency::default();
        let t0 = Instant::now();
        l.failed(1, t0);
        assert!(l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(2)));
        assert!(!l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(4)));
        l.answered(1, Size::Small, Duration::from_millis(5));
        assert!(!l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(1)));
        assert!(!l.failed_within(2, Duration::from_secs(3), t0));
    }

    #[test]
    fn small_and_large_answer_times_are_learned_apart() {
        let l = Latency::default();
        let cap = Duration::from_secs(1);
        for _ in 0..50 {
            l.answered(1, Size::Small, Duration::from_millis(5));
        }
        // Thousands of small answers say nothing of how long a large one takes.
        assert_eq!(l.hedge_after(1, Size::Large, cap), cap);
        for _ in 0..50 {
            l.answered(1, Size::Large, Duration::from_millis(600));
        }
        let large = l.hedge_after(1, Size::Large, cap);
        assert!(large >= Duration::from_millis(590) && large <= Duration::from_millis(700), "{large:?}");
        assert_eq!(l.hedge_after(1, Size::Small, cap), MIN_HEDGE);
    }

    #[test]
    fn only_a_large_call_that_ran_out_of_time_leaves_its_member_unsuspected() {
        assert!(Size::Small.suspects(true));
        assert!(Size::Small.suspects(false));
        assert!(Size::Large.suspects(false));
        assert!(!Size::Large.suspects(true));
    }
}
