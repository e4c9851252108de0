//! Parser cases D1–D8 of the reference (metrics-server.md §6.2) on our own
//! fixtures, plus label, value and size edge cases; the property tests (D7)
//! are in `fuzz`.

use super::*;
use sim::kubelet::render::{render, synthetic};

mod checked;
mod fast_paths;
mod fuzz;
mod linear;

const REQUEST_TIME: UnixNanos = 1_735_032_900_000_000_000;

/// A complete 1.32 kubelet response (our values): two pods, one of them
/// with a sidecar, every family the kubelet writes.
pub(super) const FULL_PAYLOAD: &str = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-7c65d6cfc9-x2vqp\"} 52.817733 1735032838512
container_cpu_usage_seconds_total{container=\"envoy\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 3.120004 1735032837101
container_cpu_usage_seconds_total{container=\"server\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 118.45 1735032837101
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-7c65d6cfc9-x2vqp\"} 1.8313216e+07 1735032838512
container_memory_working_set_bytes{container=\"envoy\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 2.4576e+07 1735032837101
container_memory_working_set_bytes{container=\"server\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 2.98856448e+08 1735032837101
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-7c65d6cfc9-x2vqp\"} 1.7350287e+09
container_start_time_seconds{container=\"envoy\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 1.7350301125e+09
container_start_time_seconds{container=\"server\",namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 1.7350301125e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 4821.093112 1735032840177
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2.147262464e+09 1735032840177
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"kube-system\",pod=\"coredns-7c65d6cfc9-x2vqp\"} 52.9 1735032838512
pod_cpu_usage_seconds_total{namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 121.7 1735032837101
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace=\"kube-system\",pod=\"coredns-7c65d6cfc9-x2vqp\"} 1.8444288e+07 1735032838512
pod_memory_working_set_bytes{namespace=\"shop\",pod=\"cart-5d9f8b7c4-qk2lm\"} 3.2505856e+08 1735032837101
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
";

fn ok(body: &str) -> NodeBatch {
    match parse(body.as_bytes(), "node-a", REQUEST_TIME) {
        Ok(b) => b,
        Err(e) => panic!("expected success, got {e}"),
    }
}

fn err(body: &str) -> ParseError {
    match parse(body.as_bytes(), "node-a", REQUEST_TIME) {
        Ok(b) => panic!("expected an error, got {b:?}"),
        Err(e) => e,
    }
}

fn pod<'b>(b: &'b NodeBatch, ns: &str, name: &str) -> Option<&'b PodPoints> {
    b.pods.iter().find(|p| p.namespace == ns && p.name == name)
}

const MS: i64 = 1_000_000;

#[test]
fn d1_full_kubelet_payload_yields_node_and_container_points() {
    let b = ok(FULL_PAYLOAD);
    assert_eq!(
        b.node,
        Some(Point {
            timestamp: 1_735_032_840_177 * MS,
            cpu_cumulative_ns: 4_821_093_112_000,
            memory_bytes: 2_147_262_464,
            start_time: None
        })
    );
    assert_eq!(b.pods.len(), 2, "pod_* and scrape_error series must not create pods");
    let dns = pod(&b, "kube-system", "coredns-7c65d6cfc9-x2vqp").expect("coredns pod");
    assert_eq!(dns.containers.len(), 1);
    assert_eq!(dns.containers[0].name, "coredns");
    assert_eq!(
        dns.containers[0].point,
        Point {
            timestamp: 1_735_032_838_512 * MS,
            cpu_cumulative_ns: 52_817_733_000,
            memory_bytes: 18_313_216,
            start_time: Some(1_735_028_700 * 1_000_000_000),
        }
    );
    let cart = pod(&b, "shop", "cart-5d9f8b7c4-qk2lm").expect("cart pod");
    let names: Vec<&str> = cart.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["envoy", "server"]);
    assert_eq!(cart.containers[1].point.cpu_cumulative_ns, 118_450_000_000);
    assert_eq!(cart.containers[1].point.memory_bytes, 298_856_448);
    assert_eq!(cart.containers[1].point.start_time, Some(1_735_030_112_500_000_000));
}

#[test]
fn d2_samples_without_timestamp_use_the_request_time() {
    let b = ok("node_cpu_usage_seconds_total 10\nnode_memory_working_set_bytes 2048\n\
        container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 1\n\
        container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 5\n");
    assert_eq!(b.node.map(|n| n.timestamp), Some(REQUEST_TIME));
    assert_eq!(b.pods[0].containers[0].point.timestamp, REQUEST_TIME);
}

#[test]
fn d3_container_series_alone_give_no_node_point() {
    let b = ok("container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 1 1000\n\
        container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 5 1000\n");
    assert_eq!(b.node, None);
    assert_eq!(b.pods.len(), 1);
}

#[test]
fn d3_node_series_alone_give_no_pods() {
    let b = ok("node_cpu_usage_seconds_total 10 1000\nnode_memory_working_set_bytes 2048 1000\n");
    assert!(b.node.is_some());
    assert!(b.pods.is_empty());
}

/// The `other` pod is always valid; the `victim` pod has a sidecar `s`
/// whose series are given by `sidecar`.
fn with_sidecar(sidecar: &str) -> String {
    format!(
        "container_cpu_usage_seconds_total{{container=\"app\",namespace=\"n\",pod=\"victim\"}} 2 1000\n\
         container_cpu_usage_seconds_total{{container=\"app\",namespace=\"n\",pod=\"other\"}} 2 1000\n\
         container_memory_working_set_bytes{{container=\"app\",namespace=\"n\",pod=\"victim\"}} 300 1000\n\
         container_memory_working_set_bytes{{container=\"app\",namespace=\"n\",pod=\"other\"}} 300 1000\n\
         {sidecar}"
    )
}

#[test]
fn d4_pod_with_a_container_without_cpu_or_memory_or_with_zero_is_dropped() {
    let cpu = |v: &str| {
        format!("container_cpu_usage_seconds_total{{container=\"s\",namespace=\"n\",pod=\"victim\"}} {v} 1000\n")
    };
    let mem = |v: &str| {
        format!("container_memory_working_set_bytes{{container=\"s\",namespace=\"n\",pod=\"victim\"}} {v} 1000\n")
    };
    let start = "container_start_time_seconds{container=\"s\",namespace=\"n\",pod=\"victim\"} 1.7e+09\n";
    for (case, sidecar) in [
        ("no cpu", mem("100")),
        ("cpu 0", cpu("0") + &mem("100")),
        ("no memory", cpu("1")),
        ("memory 0", cpu("1") + &mem("0")),
        ("start time only", start.to_string()),
    ] {
        let b = ok(&with_sidecar(&sidecar));
        assert!(pod(&b, "n", "victim").is_none(), "{case}: pod must be dropped");
        assert!(pod(&b, "n", "other").is_some(), "{case}: other pods stay");
    }
    let b = ok(&with_sidecar(&(cpu("1") + &mem("100"))));
    assert_eq!(pod(&b, "n", "victim").map(|p| p.containers.len()), Some(2));
}

#[test]
fn d4_cpu_below_one_nanosecond_counts_as_zero() {
    let b = ok(&with_sidecar(
        "container_cpu_usage_seconds_total{container=\"s\",namespace=\"n\",pod=\"victim\"} 4e-10 1000\n\
         container_memory_working_set_bytes{container=\"s\",namespace=\"n\",pod=\"victim\"} 9 1000\n",
    ));
    assert!(pod(&b, "n", "victim").is_none());
}

#[test]
fn d5_node_without_cpu_or_memory_or_with_zero_is_dropped() {
    for (case, body) in [
        ("no cpu", "node_memory_working_set_bytes 2048 1000\n"),
        ("cpu 0", "node_cpu_usage_seconds_total 0 1000\nnode_memory_working_set_bytes 2048 1000\n"),
        ("no memory", "node_cpu_usage_seconds_total 10 1000\n"),
        ("memory 0", "node_cpu_usage_seconds_total 10 1000\nnode_memory_working_set_bytes 0 1000\n"),
        ("timestamp 0", "node_cpu_usage_seconds_total 10 0\nnode_memory_working_set_bytes 20 0\n"),
    ] {
        assert_eq!(ok(body).node, None, "{case}");
    }
}

#[test]
fn d6_negative_timestamp_rejects_the_whole_batch() {
    let body = FULL_PAYLOAD.replace("4821.093112 1735032840177", "4821.093112 -62135596800000");
    let e = err(&body);
    assert_eq!(e.cause, ParseErrorKind::NegativeTimestamp(-62_135_596_800_000));
    assert_eq!(e.line, 18);
    assert!(e.to_string().contains("node-a") && e.to_string().contains("line 18"), "{e}");
}

#[test]
fn d6_timestamp_beyond_year_2262_is_rejected() {
    let e = err("node_cpu_usage_seconds_total 1 9223372036854776\n");
    assert_eq!(e.cause, ParseErrorKind::TimestampOutOfRange(9_223_372_036_854_776));
    assert!(matches!(err("node_cpu_usage_seconds_total 1 12.5\n").cause, ParseErrorKind::InvalidTimestamp(_)));
}

#[test]
fn d8_seventy_pod_generated_payload_yields_one_node_and_seventy_pods() {
    let text = render(&synthetic(70, 1, 1_735_032_840_000, 7));
    let b = ok(&text);
    assert!(b.node.is_some());
    assert_eq!(b.pods.len(), 70);
}

#[test]
fn rendered_payload_round_trips_through_the_parser() {
    let sample = synthetic(30, 2, 1_735_032_840_000, 3);
    let b = ok(&render(&sample));
    assert_eq!(b.pods.len(), 30);
    for p in &sample.pods {
        let got = pod(&b, &p.namespace, &p.name).expect("pod present");
        for c in &p.containers {
            let gc = got.containers.iter().find(|x| x.name == c.name).expect("container present");
            assert_eq!(gc.point.cpu_cumulative_ns, (c.cpu_seconds * 1e9) as u64);
            assert_eq!(gc.point.memory_bytes, c.memory_bytes as u64);
            assert_eq!(gc.point.timestamp, c.timestamp_ms * MS);
            assert_eq!(gc.point.start_time, Some((c.start_time_seconds * 1e9) as i64));
        }
    }
}

#[test]
fn labels_in_any_order_with_escapes_and_extra_labels_are_read() {
    let b = ok(
        "container_cpu_usage_seconds_total{ pod = \"p\\\"q\" , id=\"/x\\\\y\",namespace=\"a\\nb\",container=\"c,}\",} 1 1000\n\
        container_memory_working_set_bytes{namespace=\"a\\nb\",container=\"c,}\",pod=\"p\\\"q\",image=\"\\tx\"} 5 1000\n",
    );
    let p = pod(&b, "a\nb", "p\"q").expect("pod with escaped names");
    assert_eq!(p.containers[0].name, "c,}");
}

#[test]
fn container_sample_without_pod_label_is_an_error() {
    let e = err("\n# c\ncontainer_cpu_usage_seconds_total{container=\"c\",namespace=\"n\"} 1 1000\n");
    assert_eq!((e.line, e.cause), (3, ParseErrorKind::MissingLabel("pod")));
}

#[test]
fn go_float_spellings_are_accepted() {
    for (text, ns) in [
        ("1.253376e+07", 12_533_760_000_000_000u64),
        ("4.710169", 4_710_169_000),
        ("5E-9", 5),
        (".5", 500_000_000),
        ("+2.", 2_000_000_000),
    ] {
        let b = ok(&format!("node_cpu_usage_seconds_total {text} 1000\nnode_memory_working_set_bytes 1 1000\n"));
        assert_eq!(b.node.map(|n| n.cpu_cumulative_ns), Some(ns), "{text}");
    }
}

#[test]
fn infinite_nan_negative_or_huge_values_are_rejected_for_kept_series_only() {
    for v in ["+Inf", "-Inf", "NaN", "-1"] {
        let e = err(&format!("node_memory_working_set_bytes {v}\n"));
        assert!(matches!(e.cause, ParseErrorKind::ValueNotFinite(ref t) if t == v), "{v}: {e}");
    }
    assert!(matches!(err("node_cpu_usage_seconds_total 2e10\n").cause, ParseErrorKind::ValueTooLarge(_)));
    assert!(matches!(err("node_cpu_usage_seconds_total 0x1p3\n").cause, ParseErrorKind::InvalidValue(_)));
    ok("pod_cpu_usage_seconds_total{namespace=\"n\",pod=\"p\"} NaN\nsomething_else +Inf\n");
}

#[test]
fn start_time_with_timestamp_from_older_kubelets_is_accepted() {
    let b = ok(&with_sidecar(
        "container_start_time_seconds{container=\"app\",namespace=\"n\",pod=\"other\"} 1.6e+09 1735032838512\n",
    ));
    assert_eq!(pod(&b, "n", "other").map(|p| p.containers[0].point.start_time), Some(Some(1_600_000_000_000_000_000)));
}

#[test]
fn the_last_parsed_timestamp_of_a_node_wins() {
    let b = ok("node_cpu_usage_seconds_total 1 1000\nnode_memory_working_set_bytes 1 2000\n");
    assert_eq!(b.node.map(|n| n.timestamp), Some(2000 * MS));
}

#[test]
fn crlf_and_blank_lines_are_tolerated() {
    let b = ok(&FULL_PAYLOAD.replace('\n', "\r\n\r\n"));
    assert_eq!(b.pods.len(), 2);
}

#[test]
fn malformed_lines_name_their_line_and_cause() {
    for (body, line, cause) in [
        ("ok 1\n{x=\"1\"} 2\n", 2, ParseErrorKind::InvalidName),
        ("a{x=\"1\" 2\n", 1, ParseErrorKind::InvalidLabels("expected ',' or '}' after a label value")),
        ("a{x=\"1} 2\n", 1, ParseErrorKind::InvalidLabels("unterminated label value")),
        ("a{x=1} 2\n", 1, ParseErrorKind::InvalidLabels("expected '\"' before a label value")),
        ("a{9=\"1\"} 2\n", 1, ParseErrorKind::InvalidLabels("invalid label name")),
        ("a\n", 1, ParseErrorKind::MissingValue),
        ("a 1 2 3\n", 1, ParseErrorKind::TrailingText),
        ("a-b 1\n", 1, ParseErrorKind::InvalidName),
        ("container_cpu_usage_seconds_total{pod=\"a\",pod=\"b\"} 1\n", 1, ParseErrorKind::DuplicateLabel("pod")),
    ] {
        let e = err(body);
        assert_eq!((e.line, &e.cause), (line, &cause), "{body:?}");
    }
}

#[test]
fn oversized_lines_labels_and_label_counts_are_refused() {
    let long = format!("a{{x=\"{}\"}} 1\n", "v".repeat(MAX_LINE_BYTES));
    assert_eq!(err(&long).cause, ParseErrorKind::LineTooLong);
    let value = format!("a{{x=\"{}\"}} 1\n", "v".repeat(MAX_LABEL_VALUE_BYTES + 1));
    assert_eq!(err(&value).cause, ParseErrorKind::LabelValueTooLong);
    let labels: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}=\"v\"")).collect();
    assert_eq!(err(&format!("a{{{}}} 1\n", labels.join(","))).cause, ParseErrorKind::TooManyLabels);
    let bad_utf8 = parse(b"a 1\nb{x=\"\xff\"} 1\n", "node-a", REQUEST_TIME);
    assert_eq!(bad_utf8.map_err(|e| (e.line, e.cause)), Err((2, ParseErrorKind::LabelNotUtf8)));
}
