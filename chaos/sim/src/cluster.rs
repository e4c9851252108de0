//! The shape of a simulated cluster: nodes, their pods and containers, and
//! each container's true usage. Both the simulated kubelets (which turn it
//! into `/metrics/resource` text) and the stand-in apiserver (which turns it
//! into Node and Pod objects) are built from one [`ClusterSpec`], so tests
//! can compare what kubectl prints with the truth.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::addr::Block;

/// A whole simulated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub nodes: Vec<NodeSpec>,
}

/// One node and the pods running on it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The kubelet's address (an `InternalIP` in the Node status).
    pub ip: Ipv4Addr,
    /// The kubelet's port (`status.daemonEndpoints.kubeletEndpoint.port`).
    pub kubelet_port: u16,
    /// Allocatable CPU in millicores and memory in bytes (for `kubectl top`'s percentages).
    pub allocatable_millicores: u64,
    pub allocatable_memory_bytes: u64,
    /// True CPU rate of the node as a whole, in nanocores.
    pub cpu_nanocores: u64,
    /// Working set of the node as a whole, in bytes.
    pub memory_bytes: u64,
    pub pods: Vec<PodSpec>,
}

/// Pod phase, as the apiserver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
        }
    }
}

/// One pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub phase: PodPhase,
    pub containers: Vec<ContainerSpec>,
}

/// One container and its true usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    /// True CPU rate in nanocores. Generated values stay clear of whole
    /// millicores, because kubectl rounds CPU up to the next millicore.
    pub cpu_nanocores: u64,
    /// Working set in bytes.
    pub memory_bytes: u64,
}

/// Parameters of [`generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Containers per pod: pods alternate between 1 and this many.
    pub max_containers: usize,
    pub kubelet_port: u16,
    /// Varies the generated rates between clusters.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { nodes: 3, pods_per_node: 4, max_containers: 2, kubelet_port: 10250, seed: 1 }
    }
}

/// SplitMix64: a tiny deterministic generator, enough for test data.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`hi` > `lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// A CPU rate of `millis` millicores plus a fraction between 0.2 and 0.8 of a
/// millicore, so that kubectl's round-up is unambiguous.
fn off_grid_cpu(rng: &mut SplitMix, millis: u64) -> u64 {
    millis * 1_000_000 + rng.range(200_000, 800_000)
}

/// A cluster of `opts.nodes` nodes named `node-<n>` on `block`'s kubelet
/// addresses. Pods are spread over namespaces `default`, `kube-system` and
/// `team-a`, labelled `app=<name>`, `tier` and `deployment=<app>-<n / 10>` so
/// selectors have something to match.
pub fn generate(block: &Block, opts: &GenerateOptions) -> ClusterSpec {
    let mut rng = SplitMix::new(opts.seed);
    const APPS: [&str; 4] = ["web", "api", "db", "cache"];
    const NAMESPACES: [&str; 3] = ["default", "kube-system", "team-a"];
    let mut nodes = Vec::with_capacity(opts.nodes);
    for n in 0..opts.nodes {
        let name = format!("node-{n}");
        let mut labels = BTreeMap::new();
        labels.insert("kubernetes.io/hostname".to_string(), name.clone());
        labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
        labels.insert("zone".to_string(), format!("zone-{}", n % 3));
        let mut pods = Vec::with_capacity(opts.pods_per_node);
        let mut pod_cpu = 0;
        let mut pod_mem = 0;
        for p in 0..opts.pods_per_node {
            let app = APPS[(n + p) % APPS.len()];
            let ns = NAMESPACES[(n * 7 + p) % NAMESPACES.len()];
            let ncont = if p % 2 == 0 { 1 } else { opts.max_containers.max(1) };
            let containers: Vec<ContainerSpec> = (0..ncont)
                .map(|c| ContainerSpec {
                    name: if c == 0 { app.to_string() } else { format!("sidecar-{c}") },
                    cpu_nanocores: {
                        let millis = rng_millis(&mut rng);
                        off_grid_cpu(&mut rng, millis)
                    },
                    memory_bytes: rng.range(20, 400) * 1024 * 1024 + rng.range(0, 1024) * 1024,
                })
                .collect();
            pod_cpu += containers.iter().map(|c| c.cpu_nanocores).sum::<u64>();
            pod_mem += containers.iter().map(|c| c.memory_bytes).sum::<u64>();
            let mut pod_labels = BTreeMap::new();
            pod_labels.insert("app".to_string(), app.to_string());
            pod_labels.insert("tier".to_string(), if p % 2 == 0 { "frontend" } else { "backend" }.to_string());
            // A Deployment-sized group (a few dozen pods per namespace) for
            // selectors shaped like an HPA's.
            pod_labels.insert("deployment".to_string(), format!("{app}-{}", n / 10));
            pods.push(PodSpec {
                namespace: ns.to_string(),
                name: format!("{app}-{n}-{p}"),
                labels: pod_labels,
                phase: PodPhase::Running,
                containers,
            });
        }
        let system_millis = rng.range(50, 300);
        let system_cpu = off_grid_cpu(&mut rng, system_millis);
        nodes.push(NodeSpec {
            name,
            labels,
            ip: block.kubelet(n),
            kubelet_port: opts.kubelet_port,
            allocatable_millicores: 4000,
            allocatable_memory_bytes: 16 * 1024 * 1024 * 1024,
            cpu_nanocores: pod_cpu + system_cpu,
            memory_bytes: pod_mem + rng.range(500, 1500) * 1024 * 1024,
            pods,
        });
    }
    ClusterSpec { nodes }
}

fn rng_millis(rng: &mut SplitMix) -> u64 {
    rng.range(1, 250)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_cpu_rates_are_never_whole_millicores() {
        let spec = generate(&Block::dev(), &GenerateOptions { nodes: 20, pods_per_node: 10, ..Default::default() });
        for node in &spec.nodes {
            assert_ne!(node.cpu_nanocores % 1_000_000, 0);
            for pod in &node.pods {
                for c in &pod.containers {
                    let frac = c.cpu_nanocores % 1_000_000;
                    assert!((200_000..800_000).contains(&frac), "{} has {}", c.name, c.cpu_nanocores);
                }
            }
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let o = GenerateOptions::default();
        assert_eq!(generate(&Block::dev(), &o), generate(&Block::dev(), &o));
    }
}
