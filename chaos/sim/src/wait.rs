//! Waiting for a condition with a deadline: the one way the tests, the
//! benchmarks and the chaos tool wait for something to become true. Never a
//! fixed sleep: the condition is polled until it holds or the deadline passes.

use std::time::Duration;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `cond` until it holds (returning how long that took) or `within`
/// has passed (returning `None`). The condition is always tried at least once.
pub async fn until(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    loop {
        if cond().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`until`], but panics naming `what` when the deadline passes.
pub async fn expect(what: &str, within: Duration, cond: impl AsyncFnMut() -> bool) -> Duration {
    match until(within, cond).await {
        Some(took) => took,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_once_the_condition_holds_and_gives_up_at_the_deadline() {
        let mut calls = 0;
        let took = until(Duration::from_secs(5), async || {
            calls += 1;
            calls == 3
        })
        .await;
        assert_eq!(took, Some(POLL * 2));
        assert_eq!(until(Duration::from_secs(1), async || false).await, None);
    }
}
