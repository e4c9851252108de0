//! The `/metrics/resource` text of a 1.32 kubelet, byte for byte: families
//! sorted by name with their `# HELP … [STABLE] …` and `# TYPE` lines, labels
//! in alphabetical order, series sorted by label values, values formatted as
//! Go's `strconv.FormatFloat(v, 'g', -1, 64)`, integer millisecond timestamps.
//!
//! Text is rendered through a `Template`: the static text (names, labels,
//! HELP lines) is laid out once from a `Layout` (whether the node reports
//! its own series, which pods report which containers), and each render only
//! writes numbers from a `Values` source into the gaps. A simulated node
//! keeps one template and fills it from its model at every scrape; [`render`]
//! fills a one-off template from a [`KubeletSample`]. Rendering reads its
//! source; it never changes it.

use std::fmt::Write as _;

use super::model::{ContainerModel, NANOS_PER_SEC, Nanos, NodeModel};
use apimachinery::gofloat::write_go_float;

mod sample;

pub use sample::{ContainerSample, KubeletSample, PodSample, render, synthetic};

/// What one gap of a template is filled with. Indices are the ones the
/// [`Layout`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    ContainerCpu { pod: usize, container: usize },
    ContainerMemory { pod: usize, container: usize },
    ContainerStart { pod: usize, container: usize },
    ContainerTime { pod: usize, container: usize },
    NodeCpu,
    NodeMemory,
    NodeTime,
    PodCpu { pod: usize },
    PodMemory { pod: usize },
    PodTime { pod: usize },
}

/// The numbers a [`Template`] is filled with, looked up by the indices its
/// [`Layout`] was built with. CPU in core-seconds, memory in bytes, start
/// times in Unix seconds, sample times in Unix milliseconds.
pub(crate) trait Values {
    fn node_cpu_seconds(&self) -> f64;
    fn node_memory_bytes(&self) -> f64;
    fn node_timestamp_ms(&self) -> i64;
    fn pod_cpu_seconds(&self, pod: usize) -> f64;
    fn pod_memory_bytes(&self, pod: usize) -> f64;
    fn pod_timestamp_ms(&self, pod: usize) -> i64;
    fn container_cpu_seconds(&self, pod: usize, container: usize) -> f64;
    fn container_memory_bytes(&self, pod: usize, container: usize) -> f64;
    fn container_start_seconds(&self, pod: usize, container: usize) -> f64;
    fn container_timestamp_ms(&self, pod: usize, container: usize) -> i64;
}

/// Which series a kubelet reports: the node's own (or not), and each
/// reporting pod with the names of its containers.
#[derive(Debug, Default)]
pub(crate) struct Layout<'a> {
    node: bool,
    /// (namespace, name, pod index).
    pods: Vec<(&'a str, &'a str, usize)>,
    /// (container name, namespace, pod name, pod index, container index).
    containers: Vec<(&'a str, &'a str, &'a str, usize, usize)>,
}

impl<'a> Layout<'a> {
    /// A layout with the node's series (`node`) and no pods yet.
    pub fn new(node: bool) -> Layout<'a> {
        Layout { node, ..Layout::default() }
    }

    /// Adds pod number `pod` with its containers' names in index order. A
    /// pod without containers has no series at all, as on a kubelet.
    pub fn pod(
        &mut self,
        pod: usize,
        namespace: &'a str,
        name: &'a str,
        containers: impl IntoIterator<Item = &'a str>,
    ) {
        let before = self.containers.len();
        for (c, container) in containers.into_iter().enumerate() {
            self.containers.push((container, namespace, name, pod, c));
        }
        if self.containers.len() > before {
            self.pods.push((namespace, name, pod));
        }
    }

    /// The series a simulated node reports: its own, and its running pods'.
    pub fn of_model(model: &'a NodeModel) -> Layout<'a> {
        let mut layout = Layout::new(true);
        for (p, pod) in model.pods.iter().enumerate().filter(|(_, pod)| pod.is_reported()) {
            layout.pod(p, &pod.namespace, &pod.name, pod.containers.iter().map(|c| c.name.as_str()));
        }
        layout
    }
}

/// A pre-rendered text with gaps for the numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Template {
    text: String,
    /// Byte offsets into `text` where each hole goes, ascending.
    holes: Vec<(usize, Hole)>,
}

const CONTAINER_CPU: &str = "container_cpu_usage_seconds_total";
const CONTAINER_MEMORY: &str = "container_memory_working_set_bytes";
const CONTAINER_START: &str = "container_start_time_seconds";

