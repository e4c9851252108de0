use super::*;
use raft::state::RingParams;

use raft::{ClusterState, Command, MemberState, fixture};
use std::collections::{HashMap, HashSet};

fn target(n: &str) -> ScrapeTarget {
    ScrapeTarget { node: n.to_string(), host: "h".into(), port: 1, path: "/".into() }
}

struct Fixed(Vec<String>);
impl Targets for Fixed {
    fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>> {
        self.0.iter().map(|n| Ok(target(n))).collect()
    }
}

#[derive(Default)]
struct Recorder {
    times: Mutex<HashMap<String, Vec<Instant>>>,
    forgotten: Mutex<Vec<String>>,
    newest: Mutex<HashMap<String, UnixNanos>>,
    /// Nodes this replica reported unreachable.
    reported: Mutex<HashSet<String>>,
    probes: Mutex<HashMap<String, usize>>,
    /// Nodes whose next scrape takes this long (holding its slot of the cap).
    slow_next: Mutex<(HashSet<String>, Duration)>,
}
impl ScrapeOne for Recorder {
    async fn scrape(&self, target: ScrapeTarget, attempt: Attempt) {
        if attempt == Attempt::Probe {
            *self.probes.lock().unwrap().entry(target.node.clone()).or_default() += 1;
        }
        let takes = {
            let mut slow = self.slow_next.lock().unwrap();
            if slow.0.remove(&target.node) { slow.1 } else { Duration::ZERO }
        };
        self.times.lock().unwrap().entry(target.node).or_default().push(Instant::now());
        tokio::time::sleep(takes).await;
    }
    fn probes(&self, node: &str) -> bool {
        self.reported.lock().unwrap().contains(node)
    }
    fn keep_only(&self, keep: &dyn Fn(&str) -> bool, _untried_for: Duration) {
        self.reported.lock().unwrap().retain(|n| keep(n));
    }
    fn unreachable(&self, _: &TargetError) {}
    fn forget(&self, node: &str) {
        self.forgotten.lock().unwrap().push(node.to_string());
    }
    fn newest(&self, node: &str) -> Option<UnixNanos> {
        self.newest.lock().unwrap().get(node).copied()
    }
}

/// How far (in ms) a scrape of `node` at `at` fell from the node's phase,
/// on the scheduler's `clock`.
fn off_phase_ms(clock: &Clock, node: &str, at: Instant, period: Duration) -> i64 {
    let r_ns = period.as_nanos() as i64;
    let want = (offset_fraction(node) * r_ns as f64) as i64;
    let phase = clock.unix(at).rem_euclid(r_ns);
    (phase - want).abs().min(r_ns - (phase - want).abs()) / 1_000_000
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

/// A committed three-member cluster with a ring: `active` Active, `down`
/// Down, any other of `1..=3` still Joining.
fn cluster(active: &[u64], down: &[u64]) -> ClusterState {
    let state = |id: &u64| match (down.contains(id), active.contains(id)) {
        (true, _) => MemberState::Down,
        (false, true) => MemberState::Active,
        (false, false) => MemberState::Joining,
    };
    fixture::state((1..=3).map(|id| (id, fixture::name(id), state(&id))), Some(RingParams::CURRENT))
}

struct Running {
    rec: Arc<Recorder>,
    ownership: watch::Sender<Arc<Ownership>>,
    catch_up: mpsc::Sender<Vec<String>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(nodes: Vec<String>, period: Duration, ownership: Ownership, rec: Arc<Recorder>) -> Running {
    let (tx, rx) = watch::channel(Arc::new(ownership));
    let (catch_up, asked) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        SchedulerSettings { resolution: period, concurrency: 8 },
        Arc::new(Fixed(nodes)),
        rec.clone(),
        rx,
        asked,
        Arc::new(TickClock::default()),
        Arc::new(SelfMetrics::new(period.as_secs_f64())),
        shutdown.clone(),
    ));
    Running { rec, ownership: tx, catch_up, shutdown, task }
}

