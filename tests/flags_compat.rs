//! Compatibility with every flag of metrics-server 0.9, driven by the flag
//! table in `tests/data/metrics-server-0.9-flags.tsv` (a copy of the
//! reference's names, types and defaults), so neither side can drift:
//! the binary's own flag definitions match the table (names, short forms,
//! defaults, `--help` sections), every flag has a stated way it is honoured
//! (`config::compat`), the README lists those accepted without effect, and
//! the real binary started with every flag's example value serves (or, for
//! the values metrics-server 0.9 refuses, exits saying why). What each
//! implemented flag does is checked in `flags_effects.rs`.

mod common;
mod flagkit;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use flagkit::{Fixtures, FlagRow, Outcome, flag_table};
use ha_metrics_server::cli::Cli;
use ha_metrics_server::config::compat::{self, Support};

/// Our defaults that differ from metrics-server's built-in ones, each the
/// value its shipped manifests and chart set (README, "Differences").
const DIFFERENT_DEFAULTS: [(&str, &str); 3] = [
    ("metric-resolution", "15s"),
    ("secure-port", "10250"),
    ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
];

/// The reference's default and clap's, in one spelling (`[a,b]` and `a,b`
/// are one list; the zero value of a type is written empty).
fn normalise(ty: &str, value: &str) -> String {
    let v = value.trim().trim_start_matches('[').trim_end_matches(']').to_string();
    let zero = match ty {
        "bool" => "false",
        "int" | "int64" | "float64" | "float32" | "Level" | "quantity" => "0",
        "duration" => "0s",
        _ => "",
    };
    if v == zero { String::new() } else { v }
}

#[test]
fn the_binarys_flags_match_the_table_of_metrics_server_0_9() {
    let table = flag_table();
    assert_eq!(table.len(), 105, "the reference lists 105 flags");
    let cmd = Cli::command();
    let differing: std::collections::BTreeMap<&str, &str> = DIFFERENT_DEFAULTS.into_iter().collect();
    for row in &table {
        if row.flag == "help" {
            continue; // clap's own, as cobra's
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(row.flag.as_str()))
            .unwrap_or_else(|| panic!("--{} of metrics-server 0.9 is not a flag of the binary", row.flag));
        let short = arg.get_short().map(String::from).unwrap_or_default();
        assert_eq!(short, row.short, "--{}: short form", row.flag);
        let ours: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        let ours = normalise(&row.ty, &ours.join(","));
        let want = differing.get(row.flag.as_str()).map_or_else(|| normalise(&row.ty, &row.default), |d| d.to_string());
        // Lists whose default only applies in context (the request-header
        // ones, used with --requestheader-client-ca-file) are optional here
        // and say their default in the help text.
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        if ours.is_empty() && !want.is_empty() {
            assert!(help.contains(&format!("[default: {want}]")), "--{}: default {want:?} not shown: {help}", row.flag);
        } else {
            assert_eq!(ours, want, "--{}: default", row.flag);
        }
        let heading = arg.get_help_heading().unwrap_or_default();
        if row.flag == "audit-webhook-batch-initial-backoff" {
            assert!(arg.is_hide_set(), "the deprecated alias is hidden, as in metrics-server");
        } else {
            assert_eq!(heading, format!("{} flags", row.group), "--{}: --help section", row.flag);
        }
        assert!(compat::support(&row.flag).is_some(), "--{}: config::compat does not say how it is honoured", row.flag);
    }
    let names: BTreeSet<&str> = table.iter().map(|r| r.flag.as_str()).collect();
    let classified: BTreeSet<&str> = compat::FLAGS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, classified, "config::compat lists exactly the table's flags");
    // Every other flag is ours, and says so in its --help section.
    for arg in cmd.get_arguments().filter(|a| a.get_long().is_some_and(|l| !names.contains(l))) {
        let heading = arg.get_help_heading().unwrap_or_default();
        assert!(
            heading.contains("ha-metrics-server"),
            "--{}: ours but in section {heading:?}",
            arg.get_long().unwrap()
        );
    }
}

