//! Running scenarios: build the cluster, let it settle, start the observer,
//! inject, hold, heal, wait (with a deadline) for exactly-once again, then
//! gather the [`Recording`] and judge it with the invariants. The soak runs
//! a seeded mix of the catalogue on one cluster.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::{self, Fault, FaultError, Undo};
use crate::harness::{Harness, HarnessOptions};
use crate::invariants::{self, Check, Policy};
use crate::observer::{Observer, Targets};
use crate::progress::Progress;
use crate::record::{Recording, Scrape, Truth, now_ms};
use crate::rng::Rng;
use crate::scenarios::{self, CATALOGUE, Scenario};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub replicas: usize,
    pub nodes: usize,
    pub pods_per_node: usize,
    pub resolution: Duration,
    pub seed: u64,
    pub long: bool,
    pub binary: PathBuf,
    /// Per-scenario work folders (kubeconfigs, data dirs, replica logs) go under here.
    pub work_dir: PathBuf,
    /// Extra replica flags (tests use this to break things on purpose).
    pub extra_args: Vec<String>,
    pub clustered: bool,
    /// Wait for every replica to serve every node before observing (off
    /// for setups broken on purpose, which never do).
    pub expect_serving: bool,
    /// Give the replicas a CA that did not sign the kubelets' certificates.
    pub wrong_kubelet_ca: bool,
    /// The soak draws faults until this much time has passed (instead of
    /// 2 short, 8 long) and judges the replicas' memory ([`crate::invariants::memory::flat`]).
    pub soak_for: Option<Duration>,
}

