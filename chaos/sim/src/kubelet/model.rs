//! The true state of one simulated node: cumulative CPU counters that rise at
//! exactly the configured rates, working sets, container start times, and the
//! events that change them (restarts, counter resets, new rates, pods coming
//! and going). Pure data and arithmetic on explicit times; no clock, no I/O,
//! no text (that is `render`'s job).

use crate::cluster::{NodeSpec, PodPhase, PodSpec};

/// Nanoseconds since the Unix epoch.
pub(crate) type Nanos = u64;

pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A cumulative CPU counter: `base + rate × (t − anchor)` core-nanoseconds.
/// Changing the rate re-anchors at the current value, so the counter stays
/// continuous and two samples always give the rate in force between them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counter {
    pub rate_nanocores: u64,
    pub anchor: Nanos,
    pub base_core_nanos: u128,
}

impl Counter {
    pub fn new(rate_nanocores: u64, anchor: Nanos, base_core_nanos: u128) -> Counter {
        Counter { rate_nanocores, anchor, base_core_nanos }
    }

    /// Core-nanoseconds used up to `t` (times before the anchor give the base).
    pub fn at(&self, t: Nanos) -> u128 {
        let elapsed = u128::from(t.saturating_sub(self.anchor));
        self.base_core_nanos + u128::from(self.rate_nanocores) * elapsed / u128::from(NANOS_PER_SEC)
    }

    /// From `t` on, the counter rises at `rate_nanocores`.
    pub fn set_rate(&mut self, t: Nanos, rate_nanocores: u64) {
        self.base_core_nanos = self.at(t);
        self.anchor = t;
        self.rate_nanocores = rate_nanocores;
    }

    /// The counter starts again from 0 at `t` (a restart).
    pub fn reset(&mut self, t: Nanos) {
        self.base_core_nanos = 0;
        self.anchor = t;
    }
}

/// One container's truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContainerModel {
    pub name: String,
    pub cpu: Counter,
    pub memory_bytes: u64,
    pub start: Nanos,
}

/// One pod's truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodModel {
    pub namespace: String,
    pub name: String,
    pub phase: PodPhase,
    pub containers: Vec<ContainerModel>,
}

impl PodModel {
    /// Pod CPU as the kubelet reports it: here the sum of its containers.
    pub fn cpu_at(&self, t: Nanos) -> u128 {
        self.containers.iter().map(|c| c.cpu.at(t)).sum()
    }

    pub fn memory_bytes(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_bytes).sum()
    }

    /// Only running pods have containers the kubelet reports.
    pub fn is_reported(&self) -> bool {
        self.phase == PodPhase::Running && !self.containers.is_empty()
    }
}

/// One node's truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeModel {
    pub name: String,
    pub cpu: Counter,
    pub memory_bytes: u64,
    pub pods: Vec<PodModel>,
}

/// A container started `age` before `now`, whose counter has a small base of
/// its own (so counters of equal rates differ) and has risen at its rate since.
fn container_from_spec(spec: &crate::cluster::ContainerSpec, now: Nanos, age: Nanos, salt: u64) -> ContainerModel {
    // Spread start times over a minute so containers do not look cloned.
    let start = now.saturating_sub(age).saturating_sub((salt % 60_000) * 1_000_000);
    let base = u128::from((salt % 997) * 1_000_000);
    ContainerModel {
        name: spec.name.clone(),
        cpu: Counter::new(spec.cpu_nanocores, start, base),
        memory_bytes: spec.memory_bytes,
        start,
    }
}

/// A pod whose containers started about `age` before `now`.
pub(crate) fn pod_from_spec(spec: &PodSpec, now: Nanos, age: Nanos) -> PodModel {
    let salt = name_hash(&spec.namespace, &spec.name);
    PodModel {
        namespace: spec.namespace.clone(),
        name: spec.name.clone(),
        phase: spec.phase,
        containers: spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| container_from_spec(c, now, age, salt.wrapping_add(i as u64 * 7919)))
            .collect(),
    }
}

impl NodeModel {
    /// A node booted a minute before its oldest containers (`age` before `now`).
    pub fn from_spec(spec: &NodeSpec, now: Nanos, age: Nanos) -> NodeModel {
        let boot = now.saturating_sub(age).saturating_sub(120 * NANOS_PER_SEC);
        NodeModel {
            name: spec.name.clone(),
            cpu: Counter::new(spec.cpu_nanocores, boot, 0),
            memory_bytes: spec.memory_bytes,
            pods: spec.pods.iter().map(|p| pod_from_spec(p, now, age)).collect(),
        }
    }

    pub fn pod_mut(&mut self, namespace: &str, name: &str) -> Option<&mut PodModel> {
        self.pods.iter_mut().find(|p| p.namespace == namespace && p.name == name)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodModel> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    /// A kubelet or node restart at `t`: every counter starts again near 0
    /// and every container's start time becomes `t`.
    pub fn counter_reset(&mut self, t: Nanos) {
        self.cpu.reset(t);
        for c in self.pods.iter_mut().flat_map(|p| p.containers.iter_mut()) {
            c.cpu.reset(t);
            c.start = t;
        }
    }
}

impl ContainerModel {
    /// The container restarts at `t`: a new start time, a counter from 0.
    pub fn restart(&mut self, t: Nanos) {
        self.cpu.reset(t);
        self.start = t;
    }
}

/// FNV-1a over a pod's key: a stable salt for its containers' start offsets.
fn name_hash(namespace: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([b'/']).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_difference_over_a_second_is_the_rate() {
        let c = Counter::new(123_456_789, 1_000 * NANOS_PER_SEC, 42);
        let t = 5_000 * NANOS_PER_SEC;
        assert_eq!(c.at(t + NANOS_PER_SEC) - c.at(t), 123_456_789);
    }

    #[test]
    fn changing_the_rate_keeps_the_counter_continuous() {
        let mut c = Counter::new(500_000_000, 0, 0);
        let t = 10 * NANOS_PER_SEC;
        let before = c.at(t);
        c.set_rate(t, 2_000_000_000);
        assert_eq!(c.at(t), before);
        assert_eq!(c.at(t + NANOS_PER_SEC) - c.at(t), 2_000_000_000);
    }

    #[test]
    fn restart_moves_start_time_and_restarts_counter_from_zero() {
        let mut c =
            ContainerModel { name: "app".into(), cpu: Counter::new(1_000_000_000, 0, 7), memory_bytes: 1, start: 0 };
        let t = 3_600 * NANOS_PER_SEC;
        c.restart(t);
        assert_eq!(c.start, t);
        assert_eq!(c.cpu.at(t), 0);
        assert_eq!(c.cpu.at(t + 2 * NANOS_PER_SEC), 2_000_000_000);
    }

    #[test]
    fn times_before_the_anchor_do_not_underflow() {
        let c = Counter::new(10, 100, 5);
        assert_eq!(c.at(0), 5);
    }
}
