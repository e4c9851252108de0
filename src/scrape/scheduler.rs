//! When each kubelet is scraped, and by whom. Every node has a fixed phase
//! inside the resolution period, derived from its name and aligned to the
//! wall clock (`unix_time mod R`), so scrapes are spread evenly over the
//! period and every replica would scrape a node at the same moment: when a
//! node changes owner, the new owner keeps the old owner's rhythm and the
//! kubelet sees one scrape per period. One round per period; a node whose
//! previous scrape is still running is skipped rather than piled up.
//!
//! Which nodes this replica scrapes comes from the [`Ownership`] watch, read
//! at every firing. When ownership moves, the replica manager decides which
//! newly owned nodes cannot wait for their phase (no point held, or the
//! newest older than one period) and sends them here: they are scraped within
//! [`CATCH_UP_WITHIN`] (longer for thousands, [`catch_up_spread`]), still
//! never twice within half a period. A node first
//! scraped in the compressed first round or in a catch-up, of which this
//! replica held no point, is scraped a second time within about a period
//! (it needs two points to be served): at its phase, or half a period
//! after the first scrape when its phase comes later ([`early_after`]).
//! A node this
//! replica holds but reported unreachable (so another holder scrapes it) is
//! still tried at its phase, as a [`Attempt::Probe`], until an attempt
//! reaches its kubelet; when every holder reported it (nobody reaches it),
//! only its assigned scraper tries, so a kubelet coming back is scraped by
//! one replica, and the other reports lapse after [`REPORT_LAPSES`] untried
//! (each holder then tries once more, in turn). What a scrape does is [`ScrapeOne`]'s business,
//! what ownership changes mean the manager's; this module only keeps time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
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

/// Why a kubelet is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This replica scrapes the node: the result, good or bad, is the node's.
    Scrape,
    /// This replica reported the node unreachable and another holder
    /// scrapes it: a good result is kept, a failure only counted.
    Probe,
}

/// One scrape of one kubelet, and what to do when a node is gone or unreachable.
pub trait ScrapeOne: Send + Sync + 'static {
    /// Scrapes `target` and stores the result (or records the failure).
    fn scrape(&self, target: ScrapeTarget, attempt: Attempt) -> impl Future<Output = ()> + Send;
    /// Whether `node` is to be probed when this replica does not scrape it:
    /// it reported the node's kubelet unreachable.
    fn probes(&self, _node: &str) -> bool {
        false
    }
    /// Stops tracking every node but those `keep` names (those whose report
    /// still matters), and drops reports not tried for `untried_for`.
    fn keep_only(&self, _keep: &dyn Fn(&str) -> bool, _untried_for: Duration) {}
    /// The node has no usable address this round.
    fn unreachable(&self, error: &TargetError);
    /// The node left the cluster (deleted or deselected).
    fn forget(&self, node: &str);
    /// Time of the newest point held for `node`, if any.
    fn newest(&self, node: &str) -> Option<UnixNanos>;
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

/// How long after a node's first scrape out of its phase (in the
/// compressed first round, or caught up) it is scraped a second time
/// before its phase, when this replica held no point of it: a node needs
/// two points to be served, never two within half a period. `offset` is
/// where in its period that first scrape fired, `phase` the node's phase.
/// When its next phase at least half a period away comes more than a period
/// and a sixteenth after the first scrape, half a period (and a
/// thirty-second) after it, so the phase still comes half a period later;
/// `None` when the phase comes within that. So a node is served within
/// about a period of its first scrape, not up to one and a half, at the
/// cost of one more scrape of some nodes in that time. Taken from when the
/// first scrape really fired: a catch-up of thousands fires late on a busy
/// replica.
fn early_after(offset: Duration, phase: Duration, resolution: Duration) -> Option<Duration> {
    let half = resolution / 2;
    let mut next = phase;
    while next < offset + half {
        next += resolution;
    }
    (next > offset + resolution + resolution / 16).then_some(half + resolution / 32)
}

/// How soon a newly owned node that needs it is scraped: spread over this,
/// or longer for many nodes (see [`catch_up_spread`]).
pub const CATCH_UP_WITHIN: Duration = Duration::from_secs(1);

/// Caught-up nodes per second at most, until the spread reaches a quarter
/// of the period: each is a new connection to a kubelet (a TLS handshake).
/// In the 10,000-node rolling restart a replica caught up 2,400 to 4,400
/// nodes within one second, on cores the Raft heartbeats share, and the
/// failure detector then took a live member for Down.
const CATCH_UP_PER_SECOND: u32 = 1_000;

/// Over how long a catch-up of `nodes` nodes is spread: [`CATCH_UP_WITHIN`],
/// or a second per [`CATCH_UP_PER_SECOND`] nodes, up to a quarter of the
/// period.
fn catch_up_spread(nodes: usize, resolution: Duration) -> Duration {
    let paced = Duration::from_secs(1).mul_f64(nodes as f64 / f64::from(CATCH_UP_PER_SECOND));
    paced.min(resolution / 4).max(CATCH_UP_WITHIN)
}

