//! The model knobs of a [`KubeletFleet`]: restarting containers, changing
//! usage, adding and removing pods, and reading the truth back for tests.
//! Each knob changes one node's model under its lock; none touches sockets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{ContainerModel, pod_from_spec};
use super::node::now_nanos;
use super::{FleetError, KubeletFleet, TrueUsage};
use crate::cluster::PodSpec;

impl KubeletFleet {
    /// Restarts a container: its start time becomes now and its counter starts from 0.
    pub fn restart_container(&self, node: &str, namespace: &str, pod: &str, container: &str) -> Result<(), FleetError> {
        let now = now_nanos();
        self.with_container(node, namespace, pod, container, |c| c.restart(now))
    }

    /// Changes a container's true usage from now on; its counter stays continuous.
    pub fn set_usage(
        &self,
        node: &str,
        namespace: &str,
        pod: &str,
        container: &str,
        cpu_nanocores: u64,
        memory_bytes: u64,
    ) -> Result<(), FleetError> {
        let now = now_nanos();
        self.with_container(node, namespace, pod, container, |c| {
            c.cpu.set_rate(now, cpu_nanocores);
            c.memory_bytes = memory_bytes;
        })
    }

    /// Changes the node's own true usage from now on, continuously.
    pub fn set_node_usage(&self, node: &str, cpu_nanocores: u64, memory_bytes: u64) -> Result<(), FleetError> {
        let now = now_nanos();
        let mut inner = self.node(node)?.lock();
        inner.model.cpu.set_rate(now, cpu_nanocores);
        inner.model.memory_bytes = memory_bytes;
        Ok(())
    }

    /// Sets how far node `node`'s wall clock is off from now on (positive:
    /// ahead), as when its NTP steps or someone sets the date: the
    /// timestamps it writes move by `offset_ms`, its counters do not (they
    /// count CPU time, not wall time). 0 puts the clock right again.
    pub fn set_clock_offset(&self, node: &str, offset_ms: i64) -> Result<(), FleetError> {
        self.node(node)?.lock().clock_offset_ms = offset_ms;
        Ok(())
    }

    /// Starts a pod on node `node`; its containers start now.
    pub fn add_pod(&self, node: &str, pod: PodSpec) -> Result<(), FleetError> {
        let mut inner = self.node(node)?.lock();
        if inner.model.pod(&pod.namespace, &pod.name).is_some() {
            return Err(FleetError::DuplicatePod { node: node.to_string(), namespace: pod.namespace, pod: pod.name });
        }
        inner.model.pods.push(pod_from_spec(&pod, now_nanos(), 0));
        inner.rebuild();
        Ok(())
    }

    /// Removes a pod from node `node`.
    pub fn remove_pod(&self, node: &str, namespace: &str, pod: &str) -> Result<(), FleetError> {
        let mut inner = self.node(node)?.lock();
        let before = inner.model.pods.len();
        inner.model.pods.retain(|p| !(p.namespace == namespace && p.name == pod));
        if inner.model.pods.len() == before {
            return Err(unknown_pod(node, namespace, pod));
        }
        inner.rebuild();
        Ok(())
    }

    /// A container's true usage.
    pub fn true_usage(&self, node: &str, namespace: &str, pod: &str, container: &str) -> Result<TrueUsage, FleetError> {
        let mut usage = None;
        self.with_container(node, namespace, pod, container, |c| {
            usage = Some(TrueUsage { cpu_nanocores: c.cpu.rate_nanocores, memory_bytes: c.memory_bytes });
        })?;
        usage.ok_or_else(|| unknown_pod(node, namespace, pod))
    }

    /// A pod's true usage: the sum of its containers.
    pub fn true_pod_usage(&self, node: &str, namespace: &str, pod: &str) -> Result<TrueUsage, FleetError> {
        let inner = self.node(node)?.lock();
        let p = inner.model.pod(namespace, pod).ok_or_else(|| unknown_pod(node, namespace, pod))?;
        Ok(TrueUsage {
            cpu_nanocores: p.containers.iter().map(|c| c.cpu.rate_nanocores).sum(),
            memory_bytes: p.memory_bytes(),
        })
    }

    /// The node's own true usage.
    pub fn true_node_usage(&self, node: &str) -> Result<TrueUsage, FleetError> {
        let inner = self.node(node)?.lock();
        Ok(TrueUsage { cpu_nanocores: inner.model.cpu.rate_nanocores, memory_bytes: inner.model.memory_bytes })
    }

    /// When a container (last) started.
    pub fn container_start_time(
        &self,
        node: &str,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<SystemTime, FleetError> {
        let mut start = 0;
        self.with_container(node, namespace, pod, container, |c| start = c.start)?;
        Ok(UNIX_EPOCH + Duration::from_nanos(start))
    }

    /// The text a healthy node `node` would answer now.
    pub fn render(&self, node: &str) -> Result<String, FleetError> {
        let n = self.node(node)?;
        let t_ms = n.sample_ms(now_nanos());
        Ok(n.lock().render(t_ms))
    }

    fn with_container(
        &self,
        node: &str,
        namespace: &str,
        pod: &str,
        container: &str,
        f: impl FnOnce(&mut ContainerModel),
    ) -> Result<(), FleetError> {
        let mut inner = self.node(node)?.lock();
        let p = inner.model.pod_mut(namespace, pod).ok_or_else(|| unknown_pod(node, namespace, pod))?;
        let c = p.containers.iter_mut().find(|c| c.name == container).ok_or_else(|| FleetError::UnknownContainer {
            node: node.to_string(),
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        })?;
        f(c);
        Ok(())
    }
}

fn unknown_pod(node: &str, namespace: &str, pod: &str) -> FleetError {
    FleetError::UnknownPod { node: node.to_string(), namespace: namespace.to_string(), pod: pod.to_string() }
}
