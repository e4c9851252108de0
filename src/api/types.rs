//! Wire types of `metrics.k8s.io` (NodeMetrics, PodMetrics and their lists)
//! and of `meta.k8s.io` PartialObjectMetadata, with fields in the order Go's
//! encoding/json writes them. Building them from the model is here; choosing
//! what to serve is the handlers' job. The wire types borrow names and
//! labels from the model, so encoding a 300,000-pod list copies no label map.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{NodeUsage, ObjectMeta, PodUsage, UnixNanos, Usage};
use apimachinery::format::{format_cpu, format_duration, format_memory, format_time};

/// The served group name.
pub const GROUP: &str = "metrics.k8s.io";

/// A served version of `metrics.k8s.io`. Both carry identical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1beta1,
    V1,
}

impl Version {
    /// All served versions, preferred first.
    pub const ALL: [Version; 2] = [Version::V1beta1, Version::V1];

    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "v1beta1" => Some(Version::V1beta1),
            "v1" => Some(Version::V1),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1beta1 => "v1beta1",
            Version::V1 => "v1",
        }
    }

    /// `metrics.k8s.io/<version>`.
    pub fn group_version(self) -> String {
        format!("{GROUP}/{}", self.as_str())
    }
}

/// `{}`: an empty ListMeta.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ListMeta {}

/// The ObjectMeta metrics-server sets: name, namespace, creation time (the
/// time of the response) and labels.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    #[serde(rename = "creationTimestamp")]
    pub creation_timestamp: String,
    #[serde(skip_serializing_if = "no_labels")]
    pub labels: &'a BTreeMap<String, String>,
}

fn no_labels(labels: &&BTreeMap<String, String>) -> bool {
    labels.is_empty()
}

impl<'a> Metadata<'a> {
    pub fn new(meta: &'a ObjectMeta, now: UnixNanos) -> Self {
        Metadata {
            name: &meta.name,
            namespace: meta.namespace.as_deref(),
            creation_timestamp: format_time(now),
            labels: &meta.labels,
        }
    }
}

/// `usage`: map keys in Go's sorted order.
#[derive(Debug, Clone, Serialize)]
pub struct UsageJson {
    pub cpu: String,
    pub memory: String,
}

impl From<&Usage> for UsageJson {
    fn from(u: &Usage) -> Self {
        UsageJson { cpu: format_cpu(u.cpu_nanocores), memory: format_memory(u.memory_bytes) }
    }
}

/// A NodeMetrics object; `kind`/`apiVersion` are absent inside lists.
#[derive(Debug, Clone, Serialize)]
pub struct NodeMetrics<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub metadata: Metadata<'a>,
    pub timestamp: String,
    pub window: String,
    pub usage: UsageJson,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerMetrics<'a> {
    pub name: &'a str,
    pub usage: UsageJson,
}

/// A PodMetrics object; `kind`/`apiVersion` are absent inside lists.
#[derive(Debug, Clone, Serialize)]
pub struct PodMetrics<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub metadata: Metadata<'a>,
    pub timestamp: String,
    pub window: String,
    pub containers: Vec<ContainerMetrics<'a>>,
}

/// NodeMetricsList / PodMetricsList: `items` is `[]` when empty, never null.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsList<T> {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: ListMeta,
    pub items: Vec<T>,
}

/// A node with its usage, as chosen by the handlers.
#[derive(Debug, Clone)]
pub struct NodeItem {
    pub meta: ObjectMeta,
    pub usage: NodeUsage,
}

/// A pod with its usage, as chosen by the handlers.
#[derive(Debug, Clone)]
pub struct PodItem {
    pub meta: std::sync::Arc<ObjectMeta>,
    pub usage: PodUsage,
}

impl NodeItem {
    /// The object; `typed` adds kind/apiVersion (single objects, Table rows).
    pub fn to_wire(&self, version: Version, now: UnixNanos, typed: bool) -> NodeMetrics<'_> {
        NodeMetrics {
            kind: typed.then_some("NodeMetrics"),
            api_version: typed.then(|| version.group_version()),
            metadata: Metadata::new(&self.meta, now),
            timestamp: format_time(self.usage.timestamp),
            window: format_duration(self.usage.window_ns),
            usage: UsageJson::from(&self.usage.usage),
        }
    }
}

impl PodItem {
    pub fn to_wire(&self, version: Version, now: UnixNanos, typed: bool) -> PodMetrics<'_> {
        PodMetrics {
            kind: typed.then_some("PodMetrics"),
            api_version: typed.then(|| version.group_version()),
            metadata: Metadata::new(&self.meta, now),
            timestamp: format_time(self.usage.timestamp),
            window: format_duration(self.usage.window_ns),
            containers: self
                .usage
                .containers
                .iter()
                .map(|c| ContainerMetrics { name: &c.name, usage: UsageJson::from(&c.usage) })
                .collect(),
        }
    }
}

pub fn node_list(items: &[NodeItem], version: Version, now: UnixNanos) -> MetricsList<NodeMetrics<'_>> {
    MetricsList {
        kind: "NodeMetricsList",
        api_version: version.group_version(),
        metadata: ListMeta {},
        items: items.iter().map(|i| i.to_wire(version, now, false)).collect(),
    }
}

pub fn pod_list(items: &[PodItem], version: Version, now: UnixNanos) -> MetricsList<PodMetrics<'_>> {
    MetricsList {
        kind: "PodMetricsList",
        api_version: version.group_version(),
        metadata: ListMeta {},
        items: items.iter().map(|i| i.to_wire(version, now, false)).collect(),
    }
}

/// `meta.k8s.io` PartialObjectMetadata of a served object.
#[derive(Debug, Clone, Serialize)]
pub struct PartialObjectMetadata<'a> {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: Metadata<'a>,
}

impl<'a> PartialObjectMetadata<'a> {
    pub fn new(meta: &'a ObjectMeta, now: UnixNanos, meta_version: &'static str) -> Self {
        PartialObjectMetadata {
            kind: "PartialObjectMetadata",
            api_version: meta_version,
            metadata: Metadata::new(meta, now),
        }
    }
}

/// `meta.k8s.io` PartialObjectMetadataList; Go leaves `items` null when empty.
#[derive(Debug, Clone, Serialize)]
pub struct PartialObjectMetadataList<'a> {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub metadata: ListMeta,
    pub items: Option<Vec<PartialObjectMetadata<'a>>>,
}
