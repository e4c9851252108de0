//! The alert and SLO rules of `deploy/monitoring/prometheusrule.yaml`
//! against the real promtool: they load (`promtool check rules`), and their
//! unit tests in `deploy/monitoring/tests/` pass (`promtool test rules`):
//! for every alert a failure that fires it after its `for`, with the labels
//! and annotations an operator reads, and a healthy cluster that keeps it
//! silent; for every recording rule its value under a failure and when
//! healthy. Also: every alert links its runbook, and the live test's
//! time-scaled copy of the rules differs only in its durations.

mod prom;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;

use prom::scale::{format_duration, parse_duration, scale_duration, scale_expr, scale_groups};
use serde_json::Value;

#[test]
fn promtool_loads_the_rules_and_passes_every_unit_test_beside_them() {
    let dir = tempfile::tempdir().unwrap();
    let rules = prom::write_rules(dir.path(), &prom::rule_groups());
    let (ok, out) = prom::promtool(&[OsStr::new("check"), OsStr::new("rules"), rules.as_os_str()]);
    assert!(ok, "promtool check rules:\n{out}");
    let n = prom::rules(&prom::rule_groups()).len();
    assert!(out.contains(&format!("{n} rules found")), "promtool found another number of rules than {n}:\n{out}");

    // The unit tests name the rules file by its bare name: put them beside
    // it. One promtool per file, in parallel (the 6-hour windows take a
    // while to evaluate at the rules' 30 s interval).
    let files = prom::unit_test_files();
    assert!(files.len() > 1, "no unit test files in {}", prom::TESTS_DIR);
    let results: Vec<(String, bool, String)> = std::thread::scope(|s| {
        let runs: Vec<_> = files
            .iter()
            .map(|f| {
                let copy = dir.path().join(f.file_name().unwrap());
                std::fs::copy(f, &copy).unwrap();
                s.spawn(move || {
                    let (ok, out) = prom::promtool(&[OsStr::new("test"), OsStr::new("rules"), copy.as_os_str()]);
                    (copy.file_name().unwrap().to_string_lossy().into_owned(), ok, out)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let failed: Vec<String> =
        results.iter().filter(|(_, ok, _)| !ok).map(|(f, _, out)| format!("--- {f}\n{out}")).collect();
    assert!(failed.is_empty(), "promtool test rules:\n{}", failed.join("\n"));
    for (f, _, _) in &results {
        println!("promtool test rules {f}: SUCCESS");
    }
}

/// What the unit tests cover, by rule name: (failure cases, healthy cases).
#[derive(Default, Debug)]
struct Covered {
    fires: BTreeSet<String>,
    silent_in_failure_before_firing: BTreeSet<String>,
    silent_when_healthy: BTreeSet<String>,
    recorded_in_failure: BTreeSet<String>,
    recorded_when_healthy: BTreeSet<String>,
}

fn covered() -> Covered {
    let mut c = Covered::default();
    for f in prom::unit_test_files() {
        let v = prom::unit_tests(&f);
        let rule_files: Vec<&str> =
            v["rule_files"].as_array().expect("rule_files").iter().filter_map(Value::as_str).collect();
        assert_eq!(rule_files, [prom::RULES_FILE], "{}: load exactly the PrometheusRule's rules", f.display());
        for group in v["tests"].as_array().expect("tests") {
            let name = group["name"].as_str().unwrap_or_else(|| panic!("{}: a test group without name", f.display()));
            let failure = name.starts_with("failure: ");
            assert!(
                failure || name.starts_with("healthy: "),
                "{}: group {name:?} says neither `failure: ` nor `healthy: `",
                f.display()
            );
            let mut firing_at: BTreeMap<String, u64> = BTreeMap::new();
            let mut silent_at: Vec<(String, u64)> = Vec::new();
            for case in group["alert_rule_test"].as_array().into_iter().flatten() {
                let alert = case["alertname"].as_str().expect("alertname").to_string();
                let at = parse_duration(case["eval_time"].as_str().expect("eval_time")).expect("eval_time");
                let exp = case["exp_alerts"].as_array().cloned().unwrap_or_default();
                if exp.is_empty() {
                    silent_at.push((alert.clone(), at));
                    if !failure {
                        c.silent_when_healthy.insert(alert);
                    }
                    continue;
                }
                assert!(failure, "{}: {name}: {alert} fires in a healthy group", f.display());
                for e in &exp {
                    assert!(
                        e["exp_labels"]["severity"].is_string(),
                        "{}: {name}: {alert} without severity",
                        f.display()
                    );
                    for a in ["summary", "description", "runbook_url"] {
                        assert!(
                            e["exp_annotations"][a].is_string(),
                            "{}: {name}: {alert} is expected without its {a} annotation",
                            f.display()
                        );
                    }
                }
                let first = firing_at.entry(alert.clone()).or_insert(at);
                *first = (*first).min(at);
                c.fires.insert(alert);
            }
            for (alert, at) in silent_at {
                if firing_at.get(&alert).is_some_and(|f| at < *f) {
                    c.silent_in_failure_before_firing.insert(alert);
                }
            }
            for case in group["promql_expr_test"].as_array().into_iter().flatten() {
                let expr = case["expr"].as_str().expect("expr").trim().to_string();
                if failure { &mut c.recorded_in_failure } else { &mut c.recorded_when_healthy }.insert(expr);
            }
        }
    }
    c
}

#[test]
fn every_alert_and_recording_rule_has_a_failure_and_a_healthy_unit_test() {
    let groups = prom::rule_groups();
    let c = covered();
    let mut missing = Vec::new();
    for (_, rule) in prom::rules(&groups) {
        if let Some(alert) = rule["alert"].as_str() {
            if !c.fires.contains(alert) {
                missing.push(format!("{alert}: no failure test where it fires"));
            }
            if !c.silent_when_healthy.contains(alert) {
                missing.push(format!("{alert}: no healthy test where it stays silent"));
            }
            // With a `for`, the failure test also shows it silent while pending.
            if rule["for"].is_string() && !c.silent_in_failure_before_firing.contains(alert) {
                missing.push(format!("{alert}: no check that it is still silent before its `for` has passed"));
            }
        }
        if let Some(record) = rule["record"].as_str() {
            if !c.recorded_in_failure.contains(record) {
                missing.push(format!("{record}: no failure test of its value"));
            }
            if !c.recorded_when_healthy.contains(record) {
                missing.push(format!("{record}: no healthy test of its value"));
            }
        }
    }
    assert!(missing.is_empty(), "rules without unit tests:\n{}", missing.join("\n"));
    println!(
        "{} alerts fire in a failure test and stay silent in a healthy one; {} recording rules tested both ways",
        prom::alert_names(&groups).len(),
        prom::record_names(&groups).len()
    );
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_links_a_runbook_in_the_monitoring_readme() {
    let readme = std::fs::read_to_string(format!("{}/README.md", prom::DIR)).expect("deploy/monitoring/README.md");
    let anchors: BTreeSet<String> = readme.lines().filter_map(|l| l.strip_prefix("### ")).map(anchor).collect();
    for (_, rule) in prom::rules(&prom::rule_groups()) {
        let Some(alert) = rule["alert"].as_str() else { continue };
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_else(|| panic!("{alert}: no runbook_url"));
        let (file, fragment) = url.split_once('#').unwrap_or_else(|| panic!("{alert}: {url} has no #anchor"));
        assert_eq!(file, "deploy/monitoring/README.md", "{alert}: the runbook lives in deploy/monitoring/README.md");
        assert_eq!(fragment, alert.to_lowercase(), "{alert}: the anchor is the alert's name");
        assert!(anchors.contains(fragment), "{alert}: README.md has no `### {alert}` runbook");
        let section = readme.split(&format!("### {alert}\n")).nth(1).unwrap_or_default();
        let section = section.split("\n### ").next().unwrap_or_default();
        for part in ["**Means**", "**Look at**", "**Do**"] {
            assert!(section.contains(part), "{alert}: its runbook lacks {part}");
        }
    }
}

#[test]
fn durations_scale_mechanically_and_nothing_else_changes() {
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("500ms"), Some(500));
    assert_eq!(parse_duration("3d"), Some(259_200_000));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(format_duration(1_500), "1500ms");
    assert_eq!(scale_duration("30s", 20), "1500ms");
    assert_eq!(scale_duration("5m", 20), "15s");
    assert_eq!(
        scale_expr("sum(rate(x{le=~\"20|20.0\"}[5m])) / avg_over_time(y[1h:1m] offset 10m)", 20),
        "sum(rate(x{le=~\"20|20.0\"}[15s])) / avg_over_time(y[180s:3s] offset 30s)"
    );
    let real = prom::rule_groups();
    let fast = scale_groups(&real, 20);
    let (real_rules, fast_rules) = (prom::rules(&real), prom::rules(&fast));
    assert_eq!(real_rules.len(), fast_rules.len());
    for ((_, r), (_, f)) in real_rules.iter().zip(&fast_rules) {
        // The same rule with its durations scaled back is the real one.
        let mut back = f.clone();
        back["expr"] = Value::String(scale_expr(r["expr"].as_str().unwrap(), 20));
        assert_eq!(&back, f, "only durations may differ");
        for key in ["alert", "record", "labels", "annotations"] {
            assert_eq!(r[key], f[key], "{key} changed");
        }
        if let (Some(a), Some(b)) = (r["for"].as_str(), f["for"].as_str()) {
            assert_eq!(parse_duration(a).unwrap() / 20, parse_duration(b).unwrap());
        }
    }
    // And promtool loads the scaled copy.
    let dir = tempfile::tempdir().unwrap();
    let path = prom::write_rules(dir.path(), &fast);
    let (ok, out) = prom::promtool(&[OsStr::new("check"), OsStr::new("rules"), path.as_os_str()]);
    assert!(ok, "promtool check rules (scaled copy):\n{out}");
}
