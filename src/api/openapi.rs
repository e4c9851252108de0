//! OpenAPI documents of the metrics API: `/openapi/v2` (Swagger 2.0 covering
//! both versions), `/openapi/v3` (the index kube-apiserver's aggregator reads)
//! and `/openapi/v3/apis/metrics.k8s.io/<version>` (OpenAPI 3.0). Built by
//! hand from the same resource table the handlers serve; no request handling.

use serde_json::{Map, Value, json};

use super::discovery::etag;
use super::types::{GROUP, Version};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Where `$ref`s point: Swagger 2 definitions or OpenAPI 3 components.
#[derive(Clone, Copy)]
enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn r(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({ "$ref": format!("#/definitions/{name}") }),
            Flavor::V3 => json!({ "$ref": format!("#/components/schemas/{name}") }),
        }
    }
}

fn metrics_def(v: Version, kind: &str) -> String {
    format!("io.k8s.metrics.pkg.apis.metrics.{}.{kind}", v.as_str())
}

fn gvk(v: Version, kind: &str) -> Value {
    json!({ "group": GROUP, "kind": kind, "version": v.as_str() })
}

/// Schemas of the metrics types of one version.
fn metrics_schemas(v: Version, f: Flavor, out: &mut Map<String, Value>) {
    let type_meta = |kind: &str| {
        json!({
            "apiVersion": { "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object." },
            "kind": { "type": "string", "description": format!("Kind is a string value representing the REST resource this object represents ({kind}).") },
        })
    };
    let usage = json!({
        "type": "object",
        "description": "The memory and CPU usage, keyed by resource name (cpu, memory).",
        "additionalProperties": f.r(QUANTITY),
    });
    let object = |kind: &str, last: (&str, Value), desc: &str| {
        let mut props = type_meta(kind);
        let p = props.as_object_mut().expect("json object literal");
        p.insert("metadata".into(), json!({ "description": "Standard object's metadata.", "allOf": [f.r(&format!("{META}.ObjectMeta"))], "default": {} }));
        p.insert("timestamp".into(), json!({ "description": "The following fields define time interval from which metrics were collected from the interval [Timestamp-Window, Timestamp].", "allOf": [f.r(&format!("{META}.Time"))] }));
        p.insert("window".into(), f.r(&format!("{META}.Duration")));
        p.insert(last.0.into(), last.1);
        json!({
            "description": desc,
            "type": "object",
            "required": ["timestamp", "window", last.0],
            "properties": props,
            "x-kubernetes-group-version-kind": [gvk(v, kind)],
        })
    };
    let list = |kind: &str, item: &str, desc: &str| {
        let mut props = type_meta(kind);
        let p = props.as_object_mut().expect("json object literal");
        p.insert("metadata".into(), json!({ "description": "Standard list metadata.", "allOf": [f.r(&format!("{META}.ListMeta"))], "default": {} }));
        p.insert(
            "items".into(),
            json!({ "description": format!("List of {item}."), "type": "array", "items": f.r(&metrics_def(v, item)) }),
        );
        json!({
            "description": desc,
            "type": "object",
            "required": ["items"],
            "properties": props,
            "x-kubernetes-group-version-kind": [gvk(v, kind)],
        })
    };
    out.insert(
        metrics_def(v, "NodeMetrics"),
        object("NodeMetrics", ("usage", usage.clone()), "NodeMetrics sets resource usage metrics of a node."),
    );
    out.insert(
        metrics_def(v, "NodeMetricsList"),
        list("NodeMetricsList", "NodeMetrics", "NodeMetricsList is a list of NodeMetrics."),
    );
    let containers = json!({
        "description": "Metrics for all containers are collected within the same time window.",
        "type": "array",
        "items": f.r(&metrics_def(v, "ContainerMetrics")),
        "x-kubernetes-list-type": "atomic",
    });
    out.insert(
        metrics_def(v, "PodMetrics"),
        object("PodMetrics", ("containers", containers), "PodMetrics sets resource usage metrics of a pod."),
    );
    out.insert(
        metrics_def(v, "PodMetricsList"),
        list("PodMetricsList", "PodMetrics", "PodMetricsList is a list of PodMetrics."),
    );
    out.insert(
        metrics_def(v, "ContainerMetrics"),
        json!({
            "description": "ContainerMetrics sets resource usage metrics of a container.",
            "type": "object",
            "required": ["name", "usage"],
            "properties": { "name": { "type": "string", "description": "Container name corresponding to the one from pod.spec.containers." }, "usage": usage },
        }),
    );
}

