//! The JSON shape of the objects the stand-in serves: Node, Pod, ConfigMap,
//! their metadata-only (`PartialObjectMetadata`) and `Table` forms, and the
//! Go-compatible quantity and time strings they carry. Pure functions of a
//! spec plus a resourceVersion; storing and versioning them is `store`'s job.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cluster::{NodeSpec, PodPhase, PodSpec};
use apimachinery::format::{format_cpu, format_memory, format_time};

/// The kubelet version the simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.32.5";
/// The image every simulated container runs.
const IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// RFC 3339 UTC with whole seconds, as Go's `metav1.Time` marshals (the
/// API's own formatter, from seconds).
pub fn rfc3339(secs: i64) -> String {
    format_time(secs.saturating_mul(1_000_000_000))
}

/// CPU millicores as a canonical Go quantity: `4`, `3500m`.
fn cpu_quantity(millicores: u64) -> String {
    format_cpu(millicores.saturating_mul(1_000_000))
}

/// Age as kubectl prints it in tables (`45s`, `12m`, `3h`, `5d`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A deterministic UUID-shaped uid from a serial number.
pub fn uid(serial: u64) -> String {
    let h = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        (h & 0xfff) as u16,
        (serial & 0xfff) as u16,
        serial & 0xffff_ffff_ffff
    )
}

fn labels_json(labels: &BTreeMap<String, String>) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// A Node as the kubelet registers it, Ready, with its addresses, kubelet
/// port and allocatable resources.
pub fn node(spec: &NodeSpec, uid: &str, created: i64) -> Value {
    let resources = json!({
        "cpu": cpu_quantity(spec.allocatable_millicores),
        "memory": format_memory(spec.allocatable_memory_bytes),
        "pods": "110",
    });
    let created_at = rfc3339(created);
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": spec.name,
            "uid": uid,
            "resourceVersion": "0",
            "creationTimestamp": created_at,
            "labels": labels_json(&spec.labels),
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "lastHeartbeatTime": created_at,
                "lastTransitionTime": created_at,
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }],
            "addresses": [
                {"type": "InternalIP", "address": spec.ip.to_string()},
                {"type": "Hostname", "address": spec.name},
            ],
            // The field really is upper-case `Port` (DaemonEndpoint's JSON tag).
            "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.kubelet_port}},
            "nodeInfo": {
                "machineID": uid,
                "systemUUID": uid,
                "bootID": uid,
                "kernelVersion": "6.1.0-simulated",
                "osImage": "Simulated Linux",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// A Pod scheduled on `node_name` in the given phase.
pub fn pod(node_name: &str, spec: &PodSpec, uid: &str, created: i64) -> Value {
    let created_at = rfc3339(created);
    let running = spec.phase == PodPhase::Running;
    let containers: Vec<Value> =
        spec.containers.iter().map(|c| json!({"name": c.name, "image": IMAGE, "resources": {}})).collect();
    let statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let state = match spec.phase {
                PodPhase::Running => json!({"running": {"startedAt": created_at}}),
                PodPhase::Pending => json!({"waiting": {"reason": "ContainerCreating"}}),
                PodPhase::Succeeded => json!({"terminated": {
                    "exitCode": 0, "reason": "Completed",
                    "startedAt": created_at, "finishedAt": created_at}}),
            };
            json!({
                "name": c.name, "ready": running, "started": running, "restartCount": 0,
                "image": IMAGE, "imageID": "", "state": state,
            })
        })
        .collect();
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "uid": uid,
            "resourceVersion": "0",
            "creationTimestamp": created_at,
            "labels": labels_json(&spec.labels),
        },
        "spec": {"nodeName": node_name, "containers": containers},
        "status": {
            "phase": spec.phase.as_str(),
            "conditions": [{"type": "Ready", "status": if running { "True" } else { "False" }}],
            "startTime": created_at,
            "containerStatuses": statuses,
        },
    })
}

/// Sets a pod object's phase, keeping its container states consistent.
pub fn set_pod_phase(pod: &mut Value, phase: PodPhase) {
    let running = phase == PodPhase::Running;
    if let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("phase".into(), Value::String(phase.as_str().into()));
        status
            .insert("conditions".into(), json!([{"type": "Ready", "status": if running { "True" } else { "False" }}]));
        if let Some(Value::Array(cs)) = status.get_mut("containerStatuses") {
            for c in cs {
                c["ready"] = Value::Bool(running);
                c["started"] = Value::Bool(running);
            }
        }
    }
}

/// A ConfigMap with string data.
pub fn configmap(namespace: &str, name: &str, data: &BTreeMap<String, String>, uid: &str, created: i64) -> Value {
    json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "0",
            "creationTimestamp": rfc3339(created),
        },
        "data": labels_json(data),
    })
}

/// A Namespace (derived, never stored or watched).
pub fn namespace(name: &str, uid: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid, "resourceVersion": "1", "creationTimestamp": rfc3339(0)},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// The metadata-only form of an object (`PartialObjectMetadata`).
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `meta.k8s.io/v1` Table of Nodes or Pods as kube-apiserver prints them
/// for `kubectl get`; each row embeds the object's metadata.
pub fn table(kind: &str, objects: &[&Value], resource_version: u64, now: i64) -> Value {
    let col = |name: &str, ty: &str, format: &str| json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0});
    let age = |o: &Value| {
        let created = o.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
        human_age(now - parse_rfc3339(created).unwrap_or(now))
    };
    let (columns, rows): (Vec<Value>, Vec<Value>) = if kind == "Node" {
        let rows = objects
            .iter()
            .map(|o| {
                let name = o.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
                json!({"cells": [name, "Ready", "<none>", age(o), KUBELET_VERSION],
                       "object": partial_metadata(o)})
            })
            .collect();
        let cols = vec![
            col("Name", "string", "name"),
            col("Status", "string", ""),
            col("Roles", "string", ""),
            col("Age", "string", ""),
            col("Version", "string", ""),
        ];
        (cols, rows)
    } else {
        let rows = objects
            .iter()
            .map(|o| {
                let name = o.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
                let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                let total = statuses.map_or(0, Vec::len);
                let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"].as_bool().unwrap_or(false)).count());
                let phase = o.pointer("/status/phase").cloned().unwrap_or(Value::Null);
                json!({"cells": [name, format!("{ready}/{total}"), phase, 0, age(o)],
                       "object": partial_metadata(o)})
            })
            .collect();
        let cols = vec![
            col("Name", "string", "name"),
            col("Ready", "string", ""),
            col("Status", "string", ""),
            col("Restarts", "string", ""),
            col("Age", "string", ""),
        ];
        (cols, rows)
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Parses what [`rfc3339`] writes, in seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    apimachinery::format::parse_time(s).map(|ns| ns / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_match_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        for t in [0, 951_782_400, 1_709_251_199, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
    }

    #[test]
    fn quantities_are_canonical_go_strings() {
        assert_eq!(cpu_quantity(4000), "4");
        assert_eq!(cpu_quantity(3500), "3500m");
        assert_eq!(format_memory(16 << 30), "16Gi");
        assert_eq!(format_memory(1536 * 1024), "1536Ki");
        // Below 1024 bytes Go's canonical BinarySI form is decimal.
        assert_eq!(format_memory(1000), "1k");
    }
}
