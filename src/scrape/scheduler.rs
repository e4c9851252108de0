//! When each kubelet is scraped, and by whom. Every node has a fixed phase
//! inside the resolution period, derived from its name and aligned to the
//! wall clock (`unix_time mod R`), so scrapes are spread evenly over the
//! period and every replica would scrape a node at the same moment: when a
//! node changes owner, the new owner keeps the old owner's rhythm and the
//! kubelet sees one scrape per period. One round per period; a node whose
//! previous scrape is still running is skipped rather than piled up.
//!
//! Which nodes this replica scrapes comes from the [`Ownership`] watch: the
//! scheduler checks it at every firing and re-plans the moment it changes.
//! A newly owned node is scraped within a second when its newest point is
//! older than one period or its previous owner is Down (an orphan), else at
//! its usual phase. A node that moved away is released, not forgotten: its
//! points stay for the handover. What a scrape does is [`ScrapeOne`]'s
//! business; this module only keeps time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::{MemberState, NodeId};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discovery::{ScrapeTarget, TargetError};
use crate::health::TickClock;
use crate::model::{UnixNanos, now_nanos};
use crate::ownership::Ownership;
use crate::selfmetrics::SelfMetrics;

/// The current set of kubelets that exist (whoever owns them).
pub trait Targets: Send + Sync + 'static {
    fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>>;
}

/// One scrape of one kubelet, and what to do when a node is gone or unreachable.
pub trait ScrapeOne: Send + Sync + 'static {
    /// Scrapes `target` and stores the result (or records the failure).
    fn scrape(&self, target: ScrapeTarget) -> impl Future<Output = ()> + Send;
    /// The node has no usable address this round.
    fn unreachable(&self, error: &TargetError);
    /// The node left the cluster (deleted or deselected).
    fn forget(&self, node: &str);
    /// Time of the newest point held for `node`, if any.
    fn newest(&self, node: &str) -> Option<UnixNanos>;
    /// `node` is now scraped here: serve what was backed up for it.
    fn adopt(&self, _node: &str) {}
    /// `node` is no longer scraped here: hand its points to `to`, its new owner.
    fn release(&self, _node: &str, _to: Option<raft::NodeId>) {}
    /// `node`, still scraped here, has a new successor `to`: seed its backup.
    fn reseed(&self, _node: &str, _to: raft::NodeId) {}
}

/// Position of `node` inside the period, as a fraction in `[0, 1)`: the
/// ownership hash of its name ([`crate::ownership::hash64`]), so it is stable
/// across processes and releases.
pub fn offset_fraction(node: &str) -> f64 {
    (crate::ownership::hash64(node.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// How the first round is compressed: metrics-server staggers a tick's
/// scrapes over at most min(8 ms × nodes, 4 s); we do the same for the first
/// round so a new replica has data quickly, then follow the phases.
fn first_round_spread(nodes: usize, resolution: Duration) -> Duration {
    let s = Duration::from_millis(8).saturating_mul(nodes as u32).min(Duration::from_secs(4));
    s.min(resolution / 2)
}

/// How soon a newly owned node that needs it is scraped: spread over this.
pub const CATCH_UP_WITHIN: Duration = Duration::from_secs(1);

/// Timing settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub resolution: Duration,
    /// Most scrapes in flight at once.
    pub concurrency: usize,
}

/// Wall-clock time on the monotonic clock: the Unix time read once at start
/// plus the monotonic time since, so phases stay aligned to the wall clock
/// without jumping when the wall clock is stepped (and tokio's paused test
/// clock moves both together).
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    unix_start: UnixNanos,
}

impl Clock {
    fn now() -> Clock {
        Clock { start: Instant::now(), unix_start: now_nanos() }
    }

    fn unix(&self, at: Instant) -> UnixNanos {
        self.unix_start.saturating_add(at.saturating_duration_since(self.start).as_nanos() as i64)
    }

    /// The start of the first period after `now`: the next multiple of `R` in Unix time.
    fn next_period_start(&self, resolution: Duration, now: Instant) -> Instant {
        let r = resolution.as_nanos().max(1) as i64;
        let unix_now = self.unix(now);
        let next = (unix_now.div_euclid(r) + 1) * r;
        now + Duration::from_nanos((next - unix_now).max(0) as u64)
    }
}

/// Nodes gained and lost between two ownership views, over `nodes`; a
/// gained node is an orphan when its previous owner is Down or gone.
pub fn replan<'a>(old: &Ownership, new: &Ownership, nodes: impl Iterator<Item = &'a str>) -> Replan {
    let mut r = Replan::default();
    for node in nodes {
        match (old.scrapes(node), new.scrapes(node)) {
            (false, true) => {
                // Orphaned: the previous owner is Down, gone, or unreachable
                // in degraded mode; no handover is coming.
                let orphan = old.owner(node).is_none_or(|prev| {
                    new.members.get(&prev).is_none_or(|m| m.state == MemberState::Down) || new.covers_for(prev)
                });
                r.gained.push((node.to_string(), orphan));
            }
            (true, false) => r.lost.push(node.to_string()),
            (true, true) => {
                if let Some(succ) = new.successor(node).filter(|s| old.successor(node) != Some(*s)) {
                    r.reseeded.push((node.to_string(), succ));
                }
            }
            _ => {}
        }
    }
    r
}

