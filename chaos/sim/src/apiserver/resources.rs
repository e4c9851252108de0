//! The core API's read verbs: get and list of Nodes, Pods, ConfigMaps and
//! (derived) Namespaces, with label and field selectors, `limit`/`continue`,
//! and the full, metadata-only and Table representations chosen by
//! `Accept`. `?watch=` requests are handed to `watch`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

use super::objects;
use super::router::AppState;
use super::selector::{FieldSelector, LabelSelector, labels_match};
use super::store::Kind;
use super::watch;
use apimachinery::status::Status;

/// How objects are represented in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    Full,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Meta,
    /// `meta.k8s.io/v1` Table (kubectl get).
    Table,
}

/// The representation `Accept` prefers (first entry we can serve wins).
pub fn repr(headers: &HeaderMap) -> Repr {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.iter().skip(1).any(|x| x.eq_ignore_ascii_case(p));
        if has("g=meta.k8s.io") && has("as=Table") {
            return Repr::Table;
        }
        if has("g=meta.k8s.io") && (has("as=PartialObjectMetadataList") || has("as=PartialObjectMetadata")) {
            return Repr::Meta;
        }
        if params.len() == 1 {
            return Repr::Full;
        }
    }
    Repr::Full
}

/// What a request selects.
#[derive(Debug, Clone)]
pub struct Filter {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
        self.namespace.as_deref().is_none_or(|want| want == ns)
            && labels_match(&self.labels, object)
            && self.fields.matches_object(object)
    }
}

/// The query parameters of a read.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    label_selector: String,
    field_selector: String,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

impl Params {
    fn parse(query: &[(String, String)]) -> Result<Params, Status> {
        let mut p = Params::default();
        for (k, v) in query {
            let number = || v.parse::<u64>().map_err(|_| Status::bad_request(format!("invalid {k}: {v:?}")));
            match k.as_str() {
                "watch" => p.watch = truthy(v),
                "resourceVersion" => p.resource_version = Some(v.clone()),
                "allowWatchBookmarks" => p.allow_bookmarks = truthy(v),
                "sendInitialEvents" => p.send_initial_events = truthy(v),
                "timeoutSeconds" => p.timeout_seconds = Some(number()?),
                "limit" => p.limit = Some(number()? as usize).filter(|&l| l > 0),
                "continue" => p.continue_token = Some(v.clone()).filter(|t| !t.is_empty()),
                "labelSelector" => p.label_selector = v.clone(),
                "fieldSelector" => p.field_selector = v.clone(),
                _ => {}
            }
        }
        Ok(p)
    }
}

fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Node => &["metadata.name"],
        Kind::Pod => &["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"],
        Kind::ConfigMap => &["metadata.name", "metadata.namespace"],
    }
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Node => "nodes",
        Kind::Pod => "pods",
        Kind::ConfigMap => "configmaps",
    }
}

