//! Whether this replica itself was away (stopped, or starved of CPU) a
//! moment ago. Right after such a pause every peer looks silent — their
//! heartbeats could not be read — so silence then says nothing about them:
//! the fan-out keeps asking them instead of answering from this replica's
//! own, now old, points. A ticker notes every [`TICK`]; a tick that comes
//! much later than due marks a pause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often the ticker notes the time.
pub const TICK: Duration = Duration::from_millis(100);
/// How late a tick must be to count as a pause.
pub const LATE: Duration = Duration::from_millis(500);

/// The last tick and the last pause seen.
#[derive(Debug)]
pub struct PauseClock {
    state: Mutex<(Instant, Option<Instant>)>,
}

impl Default for PauseClock {
    fn default() -> Self {
        PauseClock { state: Mutex::new((Instant::now(), None)) }
    }
}

impl PauseClock {
    /// Notes a tick at `now`; a gap since the last one longer than
    /// [`TICK`] + [`LATE`] is a pause that ended at `now`.
    pub fn tick(&self, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(s.0) > TICK + LATE {
            s.1 = Some(now);
        }
        s.0 = now;
    }

    /// Whether a pause ended within `window` before `now`.
    pub fn away_within(&self, window: Duration, now: Instant) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1.is_some_and(|t| now.saturating_duration_since(t) < window)
    }

    /// Ticks every [`TICK`] until `stop`.
    pub async fn run(self: std::sync::Arc<Self>, stop: CancellationToken) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => self.tick(Instant::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_tick_is_a_pause_remembered_for_the_window_only() {
        let t0 = Instant::now();
        let clock = PauseClock { state: Mutex::new((t0, None)) };
        clock.tick(t0 + TICK);
        assert!(!clock.away_within(Duration::from_secs(3), t0 + TICK));
        let resumed = t0 + TICK + Duration::from_secs(30);
        clock.tick(resumed);
        assert!(clock.away_within(Duration::from_secs(3), resumed + Duration::from_secs(1)));
        assert!(!clock.away_within(Duration::from_secs(3), resumed + Duration::from_secs(4)));
    }
}