impl Running {
    async fn stop(self) -> Arc<Recorder> {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.rec
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

#[test]
fn periods_start_on_multiples_of_the_resolution_in_unix_time() {
    let clock = Clock { start: Instant::now(), unix_start: 1_000_000_000_000 + 3_500_000_000 };
    let next = clock.next_period_start(Duration::from_secs(10), clock.start);
    assert_eq!(clock.unix(next), 1_010_000_000_000);
    // Exactly on a boundary: the next one.
    let on = Clock { start: clock.start, unix_start: 1_010_000_000_000 };
    assert_eq!(on.unix(on.next_period_start(Duration::from_secs(10), on.start)), 1_020_000_000_000);
}

#[tokio::test(start_paused = true)]
async fn each_node_is_scraped_once_per_period() {
    let nodes = names(50);
    let period = Duration::from_secs(10);
    let r = start(nodes.clone(), period, Ownership::single(), Arc::default());
    let start_at = Instant::now();
    tokio::time::sleep(period * 5 + Duration::from_millis(1)).await;
    let rec = r.stop().await;
    let times = rec.times.lock().unwrap();
    for n in &nodes {
        let t = &times[n];
        // The compressed first round, then one per period at the node's
        // phase, from the first period on; the second point within a period
        // and a sixteenth of the first (half a period after it when the
        // phase comes later), the third at most a period after the second.
        assert!((4..=7).contains(&t.len()), "{n} scraped {} times in 5 periods", t.len());
        assert!(t[0].duration_since(start_at) <= Duration::from_secs(4));
        assert!(t[1].duration_since(t[0]) <= period + period / 16 + Duration::from_millis(5), "{n}: {t:?}");
        assert!(t[2].duration_since(t[1]) <= period + Duration::from_millis(5), "{n}: {t:?}");
        for w in t.windows(2).skip(2) {
            let gap = w[1].duration_since(w[0]);
            assert!(gap >= period - Duration::from_millis(5) && gap <= period + Duration::from_millis(5));
        }
        // No two scrapes closer than half a period, the first pair included.
        assert!(t.windows(2).all(|w| w[1].duration_since(w[0]) >= period / 2), "{n}: {t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_that_leave_the_target_set_are_forgotten() {
    struct Shrinking(Mutex<usize>);
    impl Targets for Shrinking {
        fn current(&self) -> Vec<Result<ScrapeTarget, TargetError>> {
            let mut n = self.0.lock().unwrap();
            let names = if *n <= 1 { vec!["a", "b"] } else { vec!["a"] };
            *n += 1;
            names.into_iter().map(|n| Ok(target(n))).collect()
        }
    }
    let rec = Arc::new(Recorder::default());
    let (_tx, rx) = watch::channel(Arc::new(Ownership::single()));
    let (_catch_up, asked) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        SchedulerSettings { resolution: Duration::from_secs(1), concurrency: 2 },
        Arc::new(Shrinking(Mutex::new(0))),
        rec.clone(),
        rx,
        asked,
        Arc::new(TickClock::default()),
        Arc::new(SelfMetrics::new(1.0)),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(*rec.forgotten.lock().unwrap(), vec!["b".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn only_owned_nodes_are_scraped_and_a_node_that_moved_away_is_not_forgotten() {
    let nodes = names(60);
    let period = Duration::from_secs(10);
    let s = cluster(&[1, 2, 3], &[]);
    let me = Ownership::from_state(1, &s);
    let mine: Vec<String> = nodes.iter().filter(|n| me.scrapes(n)).cloned().collect();
    assert!(!mine.is_empty() && mine.len() < nodes.len());
    let r = start(nodes.clone(), period, me, Arc::default());
    tokio::time::sleep(period * 3).await;
    // Member 1 drains: the others own everything now.
    let mut drained = s.clone();
    drained.apply(&Command::SetStates(vec![(1, MemberState::Draining)]));
    r.ownership.send(Arc::new(Ownership::from_state(1, &drained))).unwrap();
    let before: HashMap<String, usize> =
        r.rec.times.lock().unwrap().iter().map(|(n, t)| (n.clone(), t.len())).collect();
    tokio::time::sleep(period * 2).await;
    let rec = r.stop().await;
    let times = rec.times.lock().unwrap();
    assert!(times.keys().all(|n| mine.contains(n)), "scraped a node it does not own");
    for n in &mine {
        assert!(before[n] >= 2, "{n} scraped {} times in 3 periods", before[n]);
        assert_eq!(times[n].len(), before[n], "{n} still scraped after it moved away");
    }
    assert!(rec.forgotten.lock().unwrap().is_empty(), "a moved node is not a deleted node");
}

#[test]
fn a_second_scrape_comes_within_a_period_and_a_sixteenth_and_never_within_half_a_period() {
    let r = Duration::from_secs(16);
    let ms = Duration::from_millis;
    // First scrape at 1 s into the period, phase at 1.5 s: the next phase
    // half a period away (17.5 s) comes within a period and a sixteenth.
    assert_eq!(early_after(ms(1_000), ms(1_500), r), None);
    // Phase at 4 s: the next one half a period away (20 s) comes 2 s over:
    // half a period (and half a second) after the first scrape, early.
    assert_eq!(early_after(ms(1_000), ms(4_000), r), Some(ms(8_500)));
    let next_phase = |phase: Duration, after: Duration| {
        let mut at = phase;
        while at < after {
            at += r;
        }
        at
    };
    for offset in (0..16_000).step_by(125).map(ms) {
        for phase in (0..16_000).step_by(125).map(ms) {
            let second = match early_after(offset, phase, r) {
                Some(after) => {
                    let at = offset + after;
                    assert!(next_phase(phase, at) - at >= r / 2, "{offset:?} {phase:?}");
                    at
                }
                None => next_phase(phase, offset + r / 2),
            };
            assert!(
                second >= offset + r / 2 && second <= offset + r + r / 16,
                "offset {offset:?} phase {phase:?}: {second:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_scraped_nothing_in_its_first_round_keeps_to_the_phases() {
    let period = Duration::from_secs(10);
    let nodes = names(90);
    // Member 2 is still joining at the start: it scrapes nothing in the
    // compressed first round, and owns its part a second later.
    let joining = Ownership::from_state(2, &cluster(&[1, 3], &[]));
    let active = Ownership::from_state(2, &cluster(&[1, 2, 3], &[]));
    let mine: Vec<String> = nodes.iter().filter(|n| active.scrapes(n)).cloned().collect();
    assert!(!mine.is_empty() && nodes.iter().all(|n| !joining.scrapes(n)));
    let rec = Arc::new(Recorder::default());
    let clock = Clock::now();
    let r = start(nodes.clone(), period, joining, rec.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rec.times.lock().unwrap().is_empty());
    r.ownership.send(Arc::new(active)).unwrap();
    tokio::time::sleep(period * 2).await;
    let rec = r.stop().await;
    let times = rec.times.lock().unwrap();
    for n in &mine {
        let t = &times[n];
        assert!(t.len() >= 2, "{n}: {t:?}");
        for fired in t {
            let off = off_phase_ms(&clock, n, *fired, period);
            assert!(off < 50, "{n} fired {off}ms off its phase");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_asked_to_catch_up_are_scraped_within_a_second_once_owned() {
    let nodes = names(90);
    let period = Duration::from_secs(10);
    let before = cluster(&[1, 2, 3], &[]);
    let me = Ownership::from_state(2, &before);
    let rec = Arc::new(Recorder::default());
    let r = start(nodes.clone(), period, me.clone(), rec.clone());
    tokio::time::sleep(period * 2 + Duration::from_millis(300)).await;
    // Member 1 is committed Down: the manager asks for its orphans at once.
    let down = Ownership::from_state(2, &cluster(&[2, 3], &[1]));
    let gained: Vec<String> = nodes.iter().filter(|n| !me.scrapes(n) && down.scrapes(n)).cloned().collect();
    assert!(!gained.is_empty());
    let at = Instant::now();
    r.ownership.send(Arc::new(down)).unwrap();
    // A node this replica does not scrape is not caught up, even if asked.
    let foreign: Vec<String> = nodes.iter().filter(|n| !gained.contains(n) && !me.scrapes(n)).cloned().collect();
    r.catch_up.send(gained.iter().chain(&foreign).cloned().collect()).await.unwrap();
    tokio::time::sleep(CATCH_UP_WITHIN + Duration::from_millis(10)).await;
    {
        let times = rec.times.lock().unwrap();
        for n in &gained {
            let t = times.get(n).map(Vec::as_slice).unwrap_or_default();
            assert!(t.iter().any(|t| t.duration_since(at) <= CATCH_UP_WITHIN), "orphan {n} not scraped within 1s");
        }
        for n in &foreign {
            assert!(times.get(n).is_none_or(|t| t.is_empty()), "{n} is not this replica's to scrape");
        }
    }
    r.stop().await;
}

#[test]
fn a_catch_up_of_thousands_is_paced_up_to_a_quarter_period() {
    let r = Duration::from_secs(15);
    assert_eq!(catch_up_spread(90, r), CATCH_UP_WITHIN);
    assert_eq!(catch_up_spread(1_000, r), CATCH_UP_WITHIN);
    assert_eq!(catch_up_spread(3_000, r), Duration::from_secs(3));
    assert_eq!(catch_up_spread(10_000, r), r / 4);
    // A short period: never less than the catch-up bound.
    assert_eq!(catch_up_spread(10_000, Duration::from_secs(2)), CATCH_UP_WITHIN);
}

#[tokio::test(start_paused = true)]
async fn caught_up_nodes_held_nowhere_get_their_second_point_within_a_period_and_a_sixteenth() {
    caught_up_nodes_held_nowhere(Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn caught_up_nodes_that_start_late_on_a_busy_replica_still_get_their_second_point_early() {
    // Each catch-up scrape takes a second and eight run at once: the
    // catch-up of about thirty nodes starts up to four seconds late.
    caught_up_nodes_held_nowhere(Duration::from_secs(1)).await;
}

async fn caught_up_nodes_held_nowhere(takes: Duration) {
    let nodes = names(90);
    let period = Duration::from_secs(10);
    let before = cluster(&[1, 2, 3], &[]);
    let me = Ownership::from_state(2, &before);
    let rec = Arc::new(Recorder::default());
    let clock = Clock::now();
    let r = start(nodes.clone(), period, me.clone(), rec.clone());
    tokio::time::sleep(period * 2 + Duration::from_millis(300)).await;
    // Member 1 is committed Down: its orphans are caught up; this replica
    // holds a point of half of them.
    let down = Ownership::from_state(2, &cluster(&[2, 3], &[1]));
    let gained: Vec<String> = nodes.iter().filter(|n| !me.scrapes(n) && down.scrapes(n)).cloned().collect();
    let (held, none): (Vec<String>, Vec<String>) = gained.iter().cloned().partition(|n| n.ends_with(['0', '2', '4']));
    assert!(held.len() > 2 && none.len() > 2, "{held:?} {none:?}");
    let at = Instant::now();
    rec.newest.lock().unwrap().extend(held.iter().map(|n| (n.clone(), clock.unix(at) - 5_000_000_000)));
    *rec.slow_next.lock().unwrap() = (gained.iter().cloned().collect(), takes);
    r.ownership.send(Arc::new(down)).unwrap();
    r.catch_up.send(gained.clone()).await.unwrap();
    tokio::time::sleep(period * 2).await;
    let rec = r.stop().await;
    let times = rec.times.lock().unwrap();
    let (mut early, mut at_phase) = (0, 0);
    let mut latest_first = Duration::ZERO;
    for n in &gained {
        let t: Vec<Instant> = times[n].iter().copied().filter(|t| *t >= at).collect();
        latest_first = latest_first.max(t[0].duration_since(at));
        assert!(t.len() >= 2, "{n}: {t:?}");
        assert!(t[0].duration_since(at) <= CATCH_UP_WITHIN + takes * 6, "{n}: {t:?}");
        assert!(t.windows(2).all(|w| w[1].duration_since(w[0]) >= period / 2), "{n}: {t:?}");
        let second = t[1].duration_since(t[0]);
        if none.contains(n) {
            assert!(second <= period + period / 16 + Duration::from_millis(5), "{n}: {t:?}");
        }
        if !takes.is_zero() {
            // Phase scrapes wait for the slots the slow ones hold too.
            continue;
        }
        // A node with a point here waits for its phase, however late.
        let on_phase = off_phase_ms(&clock, n, t[1], period) < 50;
        if held.contains(n) {
            assert!(on_phase, "{n} scraped off its phase: {t:?}");
        }
        match (none.contains(n), on_phase) {
            (true, false) => early += 1,
            (true, true) => at_phase += 1,
            _ => {}
        }
    }
    if takes.is_zero() {
        assert!(early > 0 && at_phase > 0, "early {early}, at the phase {at_phase}");
    } else {
        assert!(latest_first >= takes * 2, "the catch-up did not start late: {latest_first:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_fresh_node_gained_by_a_planned_move_keeps_its_phase_and_a_half_period_gap() {
    let period = Duration::from_secs(10);
    let nodes = names(90);
    let all = cluster(&[1, 2, 3], &[]);
    let mut drained = all.clone();
    drained.apply(&Command::SetStates(vec![(1, MemberState::Draining)]));
    let (me, next) = (Ownership::from_state(2, &all), Ownership::from_state(2, &drained));
    let gained: Vec<String> = nodes.iter().filter(|n| !me.scrapes(n) && next.scrapes(n)).cloned().collect();
    let rec = Arc::new(Recorder::default());
    let clock = Clock::now();
    let r = start(nodes.clone(), period, me, rec.clone());
    tokio::time::sleep(period + Duration::from_millis(100)).await;
    let at = Instant::now();
    // Points just handed over: fresher than one period.
    rec.newest.lock().unwrap().extend(gained.iter().map(|n| (n.clone(), clock.unix(at))));
    r.ownership.send(Arc::new(next)).unwrap();
    tokio::time::sleep(period * 2).await;
    let rec = r.stop().await;
    let times = rec.times.lock().unwrap();
    for n in &gained {
        let t = &times[n];
        assert!(!t.is_empty(), "{n} never scraped by its new owner");
        for fired in t.iter().filter(|t| **t >= at) {
            let off = off_phase_ms(&clock, n, *fired, period);
            assert!(off < 50, "{n} fired {off}ms off its phase");
        }
        assert!(t.windows(2).all(|w| w[1].duration_since(w[0]) >= period / 2), "{n}: {t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_reported_unreachable_is_probed_once_per_period_and_no_longer_once_not_held() {
    let nodes = names(60);
    let period = Duration::from_secs(10);
    let mut s = cluster(&[1, 2, 3], &[]);
    let mine: Vec<String> = nodes.iter().filter(|n| Ownership::from_state(1, &s).scrapes(n)).cloned().collect();
    s.apply(&Command::SetFailing(vec![(1, mine.clone())]));
    let me = Ownership::from_state(1, &s);
    assert!(mine.iter().all(|n| !me.scrapes(n)), "the next holders scrape them");
    let rec = Arc::new(Recorder::default());
    rec.reported.lock().unwrap().extend(mine.iter().cloned());
    let r = start(nodes.clone(), period, me, rec);
    tokio::time::sleep(period * 4).await;
    // Member 1 drains: it holds nothing any more, so it stops probing.
    let mut drained = s.clone();
    drained.apply(&Command::SetStates(vec![(1, MemberState::Draining)]));
    r.ownership.send(Arc::new(Ownership::from_state(1, &drained))).unwrap();
    tokio::time::sleep(period * 2).await;
    let before: HashMap<String, usize> = r.rec.probes.lock().unwrap().clone();
    tokio::time::sleep(period * 2).await;
    let rec = r.stop().await;
    let probes = rec.probes.lock().unwrap();
    assert_eq!(rec.times.lock().unwrap().len(), mine.len(), "only its reported nodes were tried");
    for n in &mine {
        // (The first period may hold two: the compressed first round, and
        // the node's phase half a period or more after it.)
        assert!((3..=6).contains(&before[n]), "{n} probed {} times in about 4 periods", before[n]);
        assert_eq!(probes[n], before[n], "{n} still probed once it is not held");
    }
    assert!(rec.reported.lock().unwrap().is_empty());
}
