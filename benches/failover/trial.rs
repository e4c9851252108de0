//! One failover trial: pick the victim (leader or follower), watch the
//! survivors, kill -9 or SIGTERM it, and measure from the survivors' cluster
//! views, the simulator's scrape log and the observer; then restart it with
//! its data dir and wait until the cluster is whole again. A step that
//! misses its deadline makes the trial failed, with the reason, and the
//! trial still ends with the restart so the next one can run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raft::MemberState;
use sim::scrapes::unix_ms;

use crate::cluster::{Bench, REPLICAS, RESOLUTION};
use crate::observer::{Observer, Seen};

/// How long each step of a trial may take before the trial fails.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For the victim to be marked down / leave, the orphans to be scraped
    /// again, and a SIGTERMed replica to exit.
    pub step: Duration,
    /// For the cluster to be whole again after the restart.
    pub recovery: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines { step: Duration::from_secs(60), recovery: Duration::from_secs(120) }
    }
}

/// How the victim is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// SIGKILL: a crash.
    Kill9,
    /// SIGTERM: a planned leave (make before break), as in a rolling restart.
    Sigterm,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Kill9 => "kill -9",
            Kind::Sigterm => "SIGTERM",
        }
    }
}

/// The figures of one trial. Times are seconds from the signal.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trial {
    pub kind: Kind,
    pub index: usize,
    /// The victim replica and whether it led.
    pub victim: usize,
    pub victim_was_leader: bool,
    /// Whether every step met its deadline.
    pub ok: bool,
    /// Why not.
    pub failures: Vec<String>,
    /// Nodes the victim owned at the signal (it scraped them last in the
    /// healthy stretch before it).
    pub orphans: usize,
    /// Until every survivor's view showed the victim Down (kill -9) or no
    /// longer Active (SIGTERM: Draining).
    pub marked_s: Option<f64>,
    /// Until the last orphan was first scraped by a survivor (scrape log).
    pub rescraped_s: Option<f64>,
    /// Until the SIGTERMed process exited.
    pub exited_s: Option<f64>,
    /// The most scrapes of one orphan closer than R/2 to its previous
    /// scrape, from R before the signal to the end of the observation.
    pub max_extra_scrapes: u32,
    /// What the observer of the survivors saw from the healthy stretch
    /// before the signal (every node scraped twice, about 2 R) to 2 R after
    /// the last measured step.
    pub seen: Seen,
    /// When the first and the last answer lacking a node arrived, in
    /// seconds from the signal (negative: before it).
    pub missing_from_s: Option<f64>,
    pub missing_to_s: Option<f64>,
    /// From the restart until the cluster was whole again.
    pub recovery_s: Option<f64>,
}

