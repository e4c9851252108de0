//! Kubelet text from plain values instead of a simulated node: what the
//! server's parser tests, fuzzing and benchmarks feed the parser. Every
//! container carries its own sample time; a pod reports the sum of its
//! containers at the newest of their times, as the kubelet does.

use super::{Layout, Template, Values};

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

/// The `/metrics/resource` text of one kubelet response. Pods without
/// containers have no series; the node families are left out when
/// `sample.node` is `None`.
pub fn render(sample: &KubeletSample) -> String {
    let mut layout = Layout::new(sample.node.is_some());
    for (p, pod) in sample.pods.iter().enumerate() {
        layout.pod(p, &pod.namespace, &pod.name, pod.containers.iter().map(|c| c.name.as_str()));
    }
    let template = Template::build(layout);
    let mut out = String::with_capacity(template.capacity_hint());
    template.render(sample, &mut out);
    out
}

impl KubeletSample {
    fn container(&self, pod: usize, container: usize) -> Option<&ContainerSample> {
        self.pods.get(pod)?.containers.get(container)
    }

    fn containers(&self, pod: usize) -> &[ContainerSample] {
        self.pods.get(pod).map_or(&[], |p| &p.containers)
    }
}

impl Values for KubeletSample {
    fn node_cpu_seconds(&self) -> f64 {
        self.node.map_or(0.0, |(cpu, _, _)| cpu)
    }
    fn node_memory_bytes(&self) -> f64 {
        self.node.map_or(0.0, |(_, memory, _)| memory)
    }
    fn node_timestamp_ms(&self) -> i64 {
        self.node.map_or(0, |(_, _, ts)| ts)
    }
    fn pod_cpu_seconds(&self, pod: usize) -> f64 {
        self.containers(pod).iter().map(|c| c.cpu_seconds).sum()
    }
    fn pod_memory_bytes(&self, pod: usize) -> f64 {
        self.containers(pod).iter().map(|c| c.memory_bytes).sum()
    }
    fn pod_timestamp_ms(&self, pod: usize) -> i64 {
        self.containers(pod).iter().map(|c| c.timestamp_ms).max().unwrap_or(0)
    }
    fn container_cpu_seconds(&self, pod: usize, container: usize) -> f64 {
        self.container(pod, container).map_or(0.0, |c| c.cpu_seconds)
    }
    fn container_memory_bytes(&self, pod: usize, container: usize) -> f64 {
        self.container(pod, container).map_or(0.0, |c| c.memory_bytes)
    }
    fn container_start_seconds(&self, pod: usize, container: usize) -> f64 {
        self.container(pod, container).map_or(0.0, |c| c.start_time_seconds)
    }
    fn container_timestamp_ms(&self, pod: usize, container: usize) -> i64 {
        self.container(pod, container).map_or(0, |c| c.timestamp_ms)
    }
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