/// The families a 1.32 kubelet emits, in name order, with their HELP text.
const HELP: [(&str, &str, &str); 9] = [
    (CONTAINER_CPU, "counter", "[STABLE] Cumulative cpu time consumed by the container in core-seconds"),
    (CONTAINER_MEMORY, "gauge", "[STABLE] Current working set of the container in bytes"),
    (CONTAINER_START, "gauge", "[STABLE] Start time of the container since unix epoch in seconds"),
    ("node_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes"),
    ("resource_scrape_error", "gauge", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise"),
    ("scrape_error", "gauge", "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise"),
];

impl Template {
    /// Lays out the text of `layout`'s series.
    pub fn build(layout: Layout<'_>) -> Template {
        // Series in client_golang's order: by label values, labels by name.
        let Layout { node, mut pods, mut containers } = layout;
        containers.sort();
        pods.sort();

        let mut t = Template::default();
        for (name, kind, help) in HELP {
            let is_container = name.starts_with("container_");
            let is_pod = name.starts_with("pod_");
            let is_node = name.starts_with("node_");
            if (is_container && containers.is_empty()) || (is_pod && pods.is_empty()) || (is_node && !node) {
                continue; // client_golang drops families without series
            }
            let _ = write!(t.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            if is_container {
                for &(container_name, namespace, pod_name, pod, container) in &containers {
                    t.text.push_str(name);
                    t.text.push_str("{container=\"");
                    escape_label(&mut t.text, container_name);
                    t.text.push_str("\",namespace=\"");
                    escape_label(&mut t.text, namespace);
                    t.text.push_str("\",pod=\"");
                    escape_label(&mut t.text, pod_name);
                    t.text.push_str("\"} ");
                    let hole = match name {
                        CONTAINER_CPU => Hole::ContainerCpu { pod, container },
                        CONTAINER_MEMORY => Hole::ContainerMemory { pod, container },
                        _ => Hole::ContainerStart { pod, container },
                    };
                    t.hole(hole);
                    // The start time carries no timestamp on a 1.32 kubelet.
                    if name != CONTAINER_START {
                        t.text.push(' ');
                        t.hole(Hole::ContainerTime { pod, container });
                    }
                    t.text.push('\n');
                }
            } else if is_pod {
                for &(namespace, pod_name, pod) in &pods {
                    t.text.push_str(name);
                    t.text.push_str("{namespace=\"");
                    escape_label(&mut t.text, namespace);
                    t.text.push_str("\",pod=\"");
                    escape_label(&mut t.text, pod_name);
                    t.text.push_str("\"} ");
                    let cpu = name.starts_with("pod_cpu");
                    t.hole(if cpu { Hole::PodCpu { pod } } else { Hole::PodMemory { pod } });
                    t.text.push(' ');
                    t.hole(Hole::PodTime { pod });
                    t.text.push('\n');
                }
            } else if is_node {
                t.text.push_str(name);
                t.text.push(' ');
                t.hole(if name.starts_with("node_cpu") { Hole::NodeCpu } else { Hole::NodeMemory });
                t.text.push(' ');
                t.hole(Hole::NodeTime);
                t.text.push('\n');
            } else {
                t.text.push_str(name);
                t.text.push_str(" 0\n");
            }
        }
        // Thousands of nodes each keep one: no slack from amortised growth.
        t.text.shrink_to_fit();
        t.holes.shrink_to_fit();
        t
    }

    fn hole(&mut self, hole: Hole) {
        self.holes.push((self.text.len(), hole));
    }

    /// A size that fits the rendered text without growing.
    pub fn capacity_hint(&self) -> usize {
        self.text.len() + self.holes.len() * 24
    }

    /// Appends the text filled with `values` to `out`.
    pub fn render<V: Values>(&self, values: &V, out: &mut String) {
        let mut from = 0;
        for &(at, hole) in &self.holes {
            out.push_str(&self.text[from..at]);
            from = at;
            match hole {
                Hole::NodeCpu => write_go_float(out, values.node_cpu_seconds()),
                Hole::NodeMemory => write_go_float(out, values.node_memory_bytes()),
                Hole::NodeTime => write_millis(out, values.node_timestamp_ms()),
                Hole::PodCpu { pod } => write_go_float(out, values.pod_cpu_seconds(pod)),
                Hole::PodMemory { pod } => write_go_float(out, values.pod_memory_bytes(pod)),
                Hole::PodTime { pod } => write_millis(out, values.pod_timestamp_ms(pod)),
                Hole::ContainerCpu { pod, container } => {
                    write_go_float(out, values.container_cpu_seconds(pod, container));
                }
                Hole::ContainerMemory { pod, container } => {
                    write_go_float(out, values.container_memory_bytes(pod, container));
                }
                Hole::ContainerStart { pod, container } => {
                    write_go_float(out, values.container_start_seconds(pod, container));
                }
                Hole::ContainerTime { pod, container } => {
                    write_millis(out, values.container_timestamp_ms(pod, container));
                }
            }
        }
        out.push_str(&self.text[from..]);
    }
}

fn write_millis(out: &mut String, ms: i64) {
    let _ = write!(out, "{ms}");
}

/// A simulated node's model sampled at one time: every series carries that
/// time (shifted by the node's clock offset), and counters are read at it.
pub(crate) struct ModelAt<'a> {
    model: &'a NodeModel,
    t: Nanos,
    /// The timestamp written on every series, Unix ms.
    t_ms: i64,
}

impl<'a> ModelAt<'a> {
    /// `model` as sampled at `t_ms` (Unix milliseconds).
    pub fn new(model: &'a NodeModel, t_ms: u64) -> ModelAt<'a> {
        // Sample times come from a u64 of nanoseconds, so they fit an i64 of ms.
        ModelAt { model, t: t_ms.saturating_mul(1_000_000), t_ms: i64::try_from(t_ms).unwrap_or(i64::MAX) }
    }

    /// The same sample stamped by a clock `offset_ms` off the true time: the
    /// counters are still read at the true time (a kubelet's cumulative CPU
    /// does not jump with its wall clock), only the timestamps move.
    pub fn clock_offset(self, offset_ms: i64) -> ModelAt<'a> {
        ModelAt { t_ms: self.t_ms.saturating_add(offset_ms), ..self }
    }

    fn container(&self, pod: usize, container: usize) -> Option<&'a ContainerModel> {
        self.model.pods.get(pod)?.containers.get(container)
    }
}

