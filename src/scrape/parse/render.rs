//! Writes `/metrics/resource` text exactly as a 1.32 kubelet does: families
//! sorted by name with `[STABLE]` HELP and TYPE lines, labels in alphabetical
//! order, Go `%g` floats (`1.253376e+07`), millisecond timestamps and
//! `container_start_time_seconds` without one. Used by the parser's tests,
//! the benchmarks and simulated kubelets; the server itself never renders.

use std::fmt::Write;

/// One container as a kubelet reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSample {
    pub name: String,
    /// Cumulative CPU in core-seconds.
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
    /// Start time in Unix seconds.
    pub start_time_seconds: f64,
    /// Sample time in Unix milliseconds.
    pub timestamp_ms: i64,
}

/// One pod and its containers.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerSample>,
}

/// Everything one kubelet reports in one response.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletSample {
    /// Node CPU core-seconds, memory bytes and timestamp (ms); `None` omits the node series.
    pub node: Option<(f64, f64, i64)>,
    pub pods: Vec<PodSample>,
}

/// Formats `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)`, with the
/// `+Inf`/`-Inf`/`NaN` spellings of the Prometheus text format.
pub fn go_float(v: f64) -> String {
    let mut out = String::with_capacity(24);
    apimachinery::gofloat::write_go_float(&mut out, v);
    out
}

/// Escapes a label value as the text format requires (`\\`, `\"`, `\n`).
pub fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders one kubelet response.
pub fn render(sample: &KubeletSample) -> String {
    // Rows sorted as the kubelet's registry sorts them: by label values in
    // label-name order (container, namespace, pod).
    let mut rows: Vec<(&PodSample, &ContainerSample)> =
        sample.pods.iter().flat_map(|p| p.containers.iter().map(move |c| (p, c))).collect();
    rows.sort_by(|a, b| (&a.1.name, &a.0.namespace, &a.0.name).cmp(&(&b.1.name, &b.0.namespace, &b.0.name)));
    let mut pods: Vec<&PodSample> = sample.pods.iter().filter(|p| !p.containers.is_empty()).collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut out = String::with_capacity(200 + rows.len() * 480);
    let container_family =
        |out: &mut String, name: &str, help: &str, kind: &str, f: &dyn Fn(&ContainerSample) -> String| {
            if rows.is_empty() {
                return;
            }
            header(out, name, help, kind);
            for (p, c) in &rows {
                let _ = writeln!(
                    out,
                    "{name}{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}} {}",
                    escape(&c.name),
                    escape(&p.namespace),
                    escape(&p.name),
                    f(c)
                );
            }
        };
    container_family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        "counter",
        &|c| format!("{} {}", go_float(c.cpu_seconds), c.timestamp_ms),
    );
    container_family(
        &mut out,
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        "gauge",
        &|c| format!("{} {}", go_float(c.memory_bytes), c.timestamp_ms),
    );
    container_family(
        &mut out,
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        "gauge",
        &|c| go_float(c.start_time_seconds),
    );
    if let Some((cpu, mem, ts)) = sample.node {
        header(
            &mut out,
            "node_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
            "counter",
        );
        let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ts}", go_float(cpu));
        header(&mut out, "node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", "gauge");
        let _ = writeln!(out, "node_memory_working_set_bytes {} {ts}", go_float(mem));
    }
    if !pods.is_empty() {
        let pod_ts = |p: &PodSample| p.containers.iter().map(|c| c.timestamp_ms).max().unwrap_or(0);
        header(
            &mut out,
            "pod_cpu_usage_seconds_total",
            "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
            "counter",
        );
        for p in &pods {
            let cpu: f64 = p.containers.iter().map(|c| c.cpu_seconds).sum();
            let _ = writeln!(
                out,
                "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {} {}",
                escape(&p.namespace),
                escape(&p.name),
                go_float(cpu),
                pod_ts(p)
            );
        }
        header(&mut out, "pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", "gauge");
        for p in &pods {
            let mem: f64 = p.containers.iter().map(|c| c.memory_bytes).sum();
            let _ = writeln!(
                out,
                "pod_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\"}} {} {}",
                escape(&p.namespace),
                escape(&p.name),
                go_float(mem),
                pod_ts(p)
            );
        }
    }
    header(
        &mut out,
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    out.push_str("resource_scrape_error 0\n");
    header(
        &mut out,
        "scrape_error",
        "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    out.push_str("scrape_error 0\n");
    out
}

/// A deterministic kubelet response with `pods` pods of `containers` containers
/// each, sampled at `timestamp_ms`; values vary per pod so that no two lines
/// look alike. `seed` shifts every value.
pub fn synthetic(pods: usize, containers: usize, timestamp_ms: i64, seed: u64) -> KubeletSample {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: cheap, deterministic, good enough for test values.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let start_s = (timestamp_ms / 1000) as f64 - 86_400.0;
    let pods = (0..pods)
        .map(|p| PodSample {
            namespace: format!("team-{}", p % 7),
            name: format!("web-{p:03}-{:05x}", next() % 0xfffff),
            containers: (0..containers)
                .map(|c| ContainerSample {
                    name: if c == 0 { "app".into() } else { format!("sidecar-{c}") },
                    cpu_seconds: 1.0 + (next() % 10_000_000) as f64 / 1000.0,
                    memory_bytes: (1_048_576 + (next() % 2_000_000_000) / 4096 * 4096) as f64,
                    start_time_seconds: start_s + (next() % 1_000_000) as f64 / 1e6,
                    timestamp_ms: timestamp_ms - (next() % 5000) as i64,
                })
                .collect(),
        })
        .collect();
    KubeletSample { node: Some((123_456.789 + (seed % 1000) as f64, 7.5e9, timestamp_ms)), pods }
}
