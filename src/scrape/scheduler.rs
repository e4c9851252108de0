//! When each kubelet is scraped. Every node gets a fixed offset inside the
//! resolution period, derived from its name, so scrapes are spread evenly
//! over the period instead of all at once, and every replica computes the
//! same offset for a node. One round per period; a node whose previous
//! scrape is still running is skipped rather than piled up. What a scrape
//! does is [`ScrapeOne`]'s business; this module only keeps time.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discovery::{ScrapeTarget, TargetError};
use crate::health::TickClock;
use crate::model::now_nanos;
use crate::ownership::hash64;
use crate::selfmetrics::SelfMetrics;

/// The current set of kubelets to scrape.
pub trait Targets: Send + Sync + 'static {
    fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>>;
}

/// One scrape of one kubelet, and what to do when a node is gone or unreachable.
pub trait ScrapeOne: Send + Sync + 'static {
    /// Scrapes `target` and stores the result (or records the failure).
    fn scrape(&self, target: ScrapeTarget) -> impl Future<Output = ()> + Send;
    /// The node has no usable address this round.
    fn unreachable(&self, error: &TargetError);
    /// The node left the target set (deleted, deselected or no longer owned).
    fn forget(&self, node: &str);
}

/// Position of `node` inside the period, as a fraction in `[0, 1)`: the top
/// 53 bits of the name's stable hash ([`hash64`]: FNV-1a with a SplitMix64
/// finaliser), so it is stable across processes and releases.
pub fn offset_fraction(node: &str) -> f64 {
    (hash64(node.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// How the first round is compressed: metrics-server staggers a tick's
/// scrapes over at most min(8 ms × nodes, 4 s); we do the same for the first
/// round so a new replica has data quickly, then follow the per-node offsets.
fn first_round_spread(nodes: usize, resolution: Duration) -> Duration {
    let s = Duration::from_millis(8).saturating_mul(nodes as u32).min(Duration::from_secs(4));
    s.min(resolution / 2)
}

/// Timing settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub resolution: Duration,
    /// Most scrapes in flight at once.
    pub concurrency: usize,
}

/// Runs rounds until `shutdown`.
pub async fn run<T: Targets, S: ScrapeOne>(
    settings: SchedulerSettings,
    targets: Arc<T>,
    scraper: Arc<S>,
    tick: Arc<TickClock>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    let resolution = settings.resolution;
    let limit = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut known: HashSet<String> = HashSet::new();
    let mut rounds: JoinSet<()> = JoinSet::new();
    let mut round_start = Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(round_start) => {}
        }
        while rounds.try_join_next().is_some() {}
        tick.mark(now_nanos());
        let mut plan: Vec<(Duration, ScrapeTarget)> = Vec::new();
        let mut seen = HashSet::new();
        let current = targets.current();
        let spread = first_round_spread(current.len(), resolution);
        for t in current {
            match t {
                Ok(target) => {
                    seen.insert(target.node.clone());
                    let frac = offset_fraction(&target.node);
                    let at = if first { spread.mul_f64(frac) } else { resolution.mul_f64(frac) };
                    plan.push((at, target));
                }
                Err(e) => {
                    let TargetError::NoAddress { node, .. } = &e;
                    seen.insert(node.clone());
                    scraper.unreachable(&e);
                }
            }
        }
        for gone in known.difference(&seen) {
            scraper.forget(gone);
        }
        known = seen;
        plan.sort_by(|a, b| a.0.cmp(&b.0));
        rounds.spawn(run_round(
            round_start,
            plan,
            scraper.clone(),
            limit.clone(),
            in_flight.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        first = false;
        round_start += resolution;
        let now = Instant::now();
        if round_start + resolution < now {
            // The process was stalled for more than a period: skip the missed
            // rounds instead of running them back to back.
            let behind = now.duration_since(round_start).as_nanos() / resolution.as_nanos().max(1);
            round_start += resolution.saturating_mul(behind as u32);
        }
    }
    rounds.shutdown().await;
}

async fn run_round<S: ScrapeOne>(
    start: Instant,
    plan: Vec<(Duration, ScrapeTarget)>,
    scraper: Arc<S>,
    limit: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    let mut scrapes = JoinSet::new();
    for (at, target) in plan {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(start + at) => {}
        }
        let fresh = in_flight.lock().map(|mut s| s.insert(target.node.clone())).unwrap_or(false);
        if !fresh {
            tracing::debug!(node = %target.node, "previous scrape still running; skipping this round");
            continue;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let (scraper, in_flight) = (scraper.clone(), in_flight.clone());
        scrapes.spawn(async move {
            let node = target.node.clone();
            scraper.scrape(target).await;
            if let Ok(mut s) = in_flight.lock() {
                s.remove(&node);
            }
            drop(permit);
        });
    }
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = async { while scrapes.join_next().await.is_some() {} } => {}
    }
    metrics.manager_tick_duration.observe(start.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fixed(Vec<String>);
    impl Targets for Fixed {
        fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>> {
            self.0
                .iter()
                .map(|n| Ok(ScrapeTarget { node: n.clone(), host: "h".into(), port: 1, path: "/".into() }))
                .collect()
        }
    }

    #[derive(Default)]
    struct Recorder {
        times: Mutex<HashMap<String, Vec<Instant>>>,
        forgotten: Mutex<Vec<String>>,
    }
    impl ScrapeOne for Recorder {
        async fn scrape(&self, target: ScrapeTarget) {
            self.times.lock().unwrap().entry(target.node).or_default().push(Instant::now());
        }
        fn unreachable(&self, _: &TargetError) {}
        fn forget(&self, node: &str) {
            self.forgotten.lock().unwrap().push(node.to_string());
        }
    }

    #[test]
    fn offsets_are_stable_and_spread_over_the_period() {
        assert_eq!(offset_fraction("node-1"), offset_fraction("node-1"));
        let mut buckets = [0usize; 10];
        for i in 0..10_000 {
            buckets[(offset_fraction(&format!("node-{i}")) * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven spread: {buckets:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_node_is_scraped_once_per_period() {
        let nodes: Vec<String> = (0..50).map(|i| format!("node-{i}")).collect();
        let rec = Arc::new(Recorder::default());
        let shutdown = CancellationToken::new();
        let period = Duration::from_secs(10);
        let task = tokio::spawn(run(
            SchedulerSettings { resolution: period, concurrency: 8 },
            Arc::new(Fixed(nodes.clone())),
            rec.clone(),
            Arc::new(TickClock::default()),
            Arc::new(SelfMetrics::new(10.0)),
            shutdown.clone(),
        ));
        let start = Instant::now();
        tokio::time::sleep(period * 5 + Duration::from_millis(1)).await;
        shutdown.cancel();
        task.await.unwrap();
        let times = rec.times.lock().unwrap();
        for n in &nodes {
            let t = &times[n];
            assert_eq!(t.len(), 5, "{n} scraped {} times in 5 periods", t.len());
            assert!(t[0].duration_since(start) <= Duration::from_secs(4));
            for w in t.windows(2).skip(1) {
                let gap = w[1].duration_since(w[0]);
                assert!(gap >= period - Duration::from_millis(5) && gap <= period + Duration::from_millis(5));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_that_leave_the_target_set_are_forgotten() {
        struct Shrinking(Mutex<usize>);
        impl Targets for Shrinking {
            fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>> {
                let mut n = self.0.lock().unwrap();
                let names = if *n == 0 { vec!["a", "b"] } else { vec!["a"] };
                *n += 1;
                names
                    .into_iter()
                    .map(|n| Ok(ScrapeTarget { node: n.into(), host: "h".into(), port: 1, path: "/".into() }))
                    .collect()
            }
        }
        let rec = Arc::new(Recorder::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            SchedulerSettings { resolution: Duration::from_secs(1), concurrency: 2 },
            Arc::new(Shrinking(Mutex::new(0))),
            rec.clone(),
            Arc::new(TickClock::default()),
            Arc::new(SelfMetrics::new(1.0)),
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(*rec.forgotten.lock().unwrap(), vec!["b".to_string()]);
    }
}