/// How many resolutions a report of an unreachable kubelet that is not
/// tried (every holder reported it, and this replica is not the one that
/// keeps trying) lasts: then this replica scrapes it once more, so a kubelet
/// that only the owner still cannot reach is found again within this many
/// resolutions (plus one attempt per holder before it).
pub const REPORT_LAPSES: u32 = 4;

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
    /// Where each moment falls in its period.
    clock: Clock,
}

impl<S: ScrapeOne> Firing<S> {
    /// Fires one scrape of `target` unless this replica neither scrapes nor
    /// probes it, it is still running, or it was fired less than half a
    /// period ago; when it started (past the cap on scrapes in flight).
    async fn fire(self: &Arc<Self>, target: ScrapeTarget, scrapes: &mut JoinSet<()>) -> Option<Instant> {
        let attempt = {
            let o = self.ownership.borrow();
            if o.scrapes(&target.node) {
                Attempt::Scrape
            } else if self.scraper.probes(&target.node) && !o.kubelet_unreachable(&target.node) {
                Attempt::Probe
            } else {
                return None;
            }
        };
        let now = Instant::now();
        {
            let last = self.last_fired.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(&target.node).is_some_and(|t| now.duration_since(*t) < self.resolution / 2) {
                return None;
            }
            let fresh = self.in_flight.lock().map(|mut s| s.insert(target.node.clone())).unwrap_or(false);
            if !fresh {
                tracing::debug!(node = %target.node, "previous scrape still running; skipping this round");
                return None;
            }
        }
        let Ok(permit) = self.limit.clone().acquire_owned().await else { return None };
        let started = Instant::now();
        // The half-period gap counts from when the scrape really starts
        // (past the cap, a busy replica can start it seconds after it was
        // due); until then `in_flight` keeps a second one out.
        if let Ok(mut last) = self.last_fired.lock() {
            last.insert(target.node.clone(), started);
        }
        let me = self.clone();
        scrapes.spawn(async move {
            let node = target.node.clone();
            me.scraper.scrape(target, attempt).await;
            if let Ok(mut s) = me.in_flight.lock() {
                s.remove(&node);
            }
            drop(permit);
        });
        Some(started)
    }
}

/// Runs rounds until `shutdown`, scraping what `ownership` says this
/// replica scrapes, and the catch-up scrapes that `catch_up` asks for.
#[allow(clippy::too_many_arguments)] // the scheduler's inputs, each once
pub async fn run<T: Targets, S: ScrapeOne>(
    settings: SchedulerSettings,
    targets: Arc<T>,
    scraper: Arc<S>,
    ownership: watch::Receiver<Arc<Ownership>>,
    mut catch_up: mpsc::Receiver<Vec<String>>,
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
        clock: Clock::now(),
    });
    let mut known: HashSet<String> = HashSet::new();
    let mut rounds: JoinSet<()> = JoinSet::new();
    let clock = firing.clock;
    let mut catching_up = true;
    let mut round_start = Instant::now();
    let mut first = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            asked = catch_up.recv(), if catching_up => {
                let Some(nodes) = asked else {
                    catching_up = false;
                    continue;
                };
                let wanted: HashSet<String> = nodes.into_iter().collect();
                let now_targets: Vec<ScrapeTarget> = targets
                    .current()
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter(|t| wanted.contains(&t.node))
                    .collect();
                if !now_targets.is_empty() {
                    tracing::debug!(nodes = now_targets.len(), "catching up on newly owned nodes");
                    rounds.spawn(run_catch_up(now_targets, firing.clone(), shutdown.clone()));
                }
            }
            _ = tokio::time::sleep_until(round_start) => {
                while rounds.try_join_next().is_some() {}
                tick.mark(clock.unix(Instant::now()));
                let current = ownership.borrow().clone();
                let mut plan: Vec<(Duration, ScrapeTarget)> = Vec::new();
                // In the first round, each node's phase in this period (the
                // round itself is compressed).
                let mut phases: Vec<(Duration, ScrapeTarget)> = Vec::new();
                let mut seen = HashSet::new();
                let all = targets.current();
                let spread = first_round_spread(all.len(), resolution);
                for t in all {
                    match t {
                        Ok(target) => {
                            seen.insert(target.node.clone());
                            let frac = offset_fraction(&target.node);
                            let phase = resolution.mul_f64(frac);
                            if first {
                                phases.push((phase, target.clone()));
                                plan.push((spread.mul_f64(frac), target));
                            } else {
                                plan.push((phase, target));
                            }
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
                // Reports of nodes gone, no longer held, or whose report no
                // longer changes who scrapes them are dropped, and so are
                // reports left untried for a while.
                let keep = |n: &str| known.contains(n) && holds(&current, n) && current.report_matters(n);
                scraper.keep_only(&keep, resolution * REPORT_LAPSES);
                publish(&metrics, &current, known.iter().map(String::as_str));
                plan.sort_by_key(|(at, _)| *at);
                let next_start = clock.next_period_start(resolution, Instant::now());
                // A node held nowhere (a new replica's) gets an early second
                // scrape after its compressed first one (see `early_after`).
                let seconds: HashSet<String> = if first {
                    plan.iter().map(|(_, t)| &t.node).filter(|n| scraper.newest(n).is_none()).cloned().collect()
                } else {
                    HashSet::new()
                };
                if first {
                    // The rest of this period at the nodes' phases: a node
                    // whose phase comes half a period or more after its
                    // compressed first scrape gets its second point then.
                    let period_start = next_start.checked_sub(resolution).unwrap_or(round_start);
                    let now = Instant::now();
                    let mut rest = std::mem::take(&mut phases);
                    rest.retain(|(at, _)| period_start + *at > now);
                    rest.sort_by_key(|(at, _)| *at);
                    let (firing, shutdown) = (firing.clone(), shutdown.clone());
                    rounds.spawn(async move {
                        fire_plan(period_start, rest, &HashSet::new(), &firing, &shutdown).await;
                    });
                }
                rounds.spawn(run_round(round_start, (plan, seconds), firing.clone(), metrics.clone(), shutdown.clone()));
                first = false;
                round_start = next_start;
            }
        }
    }
    rounds.shutdown().await;
}

