//! The kubelet `/metrics/resource` parser: Prometheus text in, one node's
//! points out, with metrics-server's validity rules (reference
//! metrics-server.md §1.6). Pure: no I/O, no clock, no store.
//!
//! Only five families are kept: `node_cpu_usage_seconds_total`,
//! `node_memory_working_set_bytes`, `container_cpu_usage_seconds_total`,
//! `container_memory_working_set_bytes` and `container_start_time_seconds`.
//! Every other sample line is still checked for syntax (as Prometheus'
//! `textparse` does) and then ignored. Scanning borrows from the body; only
//! the names that end up in the output are allocated.
//!
//! Rules, as metrics-server applies them:
//! - a sample without timestamp gets `request_time`; a negative or
//!   out-of-range timestamp fails the whole batch;
//! - when CPU and memory carry different timestamps, the last one parsed wins;
//! - the node point is dropped when its CPU, memory or timestamp is 0 or missing;
//! - a pod is dropped when ANY of its containers has CPU or memory 0 or missing;
//! - pods without container samples do not appear.

use crate::model::{ContainerPoint, NodeBatch, PodPoints, Point, UnixNanos};
use std::borrow::Cow;
use std::collections::HashMap;

mod line;
#[cfg(test)]
mod tests;

use line::{Family, Sample};

/// Longest accepted line, in bytes. Real kubelet lines are under 300 bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Longest accepted label value, in bytes (Kubernetes names are ≤ 253).
pub const MAX_LABEL_VALUE_BYTES: usize = 4 * 1024;
/// Most labels accepted on one sample.
pub const MAX_LABELS: usize = 64;

/// Why a kubelet body was rejected. The whole batch is discarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kubelet metrics of node {node}: line {line}: {cause}")]
pub struct ParseError {
    pub node: String,
    /// 1-based line number in the body.
    pub line: usize,
    pub cause: ParseErrorKind,
}

/// The cause of a [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("invalid metric name")]
    InvalidName,
    #[error("invalid label syntax: {0}")]
    InvalidLabels(&'static str),
    #[error("more than {MAX_LABELS} labels")]
    TooManyLabels,
    #[error("label value longer than {MAX_LABEL_VALUE_BYTES} bytes")]
    LabelValueTooLong,
    #[error("label value is not UTF-8")]
    LabelNotUtf8,
    #[error("label {0:?} given twice")]
    DuplicateLabel(&'static str),
    #[error("container sample without a {0:?} label")]
    MissingLabel(&'static str),
    #[error("missing value")]
    MissingValue,
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    #[error("value {0:?} is negative, infinite or NaN")]
    ValueNotFinite(String),
    #[error("value {0:?} is too large")]
    ValueTooLarge(String),
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("negative timestamp {0}")]
    NegativeTimestamp(i64),
    #[error("timestamp {0} ms is out of range")]
    TimestampOutOfRange(i64),
    #[error("unexpected text after the timestamp")]
    TrailingText,
}

/// A container while its samples are being collected.
#[derive(Default)]
struct Partial {
    cpu: Option<u64>,
    memory: Option<u64>,
    timestamp: Option<UnixNanos>,
    start_time: Option<UnixNanos>,
}

struct PartialPod<'a> {
    namespace: Cow<'a, str>,
    name: Cow<'a, str>,
    containers: Vec<(Cow<'a, str>, Partial)>,
}

/// Parses one `/metrics/resource` body of `node` fetched at `request_time`.
pub fn parse(body: &[u8], node: &str, request_time: UnixNanos) -> Result<NodeBatch, ParseError> {
    let mut node_point = Partial::default();
    let mut pods: Vec<PartialPod<'_>> = Vec::new();
    let mut pod_index: HashMap<(Cow<'_, str>, Cow<'_, str>), usize> = HashMap::new();
    // Every container family lists the pods in the same order: the pod of a
    // sample is nearly always the last one touched or the one after it.
    let mut cursor = 0usize;

    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let fail = |cause| ParseError { node: node.to_string(), line: i + 1, cause };
        let sample = match line::parse_line(raw).map_err(fail)? {
            Some(s) => s,
            None => continue,
        };
        let Sample { family, labels, value, timestamp_ms } = sample;
        let timestamp = match timestamp_ms {
            None => request_time,
            Some(ms) if ms < 0 => return Err(fail(ParseErrorKind::NegativeTimestamp(ms))),
            Some(ms) => ms.checked_mul(1_000_000).ok_or_else(|| fail(ParseErrorKind::TimestampOutOfRange(ms)))?,
        };
        match family {
            Family::Other => {}
            Family::NodeCpu => {
                node_point.cpu = Some(cpu_ns(value, raw).map_err(fail)?);
                node_point.timestamp = Some(timestamp);
            }
            Family::NodeMemory => {
                node_point.memory = Some(bytes(value, raw).map_err(fail)?);
                node_point.timestamp = Some(timestamp);
            }
            Family::ContainerCpu | Family::ContainerMemory | Family::ContainerStart => {
                let namespace = labels.namespace.ok_or_else(|| fail(ParseErrorKind::MissingLabel("namespace")))?;
                let pod = labels.pod.ok_or_else(|| fail(ParseErrorKind::MissingLabel("pod")))?;
                let container = labels.container.ok_or_else(|| fail(ParseErrorKind::MissingLabel("container")))?;
                let c = container_slot(&mut pods, &mut pod_index, &mut cursor, namespace, pod, container);
                match family {
                    Family::ContainerCpu => {
                        c.cpu = Some(cpu_ns(value, raw).map_err(fail)?);
                        c.timestamp = Some(timestamp);
                    }
                    Family::ContainerMemory => {
                        c.memory = Some(bytes(value, raw).map_err(fail)?);
                        c.timestamp = Some(timestamp);
                    }
                    _ => c.start_time = Some(start_ns(value, raw).map_err(fail)?),
                }
            }
        }
    }

    Ok(NodeBatch { node: finish_node(node_point), pods: pods.into_iter().filter_map(finish_pod).collect() })
}