impl Values for ModelAt<'_> {
    fn node_cpu_seconds(&self) -> f64 {
        core_seconds(self.model.cpu.at(self.t))
    }
    fn node_memory_bytes(&self) -> f64 {
        self.model.memory_bytes as f64
    }
    fn node_timestamp_ms(&self) -> i64 {
        self.t_ms
    }
    fn pod_cpu_seconds(&self, pod: usize) -> f64 {
        core_seconds(self.model.pods.get(pod).map_or(0, |p| p.cpu_at(self.t)))
    }
    fn pod_memory_bytes(&self, pod: usize) -> f64 {
        self.model.pods.get(pod).map_or(0, |p| p.memory_bytes()) as f64
    }
    fn pod_timestamp_ms(&self, _pod: usize) -> i64 {
        self.t_ms
    }
    fn container_cpu_seconds(&self, pod: usize, container: usize) -> f64 {
        core_seconds(self.container(pod, container).map_or(0, |c| c.cpu.at(self.t)))
    }
    fn container_memory_bytes(&self, pod: usize, container: usize) -> f64 {
        self.container(pod, container).map_or(0, |c| c.memory_bytes) as f64
    }
    fn container_start_seconds(&self, pod: usize, container: usize) -> f64 {
        self.container(pod, container).map_or(0, |c| c.start) as f64 / NANOS_PER_SEC as f64
    }
    fn container_timestamp_ms(&self, _pod: usize, _container: usize) -> i64 {
        self.t_ms
    }
}

/// Core-nanoseconds as the kubelet's float core-seconds.
fn core_seconds(core_nanos: u128) -> f64 {
    core_nanos as f64 / NANOS_PER_SEC as f64
}

/// Escapes a label value as the Prometheus text format requires.
fn escape_label(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A 200 body that no Prometheus parser accepts: the real text cut inside
/// the first label set, followed by bytes that are not the text format.
pub(crate) fn malformed(text: &str) -> String {
    let cut = text
        .lines()
        .find(|l| !l.starts_with('#') && l.contains('{'))
        .and_then(|line| text.find(line).map(|at| at + line.find('{').unwrap_or(0) + 1))
        .unwrap_or(text.len().min(64));
    let mut out = String::with_capacity(cut + 32);
    out.push_str(text.get(..cut).unwrap_or(""));
    out.push_str("\"\u{0}\u{7f}}}} not-a-number garbage");
    out
}

#[cfg(test)]
mod tests;
