//! The parser's cost is linear in the body (issue 18, finding 5): one pod
//! with 100,000 containers, its families in the kubelet's order and in the
//! worst order for the guesses, measured by the parser's own probe count,
//! whatever the machine's load.

use super::*;
use std::fmt::Write as _;

/// One pod with `n` containers: CPU and memory in name order, start times
/// in reverse order (every guess misses), plus a node point.
fn one_pod_body(n: usize) -> String {
    let mut out = String::with_capacity(n * 3 * 96);
    let names: Vec<String> = (0..n).map(|i| format!("c{i:06}")).collect();
    for (family, reverse) in [
        ("container_cpu_usage_seconds_total", false),
        ("container_memory_working_set_bytes", false),
        ("container_start_time_seconds", true),
    ] {
        let order: Box<dyn Iterator<Item = &String>> =
            if reverse { Box::new(names.iter().rev()) } else { Box::new(names.iter()) };
        for name in order {
            let _ = writeln!(out, "{family}{{container=\"{name}\",namespace=\"ns\",pod=\"big\"}} 1.5 1735032840000");
        }
    }
    out.push_str("node_cpu_usage_seconds_total 10 1735032840000\nnode_memory_working_set_bytes 1e9 1735032840000\n");
    out
}

fn parse_pod(n: usize) -> ParseWork {
    let (result, work) = parse_counted(one_pod_body(n).as_bytes(), "node-a", REQUEST_TIME);
    let batch = result.expect("the body is valid");
    assert_eq!(batch.pods.len(), 1);
    assert_eq!(batch.pods[0].containers.len(), n, "every container is kept");
    assert!(batch.pods[0].containers.windows(2).all(|w| w[0].name < w[1].name), "sorted by name");
    assert_eq!(work.samples, 3 * n as u64 + 2);
    work
}

#[test]
fn a_pod_with_100000_containers_parses_in_linear_time() {
    let small = parse_pod(10_000);
    let large = parse_pod(100_000);
    // Per sample: at most four probes for its pod (three guesses, one index
    // lookup) and four for its container; the index is built once.
    for work in [small, large] {
        assert!(work.probes <= 8 * work.samples + 16, "{work:?}");
    }
    // Ten times the containers, about ten times the work (a scan per sample
    // would be a hundred times).
    let ratio = large.probes as f64 / small.probes as f64;
    assert!(ratio < 11.0, "probes grew {ratio:.1}x for 10x the containers: {small:?} then {large:?}");
}

#[test]
fn small_pods_need_at_most_a_few_probes_per_sample() {
    // The kubelet's own order for 30 pods of 2 containers: the guesses hit.
    let body = render(&synthetic(30, 2, 1_735_032_840_000, 1));
    let (result, work) = parse_counted(body.as_bytes(), "node-a", REQUEST_TIME);
    assert_eq!(result.unwrap().pods.len(), 30);
    assert!(work.probes <= 4 * work.samples, "{work:?}");
}
