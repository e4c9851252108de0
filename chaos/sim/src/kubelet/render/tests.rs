//! The exact text of both sources: a simulated node's model and plain
//! [`KubeletSample`] values.

use super::*;

/// What `template_renders_the_exact_kubelet_text`'s node reports at
/// 1735032838936 ms, byte for byte as a 1.32 kubelet writes it.
const MODEL_TEXT: &str = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 0.419468 1735032838936
container_cpu_usage_seconds_total{container=\"metrics-server\",namespace=\"kube-system\",pod=\"metrics-server-1\"} 2.838936 1735032838936
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 4096 1735032838936
container_memory_working_set_bytes{container=\"metrics-server\",namespace=\"kube-system\",pod=\"metrics-server-1\"} 4.0628224e+07 1735032838936
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 1.735032e+09
container_start_time_seconds{container=\"metrics-server\",namespace=\"kube-system\",pod=\"metrics-server-1\"} 1.73503e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 8209.734 1735032838936
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.616273408e+09 1735032838936
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 0.419468 1735032838936
pod_cpu_usage_seconds_total{namespace=\"kube-system\",pod=\"metrics-server-1\"} 2.838936 1735032838936
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 4096 1735032838936
pod_memory_working_set_bytes{namespace=\"kube-system\",pod=\"metrics-server-1\"} 4.0628224e+07 1735032838936
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
";

fn container(name: &str, rate: u64, start_s: u64, mem: u64) -> super::super::model::ContainerModel {
    use super::super::model::{ContainerModel, Counter};
    let start = start_s * NANOS_PER_SEC;
    ContainerModel { name: name.into(), cpu: Counter::new(rate, start, 0), memory_bytes: mem, start }
}

#[test]
fn template_renders_the_exact_kubelet_text() {
    use super::super::model::{Counter, PodModel};
    use crate::cluster::PodPhase;
    let pod = |ns: &str, name: &str, containers| PodModel {
        namespace: ns.into(),
        name: name.into(),
        phase: PodPhase::Running,
        containers,
    };
    let model = NodeModel {
        name: "node-0".into(),
        cpu: Counter::new(250_000_000, 1_735_000_000 * NANOS_PER_SEC, 0),
        memory_bytes: 1_616_273_408,
        pods: vec![
            pod(
                "kube-system",
                "metrics-server-1",
                vec![container("metrics-server", 1_000_000, 1_735_030_000, 40_628_224)],
            ),
            pod("kube-system", "kube-proxy-l5jhs", vec![container("kube-proxy", 500_000, 1_735_032_000, 4_096)]),
            PodModel { phase: PodPhase::Pending, ..pod("default", "pending", vec![container("x", 1, 1, 1)]) },
        ],
    };
    let mut out = String::new();
    Template::build(Layout::of_model(&model)).render(&ModelAt::new(&model, 1_735_032_838_936), &mut out);
    assert_eq!(out, MODEL_TEXT);
}

#[test]
fn node_without_pods_has_only_node_and_error_families() {
    use super::super::model::Counter;
    let model = NodeModel { name: "n".into(), cpu: Counter::new(1, 0, 0), memory_bytes: 1, pods: vec![] };
    let mut out = String::new();
    Template::build(Layout::of_model(&model)).render(&ModelAt::new(&model, 1_000), &mut out);
    let names: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert_eq!(
        names,
        [
            "node_cpu_usage_seconds_total counter",
            "node_memory_working_set_bytes gauge",
            "resource_scrape_error gauge",
            "scrape_error gauge"
        ]
    );
}

#[test]
fn malformed_body_is_cut_inside_a_label_set() {
    let text = "# HELP x y\n# TYPE x counter\nx{a=\"b\"} 1 2\n";
    let bad = malformed(text);
    assert!(bad.starts_with("# HELP x y\n# TYPE x counter\nx{\""), "{bad:?}");
    assert!(!bad.ends_with('\n'));
}

#[test]
fn sample_renders_the_same_text_as_the_model_it_samples() {
    let container = |name: &str, cpu_seconds, memory_bytes, start_time_seconds| ContainerSample {
        name: name.into(),
        cpu_seconds,
        memory_bytes,
        start_time_seconds,
        timestamp_ms: 1_735_032_838_936,
    };
    let pod = |name: &str, c| PodSample { namespace: "kube-system".into(), name: name.into(), containers: vec![c] };
    let text = render(&KubeletSample {
        node: Some((8209.734, 1.616273408e9, 1_735_032_838_936)),
        pods: vec![
            pod("metrics-server-1", container("metrics-server", 2.838936, 4.0628224e7, 1.73503e9)),
            pod("kube-proxy-l5jhs", container("kube-proxy", 0.419468, 4096.0, 1.735032e9)),
        ],
    });
    assert_eq!(text, MODEL_TEXT);
}

#[test]
fn sample_writes_kubelet_line_shapes() {
    let text = render(&KubeletSample {
        node: Some((357.35491, 1.616273408e9, 1_735_032_829_720)),
        pods: vec![PodSample {
            namespace: "kube-system".into(),
            name: "kube-proxy-l5jhs".into(),
            containers: vec![ContainerSample {
                name: "kube-proxy".into(),
                cpu_seconds: 1.100665,
                memory_bytes: 4.0628224e7,
                start_time_seconds: 1.7350300183020916e9,
                timestamp_ms: 1_735_032_838_936,
            }],
        }],
    });
    for line in [
        "container_cpu_usage_seconds_total{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 1.100665 1735032838936",
        "container_memory_working_set_bytes{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 4.0628224e+07 1735032838936",
        "container_start_time_seconds{container=\"kube-proxy\",namespace=\"kube-system\",pod=\"kube-proxy-l5jhs\"} 1.7350300183020916e+09",
        "node_cpu_usage_seconds_total 357.35491 1735032829720",
        "node_memory_working_set_bytes 1.616273408e+09 1735032829720",
        "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn sample_pods_sum_their_containers_at_the_newest_time_and_escape_labels() {
    let container = |name: &str, cpu_seconds, memory_bytes, start_time_seconds, timestamp_ms| ContainerSample {
        name: name.into(),
        cpu_seconds,
        memory_bytes,
        start_time_seconds,
        timestamp_ms,
    };
    let text = render(&KubeletSample {
        node: None,
        pods: vec![
            PodSample {
                namespace: "a\"b".into(),
                name: "p\\q".into(),
                containers: vec![
                    container("web", 0.5, 1024.0, 1.7e9, 2000),
                    container("c\nd", 0.25, 2048.0, 1.75e9, 3000),
                ],
            },
            PodSample { namespace: "empty".into(), name: "no-containers".into(), containers: vec![] },
        ],
    });
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert_eq!(
        families,
        [
            "container_cpu_usage_seconds_total counter",
            "container_memory_working_set_bytes gauge",
            "container_start_time_seconds gauge",
            "pod_cpu_usage_seconds_total counter",
            "pod_memory_working_set_bytes gauge",
            "resource_scrape_error gauge",
            "scrape_error gauge"
        ]
    );
    let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        series,
        [
            r#"container_cpu_usage_seconds_total{container="c\nd",namespace="a\"b",pod="p\\q"} 0.25 3000"#,
            r#"container_cpu_usage_seconds_total{container="web",namespace="a\"b",pod="p\\q"} 0.5 2000"#,
            r#"container_memory_working_set_bytes{container="c\nd",namespace="a\"b",pod="p\\q"} 2048 3000"#,
            r#"container_memory_working_set_bytes{container="web",namespace="a\"b",pod="p\\q"} 1024 2000"#,
            r#"container_start_time_seconds{container="c\nd",namespace="a\"b",pod="p\\q"} 1.75e+09"#,
            r#"container_start_time_seconds{container="web",namespace="a\"b",pod="p\\q"} 1.7e+09"#,
            r#"pod_cpu_usage_seconds_total{namespace="a\"b",pod="p\\q"} 0.75 3000"#,
            r#"pod_memory_working_set_bytes{namespace="a\"b",pod="p\\q"} 3072 3000"#,
            "resource_scrape_error 0",
            "scrape_error 0",
        ]
    );
}
