//! Temporary: the simulator's renderer writes exactly what this crate's old
//! renderer wrote, byte for byte, before the old one is deleted.

use super::render as old;
use proptest::prelude::*;
use sim::kubelet::render as new;

fn convert(s: &old::KubeletSample) -> new::KubeletSample {
    new::KubeletSample {
        node: s.node,
        pods: s
            .pods
            .iter()
            .map(|p| new::PodSample {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                containers: p
                    .containers
                    .iter()
                    .map(|c| new::ContainerSample {
                        name: c.name.clone(),
                        cpu_seconds: c.cpu_seconds,
                        memory_bytes: c.memory_bytes,
                        start_time_seconds: c.start_time_seconds,
                        timestamp_ms: c.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn same(s: &old::KubeletSample) -> usize {
    let a = old::render(s);
    let b = new::render(&convert(s));
    assert_eq!(a, b, "renderers differ for {s:?}");
    a.len()
}

#[test]
fn renderers_agree_on_synthetic_inputs() {
    let mut n = 0;
    let mut bytes = 0;
    for pods in 0..=12 {
        for containers in 0..=4 {
            for seed in 0..40 {
                let mut s = old::synthetic(pods, containers, 1_735_032_840_000 + seed as i64 * 977, seed);
                bytes += same(&s);
                s.node = None;
                bytes += same(&s);
                n += 2;
            }
        }
    }
    // The generator's own typical sizes, new to this crate's benches.
    for (pods, containers) in [(30, 2), (70, 1), (110, 2), (3, 2)] {
        for seed in 0..10 {
            bytes += same(&old::synthetic(pods, containers, 1_735_032_840_000, seed));
            n += 1;
        }
    }
    eprintln!("COMPARED synthetic inputs: {n}, {bytes} bytes");
}

#[test]
fn renderers_agree_on_escapes_ties_and_empty_pods() {
    let c = |name: &str, cpu, ts| old::ContainerSample {
        name: name.into(),
        cpu_seconds: cpu,
        memory_bytes: 4096.0,
        start_time_seconds: 1.7e9,
        timestamp_ms: ts,
    };
    let pod = |ns: &str, name: &str, cs| old::PodSample { namespace: ns.into(), name: name.into(), containers: cs };
    let cases = vec![
        old::KubeletSample { node: None, pods: vec![] },
        old::KubeletSample { node: Some((1.0, 2.0, 3)), pods: vec![] },
        old::KubeletSample { node: Some((1.0, 2.0, 3)), pods: vec![pod("ns", "empty", vec![])] },
        old::KubeletSample {
            node: Some((f64::INFINITY, f64::NAN, -5)),
            pods: vec![
                pod("a\"b", "p\\q", vec![c("c\nd", 0.1, 1), c("x\\\"\n", 0.2, 2)]),
                pod("\\", "\"", vec![c("\n", -0.0, 0)]),
                pod("ns", "empty", vec![]),
                // Same labels twice: ties keep input order.
                pod("dup", "dup", vec![c("app", 1.0, 10), c("app", 2.0, 20)]),
                pod("dup", "dup", vec![c("app", 3.0, 30)]),
                pod("é\u{1F600}", "ünï", vec![c("ç", 1e-300, i64::MAX), c("", 1e300, i64::MIN)]),
            ],
        },
    ];
    for s in &cases {
        same(s);
    }
}

fn any_sample() -> impl Strategy<Value = old::KubeletSample> {
    let name = "[a-c\"\\\\\n\u{e9}]{0,3}";
    let value = prop_oneof![Just(0.0), Just(-0.0), any::<f64>(), 0.0..1e7f64, 1e-10..1e-3f64];
    let container = (name, value.clone(), value.clone(), value.clone(), any::<i64>());
    let pod = (name, name, prop::collection::vec(container, 0..4));
    let node = prop::option::of((value.clone(), value, any::<i64>()));
    (node, prop::collection::vec(pod, 0..8)).prop_map(|(node, pods)| old::KubeletSample {
        node,
        pods: pods
            .into_iter()
            .map(|(namespace, name, cs)| old::PodSample {
                namespace,
                name,
                containers: cs
                    .into_iter()
                    .map(|(name, cpu_seconds, memory_bytes, start_time_seconds, timestamp_ms)| old::ContainerSample {
                        name,
                        cpu_seconds,
                        memory_bytes,
                        start_time_seconds,
                        timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn renderers_agree_on_random_samples(s in any_sample()) {
        same(&s);
    }
}