#[test]
fn the_readme_lists_every_flag_accepted_without_effect() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Differences from metrics-server").expect("a Differences section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for (flag, support) in compat::FLAGS {
        match support {
            Support::NoEffect(_) | Support::RefusedWhenSet(_) => {
                assert!(section.contains(&format!("`--{flag}`")), "README's differences do not list --{flag}");
            }
            Support::Implemented => {}
        }
    }
    for (flag, _) in DIFFERENT_DEFAULTS {
        assert!(section.contains(&format!("`--{flag}`")), "README's differences do not list --{flag}'s default");
    }
}

#[test]
fn help_shows_metrics_servers_sections_in_order_then_ours() {
    let out = std::process::Command::new(common::binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let sections = [
        "Metrics server flags:",
        "Generic flags:",
        "Kubelet client flags:",
        "Apiserver secure serving flags:",
        "Apiserver authentication flags:",
        "Apiserver authorization flags:",
        "Apiserver audit log flags:",
        "Features flags:",
        "Logging flags:",
        "ha-metrics-server flags (not in metrics-server):",
        "Replication flags (ha-metrics-server only",
    ];
    let positions: Vec<usize> =
        sections.iter().map(|s| help.find(s).unwrap_or_else(|| panic!("--help has no {s:?}:\n{help}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sections out of order: {positions:?}");
    assert!(!help.contains("--audit-webhook-batch-initial-backoff"), "the deprecated alias is hidden");
}

#[test]
fn a_misspelt_flag_fails_with_the_closest_name() {
    let out = std::process::Command::new(common::binary()).arg("--metric-resolutoin=15s").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metric-resolution"), "{err}");
}

/// What `args` needs besides the flag under test: the other half of a
/// pair, an audit policy and backend for the audit options, and no
/// baseline flag the tested one conflicts with.
fn companions(row: &FlagRow, baseline: &mut Vec<String>) -> Vec<&'static str> {
    let drop = |baseline: &mut Vec<String>, prefix: &str| baseline.retain(|a| !a.starts_with(prefix));
    match row.flag.as_str() {
        "kubelet-insecure-tls" | "deprecated-kubelet-completely-insecure" => {
            drop(baseline, "--kubelet-certificate-authority");
            vec![]
        }
        "kubelet-client-certificate" => vec!["--kubelet-client-key={client_key}"],
        "kubelet-client-key" => vec!["--kubelet-client-certificate={client_cert}"],
        "tls-cert-file" => vec!["--tls-private-key-file={serving_key}"],
        "tls-private-key-file" => vec!["--tls-cert-file={serving_cert}"],
        "requestheader-allowed-names"
        | "requestheader-extra-headers-prefix"
        | "requestheader-group-headers"
        | "requestheader-uid-headers"
        | "requestheader-username-headers" => vec!["--requestheader-client-ca-file={proxy_ca}"],
        "vmodule" => vec!["--logging-format=text"],
        // Throttling needs a rate (with the default 0 metrics-server would
        // never write a batch again; here it is refused at start).
        "audit-log-batch-throttle-enable" => vec![
            "--audit-policy-file={policy}",
            "--audit-log-path={dir}/audit/audit.log",
            "--audit-log-mode=batch",
            "--audit-log-batch-throttle-qps=10",
            "--audit-log-batch-throttle-burst=5",
        ],
        f if f.starts_with("audit-log-") && f != "audit-log-path" => {
            vec!["--audit-policy-file={policy}", "--audit-log-path={dir}/audit/audit.log"]
        }
        "audit-policy-file" => vec!["--audit-log-path={dir}/audit/audit.log"],
        "audit-log-path" => vec!["--audit-policy-file={policy}"],
        f if f.starts_with("audit-webhook-") && f != "audit-webhook-config-file" => {
            vec!["--audit-policy-file={policy}", "--audit-webhook-config-file={webhook_kubeconfig}"]
        }
        "audit-webhook-config-file" => vec!["--audit-policy-file={policy}"],
        _ => vec![],
    }
}

/// Checks one flag against the real binary; `Err` says what went wrong.
async fn check(row: FlagRow, i: usize, env: &sim::env::DevEnv, fixtures: &Fixtures) -> Result<(), String> {
    let addr = env.replica_addr(i);
    let dir = fixtures.dir.join(format!("flag-{i}-{}", row.flag));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = env.replica_args(i, "10s");
    let extra = companions(&row, &mut args);
    let name = if row.flag == "v" { "-v".to_string() } else { format!("--{}", row.flag) };
    let given = format!("{name}={}", fixtures.fill(&row.example, addr, &dir));
    if row.flag == "help" || row.flag == "version" {
        let out = std::process::Command::new(common::binary()).arg(&given).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let ok = out.status.success()
            && if row.flag == "help" { text.contains("Metrics server flags:") } else { text.trim().starts_with('v') };
        return if ok { Ok(()) } else { Err(format!("{given}: {out:?}")) };
    }
    args.extend(extra.iter().map(|e| fixtures.fill(e, addr, &dir)));
    let support = compat::support(&row.flag).expect("classified");
    let mut with_flag = args.clone();
    with_flag.push(given.clone());
    let log = dir.join("replica.log");
    match (support, flagkit::start(&with_flag, addr, &log).await) {
        (Support::RefusedWhenSet(_), Outcome::Exited(status, log)) => {
            if status.success() || !log.contains(&name) || log.contains("panicked") {
                return Err(format!("{given}: refused without naming the flag or with a panic ({status}):\n{log}"));
            }
            // Its zero value is accepted.
            let zero = if row.ty == "bool" { "false".to_string() } else { flag_zero(&row) };
            let mut with_zero = args.clone();
            with_zero.push(format!("{name}={zero}"));
            match flagkit::start(&with_zero, addr, &dir.join("zero.log")).await {
                Outcome::Serving(_) => Ok(()),
                Outcome::Exited(s, log) => Err(format!("{name}={zero} (its zero value) was refused ({s}):\n{log}")),
            }
        }
        (Support::RefusedWhenSet(_), Outcome::Serving(_)) => {
            Err(format!("{given} was accepted, but metrics-server 0.9 refuses it at start"))
        }
        (_, Outcome::Exited(status, log)) => Err(format!("{given} stopped the binary ({status}):\n{log}")),
        (Support::NoEffect(_), Outcome::Serving(started)) => {
            let log = started.process.log_text();
            if log.contains("accepted for compatibility") && log.contains(&name) {
                Ok(())
            } else {
                Err(format!("{given}: no start-up line says it has no effect:\n{log}"))
            }
        }
        (Support::Implemented, Outcome::Serving(_)) => Ok(()),
    }
}

fn flag_zero(row: &FlagRow) -> String {
    match row.ty.as_str() {
        "quantity" => "0".into(),
        _ => String::new(),
    }
}

/// Every flag of metrics-server 0.9, with a representative value, on the
/// real binary: it serves, or exits as metrics-server 0.9 would. Takes the
/// timing lock (it starts about 120 processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flag_is_accepted_by_the_real_binary() {
    let started = Instant::now();
    let c = common::Cluster::start_empty(2, 2, "10s").await;
    let fixtures = Fixtures::new(&c.env, &c.env.work_dir.join("fixtures"), c.env.block.aux(0).into()).await;
    let rows = flag_table();
    let mut failures = Vec::new();
    // A few at a time: each start is a process with its own address.
    for (n, chunk) in rows.chunks(6).enumerate() {
        let checks = chunk.iter().enumerate().map(|(k, row)| check(row.clone(), n * 6 + k, &c.env, &fixtures));
        for (row, result) in chunk.iter().zip(futures::future::join_all(checks).await) {
            if let Err(e) = result {
                failures.push(format!("--{}: {e}", row.flag));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} flags failed:\n{}", failures.len(), rows.len(), failures.join("\n\n"));
    eprintln!("{} flags checked against the binary in {:.1?}", rows.len(), started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(600));
}
