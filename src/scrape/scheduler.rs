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
//! after the first scrape when its phase comes later ([`early_second`]).
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

/// When a node first scraped out of its phase (in the compressed first
/// round, or caught up) is scraped a second time before its phase: a node
/// needs two points to be served, never two within half a period. `from`
/// is when the plan of first scrapes started, `planned` when this node's
/// was planned, `phase` its phase, all from the start of that period, as is
/// the answer; a phase that comes between `from` and `planned` is the
/// node's first scrape (the planned one is then skipped). When its next
/// phase comes more than a period and a sixteenth after its first scrape,
/// half a period (and a thirty-second) after that scrape, so the phase
/// still comes half a period later; `None` when the phase comes within
/// that. So a node is served within about a period of its first scrape,
/// not up to one and a half, at the cost of one more scrape of some nodes
/// in that time; only nodes this replica held no point of are scraped
/// early.
fn early_second(from: Duration, planned: Duration, phase: Duration, resolution: Duration) -> Option<Duration> {
    let next_phase = |after: Duration| {
        let mut at = phase;
        while at < after {
            at += resolution;
        }
        at
    };
    let first = planned.min(next_phase(from));
    let half = resolution / 2;
    (next_phase(first + half) > first + resolution + resolution / 16).then_some(first + half + resolution / 32)
}

/// How soon a newly owned node that needs it is scraped: spread over this,
/// or longer for many nodes (see [`catch_up_spread`]).
pub const CATCH_UP_WITHIN: Duration = Duration::from_secs(1);

/// Caught-up nodes per second at most, until the spread reaches a quarter
/// of the period: each is a new connection to a kubelet (a TLS handshake).
/// In the 10,000-node rolling restart a replica caught up 2,400 to 3,500
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
}

impl<S: ScrapeOne> Firing<S> {
    /// Fires one scrape of `target` unless this replica neither scrapes nor
    /// probes it, it is still running, it was fired less than half a
    /// period ago, or (with `fired_since`) it was not fired since then.
    async fn fire(
        self: &Arc<Self>,
        target: ScrapeTarget,
        fired_since: Option<Instant>,
        scrapes: &mut JoinSet<()>,
    ) -> bool {
        let attempt = {
            let o = self.ownership.borrow();
            if o.scrapes(&target.node) {
                Attempt::Scrape
            } else if self.scraper.probes(&target.node) && !o.kubelet_unreachable(&target.node) {
                Attempt::Probe
            } else {
                return false;
            }
        };
        let now = Instant::now();
        {
            let mut last = self.last_fired.lock().unwrap_or_else(|p| p.into_inner());
            let fired = last.get(&target.node);
            if fired.is_some_and(|t| now.duration_since(*t) < self.resolution / 2) {
                return false;
            }
            if fired_since.is_some_and(|since| fired.is_none_or(|t| *t < since)) {
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
            me.scraper.scrape(target, attempt).await;
            if let Ok(mut s) = me.in_flight.lock() {
                s.remove(&node);
            }
            drop(permit);
        });
        true
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
    });
    let mut known: HashSet<String> = HashSet::new();
    let mut rounds: JoinSet<()> = JoinSet::new();
    let clock = Clock::now();
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
                    let now = Instant::now();
                    let next = clock.next_period_start(resolution, now);
                    let period_start = next.checked_sub(resolution).unwrap_or(now);
                    rounds.spawn(run_catch_up(now_targets, period_start, firing.clone(), shutdown.clone()));
                }
            }
            _ = tokio::time::sleep_until(round_start) => {
                while rounds.try_join_next().is_some() {}
                tick.mark(clock.unix(Instant::now()));
                let current = ownership.borrow().clone();
                let mut plan: Vec<(Duration, ScrapeTarget)> = Vec::new();
                // In the first round, each node's phase in this period and
                // its compressed first scrape (from the round's start).
                let mut phases: Vec<(Duration, Duration, ScrapeTarget)> = Vec::new();
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
                                let compressed = spread.mul_f64(frac);
                                phases.push((phase, compressed, target.clone()));
                                plan.push((compressed, target));
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
                if first {
                    // The rest of this period at the nodes' phases (one
                    // within half a period of the node's compressed scrape
                    // is skipped when fired), and early second scrapes (see
                    // `early_second`; only where the first round did scrape
                    // the node here: a replica that joined after it scrapes
                    // nothing early), from the period's start.
                    let period_start = next_start.checked_sub(resolution).unwrap_or(round_start);
                    let since_period = round_start.saturating_duration_since(period_start);
                    let now = Instant::now().saturating_duration_since(period_start);
                    let (mut rest, mut early) = (Vec::new(), Vec::new());
                    for (phase, compressed, target) in std::mem::take(&mut phases) {
                        let planned = since_period + compressed;
                        if scraper.newest(&target.node).is_none()
                            && let Some(at) = early_second(since_period, planned, phase, resolution)
                        {
                            early.push((at, target.clone()));
                        }
                        if phase > now {
                            rest.push((phase, target));
                        }
                    }
                    for (mut plan, fired_since) in [(rest, None), (early, Some(round_start))] {
                        plan.sort_by_key(|(at, _)| *at);
                        let (firing, shutdown) = (firing.clone(), shutdown.clone());
                        rounds.spawn(async move {
                            fire_plan(period_start, plan, fired_since, &firing, &shutdown).await;
                        });
                    }
                }
                rounds.spawn(run_round(round_start, plan, firing.clone(), metrics.clone(), shutdown.clone()));
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
    plan: Vec<(Duration, ScrapeTarget)>,
    firing: Arc<Firing<S>>,
    metrics: Arc<SelfMetrics>,
    shutdown: CancellationToken,
) {
    if fire_plan(start, plan, None, &firing, &shutdown).await {
        metrics.manager_tick_duration.observe(start.elapsed().as_secs_f64());
    }
}

