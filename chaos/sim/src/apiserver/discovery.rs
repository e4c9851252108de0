//! Discovery documents as kube-apiserver 1.32 serves them: `/version`,
//! legacy `/api`, `/api/v1`, `/apis` and per-group documents, and the
//! aggregated (apidiscovery.k8s.io v2/v2beta1) form of `/api` and `/apis`
//! when `Accept` asks for it. `metrics.k8s.io` is listed as the aggregator
//! knows it from its APIService; only `/apis/metrics.k8s.io` itself is
//! answered here, everything below it is the proxy's.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

use super::objects::KUBELET_VERSION;

/// The resources of one group version: (resource, kind, namespaced, verbs, short names).
type Resource = (&'static str, &'static str, bool, &'static [&'static str], &'static [&'static str]);

const READ: &[&str] = &["get", "list", "watch"];
const CORE_V1: &[Resource] = &[
    ("configmaps", "ConfigMap", true, READ, &["cm"]),
    ("namespaces", "Namespace", false, &["get", "list"], &["ns"]),
    ("nodes", "Node", false, READ, &["no"]),
    ("pods", "Pod", true, READ, &["po"]),
];
const METRICS: &[Resource] =
    &[("nodes", "NodeMetrics", false, &["get", "list"], &[]), ("pods", "PodMetrics", true, &["get", "list"], &[])];
const TOKEN_REVIEWS: &[Resource] = &[("tokenreviews", "TokenReview", false, &["create"], &[])];
const ACCESS_REVIEWS: &[Resource] = &[("subjectaccessreviews", "SubjectAccessReview", false, &["create"], &[])];

/// (group, versions in preference order, resources).
const GROUPS: &[(&str, &[&str], &[Resource])] = &[
    ("authentication.k8s.io", &["v1"], TOKEN_REVIEWS),
    ("authorization.k8s.io", &["v1"], ACCESS_REVIEWS),
    ("metrics.k8s.io", &["v1beta1", "v1"], METRICS),
];

fn json_response(body: Value, content_type: &'static str) -> Response {
    let mut resp = body.to_string().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// Which aggregated-discovery version `Accept` asks for, if any (client
/// order wins; a plain JSON entry before any v2 entry means legacy).
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().skip(1).any(|x| x.eq_ignore_ascii_case(p));
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        } else if params.first().is_some_and(|m| *m == "application/json" || *m == "*/*") {
            return None;
        }
    }
    None
}

fn aggregated(items: Vec<Value>, version: &'static str) -> Response {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let ct = if version == "v2" {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    };
    json_response(body, ct)
}

fn discovery_group(name: &str, versions: &[&str], resources: &[Resource]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let res: Vec<Value> = resources
                .iter()
                .map(|(resource, kind, namespaced, verbs, short)| {
                    let mut r = json!({
                        "resource": resource,
                        "responseKind": {"group": name, "version": v, "kind": kind},
                        "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": if name == "metrics.k8s.io" { String::new() } else { kind.to_lowercase() },
                        "verbs": verbs,
                    });
                    if !short.is_empty() {
                        r["shortNames"] = json!(short);
                    }
                    r
                })
                .collect();
            json!({"version": v, "resources": res, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
}

fn resource_list(group_version: &str, resources: &[Resource]) -> Value {
    let res: Vec<Value> = resources
        .iter()
        .map(|(resource, kind, namespaced, verbs, short)| {
            let mut r = json!({
                "name": resource,
                "singularName": if group_version.starts_with("metrics.k8s.io") { String::new() } else { kind.to_lowercase() },
                "namespaced": namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !short.is_empty() {
                r["shortNames"] = json!(short);
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": res})
}

fn api_group(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &&str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv).unwrap_or(Value::Null),
    })
}

/// `GET /version`.
pub async fn version() -> Response {
    json_response(
        json!({
            "major": "1", "minor": "32", "gitVersion": KUBELET_VERSION,
            "gitCommit": "9894294ef13a5b32803e3ca2c0d620a088cc84d1", "gitTreeState": "clean",
            "buildDate": "2025-05-15T08:13:17Z", "goVersion": "go1.23.8", "compiler": "gc",
            "platform": "linux/amd64",
        }),
        "application/json",
    )
}

/// `GET /api`.
pub async fn core_versions(headers: HeaderMap) -> Response {
    if let Some(v) = aggregated_version(&headers) {
        let mut core = discovery_group("", &["v1"], CORE_V1);
        core["metadata"] = json!({"creationTimestamp": null});
        return aggregated(vec![core], v);
    }
    json_response(
        json!({"kind": "APIVersions", "versions": ["v1"],
               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        "application/json",
    )
}

/// `GET /api/v1`.
pub async fn core_resources() -> Response {
    json_response(resource_list("v1", CORE_V1), "application/json")
}

/// `GET /apis`.
pub async fn groups(headers: HeaderMap) -> Response {
    if let Some(v) = aggregated_version(&headers) {
        let items = GROUPS.iter().map(|(n, vs, rs)| discovery_group(n, vs, rs)).collect();
        return aggregated(items, v);
    }
    let groups: Vec<Value> = GROUPS.iter().map(|(n, vs, _)| api_group(n, vs)).collect();
    json_response(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}), "application/json")
}

/// `GET /apis/{group}` for a group the stand-in knows.
pub fn group(name: &str) -> Option<Response> {
    let (n, vs, _) = GROUPS.iter().find(|(n, _, _)| *n == name)?;
    let mut g = api_group(n, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(json_response(g, "application/json"))
}

/// `GET /apis/{group}/{version}` for the groups the stand-in serves itself.
pub fn group_version(name: &str, version: &str) -> Option<Response> {
    let (n, vs, rs) = GROUPS.iter().find(|(n, _, _)| *n == name && *n != "metrics.k8s.io")?;
    vs.contains(&version).then(|| json_response(resource_list(&format!("{n}/{version}"), rs), "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_discovery_accept_header_selects_aggregated_v2() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            ),
        );
        assert_eq!(aggregated_version(&h), Some("v2"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, */*"));
        assert_eq!(aggregated_version(&h), None);
    }
}
