//! The request handlers: parse the request (version, selectors, watch,
//! Accept), pick the objects to serve (inventory ∩ selectors ∩ has metrics),
//! and hand them to the encoders. Every error is a `Status`, written through
//! the negotiated encoder (or raw JSON when even that cannot be negotiated).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::ApiState;
use super::discovery;
use super::encode::{self, Style};
use super::negotiate::{Endpoint, Negotiated, Target, error_style, negotiate};
use super::openapi;
use super::selector::{FieldSelector, LabelSelector};
use super::table::{IncludeObject, RowContext, node_table, pod_table};
use super::types::{
    GROUP, NodeItem, PartialObjectMetadata, PartialObjectMetadataList, PodItem, Version, node_list,
    pod_list,
};
use crate::model::UnixNanos;
use crate::status::{Status, StatusDetails};

/// What one request brought besides its path.
struct Req<'a> {
    headers: &'a HeaderMap,
    query: Option<&'a str>,
}

impl Req<'_> {
    fn fail(&self, s: Status) -> Response {
        match error_style(self.headers, self.query) {
            Some(style) => encode::status(&s, style),
            None => encode::raw_status(&s),
        }
    }

    /// The first value of a query parameter, decoded.
    fn param(&self, key: &str) -> Option<String> {
        self.query?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_component(k) == key).then(|| decode_component(v))
        })
    }

    fn negotiate(&self, endpoint: Endpoint) -> Result<Negotiated, Response> {
        negotiate(self.headers, self.query, endpoint).map_err(|s| self.fail(s))
    }
}

/// `application/x-www-form-urlencoded` decoding of one query component.
fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The generic apiserver's 404 for a path it does not serve.
pub fn path_not_found() -> Status {
    Status::failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(StatusDetails::default())
}

pub async fn fallback(headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    Req {
        headers: &headers,
        query: q.as_deref(),
    }
    .fail(path_not_found())
}

pub async fn method_not_allowed(headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let s = Status::method_not_allowed(
        "the server does not allow this method on the requested resource",
    )
    .with_details(StatusDetails::default());
    Req {
        headers: &headers,
        query: q.as_deref(),
    }
    .fail(s)
}

/// The selectors and flags of a list request.
struct ListOptions {
    label: LabelSelector,
    field: FieldSelector,
    watch: bool,
}

impl ListOptions {
    fn parse(req: &Req<'_>) -> Result<ListOptions, Status> {
        let label = match req.param("labelSelector") {
            Some(s) => LabelSelector::parse(&s).map_err(|e| e.to_status())?,
            None => LabelSelector::everything(),
        };
        let field = match req.param("fieldSelector") {
            Some(s) => FieldSelector::parse(&s).map_err(|e| e.to_status())?,
            None => FieldSelector::default(),
        };
        // As apimachinery converts a bool parameter: anything but "0"/"false" is true.
        let watch = req
            .param("watch")
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        Ok(ListOptions {
            label,
            field,
            watch,
        })
    }
}

fn watch_not_supported(resource: &str) -> Status {
    Status::method_not_allowed(format!(
        "watch is not supported on resources of kind \"{resource}.{GROUP}\""
    ))
    .with_details(StatusDetails {
        name: String::new(),
        group: GROUP.into(),
        kind: resource.into(),
    })
}

fn observe_freshness(st: &ApiState, now: UnixNanos, timestamps: impl Iterator<Item = UnixNanos>) {
    for ts in timestamps {
        st.self_metrics
            .api_metric_freshness
            .observe(now.saturating_sub(ts) as f64 / 1e9);
    }
}

/// Served objects of one request: one (get) or many (list).
enum Served {
    Nodes(Vec<NodeItem>, bool),
    Pods(Vec<PodItem>, bool),
}

