//! The benchmark's results: the per-trial table, median / p99 / max per
//! trial kind, the machine it ran on, and the JSON and Markdown files. Pure
//! formatting of figures the trials measured; it measures nothing.

use std::fmt::Write as _;

use crate::trial::{Kind, Trial};

/// Where and how the run happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_kib: u64,
    pub cpu_model: String,
    /// UTC, when the run started and ended.
    pub started: String,
    pub finished: String,
    pub note: String,
}

impl Machine {
    /// Reads the machine's size from /proc; `started` is filled in now.
    pub fn probe(note: String) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            mem_total_kib,
            cpu_model,
            started: now_utc(),
            finished: String::new(),
            note,
        }
    }
}

/// The current time as RFC 3339 UTC.
pub fn now_utc() -> String {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    apimachinery::format::format_time(ns)
}

/// Median, p99 (nearest rank) and max of one figure over the trials that have it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stat {
    pub n: usize,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(mut values: Vec<f64>) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Stat { n, median, p99: rank(0.99), max: values[n - 1] })
    }
}

/// The summary of one trial kind.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub kind: Kind,
    pub trials: usize,
    pub failed: usize,
    pub marked_s: Option<Stat>,
    pub rescraped_s: Option<Stat>,
    pub exited_s: Option<Stat>,
    pub max_age_s: Option<Stat>,
    pub max_extra_scrapes: Option<Stat>,
    pub recovery_s: Option<Stat>,
    /// Answers lacking a node, summed over the trials.
    pub missing_answers: usize,
    pub answers: usize,
    pub errors: usize,
}

/// Summarises the trials of `kind`.
pub fn summarise(kind: Kind, trials: &[Trial]) -> Summary {
    let of: Vec<&Trial> = trials.iter().filter(|t| t.kind == kind).collect();
    let stat = |f: &dyn Fn(&Trial) -> Option<f64>| Stat::of(of.iter().filter_map(|t| f(t)).collect());
    Summary {
        kind,
        trials: of.len(),
        failed: of.iter().filter(|t| !t.ok).count(),
        marked_s: stat(&|t| t.marked_s),
        rescraped_s: stat(&|t| t.rescraped_s),
        exited_s: stat(&|t| t.exited_s),
        max_age_s: stat(&|t| Some(t.seen.max_age_s)),
        max_extra_scrapes: stat(&|t| Some(t.max_extra_scrapes as f64)),
        recovery_s: stat(&|t| t.recovery_s),
        missing_answers: of.iter().map(|t| t.seen.missing_answers).sum(),
        answers: of.iter().map(|t| t.seen.answers).sum(),
        errors: of.iter().map(|t| t.seen.errors).sum(),
    }
}

/// The whole result, as written to failover.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub machine: Machine,
    pub setup: Setup,
    pub summaries: Vec<Summary>,
    pub trials: Vec<Trial>,
}

/// The cluster the trials ran on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Setup {
    pub replicas: usize,
    pub nodes: usize,
    pub pods_per_node: usize,
    pub resolution_s: f64,
    pub lease_s: f64,
    pub observer_poll_ms: u64,
    pub binary_profile: String,
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn stat_cells(s: Option<Stat>) -> String {
    s.map_or("- | - | -".into(), |s| format!("{:.2} | {:.2} | {:.2}", s.median, s.p99, s.max))
}

/// One row per trial.
pub fn trial_table(trials: &[Trial]) -> String {
    let mut out = String::from(
        "| kind | # | victim | orphans | marked (s) | re-scraped (s) | exited (s) | max age (s) | missing | extra | recovery (s) | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for t in trials {
        let role = if t.victim_was_leader { "leader" } else { "follower" };
        let missing = match (t.missing_from_s, t.missing_to_s) {
            (Some(a), Some(b)) => format!("{} ({a:.1}..{b:.1} s)", t.seen.missing_answers),
            _ => t.seen.missing_answers.to_string(),
        };
        let result = if t.ok { "ok".to_string() } else { format!("FAILED: {}", t.failures.join("; ")) };
        let _ = writeln!(
            out,
            "| {} | {} | replica-{} ({role}) | {} | {} | {} | {} | {:.2} | {} | {} | {} | {result} |",
            t.kind.label(),
            t.index,
            t.victim,
            t.orphans,
            opt(t.marked_s),
            opt(t.rescraped_s),
            opt(t.exited_s),
            t.seen.max_age_s,
            missing,
            t.max_extra_scrapes,
            opt(t.recovery_s),
        );
    }
    out
}

