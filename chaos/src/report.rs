//! The report of a run, written to `--out`: `report.json` (every check's
//! figures per scenario), `report.md` (the summary table, then every failed
//! check's detail) and one `timeline-<scenario>.svg` per scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::runner::Outcome;

/// What a report file write failed on.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {reason}")]
pub struct ReportError {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Serialize)]
struct Json<'a> {
    seed: u64,
    form: &'a str,
    scenarios: &'a [Outcome],
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |ms| format!("{:.1} s", ms / 1000.0))
}

fn fmt_n(v: Option<f64>) -> String {
    v.map_or("–".into(), |n| format!("{n}"))
}

/// The Markdown summary.
pub fn markdown(outcomes: &[Outcome], seed: u64, form: &str) -> String {
    let mut md = String::new();
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    let _ =
        writeln!(md, "# Chaos report\n\n{form} form, seed {seed}: {passed} of {} scenarios pass.\n", outcomes.len());
    let _ = writeln!(
        md,
        "| scenario | result | max served age | missing-node answers | extra scrapes | wrong HPA decisions | time to exactly-once | took | timeline |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let failing: Vec<&str> = o.checks.iter().filter(|c| !c.pass).map(|c| c.name.as_str()).collect();
        let result = if o.passed() {
            "pass".to_string()
        } else if o.verdict == "fail" {
            format!("**fail** ({})", failing.join(", "))
        } else {
            o.verdict.clone()
        };
        let plot = if o.recording.is_some() { format!("[svg](timeline-{}.svg)", o.name) } else { "–".into() };
        let _ = writeln!(
            md,
            "| {} | {result} | {} | {} | {} | {} | {} | {:.0} s | {plot} |",
            o.name,
            fmt_ms(o.figure("freshness", "max_age_ms")),
            fmt_n(o.figure("coverage", "missing_node_answers")),
            fmt_n(o.figure("exactly_once", "extra_scrapes")),
            fmt_n(o.figure("hpa", "wrong_decisions")),
            fmt_ms(o.figure("liveness", "time_to_exactly_once_ms")),
            o.seconds,
        );
    }
    for o in outcomes.iter().filter(|o| !o.passed()) {
        let _ = writeln!(md, "\n## {}: {}\n\n{}\n", o.name, o.verdict, o.what);
        for e in &o.events {
            let _ = writeln!(md, "- event: {}", e.what);
        }
        for c in o.checks.iter().filter(|c| !c.pass) {
            let figs: Vec<String> =
                c.figures.iter().filter(|(k, _)| !k.starts_with("age_")).map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(md, "\n**{}** failed ({})", c.name, figs.join(", "));
            for d in &c.detail {
                let _ = writeln!(md, "- {d}");
            }
        }
    }
    md
}

/// Writes the report files under `dir`; returns their paths.
pub fn write(dir: &Path, outcomes: &[Outcome], seed: u64, form: &str) -> Result<Vec<PathBuf>, ReportError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| ReportError { path, reason: e }
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir)(e.to_string()))?;
    let mut files = Vec::new();
    let json = dir.join("report.json");
    let text = serde_json::to_string_pretty(&Json { seed, form, scenarios: outcomes })
        .map_err(|e| err(&json)(e.to_string()))?;
    std::fs::write(&json, text).map_err(|e| err(&json)(e.to_string()))?;
    files.push(json);
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(outcomes, seed, form)).map_err(|e| err(&md)(e.to_string()))?;
    files.push(md);
    for o in outcomes {
        let Some(rec) = &o.recording else { continue };
        let svg = dir.join(format!("timeline-{}.svg", o.name));
        crate::plot::draw(rec, &format!("{} ({})", o.name, o.verdict), &svg).map_err(err(&svg))?;
        files.push(svg);
        if !rec.memory.is_empty() && o.checks.iter().any(|c| c.name == "memory") {
            let svg = dir.join(format!("memory-{}.svg", o.name));
            crate::plot::draw_memory(rec, &format!("{}: resident memory per replica", o.name), &svg)
                .map_err(err(&svg))?;
            files.push(svg);
            let csv = dir.join(format!("memory-{}.csv", o.name));
            let mut text = String::from("unix_ms,replica,pid,rss_kib\n");
            for m in &rec.memory {
                text.push_str(&format!("{},{},{},{}\n", m.at_ms, m.replica, m.pid, m.rss_kib));
            }
            std::fs::write(&csv, text).map_err(|e| err(&csv)(e.to_string()))?;
            files.push(csv);
        }
        let raw = dir.join(format!("recording-{}.json", o.name));
        let text = serde_json::to_string(rec).map_err(|e| err(&raw)(e.to_string()))?;
        std::fs::write(&raw, text).map_err(|e| err(&raw)(e.to_string()))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::{Policy, evaluate, fixture::healthy};

    #[test]
    fn the_table_has_a_row_per_scenario_and_details_only_for_failures() {
        let rec = healthy();
        let checks = evaluate(&rec, &Policy { may_duplicate: false, moves_per_node: 1, liveness_bound_ms: 10_000 });
        let good = Outcome {
            name: "kill-leader".into(),
            what: "w".into(),
            verdict: "pass".into(),
            seconds: 30.0,
            checks: checks.clone(),
            events: vec![],
            recording: Some(rec),
        };
        let mut bad = good.clone();
        bad.name = "pause-30s".into();
        bad.verdict = "fail".into();
        bad.checks[0].pass = false;
        bad.checks[0].detail.push("Replica(1) lacked node-1".into());
        let md = markdown(&[good, bad], 7, "short");
        assert!(md.contains("1 of 2 scenarios pass"));
        assert!(md.contains("| kill-leader | pass | 1.5 s | 0 | 0 | 0 | 0.0 s |"), "{md}");
        assert!(md.contains("**fail** (coverage)"));
        assert!(md.contains("## pause-30s: fail") && md.contains("- Replica(1) lacked node-1"));
        assert!(!md.contains("## kill-leader"));
    }
}
