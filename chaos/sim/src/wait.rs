//! Waiting for a condition with a deadline: the one way the tests, the
//! benchmarks and the chaos tool wait for something. Never a fixed sleep:
//! the condition is polled until it holds or the deadline passes.
//!
//! Two shapes:
//! - positive ([`until`], [`until_some`], [`expect`], [`expect_some`]): wait
//!   until something becomes true (or available), at most `within`
//!   ([`until_some_every`] asks less often, [`until_blocking`] waits where
//!   nothing can await);
//! - negative ([`holds_for`], [`expect_holds`]): something must *stay* true
//!   for a whole window; the check fails the moment it stops holding. The
//!   window is the time in which the protocol would have broken it (a
//!   lease, a hysteresis, two resolutions), not an arbitrary pause.
//!
//! Must not: sleep without a condition, or retry a condition that panics.

use std::time::Duration;

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it yields a value (returned) or `within` has passed
/// (`None`). `f` is always tried at least once, and once more at the deadline.
pub async fn until_some<T>(within: Duration, f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    until_some_every(POLL, within, f).await
}

/// [`until_some`] polling every `every` instead of every [`POLL`]: for a
/// condition that is expensive to ask (a whole node list of a large
/// cluster) while something is being measured.
pub async fn until_some_every<T>(
    every: Duration,
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let start = tokio::time::Instant::now();
    loop {
        let late = start.elapsed() >= within;
        if let Some(v) = f().await {
            return Some(v);
        }
        if late {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`until`] for code that cannot await (a `Drop`): blocks the thread
/// between polls.
pub fn until_blocking(within: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    loop {
        let late = start.elapsed() >= within;
        if cond() {
            return Some(start.elapsed());
        }
        if late {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds (returning how long that took) or `within`
/// has passed (returning `None`). The condition is always tried at least once.
pub async fn until(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    until_some(within, async || cond().await.then(|| start.elapsed())).await
}

/// Like [`until`], but panics naming `what` when the deadline passes.
pub async fn expect(what: &str, within: Duration, cond: impl AsyncFnMut() -> bool) -> Duration {
    match until(within, cond).await {
        Some(took) => took,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Like [`until_some`], but panics naming `what` when the deadline passes.
pub async fn expect_some<T>(what: &str, within: Duration, f: impl AsyncFnMut() -> Option<T>) -> T {
    match until_some(within, f).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `cond` for `window`: `Ok` when it held at every poll (the last one
/// at or after the end of the window), `Err(after)` as soon as it does not,
/// with how long it had held.
pub async fn holds_for(window: Duration, mut cond: impl AsyncFnMut() -> bool) -> Result<(), Duration> {
    let start = tokio::time::Instant::now();
    loop {
        let done = start.elapsed() >= window;
        if !cond().await {
            return Err(start.elapsed());
        }
        if done {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`holds_for`], but panics naming `what` the moment it stops holding.
pub async fn expect_holds(what: &str, window: Duration, cond: impl AsyncFnMut() -> bool) {
    if let Err(after) = holds_for(window, cond).await {
        panic!("{what} stopped holding after {after:?} of the {window:?} it must hold for");
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

    #[tokio::test(start_paused = true)]
    async fn a_value_is_handed_back_when_it_appears_and_tried_once_more_at_the_deadline() {
        let start = tokio::time::Instant::now();
        let got = until_some(Duration::from_secs(5), async || (start.elapsed() >= POLL * 4).then_some("leader")).await;
        assert_eq!(got, Some("leader"));
        assert_eq!(start.elapsed(), POLL * 4);
        // The value that appears exactly at the deadline still counts.
        let start = tokio::time::Instant::now();
        let at_deadline = until_some(POLL * 3, async || (start.elapsed() >= POLL * 3).then_some(7)).await;
        assert_eq!(at_deadline, Some(7));
        assert_eq!(until_some(Duration::from_secs(1), async || None::<u8>).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_negative_check_fails_the_moment_the_condition_breaks_and_passes_after_the_window() {
        let start = tokio::time::Instant::now();
        let broke = holds_for(Duration::from_secs(10), async || start.elapsed() < Duration::from_secs(1)).await;
        assert_eq!(broke, Err(Duration::from_secs(1)), "it must stop at the first bad poll, not at the window's end");
        let start = tokio::time::Instant::now();
        let mut polls = 0;
        let held = holds_for(Duration::from_secs(1), async || {
            polls += 1;
            true
        })
        .await;
        assert_eq!(held, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_secs(1), "the whole window is watched");
        assert_eq!(polls, 21, "polled every {POLL:?}, the last poll at the end of the window");
    }

    #[test]
    fn blocking_waits_poll_the_same_way() {
        let mut calls = 0;
        assert!(
            until_blocking(Duration::from_secs(5), || {
                calls += 1;
                calls == 2
            })
            .is_some_and(|took| took >= POLL)
        );
        assert_eq!(until_blocking(Duration::ZERO, || false), None);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "r2 stays out stopped holding after")]
    async fn expect_holds_names_what_broke() {
        let start = tokio::time::Instant::now();
        expect_holds("r2 stays out", Duration::from_secs(3), async || start.elapsed() < POLL * 2).await;
    }
}