fn render(
    req: &Req<'_>,
    version: Version,
    neg: Negotiated,
    served: Served,
    now: UnixNanos,
) -> Response {
    let style = neg.style;
    let ok = |v: &dyn erased::Json| encode::respond(StatusCode::OK, encode::JSON, v.bytes(style));
    let (single, go_type) = match &served {
        Served::Nodes(_, single) => (
            *single,
            if *single {
                "*metrics.NodeMetrics"
            } else {
                "*metrics.NodeMetricsList"
            },
        ),
        Served::Pods(_, single) => (
            *single,
            if *single {
                "*metrics.PodMetrics"
            } else {
                "*metrics.PodMetricsList"
            },
        ),
    };
    let metas: Vec<&crate::model::ObjectMeta> = match &served {
        Served::Nodes(items, _) => items.iter().map(|i| &i.meta).collect(),
        Served::Pods(items, _) => items.iter().map(|i| &i.meta).collect(),
    };
    match neg.target {
        Target::Object | Target::AggregatedDiscovery(_) => match served {
            Served::Nodes(items, true) => ok(&items.first().map(|i| i.to_wire(version, now, true))),
            Served::Nodes(items, false) => ok(&node_list(&items, version, now)),
            Served::Pods(items, true) => ok(&items.first().map(|i| i.to_wire(version, now, true))),
            Served::Pods(items, false) => ok(&pod_list(&items, version, now)),
        },
        Target::Table(meta_version) => {
            let include = match IncludeObject::parse(req.param("includeObject").as_deref()) {
                Ok(i) => i,
                Err(s) => return req.fail(s),
            };
            let ctx = RowContext {
                meta_version,
                version,
                include,
                now,
            };
            match served {
                Served::Nodes(items, _) => ok(&node_table(&items, &ctx)),
                Served::Pods(items, _) => ok(&pod_table(&items, &ctx)),
            }
        }
        Target::PartialObjectMetadata(mv) => {
            if !single {
                return req.fail(Status::not_acceptable(format!(
                    "you requested PartialObjectMetadata, but the requested object is a list ({go_type})"
                )));
            }
            ok(&metas
                .first()
                .map(|m| PartialObjectMetadata::new(m, now, mv.api_version())))
        }
        Target::PartialObjectMetadataList(mv) => {
            if single {
                return req.fail(Status::not_acceptable(format!(
                    "you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
                )));
            }
            let items: Vec<_> = metas
                .iter()
                .map(|m| PartialObjectMetadata::new(m, now, mv.api_version()))
                .collect();
            ok(&PartialObjectMetadataList {
                kind: "PartialObjectMetadataList",
                api_version: mv.api_version(),
                metadata: Default::default(),
                items: (!items.is_empty()).then_some(items),
            })
        }
    }
}

/// Object-safe serialisation, so `render` can hand different types to one closure.
mod erased {
    use super::Style;
    pub trait Json {
        fn bytes(&self, style: Style) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn bytes(&self, style: Style) -> Vec<u8> {
            super::encode::to_go_json(self, style)
        }
    }
}

fn parse_version(v: &str, req: &Req<'_>) -> Result<Version, Response> {
    Version::parse(v).ok_or_else(|| req.fail(path_not_found()))
}