/// Schemas of the apimachinery types the metrics types refer to.
fn meta_schemas(f: Flavor, out: &mut Map<String, Value>) {
    let s = |d: &str| json!({ "type": "string", "description": d });
    out.insert(QUANTITY.into(), json!({ "type": "string", "description": "Quantity is a fixed-point representation of a number, e.g. 100m or 12Mi." }));
    out.insert(format!("{META}.Time"), json!({ "type": "string", "format": "date-time", "description": "Time is RFC 3339 in UTC with whole seconds." }));
    out.insert(
        format!("{META}.Duration"),
        json!({ "type": "string", "description": "Duration in Go time.Duration string form, e.g. 15.012s." }),
    );
    out.insert(
        format!("{META}.ObjectMeta"),
        json!({
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "type": "object",
            "properties": {
                "name": s("Name must be unique within a namespace."),
                "namespace": s("Namespace defines the space within which each name must be unique."),
                "creationTimestamp": { "description": "For metrics objects: the time of the response.", "allOf": [f.r(&format!("{META}.Time"))] },
                "labels": { "type": "object", "description": "Labels copied from the Node or Pod.", "additionalProperties": { "type": "string", "default": "" } },
                "annotations": { "type": "object", "additionalProperties": { "type": "string", "default": "" } },
                "resourceVersion": s("An opaque value that represents the internal version of this object."),
                "uid": s("UID is the unique in time and space value for this object."),
            },
        }),
    );
    out.insert(
        format!("{META}.ListMeta"),
        json!({
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {
                "continue": s("Never set by this server."),
                "remainingItemCount": { "type": "integer", "format": "int64" },
                "resourceVersion": s("Never set by this server."),
                "selfLink": s("Deprecated; never set."),
            },
        }),
    );
}

fn param(f: Flavor, name: &str, location: &str, desc: &str, required: bool) -> Value {
    match f {
        Flavor::V2 => {
            json!({ "name": name, "in": location, "description": desc, "type": "string", "uniqueItems": true, "required": required })
        }
        Flavor::V3 => {
            json!({ "name": name, "in": location, "description": desc, "schema": { "type": "string", "uniqueItems": true }, "required": required })
        }
    }
}

fn operation(v: Version, f: Flavor, id: &str, action: &str, kind: &str, schema: &str, params: Vec<Value>) -> Value {
    let ok = match f {
        Flavor::V2 => json!({ "description": "OK", "schema": f.r(&metrics_def(v, schema)) }),
        Flavor::V3 => {
            json!({ "description": "OK", "content": { "application/json": { "schema": f.r(&metrics_def(v, schema)) } } })
        }
    };
    let mut op = json!({
        "description": format!("{action} {kind}"),
        "operationId": id,
        "tags": [format!("metrics_{}", v.as_str())],
        "parameters": params,
        "responses": { "200": ok, "401": { "description": "Unauthorized" } },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(v, kind),
    });
    if let (Flavor::V2, Some(o)) = (f, op.as_object_mut()) {
        o.insert("consumes".into(), json!(["*/*"]));
        o.insert("produces".into(), json!(["application/json"]));
        o.insert("schemes".into(), json!(["https"]));
    }
    op
}

