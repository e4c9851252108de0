//! Writes the objects a handler chose in the negotiated form: the metrics
//! object or list, a Table, or PartialObjectMetadata(List), with the
//! apiserver's errors for conversions that do not fit (406) and for a bad
//! `includeObject` (400). Chooses nothing itself.
//!
//! A large list is rendered on the blocking pool ([`render_off_runtime`]):
//! a 300,000-pod list is seconds of CPU that must not hold a runtime thread
//! (every other request and the scrapes on it would wait). The compact
//! metrics lists are written by [`stream`] (and, when large, streamed).

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use super::encode::{self, Style};
use super::negotiate::{Negotiated, Target};
use super::request::Req;
use super::stream;
use super::table::{IncludeObject, RowContext, node_table, pod_table};
use super::types::{
    ListMeta, NodeItem, PartialObjectMetadata, PartialObjectMetadataList, PodItem, Version, node_list, pod_list,
};
use crate::model::{ObjectMeta, UnixNanos};
use apimachinery::status::Status;

/// The objects one request serves.
pub enum Served {
    Node(NodeItem),
    Nodes(Vec<NodeItem>),
    Pod(PodItem),
    Pods(Vec<PodItem>),
}

/// Answers with more items than this are rendered off the runtime threads:
/// about 150 µs of work, above which handing the work to another thread
/// costs less than blocking the runtime.
pub const INLINE_RENDER_MAX_ITEMS: usize = 32;

impl Served {
    /// How many objects are served.
    fn len(&self) -> usize {
        match self {
            Served::Node(_) | Served::Pod(_) => 1,
            Served::Nodes(v) => v.len(),
            Served::Pods(v) => v.len(),
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, Served::Nodes(_) | Served::Pods(_))
    }

    /// The Go type name the apiserver prints in conversion errors.
    fn go_type(&self) -> &'static str {
        match self {
            Served::Node(_) => "*metrics.NodeMetrics",
            Served::Nodes(_) => "*metrics.NodeMetricsList",
            Served::Pod(_) => "*metrics.PodMetrics",
            Served::Pods(_) => "*metrics.PodMetricsList",
        }
    }

    fn metas(&self) -> Vec<&ObjectMeta> {
        match self {
            Served::Node(i) => vec![&i.meta],
            Served::Nodes(v) => v.iter().map(|i| &i.meta).collect(),
            Served::Pod(i) => vec![&i.meta],
            Served::Pods(v) => v.iter().map(|i| i.meta.as_ref()).collect(),
        }
    }
}

/// The list written straight to bytes ([`stream`]) when the answer is a
/// compact metrics list; anything else (one object, a Table, metadata, the
/// pretty form) is given back to be encoded through serde.
fn compact_list(neg: Negotiated, served: Served) -> Result<stream::List, Served> {
    let object = matches!(neg.target, Target::Object | Target::AggregatedDiscovery(_));
    match served {
        Served::Nodes(v) if object && neg.style == Style::Compact => Ok(stream::List::Nodes(v)),
        Served::Pods(v) if object && neg.style == Style::Compact => Ok(stream::List::Pods(v)),
        other => Err(other),
    }
}

fn ok<T: Serialize>(value: &T, style: Style) -> Response {
    encode::object(StatusCode::OK, value, style)
}

/// [`render`], on the blocking pool when `served` is large.
pub async fn render_off_runtime(
    req: Req,
    version: Version,
    neg: Negotiated,
    served: Served,
    now: UnixNanos,
) -> Response {
    if served.len() <= INLINE_RENDER_MAX_ITEMS {
        return render(&req, version, neg, served, now);
    }
    // The lists kubectl top, the HPA and the VPA read: written on the
    // blocking pool and streamed as they are written.
    let served = match compact_list(neg, served) {
        Ok(list) => return stream::respond(list, version, now),
        Err(served) => served,
    };
    let style = neg.style;
    match tokio::task::spawn_blocking(move || render(&req, version, neg, served, now)).await {
        Ok(resp) => resp,
        Err(e) => encode::status(&Status::internal(format!("rendering the answer failed: {e}")), style),
    }
}

/// Writes `served` in the negotiated form.
pub fn render(req: &Req, version: Version, neg: Negotiated, served: Served, now: UnixNanos) -> Response {
    let served = match compact_list(neg, served) {
        Ok(list) => return encode::respond(StatusCode::OK, encode::JSON, stream::to_bytes(&list, version, now)),
        Err(served) => served,
    };
    let style = neg.style;
    match neg.target {
        Target::Object | Target::AggregatedDiscovery(_) => match &served {
            Served::Node(i) => ok(&i.to_wire(version, now, true), style),
            Served::Nodes(v) => ok(&node_list(v, version, now), style),
            Served::Pod(i) => ok(&i.to_wire(version, now, true), style),
            Served::Pods(v) => ok(&pod_list(v, version, now), style),
        },
        Target::Table(meta_version) => {
            let include = match IncludeObject::parse(req.param("includeObject").as_deref()) {
                Ok(i) => i,
                Err(s) => return req.fail(s),
            };
            let ctx = RowContext { meta_version, version, include, now };
            match &served {
                Served::Node(i) => ok(&node_table(std::slice::from_ref(i), &ctx), style),
                Served::Nodes(v) => ok(&node_table(v, &ctx), style),
                Served::Pod(i) => ok(&pod_table(std::slice::from_ref(i), &ctx), style),
                Served::Pods(v) => ok(&pod_table(v, &ctx), style),
            }
        }
        Target::PartialObjectMetadata(mv) => match served.metas().as_slice() {
            [meta] if !served.is_list() => ok(&PartialObjectMetadata::new(meta, now, mv.api_version()), style),
            _ => req.fail(Status::not_acceptable(format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({})",
                served.go_type()
            ))),
        },
        Target::PartialObjectMetadataList(mv) => {
            if !served.is_list() {
                return req.fail(Status::not_acceptable(format!(
                    "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
                    served.go_type()
                )));
            }
            let items: Vec<_> =
                served.metas().into_iter().map(|m| PartialObjectMetadata::new(m, now, mv.api_version())).collect();
            let list = PartialObjectMetadataList {
                kind: "PartialObjectMetadataList",
                api_version: mv.api_version(),
                metadata: ListMeta {},
                items: (!items.is_empty()).then_some(items),
            };
            ok(&list, style)
        }
    }
}
