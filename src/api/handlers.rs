//! The route handlers: for resources, pick the objects to serve (inventory ∩
//! label selector ∩ field selector ∩ has metrics, sorted) and record their
//! freshness; for discovery and OpenAPI, answer the static documents. Parsing
//! lives in `request`, writing in `render` and `encode`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::ApiState;
use super::discovery;
use super::encode::{self, Style};
use super::negotiate::{Endpoint, Target};
use super::openapi;
use super::render::{Served, render, render_off_runtime};
use super::request::{ListOptions, Req, path_not_found, watch_not_supported};
use super::types::{GROUP, NodeItem, PodItem, Version};
use crate::model::{Inventory, Missing, PodList, PodQuery, UnixNanos};
use apimachinery::selector::{FieldSelector, LabelSelector};
use apimachinery::status::Status;

fn observe_freshness(st: &ApiState, now: UnixNanos, timestamps: impl Iterator<Item = UnixNanos>) {
    for ts in timestamps {
        st.self_metrics.api_metric_freshness.observe(now.saturating_sub(ts) as f64 / 1e9);
    }
}

/// The list options of a list request, or the written 400/405.
fn list_options(req: &Req, resource: &str) -> Result<ListOptions, Response> {
    let opts = ListOptions::parse(req).map_err(|s| req.fail(s))?;
    if opts.watch {
        return Err(req.fail(watch_not_supported(resource)));
    }
    Ok(opts)
}

pub async fn list_nodes(State(st): State<ApiState>, path: Result<Path<String>, PathRejection>, req: Req) -> Response {
    let (version, neg) = match req.resource_prelude(path.ok().as_ref().map(|p| p.0.as_str())) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let opts = match list_options(&req, "nodes") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let now = (st.clock)();
    let mut metas = st.inventory.nodes();
    metas.retain(|m| opts.label.matches(&m.labels) && opts.field.matches(&m.name, None));
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = metas.iter().map(|m| m.name.clone()).collect();
    let answer = st.metrics.nodes(&names, now).await;
    let items: Vec<NodeItem> = metas
        .into_iter()
        .zip(answer.value)
        .filter_map(|(meta, usage)| usage.map(|usage| NodeItem { meta, usage }))
        .collect();
    observe_freshness(&st, now, items.iter().map(|i| i.usage.timestamp));
    let resp = render_off_runtime(req, version, neg, Served::Nodes(items), now).await;
    warn_if_partial(&st, "nodes", &answer.missing, resp)
}