/// What changed for this replica at an epoch change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replan {
    /// Nodes now scraped here, and whether each is an orphan (previous owner Down).
    pub gained: Vec<(String, bool)>,
    /// Nodes no longer scraped here.
    pub lost: Vec<String>,
    /// Nodes still scraped here whose backup has a new home: `(node, successor)`.
    pub reseeded: Vec<(String, NodeId)>,
}

/// Shared by the rounds and catch-up scrapes of one scheduler.
struct Firing<S> {
    scraper: Arc<S>,
    limit: Arc<Semaphore>,
    in_flight: Mutex<HashSet<String>>,
    /// When each node was last fired, to keep two scrapes of one kubelet at
    /// least half a period apart when ownership moves.
    last_fired: Mutex<HashMap<String, Instant>>,
    ownership: watch::Receiver<Arc<Ownership>>,
    resolution: Duration,
}

impl<S: ScrapeOne> Firing<S> {
    /// Fires one scrape of `target` unless this replica does not own it, it
    /// is still running, or it was fired less than half a period ago.
    async fn fire(self: &Arc<Self>, target: ScrapeTarget, scrapes: &mut JoinSet<()>) -> bool {
        if !self.ownership.borrow().scrapes(&target.node) {
            return false;
        }
        let now = Instant::now();
        {
            let mut last = self.last_fired.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(&target.node).is_some_and(|t| now.duration_since(*t) < self.resolution / 2) {
                return false;
            }
            let fresh = self.in_flight.lock().map(|mut s| s.insert(target.node.clone())).unwrap_or(false);
            if !fresh {
                tracing::debug!(node = %target.node, "previous scrape still running; skipping this round");
                return false;
            }
            last.insert(target.node.clone(), now);
        }
        let Ok(permit) = self.limit.clone().acquire_owned().await else { return false };
        let me = self.clone();
        scrapes.spawn(async move {
            let node = target.node.clone();
            me.scraper.scrape(target).await;
            if let Ok(mut s) = me.in_flight.lock() {
                s.remove(&node);
            }
            drop(permit);
        });
        true
    }
}

