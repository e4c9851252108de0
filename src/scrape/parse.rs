//! The kubelet `/metrics/resource` parser: Prometheus text in, one node's
//! points out, with metrics-server's validity rules (reference
//! metrics-server.md §1.6). [`parse`] is pure: no I/O, no clock, no store;
//! [`parse_scrape`] (`checked`) is what a scraper calls: the parse, off the
//! runtime threads for large bodies, then the refusal of a batch with
//! samples from the future.
//!
//! Linear in the body: a sample's pod and container are found by guessing
//! the next one in order, then by an index, never by scanning all of a pod's
//! containers (one pod with 100,000 containers must not cost 10^10
//! comparisons); [`ParseWork`] counts the probes so tests hold it to that.
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

mod checked;
mod decimal;
mod line;
mod scan;
#[cfg(test)]
mod tests;

pub use checked::{BodyError, INLINE_PARSE_MAX_BYTES, parse_checked, parse_scrape};
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

/// Pods with more containers than this get a name index; below it a scan
/// of the few names is cheaper than hashing.
const INDEX_CONTAINERS_FROM: usize = 8;

struct PartialPod<'a> {
    namespace: Cow<'a, str>,
    name: Cow<'a, str>,
    containers: Vec<(Cow<'a, str>, Partial)>,
    /// Container name → position, once the pod has many containers.
    index: Option<HashMap<Cow<'a, str>, usize>>,
    /// The container touched last: each family lists a pod's containers in
    /// the same order, so the next one is nearly always the one after it.
    cursor: usize,
}

/// What a parse did, in operations the input size bounds: the parser's
/// cost model, checked by the linear-time tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseWork {
    /// Sample lines read.
    pub samples: u64,
    /// Pod and container names compared or looked up to place a sample.
    pub probes: u64,
}

/// Parses one `/metrics/resource` body of `node` fetched at `request_time`.
pub fn parse(body: &[u8], node: &str, request_time: UnixNanos) -> Result<NodeBatch, ParseError> {
    parse_counted(body, node, request_time).0
}

/// [`parse`], with the work it took.
pub fn parse_counted(body: &[u8], node: &str, request_time: UnixNanos) -> (Result<NodeBatch, ParseError>, ParseWork) {
    let mut work = ParseWork::default();
    let result = parse_with(body, node, request_time, &mut work);
    (result, work)
}

fn parse_with(body: &[u8], node: &str, request_time: UnixNanos, work: &mut ParseWork) -> Result<NodeBatch, ParseError> {
    let mut node_point = Partial::default();
    let mut pods: Vec<PartialPod<'_>> = Vec::new();
    let mut pod_index: HashMap<(Cow<'_, str>, Cow<'_, str>), usize> = HashMap::new();
    // Every container family lists the pods in the same order: the pod of a
    // sample is nearly always the last one touched or the one after it.
    let mut cursor = 0usize;

    // One UTF-8 check of the whole body (vectorised for ASCII) instead of
    // one per label value and number; a body that fails it is checked
    // piece by piece, so the error names the line.
    let text = std::str::from_utf8(body).ok();
    for (i, (start, end)) in lines(body).enumerate() {
        let fail = |cause| ParseError { node: node.to_string(), line: i + 1, cause };
        let raw = &body[start..end];
        let sample = match line::parse_line(raw, text.and_then(|t| t.get(start..end))).map_err(fail)? {
            Some(s) => s,
            None => continue,
        };
        work.samples += 1;
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
                let at = pod_slot(&mut pods, &mut pod_index, &mut cursor, namespace, pod, work);
                let c = pods[at].container(container, work);
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

/// The byte ranges of the lines of `body` (without their `\n`), as
/// `body.split(b'\n')` gives them, found with a vectorised search instead
/// of a byte at a time.
fn lines(body: &[u8]) -> impl Iterator<Item = (usize, usize)> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    ends.map(move |end| {
        let line = (start, end);
        start = end + 1;
        line
    })
}

/// The positions to try first when the last one touched was `cursor`: it,
/// the one after it, and the first (each family starts over), each once.
fn guesses(cursor: usize, len: usize) -> impl Iterator<Item = usize> {
    let first = (cursor != 0).then_some(0);
    [Some(cursor), Some(cursor + 1), first].into_iter().flatten().filter(move |&i| i < len)
}

/// The position of the pod in `pods`, added if new: the guesses first
/// (at most three comparisons), then the index (one lookup).
fn pod_slot<'a>(
    pods: &mut Vec<PartialPod<'a>>,
    index: &mut HashMap<(Cow<'a, str>, Cow<'a, str>), usize>,
    cursor: &mut usize,
    namespace: Cow<'a, str>,
    pod: Cow<'a, str>,
    work: &mut ParseWork,
) -> usize {
    let is = |p: &PartialPod<'_>| p.name == pod && p.namespace == namespace;
    let guess = guesses(*cursor, pods.len()).find(|&i| {
        work.probes += 1;
        is(&pods[i])
    });
    let at = match guess {
        Some(i) => i,
        None => {
            work.probes += 1;
            let next = pods.len();
            let at = *index.entry((namespace.clone(), pod.clone())).or_insert(next);
            if at == next {
                pods.push(PartialPod { namespace, name: pod, containers: Vec::new(), index: None, cursor: 0 });
            }
            at
        }
    };
    *cursor = at;
    at
}

impl<'a> PartialPod<'a> {
    /// The slot of `container`, added if new: the guesses after the last one
    /// touched, then the index (or, while the pod has few containers, a scan).
    fn container(&mut self, container: Cow<'a, str>, work: &mut ParseWork) -> &mut Partial {
        let len = self.containers.len();
        let guess = guesses(self.cursor, len).find(|&i| {
            work.probes += 1;
            self.containers[i].0 == container
        });
        let at = match (guess, &mut self.index) {
            (Some(i), _) => i,
            (None, Some(index)) => {
                work.probes += 1;
                *index.entry(container.clone()).or_insert(len)
            }
            (None, None) => {
                work.probes += len as u64;
                self.containers.iter().position(|(n, _)| *n == container).unwrap_or(len)
            }
        };
        if at == len {
            self.containers.push((container, Partial::default()));
            if self.index.is_none() && self.containers.len() > INDEX_CONTAINERS_FROM {
                let index = self.containers.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
                work.probes += self.containers.len() as u64;
                self.index = Some(index);
            }
        }
        self.cursor = at;
        &mut self.containers[at].1
    }
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