/// Adds a `Warning: 299` header per missing part (kubectl prints each) and
/// counts the partial answer.
fn warn_if_partial(st: &ApiState, resource: &'static str, missing: &[Missing], mut resp: Response) -> Response {
    if missing.is_empty() {
        return resp;
    }
    st.self_metrics.partial_answers.get_or_create(&vec![("resource", resource)]).inc();
    for m in missing {
        if let Ok(v) = HeaderValue::from_str(&warning_value(&m.to_string())) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// An RFC 7234 warning value with code 299 and agent `-`, as kube-apiserver
/// writes them: the text quoted, with `"` and `\` escaped and anything but
/// printable ASCII replaced.
pub fn warning_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

pub async fn get_node(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    req: Req,
) -> Response {
    let Ok(Path((v, name))) = path else {
        return req.fail(path_not_found());
    };
    let (version, neg) = match req.resource_prelude(Some(&v)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = (st.clock)();
    // Unknown to the informer: the lister's NotFound; known without data: the API's.
    let Some(meta) = st.inventory.node(&name) else {
        return req.fail(Status::not_found("", "nodes", &name));
    };
    let names = [name];
    let answer = st.metrics.nodes(&names, now).await;
    let Some(Some(usage)) = answer.value.into_iter().next() else {
        let resp = req.fail(Status::not_found(GROUP, "nodemetrics", &names[0]));
        return warn_if_partial(&st, "nodes", &answer.missing, resp);
    };
    observe_freshness(&st, now, std::iter::once(usage.timestamp));
    warn_if_partial(
        &st,
        "nodes",
        &answer.missing,
        render(&req, version, neg, Served::Node(NodeItem { meta, usage }), now),
    )
}

async fn list_pods_in(st: ApiState, version: Option<&str>, namespace: Option<&str>, req: Req) -> Response {
    let (version, neg) = match req.resource_prelude(version) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let opts = match list_options(&req, "pods") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let now = (st.clock)();
    let list = selected_pods(&*st.inventory, namespace, &opts.label, &opts.field);
    let query = PodQuery {
        namespace: namespace.map(str::to_string),
        labels: opts.label_raw.clone(),
        fields: opts.field_raw.clone(),
        one: None,
    };
    let answer = st.metrics.pods(&query, &list.keys, now).await;
    let items: Vec<PodItem> = list
        .metas
        .iter()
        .zip(answer.value)
        .filter_map(|(meta, usage)| usage.map(|usage| PodItem { meta: meta.clone(), usage }))
        .collect();
    observe_freshness(&st, now, items.iter().map(|i| i.usage.timestamp));
    let resp = render_off_runtime(req, version, neg, Served::Pods(items), now).await;
    warn_if_partial(&st, "pods", &answer.missing, resp)
}

/// The running pods a list selects, in the order it serves them (by
/// namespace, then name), with their keys.
pub fn selected_pods(
    inventory: &dyn Inventory,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> PodList {
    let list = inventory.pod_list(namespace, labels);
    if fields.is_empty() {
        return list;
    }
    list.filter(|m| fields.matches(&m.name, Some(m.namespace.as_deref().unwrap_or(""))))
}

pub async fn list_pods_all(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    req: Req,
) -> Response {
    let version = path.ok().map(|Path(v)| v);
    list_pods_in(st, version.as_deref(), None, req).await
}

pub async fn list_pods_namespaced(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    req: Req,
) -> Response {
    match path {
        Ok(Path((v, ns))) => list_pods_in(st, Some(&v), Some(&ns), req).await,
        Err(_) => req.fail(path_not_found()),
    }
}

pub async fn get_pod(
    State(st): State<ApiState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    req: Req,
) -> Response {
    let Ok(Path((v, ns, name))) = path else {
        return req.fail(path_not_found());
    };
    let (version, neg) = match req.resource_prelude(Some(&v)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = (st.clock)();
    // Unknown (or not Running): the metadata lister's NotFound; known without data: the API's.
    let Some(meta) = st.inventory.pod(&ns, &name) else {
        return req.fail(Status::not_found("", "pods", &name));
    };
    let keys = [(ns.clone(), name.clone())];
    let query = PodQuery { namespace: Some(ns.clone()), one: Some(keys[0].clone()), ..PodQuery::default() };
    let answer = st.metrics.pods(&query, &keys, now).await;
    let Some(Some(usage)) = answer.value.into_iter().next() else {
        let resp = req.fail(Status::not_found(GROUP, "podmetrics", &format!("{ns}/{name}")));
        return warn_if_partial(&st, "pods", &answer.missing, resp);
    };
    observe_freshness(&st, now, std::iter::once(usage.timestamp));
    warn_if_partial(&st, "pods", &answer.missing, render(&req, version, neg, Served::Pod(PodItem { meta, usage }), now))
}

/// `/apis`: the APIGroupList, or aggregated discovery with ETag/304 when asked for.
pub async fn apis(req: Req) -> Response {
    let neg = match req.negotiate(Endpoint::RootDiscovery) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Target::AggregatedDiscovery(dv) = neg.target else {
        return encode::object(StatusCode::OK, &discovery::api_group_list(), neg.style);
    };
    let tag = discovery::etag(&encode::to_go_json(&discovery::aggregated("v2"), Style::Compact));
    let cached = req.headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = encode::to_go_json(&discovery::aggregated(dv.as_str()), neg.style);
        encode::respond(StatusCode::OK, &discovery::aggregated_content_type(dv.as_str()), body)
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    resp
}

/// `/apis/metrics.k8s.io`: the APIGroup.
pub async fn group(req: Req) -> Response {
    match req.negotiate(Endpoint::Plain) {
        Ok(neg) => encode::object(StatusCode::OK, &discovery::api_group(true), neg.style),
        Err(r) => r,
    }
}

/// `/apis/metrics.k8s.io/<version>`: the APIResourceList (also the availability probe).
pub async fn resources(path: Result<Path<String>, PathRejection>, req: Req) -> Response {
    let Some(version) = path.ok().and_then(|Path(v)| Version::parse(&v)) else {
        return req.fail(path_not_found());
    };
    match req.negotiate(Endpoint::Plain) {
        Ok(neg) => encode::object(StatusCode::OK, &discovery::api_resource_list(version), neg.style),
        Err(r) => r,
    }
}

/// A JSON document with a strong ETag; `If-None-Match` with that tag gets 304.
fn document(req: &Req, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let tag = discovery::etag(&body);
    let cached = req.headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        encode::respond(StatusCode::OK, encode::JSON, body)
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

pub async fn openapi_v2(State(st): State<ApiState>, req: Req) -> Response {
    document(&req, &openapi::v2(&st.build_version))
}

pub async fn openapi_v3_index(State(st): State<ApiState>, req: Req) -> Response {
    document(&req, &openapi::v3_index(&st.build_version))
}

/// One group-version's OpenAPI 3 document. A `hash` that is not the current
/// one is redirected to the current URL; the current one may be cached forever.
pub async fn openapi_v3(State(st): State<ApiState>, path: Result<Path<String>, PathRejection>, req: Req) -> Response {
    let Some(version) = path.ok().and_then(|Path(v)| Version::parse(&v)) else {
        return req.fail(path_not_found());
    };
    let hash = openapi::v3_hash(version, &st.build_version);
    let asked = req.param("hash");
    if asked.as_deref().is_some_and(|h| h != hash) {
        let url = openapi::v3_url(version, &hash);
        let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }
    let mut resp = document(&req, &openapi::v3(version, &st.build_version));
    if asked.is_some() {
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    resp
}
