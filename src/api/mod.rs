//! The `metrics.k8s.io` HTTP API (v1beta1 and v1), byte-compatible with
//! metrics-server: resources, Table output, discovery and OpenAPI. It reads
//! objects from an [`Inventory`] and usage from a [`UsageSource`]; it does
//! not serve health endpoints, `/metrics`, authentication or TLS.
//!
//! Map: `types` + `encode` (wire types and Go-identical bytes), `negotiate`
//! (Accept), `table`, `discovery`, `openapi`, `request` (query, errors),
//! `render` (answer forms), `handlers` (what to serve). Quantity, time and
//! duration strings, selectors and the Status body are `apimachinery`'s.

// Errors are the rare path and `Status` is the shared error type: keep it unboxed.
#![allow(clippy::result_large_err)]

pub mod discovery;
pub mod encode;

mod handlers;
pub mod negotiate;
pub mod openapi;
mod render;
pub mod request;
pub mod stream;

pub mod table;
pub mod types;

pub use handlers::selected_pods;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::model::{Inventory, UnixNanos, UsageSource};
use crate::selfmetrics::SelfMetrics;

/// Everything the API needs to answer a request.
#[derive(Clone)]
pub struct ApiState {
    /// The nodes and running pods that exist (metrics are served only for these).
    pub inventory: Arc<dyn Inventory>,
    /// Where usage comes from (the local store, or the shard owners).
    pub metrics: Arc<dyn UsageSource>,
    /// Records `metrics_server_api_metric_freshness_seconds`.
    pub self_metrics: Arc<SelfMetrics>,
    /// The current time; injected so tests are deterministic.
    pub clock: Arc<dyn Fn() -> UnixNanos + Send + Sync>,
    /// Reported as the OpenAPI `info.version` (cut at the first `-`).
    pub build_version: String,
}

/// The API routes. Unknown paths answer a 404 Status, other methods than
/// GET/HEAD on known paths a 405 Status.
pub fn router(state: ApiState) -> Router {
    const V: &str = "/apis/metrics.k8s.io/{version}";
    Router::new()
        .route("/apis", get(handlers::apis))
        .route("/apis/", get(handlers::apis))
        .route("/apis/metrics.k8s.io", get(handlers::group))
        .route("/apis/metrics.k8s.io/", get(handlers::group))
        .route(V, get(handlers::resources))
        .route(&format!("{V}/"), get(handlers::resources))
        .route(&format!("{V}/nodes"), get(handlers::list_nodes))
        .route(&format!("{V}/nodes/{{name}}"), get(handlers::get_node))
        .route(&format!("{V}/pods"), get(handlers::list_pods_all))
        .route(&format!("{V}/namespaces/{{namespace}}/pods"), get(handlers::list_pods_namespaced))
        .route(&format!("{V}/namespaces/{{namespace}}/pods/{{name}}"), get(handlers::get_pod))
        .route("/openapi/v2", get(handlers::openapi_v2))
        .route("/openapi/v3", get(handlers::openapi_v3_index))
        .route("/openapi/v3/apis/metrics.k8s.io/{version}", get(handlers::openapi_v3))
        .fallback(request::fallback)
        .method_not_allowed_fallback(request::method_not_allowed)
        .with_state(state)
}