/// Median / p99 / max per kind.
pub fn summary_table(summaries: &[Summary]) -> String {
    let mut out = String::from("| kind | figure | median | p99 | max |\n|---|---|---|---|---|\n");
    for s in summaries {
        let k = s.kind.label();
        let rows = [
            ("victim marked down / left (s)", s.marked_s),
            ("all orphans re-scraped (s)", s.rescraped_s),
            ("process exited (s)", s.exited_s),
            ("max served sample age (s)", s.max_age_s),
            ("extra scrapes per moved node", s.max_extra_scrapes),
            ("back to all Active and fresh (s)", s.recovery_s),
        ];
        for (name, st) in rows {
            if st.is_some() {
                let _ = writeln!(out, "| {k} | {name} | {} |", stat_cells(st));
            }
        }
        let _ = writeln!(
            out,
            "| {k} | trials / failed / answers / answers missing a node / request errors | {} / {} / {} / {} / {} | | |",
            s.trials, s.failed, s.answers, s.missing_answers, s.errors
        );
    }
    out
}

/// The Markdown file: machine, setup, summary, then every trial.
pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.setup;
    let mut out = String::from("# Failover benchmark\n\n");
    let _ = writeln!(
        out,
        "{} replicas of the real binary ({} build), {} simulated nodes x {} pods, R = {} s, lease {} s; \
         every survivor's node list polled every {} ms. Served timestamps are whole seconds (truncated), \
         so ages can read up to 1 s high. \"missing\" counts answers lacking a node, with when the first and \
         the last came (seconds from the signal).\n",
        s.replicas, s.binary_profile, s.nodes, s.pods_per_node, s.resolution_s, s.lease_s, s.observer_poll_ms
    );
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), {:.1} GiB RAM; {} to {}. {}\n",
        m.nproc,
        m.cpu_model,
        m.mem_total_kib as f64 / 1024.0 / 1024.0,
        m.started,
        m.finished,
        m.note
    );
    out.push_str("## Summary (p99 is nearest-rank: with 20 trials it is the maximum)\n\n");
    out.push_str(&summary_table(&r.summaries));
    out.push_str("\n## Goals (issue 9)\n\n");
    out.push_str(&goals(&r.summaries, s.resolution_s));
    out.push_str("\n## Trials\n\n");
    out.push_str(&trial_table(&r.trials));
    let gaps: Vec<String> = r
        .trials
        .iter()
        .filter_map(|t| {
            let (replica, nodes) = t.seen.example_missing.as_ref()?;
            let warned = match &t.seen.example_warning {
                Some(w) => format!("warning: \"{w}\""),
                None => "no warning".to_string(),
            };
            Some(format!(
                "- {} #{}: replica-{replica} answered without {} ({warned}; {} of {} such answers had no warning)",
                t.kind.label(),
                t.index,
                nodes.join(", "),
                t.seen.missing_without_warning,
                t.seen.missing_answers
            ))
        })
        .collect();
    if !gaps.is_empty() {
        out.push_str("\nFirst answer lacking nodes, per trial:\n\n");
        out.push_str(&gaps.join("\n"));
        out.push('\n');
    }
    out
}

/// Issue 9's goals against the measured p99s: orphans re-scraped within
/// 4 s of a kill -9, served age at most R + 5 s, no answer lacking a node,
/// at most one extra scrape per moved node.
pub fn goals(summaries: &[Summary], resolution_s: f64) -> String {
    let mut out = String::from("| kind | goal | measured | met |\n|---|---|---|---|\n");
    let mut row = |kind: Kind, goal: String, measured: Option<f64>, bound: f64| {
        let (m, met) = match measured {
            Some(v) if v.fract() == 0.0 => (format!("{v}"), if v <= bound { "yes" } else { "no" }),
            Some(v) => (format!("{v:.2}"), if v <= bound { "yes" } else { "no" }),
            None => ("-".to_string(), "not measured"),
        };
        let _ = writeln!(out, "| {} | {goal} | {m} | {met} |", kind.label());
    };
    for s in summaries {
        if s.kind == Kind::Kill9 {
            row(s.kind, "orphans re-scraped, p99 <= 4 s".into(), s.rescraped_s.map(|x| x.p99), 4.0);
        }
        let age_bound = resolution_s + 5.0;
        row(s.kind, format!("max served age, p99 <= R + 5 s = {age_bound} s"), s.max_age_s.map(|x| x.p99), age_bound);
        row(s.kind, "answers missing a node = 0".into(), Some(s.missing_answers as f64), 0.0);
        row(s.kind, "extra scrapes per moved node, p99 <= 1".into(), s.max_extra_scrapes.map(|x| x.p99), 1.0);
    }
    out
}