fn json_ok(body: Value) -> Response {
    let mut resp = body.to_string().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes =
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn object_key(o: &Value) -> String {
    let s = |p| o.pointer(p).and_then(Value::as_str).unwrap_or("");
    format!("{}\u{0}{}", s("/metadata/namespace"), s("/metadata/name"))
}

async fn read(
    state: AppState,
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    headers: HeaderMap,
    query: Vec<(String, String)>,
) -> Response {
    match read_inner(state, kind, namespace, name, &headers, &query) {
        Ok(resp) => resp,
        Err(status) => status.into_response(),
    }
}

fn read_inner(
    state: AppState,
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Response, Status> {
    let params = Params::parse(query)?;
    let labels = LabelSelector::parse(&params.label_selector).map_err(|e| Status::bad_request(e.to_string()))?;
    let mut fields = FieldSelector::parse(&params.field_selector, supported_fields(kind))
        .map_err(|e| Status::bad_request(e.to_string()))?;
    let repr = repr(headers);
    if params.watch {
        if let Some(name) = &name {
            fields.0.push(("metadata.name".into(), true, name.clone()));
        }
        let filter = Filter { kind, namespace, labels, fields };
        return Ok(watch::respond(state, filter, repr, &params));
    }
    let now = objects::now_secs();
    if let Some(name) = name {
        let key = (namespace.unwrap_or_default(), name.clone());
        let object = state.store.get(kind, &key).ok_or_else(|| Status::not_found("", plural(kind), &name))?;
        let rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("0");
        let rv = rv.parse().unwrap_or(0);
        return Ok(json_ok(match repr {
            Repr::Full => (*object).clone(),
            Repr::Meta => objects::partial_metadata(&object),
            Repr::Table => objects::table(kind.as_str(), &[&object], rv, now),
        }));
    }
    let after = match &params.continue_token {
        Some(token) => {
            let key = unhex(token).ok_or_else(|| Status::bad_request("invalid continue token"))?;
            let (ns, name) = key.split_once('\u{0}').ok_or_else(|| Status::bad_request("invalid continue token"))?;
            Some((ns.to_string(), name.to_string()))
        }
        None => None,
    };
    // kube-apiserver counts the rest only for lists without selectors.
    let unselected = params.label_selector.is_empty() && params.field_selector.is_empty();
    let filter = Filter { kind, namespace: namespace.clone(), labels, fields };
    let page =
        state.store.page(kind, namespace.as_deref(), after.as_ref(), params.limit, unselected, |o| filter.matches(o));
    let rv = page.rv;
    let selected: Vec<&Value> = page.items.iter().map(|o| o.as_ref()).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if page.more {
        if let Some(last) = selected.last() {
            meta["continue"] = json!(hex(&object_key(last)));
            if let Some(rest) = page.rest {
                meta["remainingItemCount"] = json!(rest);
            }
        }
    }
    // Lists are written straight from the stored objects, without a copy
    // of each as a new JSON tree: a whole list of 300,000 pods (what a
    // reflector asks for at resourceVersion 0) would otherwise cost the
    // shared machine seconds and gigabytes per request.
    let no_metadata = json!({});
    let body = match repr {
        Repr::Table => {
            let mut t = objects::table(kind.as_str(), &selected, rv, now);
            t["metadata"] = meta;
            serde_json::to_vec(&t)
        }
        Repr::Meta => {
            let items: Vec<PartialMeta> = selected
                .iter()
                .map(|o| PartialMeta {
                    api_version: "meta.k8s.io/v1",
                    kind: "PartialObjectMetadata",
                    metadata: o.get("metadata").unwrap_or(&no_metadata),
                })
                .collect();
            serde_json::to_vec(&List {
                api_version: "meta.k8s.io/v1",
                items,
                kind: "PartialObjectMetadataList",
                metadata: &meta,
            })
        }
        Repr::Full => serde_json::to_vec(&List {
            api_version: "v1",
            items: selected,
            kind: &format!("{}List", kind.as_str()),
            metadata: &meta,
        }),
    };
    let body = body.map_err(|e| Status::internal(format!("encoding the list: {e}")))?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// A list as kube-apiserver writes it (keys in the order a JSON tree
/// without insertion order sorts them, as the stand-in always wrote).
#[derive(serde::Serialize)]
struct List<'a, T: serde::Serialize> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    items: Vec<T>,
    kind: &'a str,
    metadata: &'a Value,
}

/// One object of a `PartialObjectMetadataList`, borrowing its metadata.
#[derive(serde::Serialize)]
struct PartialMeta<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a Value,
}

type Q = Query<Vec<(String, String)>>;

pub async fn list_nodes(State(s): State<AppState>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::Node, None, None, h, q).await
}
pub async fn get_node(State(s): State<AppState>, Path(name): Path<String>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::Node, None, Some(name), h, q).await
}
pub async fn list_all_pods(State(s): State<AppState>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::Pod, None, None, h, q).await
}
pub async fn list_pods(State(s): State<AppState>, Path(ns): Path<String>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::Pod, Some(ns), None, h, q).await
}
pub async fn get_pod(
    State(s): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    read(s, Kind::Pod, Some(ns), Some(name), h, q).await
}
pub async fn list_all_configmaps(State(s): State<AppState>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::ConfigMap, None, None, h, q).await
}
pub async fn list_configmaps(State(s): State<AppState>, Path(ns): Path<String>, h: HeaderMap, Query(q): Q) -> Response {
    read(s, Kind::ConfigMap, Some(ns), None, h, q).await
}
pub async fn get_configmap(
    State(s): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    read(s, Kind::ConfigMap, Some(ns), Some(name), h, q).await
}

/// Namespaces: the fixed system ones plus every namespace a pod or
/// ConfigMap lives in. Not watchable.
fn namespace_names(state: &AppState) -> Vec<String> {
    let mut names: Vec<String> =
        ["default", "kube-node-lease", "kube-public", "kube-system"].iter().map(|s| s.to_string()).collect();
    for kind in [Kind::Pod, Kind::ConfigMap] {
        names.extend(state.store.keys(kind).into_iter().map(|(ns, _)| ns));
    }
    names.sort();
    names.dedup();
    names
}

pub async fn list_namespaces(State(s): State<AppState>) -> Response {
    let items: Vec<Value> =
        namespace_names(&s).iter().enumerate().map(|(i, n)| objects::namespace(n, &objects::uid(i as u64))).collect();
    let rv = s.store.resource_version().to_string();
    json_ok(json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}))
}

pub async fn get_namespace(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match namespace_names(&s).iter().position(|n| *n == name) {
        Some(i) => json_ok(objects::namespace(&name, &objects::uid(i as u64))),
        None => Status::not_found("", "namespaces", &name).into_response(),
    }
}