fn container_slot<'a, 'p>(
    pods: &'p mut Vec<PartialPod<'a>>,
    index: &mut HashMap<(Cow<'a, str>, Cow<'a, str>), usize>,
    cursor: &mut usize,
    namespace: Cow<'a, str>,
    pod: Cow<'a, str>,
    container: Cow<'a, str>,
) -> &'p mut Partial {
    let is = |p: &PartialPod<'_>| p.name == pod && p.namespace == namespace;
    let guess = [*cursor, *cursor + 1, 0].into_iter().find(|&i| pods.get(i).is_some_and(is));
    let at = match guess {
        Some(i) => i,
        None => {
            let next = pods.len();
            let at = *index.entry((namespace.clone(), pod.clone())).or_insert(next);
            if at == next {
                pods.push(PartialPod { namespace, name: pod, containers: Vec::new() });
            }
            at
        }
    };
    *cursor = at;
    let containers = &mut pods[at].containers;
    let pos = match containers.iter().position(|(n, _)| *n == container) {
        Some(p) => p,
        None => {
            containers.push((container, Partial::default()));
            containers.len() - 1
        }
    };
    &mut containers[pos].1
}

fn finish_node(p: Partial) -> Option<Point> {
    match (p.cpu, p.memory, p.timestamp) {
        (Some(cpu), Some(memory), Some(ts)) if cpu != 0 && memory != 0 && ts != 0 => {
            Some(Point { timestamp: ts, cpu_cumulative_ns: cpu, memory_bytes: memory, start_time: None })
        }
        _ => None,
    }
}

fn finish_pod(p: PartialPod<'_>) -> Option<PodPoints> {
    let mut containers = Vec::with_capacity(p.containers.len());
    for (name, c) in p.containers {
        match (c.cpu, c.memory, c.timestamp) {
            (Some(cpu), Some(memory), Some(ts)) if cpu != 0 && memory != 0 => containers.push(ContainerPoint {
                name: name.into_owned(),
                point: Point { timestamp: ts, cpu_cumulative_ns: cpu, memory_bytes: memory, start_time: c.start_time },
            }),
            _ => return None,
        }
    }
    if containers.is_empty() {
        return None;
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Some(PodPoints { namespace: p.namespace.into_owned(), name: p.name.into_owned(), containers })
}

/// A usable value of one of our series: finite and not negative.
fn checked(value: f64, raw: &[u8]) -> Result<f64, ParseErrorKind> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ParseErrorKind::ValueNotFinite(line::value_text(raw)))
    }
}

/// `uint64(value * 1e9)`, refusing what does not fit.
fn cpu_ns(value: f64, raw: &[u8]) -> Result<u64, ParseErrorKind> {
    to_u64(checked(value, raw)? * 1e9, raw)
}

fn bytes(value: f64, raw: &[u8]) -> Result<u64, ParseErrorKind> {
    to_u64(checked(value, raw)?, raw)
}

fn to_u64(v: f64, raw: &[u8]) -> Result<u64, ParseErrorKind> {
    // 2^64 is exactly representable; anything at or above it does not fit.
    if v >= 18_446_744_073_709_551_616.0 {
        return Err(ParseErrorKind::ValueTooLarge(line::value_text(raw)));
    }
    Ok(v as u64)
}

/// `time.Unix(0, int64(value * 1e9))`. A negative start time (a known kubelet
/// bug) is kept as metrics-server keeps it: it only means "started long ago".
fn start_ns(value: f64, raw: &[u8]) -> Result<UnixNanos, ParseErrorKind> {
    if !value.is_finite() {
        return Err(ParseErrorKind::ValueNotFinite(line::value_text(raw)));
    }
    let ns = value * 1e9;
    if ns.abs() >= 9_223_372_036_854_775_808.0 {
        return Err(ParseErrorKind::ValueTooLarge(line::value_text(raw)));
    }
    Ok(ns as i64)
}
