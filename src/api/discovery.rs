//! Discovery documents of `metrics.k8s.io`: `/apis` (APIGroupList, or the
//! aggregated `APIGroupDiscoveryList` v2/v2beta1 with ETag), `/apis/metrics.k8s.io`
//! (APIGroup) and `/apis/metrics.k8s.io/<version>` (APIResourceList). Static
//! data only; `/apis` never answers 503, or kube-apiserver marks us Stale.
//!
//! Preferred version: v1beta1. kubectl 1.32 and the 1.32 HPA ask for v1beta1
//! by name and only check that it is listed, while anything that follows the
//! preferred version (`kubectl get nodes.metrics.k8s.io`, RESTMappers of older
//! clients) may only know the v1beta1 types. v1 is listed second for newer clients.

use serde::Serialize;

use super::types::{GROUP, ListMeta, Version};

#[derive(Debug, Clone, Serialize)]
pub struct GroupVersionForDiscovery {
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    pub version: &'static str,
}

impl GroupVersionForDiscovery {
    fn of(v: Version) -> Self {
        GroupVersionForDiscovery { group_version: v.group_version(), version: v.as_str() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub name: &'static str,
    pub versions: Vec<GroupVersionForDiscovery>,
    #[serde(rename = "preferredVersion")]
    pub preferred_version: GroupVersionForDiscovery,
}

/// The APIGroup; `typed` for the standalone document, not inside a list.
pub fn api_group(typed: bool) -> ApiGroup {
    ApiGroup {
        kind: typed.then_some("APIGroup"),
        api_version: typed.then_some("v1"),
        name: GROUP,
        versions: Version::ALL.iter().map(|v| GroupVersionForDiscovery::of(*v)).collect(),
        preferred_version: GroupVersionForDiscovery::of(Version::ALL[0]),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroupList {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub groups: Vec<ApiGroup>,
}

pub fn api_group_list() -> ApiGroupList {
    ApiGroupList { kind: "APIGroupList", api_version: "v1", groups: vec![api_group(false)] }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResource {
    pub name: &'static str,
    #[serde(rename = "singularName")]
    pub singular_name: &'static str,
    pub namespaced: bool,
    pub kind: &'static str,
    pub verbs: [&'static str; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResourceList {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    #[serde(rename = "groupVersion")]
    pub group_version: String,
    pub resources: Vec<ApiResource>,
}

/// The two served resources: (name, namespaced, kind).
const RESOURCES: [(&str, bool, &str); 2] = [("nodes", false, "NodeMetrics"), ("pods", true, "PodMetrics")];
const VERBS: [&str; 2] = ["get", "list"];

pub fn api_resource_list(v: Version) -> ApiResourceList {
    ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: v.group_version(),
        resources: RESOURCES
            .iter()
            .map(|(name, namespaced, kind)| ApiResource {
                name,
                singular_name: "",
                namespaced: *namespaced,
                kind,
                verbs: VERBS,
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupVersionKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiResourceDiscovery {
    pub resource: &'static str,
    #[serde(rename = "responseKind")]
    pub response_kind: GroupVersionKind,
    pub scope: &'static str,
    #[serde(rename = "singularResource")]
    pub singular_resource: &'static str,
    pub verbs: [&'static str; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiVersionDiscovery {
    pub version: &'static str,
    pub resources: Vec<ApiResourceDiscovery>,
    pub freshness: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct NameOnlyMeta {
    pub name: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroupDiscovery {
    pub metadata: NameOnlyMeta,
    pub versions: Vec<ApiVersionDiscovery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiGroupDiscoveryList {
    pub kind: &'static str,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: ListMeta,
    pub items: Vec<ApiGroupDiscovery>,
}

/// The aggregated discovery document in `apidiscovery.k8s.io/<dv>` (v2 or v2beta1).
/// `creationTimestamp` is omitted, as apimachinery ≥ 1.34 (metrics-server 0.9) writes it.
pub fn aggregated(dv: &str) -> ApiGroupDiscoveryList {
    let versions = Version::ALL
        .iter()
        .map(|v| ApiVersionDiscovery {
            version: v.as_str(),
            resources: RESOURCES
                .iter()
                .map(|(name, namespaced, kind)| ApiResourceDiscovery {
                    resource: name,
                    response_kind: GroupVersionKind { group: GROUP, version: v.as_str(), kind },
                    scope: if *namespaced { "Namespaced" } else { "Cluster" },
                    singular_resource: "",
                    verbs: VERBS,
                })
                .collect(),
            freshness: "Current",
        })
        .collect();
    ApiGroupDiscoveryList {
        kind: "APIGroupDiscoveryList",
        api_version: format!("apidiscovery.k8s.io/{dv}"),
        metadata: ListMeta {},
        items: vec![ApiGroupDiscovery { metadata: NameOnlyMeta { name: GROUP }, versions }],
    }
}

/// The `Content-Type` of an aggregated discovery answer.
pub fn aggregated_content_type(dv: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={dv};as=APIGroupDiscoveryList")
}

/// A strong ETag over a document's bytes (64-bit FNV-1a, quoted); clients only compare it.
pub fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016X}\"")
}