/// Runs one trial of `kind` against the leader (`leader`) or a follower.
/// `fixed_victim` kills that replica every time instead (`FAILOVER_VICTIM`).
pub async fn run(
    bench: &mut Bench,
    kind: Kind,
    index: usize,
    leader: bool,
    fixed_victim: Option<usize>,
    deadlines: Deadlines,
) -> Trial {
    let mut t = Trial {
        kind,
        index,
        victim: 0,
        victim_was_leader: leader,
        ok: true,
        failures: Vec::new(),
        orphans: 0,
        marked_s: None,
        rescraped_s: None,
        exited_s: None,
        max_extra_scrapes: 0,
        seen: Seen::default(),
        missing_from_s: None,
        missing_to_s: None,
        recovery_s: None,
    };
    let Some(l) = bench.leader().await else {
        t.fail("no replica named a leader before the trial");
        return t;
    };
    let victim = fixed_victim.unwrap_or(if leader { l } else { (l + 1) % REPLICAS });
    t.victim = victim;
    t.victim_was_leader = victim == l;
    let survivors: Vec<usize> = (0..REPLICAS).filter(|i| *i != victim).collect();
    let want: BTreeSet<String> = bench.env.spec.nodes.iter().map(|n| n.name.clone()).collect();
    let targets = survivors.iter().map(|&i| (i, bench.env.replica_addr(i))).collect();
    let obs = Observer::start(targets, want, &bench.admin);
    // A healthy stretch first, watched by the observer, until every node has
    // been scraped twice since it started (about two resolutions): then the
    // scrape log names every node's current owner, the victim's share too.
    let watched = SystemTime::now();
    let victim_ip = Some(bench.source_ip(victim));
    let owners = sim::wait::until_some(deadlines.step, async || {
        let log = bench.env.fleet.scrapes_since(watched);
        let by_node = sim::scrapes::by_node(sim::scrapes::reached(&log), 0, u64::MAX);
        let twice = by_node.len() == bench.nodes && by_node.values().all(|times| times.len() >= 2);
        twice.then(|| sim::scrapes::last_scraper(sim::scrapes::reached(&log)))
    })
    .await;
    if owners.is_none() {
        t.fail(&format!("not every node was scraped twice within {:?} before the signal", deadlines.step));
    }
    let orphans: BTreeSet<String> =
        owners.unwrap_or_default().into_iter().filter(|(_, by)| *by == victim_ip).map(|(node, _)| node).collect();
    t.orphans = orphans.len();
    if orphans.is_empty() {
        t.fail("the victim scraped no node in the healthy stretch before the signal");
    }
    let signalled = SystemTime::now();
    let t0 = Instant::now();
    bench.signal(victim, if kind == Kind::Kill9 { libc::SIGKILL } else { libc::SIGTERM });

    let (mut marked, mut exited) = (None, None);
    let done = sim::wait::until(deadlines.step, async || {
        if marked.is_none() && marked_everywhere(bench, kind, victim, &survivors).await {
            marked = Some(t0.elapsed().as_secs_f64());
        }
        if kind == Kind::Sigterm && exited.is_none() && bench.exited(victim) {
            exited = Some(t0.elapsed().as_secs_f64());
        }
        let rescraped = first_rescrapes(bench, &orphans, signalled, victim).len() == orphans.len();
        marked.is_some() && rescraped && (kind == Kind::Kill9 || exited.is_some())
    })
    .await;
    let firsts = first_rescrapes(bench, &orphans, signalled, victim);
    if firsts.len() == orphans.len() && !orphans.is_empty() {
        t.rescraped_s = firsts.values().max().and_then(|at| at.duration_since(signalled).ok()).map(|d| d.as_secs_f64());
    }
    (t.marked_s, t.exited_s) = (marked, exited);
    if done.is_none() {
        let what = if t.marked_s.is_none() {
            "the victim marked down/left in every survivor's view"
        } else if t.rescraped_s.is_none() {
            "every orphan scraped again by a survivor"
        } else {
            "the SIGTERMed replica to exit"
        };
        t.fail(&format!("timed out after {:?} waiting for {what}", deadlines.step));
    }
    // Not synchronisation: the observation window after the last measured
    // step, the same 2 R in every trial (a new owner's rate needs its second
    // scrape, R after the first), over which the observer measures.
    tokio::time::sleep(RESOLUTION * 2).await;
    t.seen = obs.stop().await;
    let offset = |at: &SystemTime| match at.duration_since(signalled) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    t.missing_from_s = t.seen.missing_at.iter().map(offset).reduce(f64::min);
    t.missing_to_s = t.seen.missing_at.iter().map(offset).reduce(f64::max);
    t.max_extra_scrapes = max_extra_scrapes(bench, &orphans, signalled - RESOLUTION);

    if let Err(e) = bench.restart(victim) {
        t.fail(&format!("restart: {e:#}"));
        return t;
    }
    let restarted = Instant::now();
    match bench.wait_healthy(deadlines.recovery).await {
        Ok(_) => t.recovery_s = Some(restarted.elapsed().as_secs_f64()),
        Err(why) => t.fail(&format!("cluster not whole {:?} after the restart: {why}", deadlines.recovery)),
    }
    t
}

impl Trial {
    fn fail(&mut self, why: &str) {
        self.ok = false;
        self.failures.push(why.to_string());
    }

    /// Whether the cluster is known to be whole after this trial.
    pub fn recovered(&self) -> bool {
        self.recovery_s.is_some()
    }
}

/// Whether every survivor's view shows `victim` Down (kill -9) or out of
/// Active (SIGTERM).
async fn marked_everywhere(bench: &Bench, kind: Kind, victim: usize, survivors: &[usize]) -> bool {
    for &i in survivors {
        let marked = match bench.state_of(i, victim).await {
            None => false,
            Some(state) => match kind {
                Kind::Kill9 => state == Some(MemberState::Down),
                Kind::Sigterm => state != Some(MemberState::Active),
            },
        };
        if !marked {
            return false;
        }
    }
    true
}

/// The first scrape of each of `nodes` after `since` by a replica other than `victim`.
fn first_rescrapes(
    bench: &Bench,
    nodes: &BTreeSet<String>,
    since: SystemTime,
    victim: usize,
) -> BTreeMap<String, SystemTime> {
    let log = bench.env.fleet.scrapes_since(since);
    let except = Some(bench.source_ip(victim));
    sim::scrapes::first_after(sim::scrapes::reached(&log), nodes, unix_ms(since), &except)
        .into_iter()
        .map(|(node, ms)| (node, UNIX_EPOCH + Duration::from_millis(ms)))
        .collect()
}

/// The most scrapes of one of `nodes` since `since` that came less than
/// R/2 after the previous scrape of the same node (by anyone).
fn max_extra_scrapes(bench: &Bench, nodes: &BTreeSet<String>, since: SystemTime) -> u32 {
    let log = bench.env.fleet.scrapes_since(since);
    let of_nodes = sim::scrapes::reached(&log).filter(|s| nodes.contains(s.node));
    let close = sim::scrapes::too_close(of_nodes, unix_ms(since), u64::MAX, RESOLUTION.as_millis() as u64);
    close.values().copied().max().unwrap_or(0) as u32
}