pub async fn list_nodes(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let Ok(Path(v)) = path else {
        return req.fail(path_not_found());
    };
    let version = match parse_version(&v, &req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let neg = match req.negotiate(Endpoint::Resource) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let opts = match ListOptions::parse(&req) {
        Ok(o) => o,
        Err(s) => return req.fail(s),
    };
    if opts.watch {
        return req.fail(watch_not_supported("nodes"));
    }
    let now = (st.clock)();
    let mut metas = st.inventory.nodes();
    metas.retain(|m| opts.label.matches(&m.labels) && opts.field.matches(&m.name, None));
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let items: Vec<NodeItem> = metas
        .into_iter()
        .filter_map(|meta| {
            st.metrics
                .node(&meta.name, now)
                .map(|usage| NodeItem { meta, usage })
        })
        .collect();
    observe_freshness(&st, now, items.iter().map(|i| i.usage.timestamp));
    render(&req, version, neg, Served::Nodes(items, false), now)
}

pub async fn get_node(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let Ok(Path((v, name))) = path else {
        return req.fail(path_not_found());
    };
    let version = match parse_version(&v, &req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let neg = match req.negotiate(Endpoint::Resource) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = (st.clock)();
    let Some(meta) = st.inventory.node(&name) else {
        return req.fail(Status::not_found("", "nodes", &name));
    };
    let Some(usage) = st.metrics.node(&name, now) else {
        return req.fail(Status::not_found(GROUP, "nodemetrics", &name));
    };
    observe_freshness(&st, now, std::iter::once(usage.timestamp));
    render(
        &req,
        version,
        neg,
        Served::Nodes(vec![NodeItem { meta, usage }], true),
        now,
    )
}

async fn list_pods_in(
    st: ApiState,
    v: String,
    namespace: Option<String>,
    headers: HeaderMap,
    q: Option<String>,
) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let version = match parse_version(&v, &req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let neg = match req.negotiate(Endpoint::Resource) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let opts = match ListOptions::parse(&req) {
        Ok(o) => o,
        Err(s) => return req.fail(s),
    };
    if opts.watch {
        return req.fail(watch_not_supported("pods"));
    }
    let now = (st.clock)();
    let mut metas = st.inventory.pods(namespace.as_deref());
    metas.retain(|m| {
        opts.label.matches(&m.labels)
            && opts
                .field
                .matches(&m.name, Some(m.namespace.as_deref().unwrap_or("")))
    });
    metas.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let items: Vec<PodItem> = metas
        .into_iter()
        .filter_map(|meta| {
            let ns = meta.namespace.clone().unwrap_or_default();
            st.metrics
                .pod(&ns, &meta.name, now)
                .map(|usage| PodItem { meta, usage })
        })
        .collect();
    observe_freshness(&st, now, items.iter().map(|i| i.usage.timestamp));
    render(&req, version, neg, Served::Pods(items, false), now)
}

pub async fn list_pods_all(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    match path {
        Ok(Path(v)) => list_pods_in(st, v, None, headers, q).await,
        Err(_) => Req {
            headers: &headers,
            query: q.as_deref(),
        }
        .fail(path_not_found()),
    }
}

pub async fn list_pods_namespaced(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    match path {
        Ok(Path((v, ns))) => list_pods_in(st, v, Some(ns), headers, q).await,
        Err(_) => Req {
            headers: &headers,
            query: q.as_deref(),
        }
        .fail(path_not_found()),
    }
}

pub async fn get_pod(
    State(st): State<ApiState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let Ok(Path((v, ns, name))) = path else {
        return req.fail(path_not_found());
    };
    let version = match parse_version(&v, &req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let neg = match req.negotiate(Endpoint::Resource) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = (st.clock)();
    let Some(meta) = st.inventory.pod(&ns, &name) else {
        return req.fail(Status::not_found("", "pods", &name));
    };
    let Some(usage) = st.metrics.pod(&ns, &name, now) else {
        return req.fail(Status::not_found(
            GROUP,
            "podmetrics",
            &format!("{ns}/{name}"),
        ));
    };
    observe_freshness(&st, now, std::iter::once(usage.timestamp));
    render(
        &req,
        version,
        neg,
        Served::Pods(vec![PodItem { meta, usage }], true),
        now,
    )
}

pub async fn apis(headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let neg = match req.negotiate(Endpoint::RootDiscovery) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Target::AggregatedDiscovery(dv) = neg.target else {
        return encode::object(StatusCode::OK, &discovery::api_group_list(), neg.style);
    };
    let tag = discovery::etag(&encode::to_go_json(
        &discovery::aggregated("v2"),
        Style::Compact,
    ));
    let tag_value = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = encode::to_go_json(&discovery::aggregated(dv.as_str()), neg.style);
        encode::respond(
            StatusCode::OK,
            &discovery::aggregated_content_type(dv.as_str()),
            body,
        )
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, tag_value);
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    resp
}

pub async fn group(headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    match req.negotiate(Endpoint::Plain) {
        Ok(neg) => encode::object(StatusCode::OK, &discovery::api_group(true), neg.style),
        Err(r) => r,
    }
}

pub async fn resources(
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let req = Req {
        headers: &headers,
        query: q.as_deref(),
    };
    let Some(version) = path.ok().and_then(|Path(v)| Version::parse(&v)) else {
        return req.fail(path_not_found());
    };
    match req.negotiate(Endpoint::Plain) {
        Ok(neg) => encode::object(
            StatusCode::OK,
            &discovery::api_resource_list(version),
            neg.style,
        ),
        Err(r) => r,
    }
}

fn openapi_json(value: &serde_json::Value) -> Response {
    encode::respond(
        StatusCode::OK,
        encode::JSON,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

pub async fn openapi_v2(State(st): State<ApiState>) -> Response {
    openapi_json(&openapi::v2(&st.build_version))
}

pub async fn openapi_v3_index(State(st): State<ApiState>) -> Response {
    openapi_json(&openapi::v3_index(&st.build_version))
}

pub async fn openapi_v3(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(version) = path.ok().and_then(|Path(v)| Version::parse(&v)) else {
        return Req {
            headers: &headers,
            query: q.as_deref(),
        }
        .fail(path_not_found());
    };
    let mut resp = openapi_json(&openapi::v3(version, &st.build_version));
    let tag = format!("\"{}\"", openapi::v3_hash(version, &st.build_version));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::decode_component;

    #[test]
    fn query_components_are_form_decoded() {
        assert_eq!(decode_component("app%3Dx"), "app=x");
        assert_eq!(decode_component("a+in+%28x%2Cy%29"), "a in (x,y)");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz"), "%zz");
        assert_eq!(decode_component("%e2%82%ac"), "€");
    }
}