impl RunOptions {
    /// The short form's defaults: 3 replicas, 12 nodes × 2 pods, R = 2 s, seed 7.
    pub fn short(binary: PathBuf, work_dir: PathBuf) -> RunOptions {
        RunOptions {
            replicas: 3,
            nodes: 12,
            pods_per_node: 2,
            resolution: Duration::from_secs(2),
            seed: 7,
            long: false,
            binary,
            work_dir,
            extra_args: Vec::new(),
            clustered: true,
            expect_serving: true,
            wrong_kubelet_ca: false,
            soak_for: None,
        }
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub what: String,
    /// `pass`, `fail`, `not supported here: …` or `error: …`.
    pub verdict: String,
    pub seconds: f64,
    pub checks: Vec<Check>,
    pub events: Vec<crate::record::Event>,
    #[serde(skip)]
    pub recording: Option<Recording>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// A figure of a check, if recorded.
    pub fn figure(&self, check: &str, name: &str) -> Option<f64> {
        self.checks.iter().find(|c| c.name == check)?.figures.get(name).copied()
    }
}

/// Runs the scenario called `name` (or the soak).
pub async fn run(name: &str, opts: &RunOptions, progress: &mut Progress) -> Outcome {
    let started = Instant::now();
    let mut rng = Rng::new(opts.seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let (what, steps): (String, Vec<Scenario>) = if name == scenarios::SOAK {
        // A timed soak stops drawing once its time is up; every step takes
        // well over 10 s (inject, hold, heal, wait for exactly-once), so
        // this many are never all used.
        let n = match opts.soak_for {
            Some(d) => (d.as_secs() / 10 + 1) as usize,
            None if opts.long => 8,
            None => 2,
        };
        let steps: Vec<Scenario> = (0..n).map(|_| CATALOGUE[rng.below(CATALOGUE.len())]).collect();
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        let what = match opts.soak_for {
            Some(d) => format!("seeded random mix (seed {}) for {} min", opts.seed, d.as_secs() / 60),
            None => format!("seeded random mix (seed {}): {}", opts.seed, names.join(", ")),
        };
        (what, steps)
    } else {
        match scenarios::find(name) {
            Some(s) => (s.what.to_string(), vec![*s]),
            None => return failed(name, "", started, format!("error: no scenario {name} (see `chaos list`)")),
        }
    };
    run_steps(name, &what, &steps, opts, &mut rng, progress).await
}

/// Runs `steps` one after the other on one cluster as scenario `name`;
/// with no step, observes the cluster as it is for six resolutions.
pub async fn run_steps(
    name: &str,
    what: &str,
    steps: &[Scenario],
    opts: &RunOptions,
    rng: &mut Rng,
    progress: &mut Progress,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = match drive(name, steps, opts, rng, progress).await {
        Ok(o) => o,
        Err(verdict) => failed(name, what, started, verdict),
    };
    outcome.what = what.to_string();
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

fn failed(name: &str, what: &str, started: Instant, verdict: String) -> Outcome {
    Outcome {
        name: name.into(),
        what: what.into(),
        verdict,
        seconds: started.elapsed().as_secs_f64(),
        checks: vec![],
        events: vec![],
        recording: None,
    }
}

async fn drive(
    name: &str,
    steps: &[Scenario],
    opts: &RunOptions,
    rng: &mut Rng,
    progress: &mut Progress,
) -> Result<Outcome, String> {
    let work = opts.work_dir.join(name);
    let _ = std::fs::remove_dir_all(&work);
    let faketime = if steps.iter().any(|s| matches!(s.fault, Fault::ClockStep { .. })) {
        let why = "the clock-step-back scenario runs the replicas under libfaketime";
        let lib = tokio::task::spawn_blocking(move || sim::tools::libfaketime(why))
            .await
            .map_err(|e| format!("error: installing libfaketime: {e}"))?
            .map_err(|e| format!("not supported here: {e}"))?;
        Some(lib)
    } else {
        None
    };
    progress.say(name, "starting the simulated cluster and the replicas");
    let mut h = Harness::start(HarnessOptions {
        replicas: opts.replicas,
        nodes: opts.nodes,
        pods_per_node: opts.pods_per_node,
        resolution: opts.resolution,
        seed: opts.seed,
        binary: opts.binary.clone(),
        work_dir: work,
        extra_args: opts.extra_args.clone(),
        clustered: opts.clustered,
        wrong_kubelet_ca: opts.wrong_kubelet_ca,
        faketime,
    })
    .await
    .map_err(|e| format!("error: {e}"))?;
    let result = drive_on(&mut h, name, steps, opts, rng, progress).await;
    if result.is_err() {
        for i in 0..h.replicas.len() {
            progress.note(&format!("--- replica-{i} log tail ---\n{}", h.log_tail(i)));
        }
    }
    h.shutdown().await;
    result
}

async fn drive_on(
    h: &mut Harness,
    name: &str,
    steps: &[Scenario],
    opts: &RunOptions,
    rng: &mut Rng,
    progress: &mut Progress,
) -> Result<Outcome, String> {
    let all: Vec<usize> = (0..opts.replicas).collect();
    let r = opts.resolution;
    if opts.clustered {
        h.settled(&all, opts.replicas, Duration::from_secs(90)).await.map_err(|e| format!("error: {e}"))?;
        h.steady(&all, r * 2, Duration::from_secs(90)).await.map_err(|e| format!("error: {e}"))?;
    }
    if opts.expect_serving {
        h.serving(&all, Duration::from_secs(90)).await.map_err(|e| format!("error: {e}"))?;
    }
    h.route_ready().await;
    let mut rec = Recording { resolution_ms: r.as_millis() as u64, ..Recording::default() };
    for n in &h.env.spec.nodes {
        rec.nodes.push(n.name.clone());
        if let Ok(t) = h.env.fleet.true_node_usage(&n.name) {
            rec.truth.insert(
                n.name.clone(),
                Truth { cpu_nanocores: t.cpu_nanocores as f64, memory_bytes: t.memory_bytes as f64 },
            );
        }
        for p in &n.pods {
            let key = format!("{}/{}", p.namespace, p.name);
            if let Ok(t) = h.env.fleet.true_pod_usage(&n.name, &p.namespace, &p.name) {
                rec.truth.insert(
                    key.clone(),
                    Truth { cpu_nanocores: t.cpu_nanocores as f64, memory_bytes: t.memory_bytes as f64 },
                );
            }
            rec.pods.push(key);
        }
    }
    rec.hpas = crate::hpa::simulated(&h.env.spec);
    let slots = opts.replicas.max(5);
    let obs = Observer::start(Targets {
        replicas: (0..slots).map(|i| (i, h.env.replica_addr(i), h.env.peer_addr(i))).collect(),
        apiserver: Some(h.env.apiserver.addr()),
        admin: h.admin.clone(),
        views: Some(h.views.clone()),
        hpas: rec.hpas.iter().map(|x| (x.name.clone(), x.path())).collect(),
    });
    rec.start_ms = now_ms();
    progress.say(name, "observing the healthy cluster");
    h.pass_time(r * 4 + Duration::from_secs(1)).await;
    let liveness_bound = if opts.long { Duration::from_secs(60) } else { Duration::from_secs(30) };
    let mut policy =
        Policy { may_duplicate: false, moves_per_node: 0, liveness_bound_ms: liveness_bound.as_millis() as u64 };
    let mut faulted: BTreeSet<String> = BTreeSet::new();
    let mut vanish: BTreeSet<String> = BTreeSet::new();
    rec.fault_start_ms = now_ms();
    rec.heal_ms = rec.fault_start_ms;
    if steps.is_empty() {
        progress.say(name, "no fault: observing for six resolutions");
        h.pass_time(r * 6).await;
    }
    let timed = opts.soak_for.filter(|_| name == scenarios::SOAK);
    let faults_from = std::time::Instant::now();
    for (k, step) in steps.iter().enumerate() {
        if timed.is_some_and(|d| faults_from.elapsed() >= d) {
            let minutes = faults_from.elapsed().as_secs_f64() / 60.0;
            progress.say(name, &format!("{k} faults in {minutes:.0} min: the soak's time is up"));
            break;
        }
        policy.may_duplicate |= step.may_duplicate;
        policy.moves_per_node += step.moves_per_node;
        let fault = scenarios::kubelet_count(step.fault, opts.nodes);
        progress.say(name, &format!("step {}/{}: injecting {}", k + 1, steps.len(), step.name));
        let undo = match faults::inject(h, fault, rng, &mut rec.events).await {
            Ok(u) => u,
            Err(FaultError::Unsupported(why)) => {
                let _ = obs.stop().await;
                return Err(format!("not supported here: {why}"));
            }
            Err(e) => {
                let _ = obs.stop().await;
                return Err(format!("error: injecting {}: {e}", step.name));
            }
        };
        if let Fault::ClockSkew { secs } = fault
            && let Undo::Unskew(i) = &undo
            && let Err(why) = skew_took(h, *i, secs).await
        {
            let _ = obs.stop().await;
            return Err(format!("not supported here: {why}"));
        }
        if let Undo::KubeletsHealthy(nodes) = &undo {
            for n in nodes {
                let node = h.env.spec.nodes.iter().filter(|x| &x.name == n);
                let pods = node.flat_map(|x| x.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)));
                let keys: Vec<String> = std::iter::once(n.clone()).chain(pods).collect();
                if step.kubelets_may_vanish {
                    vanish.extend(keys.iter().cloned());
                }
                faulted.extend(keys);
            }
        }
        let hold = Duration::from_secs(if opts.long { step.hold_long } else { step.hold_short });
        progress.say(name, &format!("step {}/{}: holding {} for {hold:?}", k + 1, steps.len(), step.name));
        h.pass_time(hold).await;
        faults::heal(h, undo, &mut rec.events).await.map_err(|e| format!("error: healing {}: {e}", step.name))?;
        rec.heal_ms = now_ms();
        progress.say(name, &format!("step {}/{}: healed; waiting for exactly-once", k + 1, steps.len()));
        let nodes = rec.nodes.clone();
        let heal = rec.heal_ms;
        let _ = sim::wait::until(liveness_bound + r * 3, async || {
            h.route_ready().await;
            let probe = Recording {
                resolution_ms: r.as_millis() as u64,
                end_ms: now_ms(),
                nodes: nodes.clone(),
                scrapes: scrapes(h, rec.start_ms),
                ..Recording::default()
            };
            invariants::scrapes::first_exactly_once(&probe, heal).is_some()
        })
        .await;
    }
    h.pass_time(r).await;
    let seen = obs.stop().await;
    rec.end_ms = now_ms();
    rec.answers = seen.answers;
    rec.hpa_answers = seen.hpa_answers;
    rec.views = seen.views;
    rec.scrapes = scrapes(h, rec.start_ms);
    rec.faulted_nodes = faulted.into_iter().collect();
    rec.may_vanish = vanish.into_iter().collect();
    rec.memory = h.memory();
    let mut checks = invariants::evaluate(&rec, &policy);
    if timed.is_some() {
        checks.push(invariants::memory::flat(&rec.memory));
    }
    let pass = checks.iter().all(|c| c.pass);
    Ok(Outcome {
        name: name.into(),
        what: String::new(),
        verdict: if pass { "pass".into() } else { "fail".into() },
        seconds: 0.0,
        checks,
        events: rec.events.clone(),
        recording: Some(rec),
    })
}

/// The scrape log since `since_ms`, each scrape attributed to a replica by its source address.
fn scrapes(h: &Harness, since_ms: u64) -> Vec<Scrape> {
    let since = std::time::UNIX_EPOCH + Duration::from_millis(since_ms);
    h.env
        .fleet
        .scrapes_since(since)
        .into_iter()
        .map(|s| Scrape {
            at_ms: s.at_ms,
            node: s.node.to_string(),
            replica: s.client.and_then(|ip| h.replica_of(ip)),
            reached: s.outcome.reached_kubelet(),
        })
        .collect()
}

/// Whether libfaketime really moved replica `i`'s clock: the timestamp of
/// the restarted process's first log line against ours.
async fn skew_took(h: &Harness, i: usize, secs: i64) -> Result<(), String> {
    let started = now_ms() as i64;
    let mut stamp = None;
    sim::wait::until(Duration::from_secs(30), async || {
        let text = h.replicas.get(i).and_then(Option::as_ref).map(|r| r.own_log()).unwrap_or_default();
        stamp = text
            .lines()
            .next()
            .and_then(|l| l.get(..19))
            .and_then(|t| apimachinery::format::parse_time(&format!("{t}Z")));
        stamp.is_some()
    })
    .await;
    let Some(ns) = stamp else {
        return Err(format!("replica-{i} under libfaketime wrote no timestamped log line in 30 s"));
    };
    let off_ms = ns / 1_000_000 - started;
    if (off_ms - secs * 1000).abs() > secs.abs() * 500 {
        return Err(format!(
            "libfaketime did not move the binary's clock (its log is {off_ms} ms off ours, wanted {secs} s)"
        ));
    }
    Ok(())
}
