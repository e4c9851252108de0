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

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Moving average of successful answers' latency, in seconds.
    avg: Option<f64>,
    /// Moving average of the squared deviation, in seconds².
    var: f64,
    /// When it last failed or timed out.
    failed_at: Option<Instant>,
}

/// Per-member answer times and recent failures.
#[derive(Debug, Default)]
pub struct Latency {
    seen: Mutex<HashMap<NodeId, Seen>>,
}

impl Latency {
    /// Records a good answer of `id` that took `took`.
    pub fn answered(&self, id: NodeId, took: Duration) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(id).or_default();
        let x = took.as_secs_f64();
        match s.avg {
            None => s.avg = Some(x),
            Some(avg) => {
                let d = x - avg;
                s.avg = Some(avg + ALPHA * d);
                s.var = (1.0 - ALPHA) * (s.var + ALPHA * d * d);
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

    /// How long to wait for `id` before also asking the next holder: about
    /// its usual answer time plus three deviations (the tail the "tail at
    /// scale" technique cuts), at least [`MIN_HEDGE`], at most `cap`. A
    /// member never heard from gets `cap`.
    pub fn hedge_after(&self, id: NodeId, cap: Duration) -> Duration {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&id).and_then(|s| s.avg.map(|avg| avg + 3.0 * s.var.sqrt())) {
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
        assert_eq!(l.hedge_after(1, cap), cap, "never heard from: wait up to the cap");
        for _ in 0..50 {
            l.answered(1, Duration::from_millis(40));
        }
        let steady = l.hedge_after(1, cap);
        assert!(steady >= Duration::from_millis(39) && steady <= Duration::from_millis(60), "{steady:?}");
        for _ in 0..50 {
            l.answered(2, Duration::from_micros(300));
        }
        assert_eq!(l.hedge_after(2, cap), MIN_HEDGE);
        l.answered(3, Duration::from_secs(9));
        assert_eq!(l.hedge_after(3, cap), cap);
    }

    #[test]
    fn a_failure_is_suspected_for_the_window_and_forgiven_by_the_next_answer() {
        let l = Latency::default();
        let t0 = Instant::now();
        l.failed(1, t0);
        assert!(l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(2)));
        assert!(!l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(4)));
        l.answered(1, Duration::from_millis(5));
        assert!(!l.failed_within(1, Duration::from_secs(3), t0 + Duration::from_secs(1)));
        assert!(!l.failed_within(2, Duration::from_secs(3), t0));
    }
}