/// The paths of one version.
fn paths(v: Version, f: Flavor, out: &mut Map<String, Value>) {
    let cap = match v {
        Version::V1beta1 => "V1beta1",
        Version::V1 => "V1",
    };
    let base = format!("/apis/{GROUP}/{}", v.as_str());
    let list_params = || {
        vec![
            param(
                f,
                "labelSelector",
                "query",
                "A selector to restrict the list of returned objects by their labels.",
                false,
            ),
            param(f, "fieldSelector", "query", "A selector on metadata.name (and metadata.namespace for pods).", false),
            param(f, "limit", "query", "Accepted and ignored.", false),
            param(f, "continue", "query", "Accepted and ignored.", false),
            param(f, "resourceVersion", "query", "Accepted and ignored.", false),
            param(f, "pretty", "query", "If 'true', then the output is pretty printed.", false),
        ]
    };
    let name = || param(f, "name", "path", "name of the object", true);
    let ns = || param(f, "namespace", "path", "object name and auth scope, such as for teams and projects", true);
    let pretty = || param(f, "pretty", "query", "If 'true', then the output is pretty printed.", false);
    let get = |op: Value| json!({ "get": op });
    out.insert(
        format!("{base}/nodes"),
        get(operation(
            v,
            f,
            &format!("listMetrics{cap}NodeMetrics"),
            "list",
            "NodeMetrics",
            "NodeMetricsList",
            list_params(),
        )),
    );
    out.insert(
        format!("{base}/nodes/{{name}}"),
        get(operation(
            v,
            f,
            &format!("readMetrics{cap}NodeMetrics"),
            "get",
            "NodeMetrics",
            "NodeMetrics",
            vec![name(), pretty()],
        )),
    );
    out.insert(
        format!("{base}/pods"),
        get(operation(
            v,
            f,
            &format!("listMetrics{cap}PodMetricsForAllNamespaces"),
            "list",
            "PodMetrics",
            "PodMetricsList",
            list_params(),
        )),
    );
    let mut ns_list = list_params();
    ns_list.insert(0, ns());
    out.insert(
        format!("{base}/namespaces/{{namespace}}/pods"),
        get(operation(
            v,
            f,
            &format!("listMetrics{cap}NamespacedPodMetrics"),
            "list",
            "PodMetrics",
            "PodMetricsList",
            ns_list,
        )),
    );
    out.insert(
        format!("{base}/namespaces/{{namespace}}/pods/{{name}}"),
        get(operation(
            v,
            f,
            &format!("readMetrics{cap}NamespacedPodMetrics"),
            "get",
            "PodMetrics",
            "PodMetrics",
            vec![name(), ns(), pretty()],
        )),
    );
}

/// The build version as metrics-server reports it: cut at the first `-`.
fn info(build_version: &str) -> Value {
    let version = build_version.split('-').next().unwrap_or(build_version);
    json!({ "title": "Kubernetes metrics-server", "version": version })
}

/// `/openapi/v2`: Swagger 2.0 for both versions.
pub fn v2(build_version: &str) -> Value {
    let (mut paths_map, mut defs) = (Map::new(), Map::new());
    for v in Version::ALL {
        paths(v, Flavor::V2, &mut paths_map);
        metrics_schemas(v, Flavor::V2, &mut defs);
    }
    meta_schemas(Flavor::V2, &mut defs);
    json!({ "swagger": "2.0", "info": info(build_version), "paths": paths_map, "definitions": defs })
}

/// `/openapi/v3/apis/metrics.k8s.io/<version>`: OpenAPI 3.0 for one version.
pub fn v3(v: Version, build_version: &str) -> Value {
    let (mut paths_map, mut schemas) = (Map::new(), Map::new());
    paths(v, Flavor::V3, &mut paths_map);
    metrics_schemas(v, Flavor::V3, &mut schemas);
    meta_schemas(Flavor::V3, &mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": info(build_version),
        "paths": paths_map,
        "components": { "schemas": schemas },
    })
}

/// The hash a v3 document is published under (the ETag without quotes).
pub fn v3_hash(v: Version, build_version: &str) -> String {
    let body = serde_json::to_vec(&v3(v, build_version)).unwrap_or_default();
    etag(&body).trim_matches('"').to_string()
}

/// The server-relative URL of a group-version's document under `hash`.
pub fn v3_url(v: Version, hash: &str) -> String {
    format!("/openapi/v3/apis/{GROUP}/{}?hash={hash}", v.as_str())
}

/// `/openapi/v3`: where each group-version's document lives.
pub fn v3_index(build_version: &str) -> Value {
    let mut paths_map = Map::new();
    for v in Version::ALL {
        let url = v3_url(v, &v3_hash(v, build_version));
        paths_map.insert(format!("apis/{GROUP}/{}", v.as_str()), json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths_map })
}
