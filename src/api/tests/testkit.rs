//! In-memory Inventory and MetricsReader plus a request helper, for the API
//! tests (no sockets: requests go through `tower::ServiceExt::oneshot`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::api::{ApiState, router};
use crate::model::{ContainerUsage, Inventory, MetricsReader, NodeUsage, ObjectMeta, PodUsage, UnixNanos, Usage};
use crate::selfmetrics::SelfMetrics;

/// 2025-01-02T03:04:05Z.
pub const NOW: UnixNanos = 1_735_787_045_000_000_000;

#[derive(Default)]
pub struct FakeCluster {
    pub nodes: Vec<ObjectMeta>,
    pub pods: Vec<ObjectMeta>,
    pub node_usage: BTreeMap<String, NodeUsage>,
    pub pod_usage: BTreeMap<(String, String), PodUsage>,
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl FakeCluster {
    pub fn node(mut self, name: &str, l: &[(&str, &str)], usage: Option<(u64, u64, i64)>) -> Self {
        self.nodes.push(ObjectMeta { name: name.into(), namespace: None, labels: labels(l) });
        if let Some((cpu, mem, window_ms)) = usage {
            self.node_usage.insert(
                name.into(),
                NodeUsage {
                    timestamp: NOW - 5_000_000_000,
                    window_ns: window_ms * 1_000_000,
                    usage: Usage { cpu_nanocores: cpu, memory_bytes: mem },
                },
            );
        }
        self
    }

    pub fn pod(mut self, ns: &str, name: &str, l: &[(&str, &str)], containers: Option<&[(&str, u64, u64)]>) -> Self {
        self.pods.push(ObjectMeta { name: name.into(), namespace: Some(ns.into()), labels: labels(l) });
        if let Some(cs) = containers {
            self.pod_usage.insert(
                (ns.into(), name.into()),
                PodUsage {
                    timestamp: NOW - 23_000_000_000,
                    window_ns: 30_000_000_000,
                    containers: cs
                        .iter()
                        .map(|(n, cpu, mem)| ContainerUsage {
                            name: n.to_string(),
                            usage: Usage { cpu_nanocores: *cpu, memory_bytes: *mem },
                        })
                        .collect(),
                },
            );
        }
        self
    }

    pub fn state(self) -> (ApiState, Arc<SelfMetrics>) {
        let me = Arc::new(self);
        let sm = Arc::new(SelfMetrics::new(15.0));
        let state = ApiState {
            inventory: me.clone(),
            metrics: Arc::new(crate::model::Local(me)),
            self_metrics: sm.clone(),
            clock: Arc::new(|| NOW),
            build_version: "v0.1.0-dev".into(),
        };
        (state, sm)
    }
}

impl Inventory for FakeCluster {
    fn nodes(&self) -> Vec<ObjectMeta> {
        // Deliberately unsorted, so the API's own ordering is exercised.
        self.nodes.iter().rev().cloned().collect()
    }
    fn node(&self, name: &str) -> Option<ObjectMeta> {
        self.nodes.iter().find(|n| n.name == name).cloned()
    }
    fn pods(&self, namespace: Option<&str>, labels: &apimachinery::selector::LabelSelector) -> Vec<Arc<ObjectMeta>> {
        self.pods
            .iter()
            .rev()
            .filter(|p| namespace.is_none() || p.namespace.as_deref() == namespace)
            .filter(|p| labels.matches(&p.labels))
            .map(|p| Arc::new(p.clone()))
            .collect()
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        self.pods.iter().find(|p| p.name == name && p.namespace.as_deref() == Some(namespace)).cloned().map(Arc::new)
    }
    fn synced(&self) -> bool {
        true
    }
}

impl MetricsReader for FakeCluster {
    fn node(&self, name: &str, _now: UnixNanos) -> Option<NodeUsage> {
        self.node_usage.get(name).cloned()
    }
    fn pod(&self, namespace: &str, name: &str, _now: UnixNanos) -> Option<PodUsage> {
        self.pod_usage.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

/// The cluster most tests use: three nodes with metrics, one without, pods in two namespaces.
pub fn sample() -> FakeCluster {
    FakeCluster::default()
        .node(
            "node-b",
            &[("kubernetes.io/hostname", "node-b"), ("pool", "b")],
            Some((1_500_000_000, 2_147_483_648, 15_012)),
        )
        .node(
            "node-a",
            &[("kubernetes.io/hostname", "node-a"), ("kubernetes.io/os", "linux")],
            Some((183_412_345, 1_616_224_256, 15_012)),
        )
        .node("node-c", &[("pool", "b")], Some((2_000_000_000, 1536, 60_000)))
        .node("node-d", &[], None)
        .pod("kube-system", "coredns-1", &[("k8s-app", "kube-dns")], Some(&[("coredns", 7_338_891, 14_868_480)]))
        .pod(
            "default",
            "web-1",
            &[("app", "web")],
            Some(&[("nginx", 5_000_000, 5 << 20), ("sidecar", 5_000_000, 10 << 20)]),
        )
        .pod("default", "api-1", &[("app", "api")], Some(&[("api", 0, 4_730_880)]))
        .pod("default", "pending-metrics", &[("app", "web")], None)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends one request through the router.
pub async fn call(state: ApiState, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::empty()).expect("test request");
    let resp = router(state).oneshot(req).await.expect("router is infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer { status, headers, body: String::from_utf8(bytes.to_vec()).expect("utf-8 body") }
}

pub async fn get(state: ApiState, uri: &str) -> Answer {
    call(state, "GET", uri, &[]).await
}

/// `n` pods `ns/p-0000`… with one container each, sampled a second before [`NOW`].
pub fn pod_items(n: usize) -> Vec<crate::api::types::PodItem> {
    (0..n)
        .map(|i| crate::api::types::PodItem {
            meta: std::sync::Arc::new(ObjectMeta {
                name: format!("p-{i:04}"),
                namespace: Some("ns".into()),
                labels: Default::default(),
            }),
            usage: PodUsage {
                timestamp: NOW - 1_000_000_000,
                window_ns: 15_000_000_000,
                containers: vec![ContainerUsage {
                    name: "c".into(),
                    usage: Usage { cpu_nanocores: i as u64, memory_bytes: 1 << 20 },
                }],
            },
        })
        .collect()
}