/// Runs rounds until `shutdown`, scraping what `ownership` says this replica owns.
pub async fn run<T: Targets, S: ScrapeOne>(
    settings: SchedulerSettings,
    targets: Arc<T>,
    scraper: Arc<S>,
    mut ownership: watch::Receiver<Arc<Ownership>>,
    tick: Arc<TickClock>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    let resolution = settings.resolution;
    let firing = Arc::new(Firing {
        scraper: scraper.clone(),
        limit: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        in_flight: Mutex::new(HashSet::new()),
        last_fired: Mutex::new(HashMap::new()),
        ownership: ownership.clone(),
        resolution,
    });
    let mut current = ownership.borrow_and_update().clone();
    publish(&metrics, &current, &targets.current());
    let mut known: HashSet<String> = HashSet::new();
    let mut rounds: JoinSet<()> = JoinSet::new();
    let clock = Clock::now();
    let mut watching = true;
    let mut round_start = Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = ownership.changed(), if watching => {
                if changed.is_err() {
                    // A fixed view (single replica) or the publisher is gone
                    // (shutting down): keep the last one.
                    watching = false;
                    continue;
                }
                let next = ownership.borrow_and_update().clone();
                let all = targets.current();
                let names: Vec<&str> = all.iter().filter_map(|t| t.as_ref().ok()).map(|t| t.node.as_str()).collect();
                let r = replan(&current, &next, names.iter().copied());
                for (n, _) in &r.gained {
                    scraper.adopt(n);
                }
                for n in &r.lost {
                    scraper.release(n, next.owner(n));
                }
                for (n, succ) in &r.reseeded {
                    scraper.reseed(n, *succ);
                }
                let now = clock.unix(Instant::now());
                let catch_up: Vec<ScrapeTarget> = all
                    .iter()
                    .filter_map(|t| t.as_ref().ok())
                    .filter(|t| {
                        r.gained.iter().any(|(n, orphan)| {
                            n == &t.node
                                && (*orphan || scraper.newest(n).is_none_or(|ts| now - ts > resolution.as_nanos() as i64))
                        })
                    })
                    .cloned()
                    .collect();
                if next.epoch != current.epoch || !r.gained.is_empty() || !r.lost.is_empty() {
                    tracing::info!(
                    epoch = next.epoch,
                    from_epoch = current.epoch,
                    gained = r.gained.len(),
                    orphans = r.gained.iter().filter(|(_, o)| *o).count(),
                    lost = r.lost.len(),
                    catch_up = catch_up.len(),
                    "ownership changed; re-planned scrapes"
                    );
                    metrics.ownership_changes.inc();
                }
                publish(&metrics, &next, &all);
                current = next;
                if !catch_up.is_empty() {
                    rounds.spawn(run_catch_up(catch_up, firing.clone(), shutdown.clone()));
                }
            }
            _ = tokio::time::sleep_until(round_start) => {
                while rounds.try_join_next().is_some() {}
                tick.mark(clock.unix(Instant::now()));
                let mut plan: Vec<(Duration, ScrapeTarget)> = Vec::new();
                let mut seen = HashSet::new();
                let all = targets.current();
                let spread = first_round_spread(all.len(), resolution);
                for t in all {
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
                            if current.scrapes(node) {
                                scraper.unreachable(&e);
                            }
                        }
                    }
                }
                for gone in known.difference(&seen) {
                    scraper.forget(gone);
                    if let Ok(mut l) = firing.last_fired.lock() {
                        l.remove(gone);
                    }
                }
                known = seen;
                metrics.owned_nodes.set(known.iter().filter(|n| current.scrapes(n)).count() as i64);
                plan.sort_by_key(|(at, _)| *at);
                rounds.spawn(run_round(round_start, plan, firing.clone(), metrics.clone(), shutdown.clone()));
                first = false;
                round_start = clock.next_period_start(resolution, Instant::now());
            }
        }
    }
    rounds.shutdown().await;
}

fn publish(metrics: &SelfMetrics, ownership: &Ownership, targets: &[Result<ScrapeTarget, TargetError>]) {
    metrics.ring_epoch.set(ownership.epoch as i64);
    let owned = targets.iter().filter_map(|t| t.as_ref().ok()).filter(|t| ownership.scrapes(&t.node)).count();
    metrics.owned_nodes.set(owned as i64);
}

async fn run_round<S: ScrapeOne>(
    start: Instant,
    plan: Vec<(Duration, ScrapeTarget)>,
    firing: Arc<Firing<S>>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    if fire_plan(start, plan, &firing, &shutdown).await {
        metrics.manager_tick_duration.observe(start.elapsed().as_secs_f64());
    }
}

/// Scrapes newly owned nodes within [`CATCH_UP_WITHIN`], spread by their phase.
async fn run_catch_up<S: ScrapeOne>(nodes: Vec<ScrapeTarget>, firing: Arc<Firing<S>>, shutdown: CancellationToken) {
    let start = Instant::now();
    let mut plan: Vec<(Duration, ScrapeTarget)> =
        nodes.into_iter().map(|t| (CATCH_UP_WITHIN.mul_f64(offset_fraction(&t.node)), t)).collect();
    plan.sort_by_key(|(at, _)| *at);
    fire_plan(start, plan, &firing, &shutdown).await;
}

/// Fires each target of `plan` (sorted by offset) at `start + offset` and
/// waits for every scrape to finish; false if shut down first.
async fn fire_plan<S: ScrapeOne>(
    start: Instant,
    plan: Vec<(Duration, ScrapeTarget)>,
    firing: &Arc<Firing<S>>,
    shutdown: &CancellationToken,
) -> bool {
    let mut scrapes = JoinSet::new();
    for (at, target) in plan {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(start + at) => {}
        }
        firing.fire(target, &mut scrapes).await;
    }
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = async { while scrapes.join_next().await.is_some() {} } => true,
    }
}

#[cfg(test)]
mod tests;
