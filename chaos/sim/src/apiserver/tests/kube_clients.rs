//! kube-rs against the stand-in: typed and metadata reflectors, streaming
//! lists, selectors, pagination, watch resume and expiry, authentication.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::{Harness, get_raw};
use crate::apiserver::KubeconfigUser;
use crate::cluster::{ContainerSpec, NodeSpec, PodPhase, PodSpec};
use crate::wait::expect;

const WAIT: Duration = Duration::from_secs(20);

fn extra_node(h: &Harness, name: &str) -> NodeSpec {
    let mut n = h.spec.nodes[0].clone();
    n.name = name.to_string();
    n.ip = h.block.kubelet(200);
    n.pods.clear();
    n
}

fn extra_pod(ns: &str, name: &str) -> PodSpec {
    PodSpec {
        namespace: ns.to_string(),
        name: name.to_string(),
        labels: BTreeMap::from([("app".to_string(), "late".to_string())]),
        phase: PodPhase::Running,
        containers: vec![ContainerSpec { name: "c".into(), cpu_nanocores: 1_500_000, memory_bytes: 1 << 20 }],
    }
}

#[tokio::test]
async fn node_reflector_sees_initial_nodes_then_adds_removes_and_label_changes() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let (reader, writer) = reflector::store::<Node>();
    let rf = reflector(writer, watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff());
    let task = tokio::spawn(rf.applied_objects().for_each(|_| futures::future::ready(())));
    tokio::time::timeout(WAIT, reader.wait_until_ready()).await.expect("ready in time").expect("writer alive");
    let names = |r: &reflector::Store<Node>| {
        let mut v: Vec<String> = r.state().iter().map(|n| n.metadata.name.clone().unwrap_or_default()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&reader), ["node-0", "node-1", "node-2"]);

    h.server.add_node(extra_node(&h, "node-late"));
    expect("node-late in the store", WAIT, async || names(&reader).contains(&"node-late".to_string())).await;
    h.server.remove_node("node-1").expect("node-1 exists");
    expect("node-1 gone from the store", WAIT, async || !names(&reader).contains(&"node-1".to_string())).await;
    h.server
        .set_node_labels("node-0", BTreeMap::from([("role".to_string(), "edge".to_string())]))
        .expect("node-0 exists");
    expect("node-0 relabelled", WAIT, async || {
        reader.state().iter().any(|n| {
            n.metadata.name.as_deref() == Some("node-0")
                && n.metadata.labels.as_ref().and_then(|l| l.get("role")).map(String::as_str) == Some("edge")
        })
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn pod_metadata_watcher_sees_initial_pods_then_adds_and_removes() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let (reader, writer) = reflector::store();
    let rf = reflector(
        writer,
        watcher(Api::<PartialObjectMeta<Pod>>::all(client), watcher::Config::default()).default_backoff(),
    );
    let task = tokio::spawn(rf.applied_objects().for_each(|_| futures::future::ready(())));
    tokio::time::timeout(WAIT, reader.wait_until_ready()).await.expect("ready in time").expect("writer alive");
    let total: usize = h.spec.nodes.iter().map(|n| n.pods.len()).sum();
    assert_eq!(reader.state().len(), total);
    let first = &h.spec.nodes[0].pods[0];
    assert!(reader.state().iter().any(|p| {
        p.metadata.name.as_deref() == Some(first.name.as_str())
            && p.metadata.namespace.as_deref() == Some(first.namespace.as_str())
            && p.metadata.labels.as_ref().is_some_and(|l| l.get("app") == first.labels.get("app"))
    }));

    h.server.add_pod("node-0", extra_pod("team-b", "late-pod"));
    expect("late pod in the store", WAIT, async || reader.state().len() == total + 1).await;
    h.server.remove_pod(&first.namespace, &first.name).expect("pod exists");
    expect("first pod gone", WAIT, async || {
        !reader.state().iter().any(|p| p.metadata.name.as_deref() == Some(first.name.as_str()))
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let (reader, writer) = reflector::store::<Node>();
    let config = watcher::Config::default().streaming_lists();
    let rf = reflector(writer, watcher(Api::<Node>::all(client), config).default_backoff());
    let task = tokio::spawn(rf.applied_objects().for_each(|_| futures::future::ready(())));
    tokio::time::timeout(WAIT, reader.wait_until_ready()).await.expect("ready in time").expect("writer alive");
    assert_eq!(reader.state().len(), 3);
    h.server.add_node(extra_node(&h, "node-streamed"));
    expect("streamed node", WAIT, async || reader.state().len() == 4).await;
    task.abort();
}

#[tokio::test]
async fn node_objects_carry_addresses_kubelet_port_and_allocatable() {
    let h = Harness::start().await;
    let nodes: Api<Node> = Api::all(h.admin().await);
    let spec = &h.spec.nodes[1];
    let node = nodes.get(&spec.name).await.expect("node-1");
    let status = node.status.expect("status");
    let addrs: Vec<(String, String)> =
        status.addresses.unwrap_or_default().into_iter().map(|a| (a.type_, a.address)).collect();
    assert!(addrs.contains(&("InternalIP".into(), spec.ip.to_string())));
    assert!(addrs.contains(&("Hostname".into(), spec.name.clone())));
    let port = status.daemon_endpoints.and_then(|d| d.kubelet_endpoint).map(|e| e.port);
    assert_eq!(port, Some(i32::from(spec.kubelet_port)));
    let alloc = status.allocatable.expect("allocatable");
    assert_eq!(alloc["cpu"].0, "4");
    assert_eq!(alloc["memory"].0, "16Gi");
    let ready = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.status, "True");
    assert!(node.metadata.creation_timestamp.is_some());
    let missing = nodes.get("no-such-node").await.expect_err("404");
    assert!(matches!(missing, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn label_and_field_selectors_filter_pod_lists() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let all: Api<Pod> = Api::all(client.clone());
    let want = |pred: &dyn Fn(&NodeSpec, &PodSpec) -> bool| {
        let mut v: Vec<String> =
            h.spec.nodes.iter().flat_map(|n| n.pods.iter().filter(|p| pred(n, p)).map(|p| p.name.clone())).collect();
        v.sort();
        v
    };
    let got = |list: kube::core::ObjectList<Pod>| {
        let mut v: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
        v.sort();
        v
    };
    let web = all.list(&ListParams::default().labels("app=web")).await.expect("list");
    assert_eq!(got(web), want(&|_, p| p.labels["app"] == "web"));
    let set = all.list(&ListParams::default().labels("app in (web,db),tier!=backend")).await.expect("list");
    assert_eq!(
        got(set),
        want(&|_, p| ["web", "db"].contains(&p.labels["app"].as_str()) && p.labels["tier"] != "backend")
    );
    let on_node = all.list(&ListParams::default().fields("spec.nodeName=node-2")).await.expect("list");
    assert_eq!(got(on_node), want(&|n, _| n.name == "node-2"));
    h.server
        .set_pod_phase(&h.spec.nodes[0].pods[0].namespace, &h.spec.nodes[0].pods[0].name, PodPhase::Pending)
        .expect("pod");
    let running = all.list(&ListParams::default().fields("status.phase=Running")).await.expect("list");
    assert_eq!(got(running).len(), want(&|_, _| true).len() - 1);
    let ns: Api<Pod> = Api::namespaced(client, "team-a");
    let in_ns = ns.list(&ListParams::default().labels("!nothere")).await.expect("list");
    assert_eq!(got(in_ns), want(&|_, p| p.namespace == "team-a"));
    let bad = all.list(&ListParams::default().fields("spec.bogus=x")).await.expect_err("400");
    assert!(matches!(bad, kube::Error::Api(s) if s.code == 400));
}

#[tokio::test]
async fn paginated_list_returns_every_pod_exactly_once() {
    let h = Harness::start().await;
    let pods: Api<Pod> = Api::all(h.admin().await);
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(4);
    loop {
        let page = pods.list(&params).await.expect("page");
        assert!(page.items.len() <= 4);
        names.extend(page.items.into_iter().filter_map(|p| p.metadata.name));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let total: usize = h.spec.nodes.iter().map(|n| n.pods.len()).sum();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((names.len(), unique.len()), (total, total));
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version_and_expired_ones_get_410() {
    let h = Harness::start().await;
    let pods: Api<Pod> = Api::all(h.admin().await);
    let list = pods.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    h.server.add_pod("node-0", extra_pod("default", "after-list"));
    h.server.remove_pod("default", "after-list").expect("pod");
    let events: Vec<_> =
        pods.watch(&WatchParams::default().timeout(1), &rv).await.expect("watch").try_collect().await.expect("events");
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| !matches!(e, WatchEvent::Bookmark(_)))
        .map(|e| match e {
            WatchEvent::Added(p) => {
                format!("ADDED {}", p.metadata.name.clone().unwrap_or_default())
            }
            WatchEvent::Deleted(p) => {
                format!("DELETED {}", p.metadata.name.clone().unwrap_or_default())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["ADDED after-list", "DELETED after-list"]);

    h.server.compact_event_log();
    let mut stream = pods.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch opens").boxed();
    match stream.try_next().await.expect("an event") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert!(status.message.contains("too old resource version"), "{}", status.message);
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_with_bookmarks_and_a_selector_turns_relabels_into_add_and_delete() {
    let h = Harness::start().await;
    let nodes: Api<Node> = Api::all(h.admin().await);
    let rv = h.server.resource_version().to_string();
    let wp = WatchParams::default().labels("role=edge").timeout(30);
    let mut stream = nodes.watch(&wp, &rv).await.expect("watch").boxed();
    let edge = BTreeMap::from([("role".to_string(), "edge".to_string())]);
    h.server.set_node_labels("node-2", edge).expect("node");
    h.server.set_node_labels("node-2", BTreeMap::new()).expect("node");
    let mut seen = Vec::new();
    let mut bookmarks = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 2 || bookmarks == 0 {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await.expect("events in time");
        match next.expect("stream ok").expect("stream open") {
            WatchEvent::Added(n) => seen.push(format!("ADDED {}", n.metadata.name.unwrap_or_default())),
            WatchEvent::Modified(n) => seen.push(format!("MODIFIED {}", n.metadata.name.unwrap_or_default())),
            WatchEvent::Deleted(n) => seen.push(format!("DELETED {}", n.metadata.name.unwrap_or_default())),
            WatchEvent::Bookmark(b) => {
                assert!(b.metadata.resource_version.parse::<u64>().is_ok());
                bookmarks += 1;
            }
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED node-2", "DELETED node-2"]);
}

#[tokio::test]
async fn auth_configmap_matches_kube_apiserver_and_rotation_is_a_watch_event() {
    let h = Harness::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(h.admin().await, "kube-system");
    let cm = cms.get("extension-apiserver-authentication").await.expect("configmap");
    let data = cm.data.expect("data");
    assert_eq!(data["client-ca-file"], h.server.client_ca_pem());
    assert_eq!(data["requestheader-client-ca-file"], h.server.front_proxy_ca_pem());
    assert_eq!(data["requestheader-allowed-names"], r#"["front-proxy-client"]"#);
    assert_eq!(data["requestheader-username-headers"], r#"["X-Remote-User"]"#);
    assert_eq!(data["requestheader-group-headers"], r#"["X-Remote-Group"]"#);
    assert_eq!(data["requestheader-extra-headers-prefix"], r#"["X-Remote-Extra-"]"#);
    assert_eq!(data["requestheader-uid-headers"], "[]");

    let rv = cm.metadata.resource_version.expect("rv");
    let old_ca = h.server.front_proxy_ca_pem();
    h.server.rotate_front_proxy_ca().expect("rotation");
    assert_ne!(h.server.front_proxy_ca_pem(), old_ca);
    let wp = WatchParams::default().fields("metadata.name=extension-apiserver-authentication").timeout(1);
    let events: Vec<_> = cms.watch(&wp, &rv).await.expect("watch").try_collect().await.expect("events");
    let events: Vec<_> = events.into_iter().filter(|e| !matches!(e, WatchEvent::Bookmark(_))).collect();
    match events.as_slice() {
        [WatchEvent::Modified(cm)] => {
            let data = cm.data.as_ref().expect("data");
            assert_eq!(data["requestheader-client-ca-file"], h.server.front_proxy_ca_pem());
        }
        other => panic!("expected one MODIFIED, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthenticated_and_foreign_certificate_callers_get_401_but_version_is_open() {
    let h = Harness::start().await;
    let mut config = kube::Config::new(h.server.url().parse().expect("url"));
    config.default_retry = false;
    config.root_cert =
        Some(vec![tls::pem::certs_from_pem(h.server.ca_pem().as_bytes(), "ca").expect("ca")[0].to_vec()]);
    let anonymous = kube::Client::try_from(config).expect("client");
    assert_eq!(get_raw(&anonymous, "/version", None).await.0, 200);
    let (code, body) = get_raw(&anonymous, "/api/v1/nodes", None).await;
    assert_eq!(code, 401);
    assert!(body.contains(r#""reason":"Unauthorized""#), "{body}");

    // A certificate from some other CA is not a user.
    let foreign = tls::pki::Ca::new("foreign").expect("ca").issue_client("admin", &["system:masters"]).expect("cert");
    let kc = h.kubeconfig("foreign", KubeconfigUser::Token { token: "x".into(), user: "u".into(), groups: vec![] });
    let text = std::fs::read_to_string(&kc).expect("read");
    let b64 = crate::apiserver::kubeconfig::base64;
    let text = text.replace(
        "    token: \"x\"\n",
        &format!(
            "    client-certificate-data: \"{}\"\n    client-key-data: \"{}\"\n",
            b64(foreign.cert_pem.as_bytes()),
            b64(foreign.key_pem.as_bytes())
        ),
    );
    std::fs::write(&kc, text).expect("write");
    let forged = super::client_from(&kc).await;
    assert_eq!(get_raw(&forged, "/api/v1/nodes", None).await.0, 401);

    let sa = h.dir.path().join("sa");
    h.server.write_service_account_kubeconfig(&sa, "kube-system", "metrics-server").expect("sa kubeconfig");
    let sa_client = super::client_from(&sa).await;
    assert_eq!(get_raw(&sa_client, "/api/v1/nodes", None).await.0, 200);
}

#[tokio::test]
async fn metadata_and_table_representations_follow_accept() {
    let h = Harness::start().await;
    let c = h.admin().await;
    let (code, body) = get_raw(
        &c,
        "/api/v1/pods",
        Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"),
    )
    .await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert_eq!(v["items"][0]["kind"], "PartialObjectMetadata");
    assert!(v["items"][0].get("spec").is_none());
    let (_, body) =
        get_raw(&c, "/api/v1/nodes", Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kind"], "Table");
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(3));
}