/// Whether this replica holds `node` (scrapes it, or is one of its holders).
fn holds(ownership: &Ownership, node: &str) -> bool {
    ownership.scrapes(node) || ownership.me.is_some_and(|me| ownership.holders(node).contains(me))
}

/// The ring epoch, how many of the known nodes this replica scrapes, and
/// how many of those it scrapes for an owner that cannot reach them.
fn publish<'a>(metrics: &SelfMetrics, ownership: &Ownership, nodes: impl Iterator<Item = &'a str>) {
    metrics.ring_epoch.set(ownership.epoch as i64);
    let (mut scraped, mut standing_in) = (0, 0);
    for n in nodes.filter(|n| ownership.scrapes(n)) {
        scraped += 1;
        standing_in += i64::from(ownership.stands_in(n));
    }
    metrics.owned_nodes.set(scraped);
    metrics.standin_nodes.set(standing_in);
}

async fn run_round<S: ScrapeOne>(
    start: Instant,
    (plan, seconds): (Vec<(Duration, ScrapeTarget)>, HashSet<String>),
    firing: Arc<Firing<S>>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    if fire_plan(start, plan, &seconds, &firing, &shutdown).await {
        metrics.manager_tick_duration.observe(start.elapsed().as_secs_f64());
    }
}

/// Scrapes newly owned nodes within [`catch_up_spread`], spread by their
/// phase; those this replica holds no point of (it needs two to serve
/// them) again half a period later where their phase comes too late (see
/// [`early_after`]).
async fn run_catch_up<S: ScrapeOne>(nodes: Vec<ScrapeTarget>, firing: Arc<Firing<S>>, shutdown: CancellationToken) {
    let start = Instant::now();
    let spread = catch_up_spread(nodes.len(), firing.resolution);
    let seconds: HashSet<String> =
        nodes.iter().map(|t| &t.node).filter(|n| firing.scraper.newest(n).is_none()).cloned().collect();
    let mut plan: Vec<(Duration, ScrapeTarget)> =
        nodes.into_iter().map(|t| (spread.mul_f64(offset_fraction(&t.node)), t)).collect();
    plan.sort_by_key(|(at, _)| *at);
    fire_plan(start, plan, &seconds, &firing, &shutdown).await;
}

/// Fires each target of `plan` (sorted by offset) at `start + offset` and
/// waits for every scrape to finish; false if shut down first. A node named
/// in `seconds` that fired is scraped again when [`early_after`] says so
/// (on its own task: the plan does not wait for it).
async fn fire_plan<S: ScrapeOne>(
    start: Instant,
    plan: Vec<(Duration, ScrapeTarget)>,
    seconds: &HashSet<String>,
    firing: &Arc<Firing<S>>,
    shutdown: &CancellationToken,
) -> bool {
    let mut scrapes = JoinSet::new();
    let resolution = firing.resolution;
    let r_ns = resolution.as_nanos().max(1) as i64;
    for (at, target) in plan {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(start + at) => {}
        }
        let second = seconds.contains(&target.node).then(|| target.clone());
        let fired = firing.fire(target, &mut scrapes).await;
        if let (Some(target), Some(fired)) = (second, fired) {
            let offset = Duration::from_nanos(firing.clock.unix(fired).rem_euclid(r_ns) as u64);
            let phase = resolution.mul_f64(offset_fraction(&target.node));
            if let Some(after) = early_after(offset, phase, resolution) {
                tokio::spawn(fire_later(fired + after, target, firing.clone(), shutdown.clone()));
            }
        }
    }
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = async { while scrapes.join_next().await.is_some() {} } => true,
    }
}

/// Fires one scrape of `target` at `at` and waits for it, unless shut down.
async fn fire_later<S: ScrapeOne>(
    at: Instant,
    target: ScrapeTarget,
    firing: Arc<Firing<S>>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep_until(at) => {}
    }
    let mut scrapes = JoinSet::new();
    if firing.fire(target, &mut scrapes).await.is_some() {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async { while scrapes.join_next().await.is_some() {} } => {}
        }
    }
}

#[cfg(test)]
mod tests;
