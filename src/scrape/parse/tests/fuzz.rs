//! Property tests (reference D7): the parser never panics on random or
//! mutated input and its output always obeys the validity rules; well-formed
//! kubelet text with non-negative timestamps never errors.
//!
//! `PROPTEST_CASES` sets the case count; the never-panics test defaults to
//! 100,000 inputs (random and mutated real payloads together).

use super::FULL_PAYLOAD;
use crate::model::NodeBatch;
use crate::scrape::parse::parse;
use proptest::prelude::*;
use sim::kubelet::render::{ContainerSample, KubeletSample, PodSample, render, synthetic};
use std::sync::LazyLock;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Real payloads to mutate: the hand-written full one and a small generated one.
static BASES: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    vec![
        FULL_PAYLOAD.as_bytes().to_vec(),
        render(&synthetic(3, 2, 1_735_032_840_000, 11)).into_bytes(),
        b"node_cpu_usage_seconds_total 1 1\nnode_memory_working_set_bytes 1 1\n".to_vec(),
    ]
});

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    Truncate(usize),
    DuplicateLine(usize),
    DeleteRange(usize, usize),
    Insert(usize, Vec<u8>),
    /// Replaces the token at a position with a number no series can hold.
    HugeNumber(usize, usize),
}

const HUGE: [&str; 7] = [
    "99999999999999999999999999",
    "1e999",
    "-1e308",
    "1.8446744073709552e+19",
    "-9223372036854775808",
    "9223372036854775807",
    "0x1p99",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Mutation::DeleteRange(i, n)),
        (
            any::<usize>(),
            prop::collection::vec(prop::sample::select(b"{}=\",\\ \n#.e+-0123456789azIN".to_vec()), 1..12)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 0usize..HUGE.len()).prop_map(|(i, h)| Mutation::HugeNumber(i, h)),
    ]
}

fn apply(mut body: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::FlipByte(i, b) => {
            if !body.is_empty() {
                let p = at(*i, body.len());
                body[p] = *b;
            }
        }
        Mutation::Truncate(i) => body.truncate(at(*i, body.len() + 1)),
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
            let line = lines[at(*i, lines.len())].to_vec();
            body.extend_from_slice(b"\n");
            body.extend_from_slice(&line);
        }
        Mutation::DeleteRange(i, n) => {
            let p = at(*i, body.len() + 1);
            body.drain(p..(p + n).min(body.len()));
        }
        Mutation::Insert(i, bytes) => {
            let p = at(*i, body.len() + 1);
            body.splice(p..p, bytes.iter().copied());
        }
        Mutation::HugeNumber(i, h) => {
            let p = at(*i, body.len() + 1);
            let end = body[p..].iter().position(|&b| b == b' ' || b == b'\n').map_or(body.len(), |e| p + e);
            body.splice(p..end, HUGE[*h].bytes());
        }
    }
    body
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(prop::sample::select(b"{}=\",\\ \n\t#.e+-019acnpdiortu_".to_vec()), 0..300),
        4 => (0..BASES.len(), prop::collection::vec(mutation(), 1..6))
            .prop_map(|(b, ms)| ms.iter().fold(BASES[b].clone(), apply)),
    ]
}

/// What every successful parse must satisfy whatever the input.
fn check_invariants(b: &NodeBatch) {
    if let Some(n) = b.node {
        assert!(n.cpu_cumulative_ns > 0 && n.memory_bytes > 0 && n.timestamp > 0, "invalid node point {n:?}");
    }
    for p in &b.pods {
        assert!(!p.containers.is_empty(), "pod without containers {p:?}");
        for c in &p.containers {
            assert!(
                c.point.cpu_cumulative_ns > 0 && c.point.memory_bytes > 0 && c.point.timestamp >= 0,
                "invalid container {c:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(100_000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn d7_parser_never_panics_on_random_or_mutated_input(body in input()) {
        if let Ok(batch) = parse(&body, "fuzz", 1_700_000_000_000_000_000) {
            check_invariants(&batch);
        }
    }
}

fn well_formed() -> impl Strategy<Value = KubeletSample> {
    let container = (
        prop_oneof![Just(0.0), 0.0..1e7f64],
        prop_oneof![Just(0u64), 1u64..(1 << 40)],
        0.0..2e9f64,
        0i64..4_000_000_000_000,
    );
    let pod = ("[a-z0-9\"\\\\.-]{1,12}", "[a-z0-9-]{1,30}", prop::collection::vec(container, 1..4));
    let node = prop::option::of((0.0..1e7f64, 0u64..(1 << 40), 0i64..4_000_000_000_000));
    (node, prop::collection::vec(pod, 0..8)).prop_map(|(node, pods)| KubeletSample {
        node: node.map(|(c, m, t)| (c, m as f64, t)),
        pods: pods
            .into_iter()
            .enumerate()
            .map(|(i, (ns, name, cs))| PodSample {
                namespace: ns,
                name: format!("{name}-{i}"),
                containers: cs
                    .into_iter()
                    .enumerate()
                    .map(|(j, (cpu, mem, start, ts))| ContainerSample {
                        name: format!("c{j}"),
                        cpu_seconds: cpu,
                        memory_bytes: mem as f64,
                        start_time_seconds: start,
                        timestamp_ms: ts,
                    })
                    .collect(),
            })
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn d7_well_formed_kubelet_text_never_errors(sample in well_formed()) {
        let text = render(&sample);
        let batch = parse(text.as_bytes(), "gen", 5).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let node_valid = sample.node.is_some_and(|(c, m, t)| (c * 1e9) as u64 > 0 && m as u64 > 0 && t > 0);
        prop_assert_eq!(batch.node.is_some(), node_valid);
        let valid = |c: &ContainerSample| (c.cpu_seconds * 1e9) as u64 > 0 && c.memory_bytes as u64 > 0;
        let mut expected: Vec<(&str, &str)> = sample
            .pods
            .iter()
            .filter(|p| p.containers.iter().all(valid))
            .map(|p| (p.namespace.as_str(), p.name.as_str()))
            .collect();
        let mut got: Vec<(&str, &str)> = batch.pods.iter().map(|p| (p.namespace.as_str(), p.name.as_str())).collect();
        expected.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(got, expected);
        for p in &batch.pods {
            let s = sample.pods.iter().find(|s| s.namespace == p.namespace && s.name == p.name);
            let s = s.ok_or_else(|| TestCaseError::fail("pod not in the sample"))?;
            for (c, sc) in p.containers.iter().zip(&s.containers) {
                prop_assert_eq!(&c.name, &sc.name);
                prop_assert_eq!(c.point.memory_bytes, sc.memory_bytes as u64);
                prop_assert_eq!(c.point.timestamp, sc.timestamp_ms * 1_000_000);
            }
        }
    }
}
