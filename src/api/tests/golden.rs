//! Golden tests: the exact bytes of every document and error body, compared
//! with files under `src/api/golden/`. Regenerate a file only after checking
//! the new bytes against the reference (`UPDATE_GOLDEN=1` writes them).

use super::testkit::{call, get, sample};

macro_rules! golden {
    ($name:literal) => {
        (concat!($name, ".json"), include_str!(concat!("../golden/", $name, ".json")))
    };
}

fn check((file, want): (&str, &str), got: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let path = format!("{}/src/api/golden/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    assert_eq!(got, want, "bytes differ from golden {file}");
}

async fn body(uri: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (state, _) = sample().state();
    let a = call(state, "GET", uri, headers).await;
    (a.status.as_u16(), a.body)
}

const TABLE: (&str, &str) = (
    "Accept",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
);
const AGGREGATED: (&str, &str) = (
    "Accept",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
);

#[tokio::test]
async fn node_metrics_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/nodes/node-a", &[]).await;
    assert_eq!(code, 200);
    check(golden!("node_metrics"), &b);
}

#[tokio::test]
async fn node_metrics_list_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/nodes", &[]).await;
    assert_eq!(code, 200);
    check(golden!("node_metrics_list"), &b);
}

#[tokio::test]
async fn empty_node_metrics_list_has_empty_items_array() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=pool%3Dnone", &[]).await;
    assert_eq!(code, 200);
    check(golden!("node_metrics_list_empty"), &b);
}

#[tokio::test]
async fn pod_metrics_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1", &[]).await;
    assert_eq!(code, 200);
    check(golden!("pod_metrics"), &b);
}

#[tokio::test]
async fn pod_metrics_list_bytes_all_namespaces_v1() {
    let (code, b) = body("/apis/metrics.k8s.io/v1/pods", &[]).await;
    assert_eq!(code, 200);
    check(golden!("pod_metrics_list_v1"), &b);
}

#[tokio::test]
async fn node_table_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/nodes?limit=500", &[TABLE]).await;
    assert_eq!(code, 200);
    check(golden!("table_nodes"), &b);
}

#[tokio::test]
async fn pod_table_bytes_with_full_objects() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?includeObject=Object", &[TABLE]).await;
    assert_eq!(code, 200);
    check(golden!("table_pods_object"), &b);
}

#[tokio::test]
async fn pod_table_bytes_v1beta1_metadata_rows() {
    let accept = ("Accept", "application/json;as=Table;v=v1beta1;g=meta.k8s.io");
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/pods", &[accept]).await;
    assert_eq!(code, 200);
    check(golden!("table_pods"), &b);
}

#[tokio::test]
async fn empty_table_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/namespaces/none/pods", &[TABLE]).await;
    assert_eq!(code, 200);
    check(golden!("table_empty"), &b);
}

#[tokio::test]
async fn not_found_error_bytes() {
    let cases = [
        ("/apis/metrics.k8s.io/v1beta1/nodes/ghost", golden!("status_node_unknown")),
        ("/apis/metrics.k8s.io/v1beta1/nodes/node-d", golden!("status_node_no_metrics")),
        ("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/ghost", golden!("status_pod_unknown")),
        ("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/pending-metrics", golden!("status_pod_no_metrics")),
        ("/apis/metrics.k8s.io/v1beta1/widgets", golden!("status_path_not_found")),
    ];
    for (uri, g) in cases {
        let (code, b) = body(uri, &[]).await;
        assert_eq!(code, 404, "{uri}");
        check(g, &b);
    }
}

#[tokio::test]
async fn bad_request_error_bytes() {
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dnode-a", &[]).await;
    assert_eq!(code, 400);
    check(golden!("status_field_selector"), &b);
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb+x", &[]).await;
    assert_eq!(code, 400);
    check(golden!("status_label_selector"), &b);
}

#[tokio::test]
async fn watch_error_bytes() {
    let uri = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?allowWatchBookmarks=true&labelSelector=app%3Dweb&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&watch=true";
    let (code, b) = body(uri, &[("Accept", "application/vnd.kubernetes.protobuf, */*")]).await;
    assert_eq!(code, 405);
    check(golden!("status_watch"), &b);
}

#[tokio::test]
async fn method_and_accept_error_bytes() {
    let (state, _) = sample().state();
    let a = call(state, "DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/node-a", &[]).await;
    assert_eq!(a.status.as_u16(), 405);
    check(golden!("status_method"), &a.body);
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/nodes", &[("Accept", "application/yaml")]).await;
    assert_eq!(code, 406);
    check(golden!("status_not_acceptable"), &b);
}

#[tokio::test]
async fn discovery_document_bytes() {
    let (state, _) = sample().state();
    check(golden!("apigrouplist"), &get(state.clone(), "/apis").await.body);
    check(golden!("apigroup"), &get(state.clone(), "/apis/metrics.k8s.io").await.body);
    check(golden!("apiresourcelist_v1beta1"), &get(state.clone(), "/apis/metrics.k8s.io/v1beta1").await.body);
    check(golden!("apiresourcelist_v1"), &get(state.clone(), "/apis/metrics.k8s.io/v1").await.body);
    let a = call(state, "GET", "/apis", &[AGGREGATED]).await;
    check(golden!("aggregated_v2"), &a.body);
}

#[tokio::test]
async fn pretty_bytes_for_curl_match_go_marshal_indent() {
    let ua = ("User-Agent", "curl/8.5.0");
    let (code, b) = body("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1", &[ua]).await;
    assert_eq!(code, 200);
    check(golden!("pod_metrics_pretty"), &b);
}