/// Scrapes newly owned nodes within [`catch_up_spread`], spread by their
/// phase; those this replica holds no point of (it needs two to serve
/// them) again half a period later where their phase comes too late (see
/// [`early_second`]; `period_start` is the start of this period).
async fn run_catch_up<S: ScrapeOne>(
    nodes: Vec<ScrapeTarget>,
    period_start: Instant,
    firing: Arc<Firing<S>>,
    shutdown: CancellationToken,
) {
    let start = Instant::now();
    let since_period = start.saturating_duration_since(period_start);
    let resolution = firing.resolution;
    let (mut plan, mut early) = (Vec::new(), Vec::new());
    let spread = catch_up_spread(nodes.len(), resolution);
    for t in nodes {
        let frac = offset_fraction(&t.node);
        let at = spread.mul_f64(frac);
        if firing.scraper.newest(&t.node).is_none()
            && let Some(second) = early_second(since_period, since_period + at, resolution.mul_f64(frac), resolution)
        {
            early.push((second, t.clone()));
        }
        plan.push((at, t));
    }
    plan.sort_by_key(|(at, _)| *at);
    early.sort_by_key(|(at, _)| *at);
    tokio::join!(
        fire_plan(start, plan, None, &firing, &shutdown),
        fire_plan(period_start, early, Some(start), &firing, &shutdown),
    );
}

/// Fires each target of `plan` (sorted by offset) at `start + offset`
/// (with `fired_since`, only those this scheduler fired since then) and
/// waits for every scrape to finish; false if shut down first.
async fn fire_plan<S: ScrapeOne>(
    start: Instant,
    plan: Vec<(Duration, ScrapeTarget)>,
    fired_since: Option<Instant>,
    firing: &Arc<Firing<S>>,
    shutdown: &CancellationToken,
) -> bool {
    let mut scrapes = JoinSet::new();
    for (at, target) in plan {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(start + at) => {}
        }
        firing.fire(target, fired_since, &mut scrapes).await;
    }
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = async { while scrapes.join_next().await.is_some() {} } => true,
    }
}

#[cfg(test)]
mod tests;
