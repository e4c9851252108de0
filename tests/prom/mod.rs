//! What the Prometheus tests share: the monitoring files of
//! `deploy/monitoring/` read as data (the PrometheusRule's rule groups,
//! written out as the plain rules file promtool and Prometheus load; the
//! dashboard's queries), and the mechanical time-scaling of the rules for
//! the live test ([`scale`]).

#![allow(dead_code)]

pub mod live;
pub mod scale;
pub mod watch;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The monitoring folder.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring");
/// The promtool unit tests, beside the rules.
pub const TESTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/monitoring/tests");
/// The name the unit tests' `rule_files` give the plain rules file.
pub const RULES_FILE: &str = "ha-metrics-server.rules.yaml";

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// The PrometheusRule object.
pub fn prometheus_rule() -> Value {
    yaml(&Path::new(DIR).join("prometheusrule.yaml"))
}

/// The ServiceMonitor object.
pub fn service_monitor() -> Value {
    yaml(&Path::new(DIR).join("servicemonitor.yaml"))
}

/// The PrometheusRule's `spec` (`groups: [...]`): exactly what the
/// Prometheus Operator hands Prometheus as a rules file.
pub fn rule_groups() -> Value {
    let rule = prometheus_rule();
    assert_eq!(rule["kind"], "PrometheusRule");
    rule["spec"].clone()
}

/// Every rule as `(group, rule)`.
pub fn rules(groups: &Value) -> Vec<(String, Value)> {
    groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| {
            let name = g["name"].as_str().expect("group name").to_string();
            g["rules"].as_array().expect("rules").iter().map(move |r| (name.clone(), r.clone()))
        })
        .collect()
}

/// Alert names, in file order.
pub fn alert_names(groups: &Value) -> Vec<String> {
    rules(groups).iter().filter_map(|(_, r)| r["alert"].as_str().map(str::to_string)).collect()
}

/// Recording rule names, in file order.
pub fn record_names(groups: &Value) -> Vec<String> {
    rules(groups).iter().filter_map(|(_, r)| r["record"].as_str().map(str::to_string)).collect()
}

/// Writes `groups` as a plain Prometheus rules file (JSON is YAML) and returns its path.
pub fn write_rules(dir: &Path, groups: &Value) -> PathBuf {
    let path = dir.join(RULES_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(groups).unwrap()).unwrap();
    path
}

/// The promtool unit test files, sorted.
pub fn unit_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(TESTS_DIR)
        .unwrap_or_else(|e| panic!("{TESTS_DIR}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// A unit test file as data.
pub fn unit_tests(path: &Path) -> Value {
    yaml(path)
}

/// The dashboard.
pub fn dashboard() -> Value {
    let path = Path::new(DIR).join("dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).expect("dashboard.json is JSON")
}

/// `(panel title, query)` of every dashboard panel target.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("(untitled)").to_string();
            p["targets"].as_array().cloned().unwrap_or_default().into_iter().map(move |t| {
                (
                    title.clone(),
                    t["expr"].as_str().unwrap_or_else(|| panic!("{title}: target without expr")).to_string(),
                )
            })
        })
        .collect()
}

/// Runs `promtool` with `args`; returns (success, stdout + stderr).
pub fn promtool(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let promtool = sim::tools::promtool("the monitoring tests check and unit-test the alert rules with promtool")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(&promtool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
