//! Behaviour of the routes: which objects are served for which request,
//! negotiation, errors, discovery headers and OpenAPI documents.

use super::testkit::{FakeCluster, NOW, call, get, sample};
use serde_json::Value;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"))
}

fn names(body: &str) -> Vec<String> {
    json(body)["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            match m["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap_or("")),
                None => m["name"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect()
}

async fn list(uri: &str) -> Vec<String> {
    let (state, _) = sample().state();
    let a = get(state, uri).await;
    assert_eq!(a.status.as_u16(), 200, "{uri}: {}", a.body);
    names(&a.body)
}

#[tokio::test]
async fn node_list_is_inventory_nodes_with_metrics_sorted_and_filtered() {
    let base = "/apis/metrics.k8s.io/v1beta1/nodes";
    assert_eq!(list(base).await, ["node-a", "node-b", "node-c"]);
    assert_eq!(list(&format!("{base}?labelSelector=pool%3Db")).await, ["node-b", "node-c"]);
    assert_eq!(list(&format!("{base}?labelSelector=pool!%3Db")).await, ["node-a"]);
    assert_eq!(list(&format!("{base}?labelSelector=pool+in+(b)%2C!kubernetes.io%2Fhostname")).await, ["node-c"]);
    assert_eq!(list(&format!("{base}?fieldSelector=metadata.name%3Dnode-b")).await, ["node-b"]);
    assert_eq!(list(&format!("{base}?fieldSelector=metadata.name!%3Dnode-b")).await, ["node-a", "node-c"]);
    assert!(list(&format!("{base}?fieldSelector=metadata.name%3Dnode-d")).await.is_empty(), "no metrics");
    assert_eq!(list(&format!("{base}?labelSelector=pool%3Db&fieldSelector=metadata.name%3Dnode-c")).await, ["node-c"]);
    // Nodes have no namespace: it compares as empty.
    assert!(list(&format!("{base}?fieldSelector=metadata.namespace%3Dx")).await.is_empty());
    // limit/continue/resourceVersion are accepted and ignored.
    assert_eq!(list(&format!("{base}?limit=1&continue=abc&resourceVersion=0")).await.len(), 3);
}

#[tokio::test]
async fn pod_lists_are_sorted_by_namespace_then_name_and_filtered() {
    let all = "/apis/metrics.k8s.io/v1beta1/pods";
    assert_eq!(list(all).await, ["default/api-1", "default/web-1", "kube-system/coredns-1"]);
    assert_eq!(list(&format!("{all}?fieldSelector=metadata.namespace%3Dkube-system")).await, ["kube-system/coredns-1"]);
    assert!(list(&format!("{all}?fieldSelector=metadata.namespace%3Dunknown")).await.is_empty());
    assert_eq!(list(&format!("{all}?labelSelector=app%3Dweb")).await, ["default/web-1"]);
    let ns = "/apis/metrics.k8s.io/v1/namespaces/default/pods";
    assert_eq!(list(ns).await, ["default/api-1", "default/web-1"]);
    assert_eq!(
        list(&format!("{ns}?labelSelector=app+in+(web,api)&fieldSelector=metadata.name%3Dapi-1")).await,
        ["default/api-1"]
    );
    assert!(list(&format!("{ns}?fieldSelector=metadata.namespace%3Dkube-system")).await.is_empty());
}

#[tokio::test]
async fn v1_and_v1beta1_serve_the_same_objects_with_their_api_version() {
    let (state, _) = sample().state();
    let b = json(&get(state.clone(), "/apis/metrics.k8s.io/v1/nodes/node-a").await.body);
    assert_eq!(b["apiVersion"], "metrics.k8s.io/v1");
    assert_eq!(b["kind"], "NodeMetrics");
    let b = json(&get(state.clone(), "/apis/metrics.k8s.io/v1/namespaces/default/pods/web-1").await.body);
    assert_eq!(b["apiVersion"], "metrics.k8s.io/v1");
    let b = json(&get(state.clone(), "/apis/metrics.k8s.io/v1beta1/nodes").await.body);
    assert!(b["items"][0].get("kind").is_none(), "list items carry no kind");
    let a = get(state, "/apis/metrics.k8s.io/v2/nodes").await;
    assert_eq!(a.status.as_u16(), 404);
}

#[tokio::test]
async fn watch_is_rejected_at_once_and_false_values_list() {
    let (state, _) = sample().state();
    for q in ["watch=true", "watch=1", "watch=", "watch"] {
        let a = get(state.clone(), &format!("/apis/metrics.k8s.io/v1beta1/nodes?{q}")).await;
        assert_eq!(a.status.as_u16(), 405, "{q}");
        assert_eq!(json(&a.body)["reason"], "MethodNotAllowed");
    }
    for q in ["watch=false", "watch=0", "watch=FALSE"] {
        let a = get(state.clone(), &format!("/apis/metrics.k8s.io/v1beta1/pods?{q}")).await;
        assert_eq!(a.status.as_u16(), 200, "{q}");
    }
}

#[tokio::test]
async fn every_usual_client_accept_header_gets_json() {
    let (state, _) = sample().state();
    for accept in [
        "application/vnd.kubernetes.protobuf, */*",
        "application/vnd.kubernetes.protobuf,application/json",
        "application/json",
        "application/json, */*",
    ] {
        let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/pods", &[("Accept", accept)]).await;
        assert_eq!(a.status.as_u16(), 200, "{accept}");
        assert_eq!(a.headers["content-type"], "application/json");
        assert_eq!(json(&a.body)["kind"], "PodMetricsList");
    }
}

#[tokio::test]
async fn table_on_a_single_object_and_row_object_choices() {
    let (state, _) = sample().state();
    let table = ("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io");
    let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes/node-c", &[table]).await;
    let t = json(&a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(t["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(t["rows"][0]["cells"], serde_json::json!(["node-c", "2", "1536", "1m0s"]));
    let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=None", &[table]).await;
    assert!(json(&a.body)["rows"][0]["object"].is_null());
    let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=Bogus", &[table]).await;
    assert_eq!(a.status.as_u16(), 400);
    assert_eq!(
        json(&a.body)["message"],
        "Unable to convert to Table as requested: includeObject: Invalid value: \"Bogus\": must be 'Metadata', 'Object', 'None', or empty"
    );
}

#[tokio::test]
async fn pod_table_columns_come_from_the_first_pod_with_usage() {
    let (state, _) = FakeCluster::default()
        .pod("a", "empty", &[], Some(&[]))
        .pod("a", "full", &[], Some(&[("c", 1_000_000, 1024)]))
        .state();
    let table = ("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io");
    let t = json(&call(state, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods", &[table]).await.body);
    let cols: Vec<&str> =
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["Name", "cpu", "memory", "Window"]);
    assert_eq!(t["rows"][0]["cells"], serde_json::json!(["empty", "30s"]));
    assert_eq!(t["rows"][1]["cells"], serde_json::json!(["full", "1m", "1Ki", "30s"]));
}

#[tokio::test]
async fn partial_object_metadata_is_served_for_lists_and_objects() {
    let (state, _) = sample().state();
    let list = ("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1");
    let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes", &[list]).await;
    let b = json(&a.body);
    assert_eq!(b["kind"], "PartialObjectMetadataList");
    assert_eq!(b["items"][2]["metadata"]["name"], "node-c");
    let one = ("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1");
    let a = call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes/node-a", &[one]).await;
    assert_eq!(json(&a.body)["kind"], "PartialObjectMetadata");
    let a = call(state, "GET", "/apis/metrics.k8s.io/v1beta1/nodes", &[one]).await;
    assert_eq!(a.status.as_u16(), 406);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_status_bodies() {
    let (state, _) = sample().state();
    for uri in ["/", "/api/v1/nodes", "/apis/metrics.k8s.io/v1beta1/nodes/a/b", "/apis/metrics.k8s.io/v3"] {
        let a = get(state.clone(), uri).await;
        assert_eq!(a.status.as_u16(), 404, "{uri}");
        assert_eq!(json(&a.body)["reason"], "NotFound");
        assert_eq!(a.headers["content-type"], "application/json");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let a = call(state.clone(), method, "/apis/metrics.k8s.io/v1beta1/pods", &[]).await;
        assert_eq!(a.status.as_u16(), 405, "{method}");
        assert_eq!(json(&a.body)["code"], 405);
    }
    let a = call(state, "HEAD", "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await;
    assert_eq!(a.status.as_u16(), 200);
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn errors_are_pretty_for_curl_and_raw_when_nothing_is_acceptable() {
    let (state, _) = sample().state();
    let a =
        call(state.clone(), "GET", "/apis/metrics.k8s.io/v1beta1/nodes/ghost", &[("User-Agent", "curl/8.5.0")]).await;
    assert!(a.body.starts_with("{\n  \"kind\": \"Status\",\n"), "{}", a.body);
    assert!(!a.body.ends_with('\n'));
    let table_only = ("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io");
    let a = call(state, "GET", "/apis/metrics.k8s.io/v1beta1/nodes/ghost", &[table_only]).await;
    assert_eq!(a.status.as_u16(), 404, "the original error survives a failed negotiation");
    assert!(a.body.starts_with("{\n  \"kind\""));
}

#[tokio::test]
async fn served_items_record_freshness() {
    let (state, sm) = sample().state();
    get(state.clone(), "/apis/metrics.k8s.io/v1beta1/nodes").await;
    get(state.clone(), "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1").await;
    let text = sm.encode();
    let count = text
        .lines()
        .find(|l| l.starts_with("metrics_server_api_metric_freshness_seconds_count"))
        .expect("freshness histogram");
    assert!(count.ends_with(" 4"), "3 nodes + 1 pod: {count}");
    let sum = text.lines().find(|l| l.starts_with("metrics_server_api_metric_freshness_seconds_sum")).unwrap();
    // Nodes are 5 s old, pods 23 s: 3×5 + 23.
    assert!(sum.ends_with(" 38.0"), "{sum}");
    assert_eq!(NOW % 1_000_000_000, 0);
}

#[tokio::test]
async fn aggregated_discovery_has_its_content_type_and_etag() {
    let (state, _) = sample().state();
    let accept = ("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json");
    let a = call(state.clone(), "GET", "/apis", &[accept]).await;
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(a.headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(a.headers["vary"], "Accept");
    let tag = a.headers["etag"].to_str().unwrap().to_string();
    let b = call(state.clone(), "GET", "/apis", &[accept, ("If-None-Match", &tag)]).await;
    assert_eq!(b.status.as_u16(), 304);
    assert!(b.body.is_empty());
    let beta = ("Accept", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList");
    let c = call(state.clone(), "GET", "/apis", &[beta]).await;
    assert_eq!(json(&c.body)["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    // Never a 503, whatever the state of the data.
    let empty = FakeCluster::default().state().0;
    assert_eq!(call(empty, "GET", "/apis", &[accept]).await.status.as_u16(), 200);
}

#[tokio::test]
async fn openapi_documents_describe_every_path_and_type() {
    let (state, _) = sample().state();
    let v2 = json(&get(state.clone(), "/openapi/v2").await.body);
    assert_eq!(v2["swagger"], "2.0");
    assert_eq!(v2["info"]["title"], "Kubernetes metrics-server");
    assert_eq!(v2["info"]["version"], "v0.1.0");
    for v in ["v1beta1", "v1"] {
        for p in ["nodes", "nodes/{name}", "pods", "namespaces/{namespace}/pods", "namespaces/{namespace}/pods/{name}"]
        {
            assert!(v2["paths"].get(format!("/apis/metrics.k8s.io/{v}/{p}")).is_some(), "{v} {p}");
        }
        for kind in ["NodeMetrics", "NodeMetricsList", "PodMetrics", "PodMetricsList", "ContainerMetrics"] {
            assert!(v2["definitions"].get(format!("io.k8s.metrics.pkg.apis.metrics.{v}.{kind}")).is_some());
        }
    }
    assert_refs_resolve(&v2, &v2["definitions"], "#/definitions/");
    let index = json(&get(state.clone(), "/openapi/v3").await.body);
    let url = index["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"].as_str().unwrap().to_string();
    assert!(url.starts_with("/openapi/v3/apis/metrics.k8s.io/v1beta1?hash="));
    let a = get(state.clone(), &url).await;
    let v3 = json(&a.body);
    assert_eq!(v3["openapi"], "3.0.0");
    assert!(v3["paths"].get("/apis/metrics.k8s.io/v1beta1/nodes").is_some());
    assert!(v3["paths"].get("/apis/metrics.k8s.io/v1/nodes").is_none());
    assert_refs_resolve(&v3, &v3["components"]["schemas"], "#/components/schemas/");
    let hash = url.split("hash=").nth(1).unwrap();
    assert_eq!(a.headers["etag"], format!("\"{hash}\"").as_str());
    assert_eq!(a.headers["cache-control"], "public, immutable");
    let stale = get(state.clone(), "/openapi/v3/apis/metrics.k8s.io/v1beta1?hash=OLD").await;
    assert_eq!(stale.status.as_u16(), 301);
    assert_eq!(stale.headers["location"], url.as_str());
    let v2_tag = get(state.clone(), "/openapi/v2").await.headers["etag"].to_str().unwrap().to_string();
    let cached = call(state.clone(), "GET", "/openapi/v2", &[("If-None-Match", &v2_tag)]).await;
    assert_eq!(cached.status.as_u16(), 304);
    assert!(cached.body.is_empty());
    let a = get(state, "/openapi/v3/apis/metrics.k8s.io/v9").await;
    assert_eq!(a.status.as_u16(), 404);
}

fn assert_refs_resolve(doc: &Value, defs: &Value, prefix: &str) {
    match doc {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let name = r.strip_prefix(prefix).unwrap_or_else(|| panic!("foreign $ref {r}"));
                assert!(defs.get(name).is_some(), "dangling $ref {r}");
            }
            m.values().for_each(|v| assert_refs_resolve(v, defs, prefix));
        }
        Value::Array(a) => a.iter().for_each(|v| assert_refs_resolve(v, defs, prefix)),
        _ => {}
    }
}
