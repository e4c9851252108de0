//! The state every handler shares and the one routing table of the
//! stand-in: which path goes to discovery, the core read API, the reviews
//! or the aggregation proxy, and that everything but `/version` needs an
//! authenticated caller.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;

use super::authn::{self, Authenticator};
use super::discovery;
use super::proxy::{self, Aggregator};
use super::resources as r;
use super::reviews::{self, Reviews};
use super::secrets::{self, Secrets};
use super::store::Store;
use apimachinery::status::Status;

/// What the handlers share.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub authn: Authenticator,
    pub reviews: Reviews,
    pub proxy: Aggregator,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Ends every watch stream.
    pub shutdown: CancellationToken,
    /// StatefulSets by (namespace, name): only their replica count, which is
    /// all the metrics server reads (to tell a scale-down from a restart).
    pub statefulsets: std::sync::Mutex<std::collections::BTreeMap<(String, String), i32>>,
    /// core/v1 Secrets (see `secrets`).
    pub secrets: Secrets,
}

/// `GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}`.
async fn get_statefulset(State(state): State<AppState>, Path((ns, name)): Path<(String, String)>) -> Response {
    let replicas =
        state.statefulsets.lock().unwrap_or_else(|p| p.into_inner()).get(&(ns.clone(), name.clone())).copied();
    match replicas {
        Some(replicas) => axum::Json(serde_json::json!({
            "kind": "StatefulSet",
            "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {}, "template": {}},
            "status": {"replicas": replicas}
        }))
        .into_response(),
        None => Status::not_found("apps", "statefulsets", &name).into_response(),
    }
}

pub type AppState = Arc<Shared>;

async fn group(Path(group): Path<String>) -> Response {
    discovery::group(&group).unwrap_or_else(|| not_found().into_response())
}

async fn group_version(Path((group, version)): Path<(String, String)>) -> Response {
    discovery::group_version(&group, &version).unwrap_or_else(|| not_found().into_response())
}

async fn metrics_group() -> Response {
    discovery::group("metrics.k8s.io").unwrap_or_else(|| not_found().into_response())
}

fn not_found() -> Status {
    Status::failure(http::StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
}

async fn fallback(State(_): State<AppState>) -> Status {
    not_found()
}

/// The stand-in's routes.
pub fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/metrics.k8s.io", get(metrics_group))
        .route("/apis/metrics.k8s.io/{*rest}", any(proxy::proxy))
        .route("/apis/{group}", get(group))
        .route("/apis/{group}/{version}", get(group_version))
        .route("/apis/authentication.k8s.io/v1/tokenreviews", post(reviews::token_review))
        .route("/apis/authorization.k8s.io/v1/subjectaccessreviews", post(reviews::subject_access_review))
        .route("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}", get(get_statefulset))
        .route("/api/v1/nodes", get(r::list_nodes))
        .route("/api/v1/nodes/{name}", get(r::get_node))
        .route("/api/v1/pods", get(r::list_all_pods))
        .route("/api/v1/configmaps", get(r::list_all_configmaps))
        .route("/api/v1/namespaces", get(r::list_namespaces))
        .route("/api/v1/namespaces/{name}", get(r::get_namespace))
        .route("/api/v1/namespaces/{ns}/pods", get(r::list_pods))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(r::get_pod))
        .route("/api/v1/namespaces/{ns}/configmaps", get(r::list_configmaps))
        .route("/api/v1/namespaces/{ns}/configmaps/{name}", get(r::get_configmap))
        .route("/api/v1/namespaces/{ns}/secrets", post(secrets::create_secret))
        .route("/api/v1/namespaces/{ns}/secrets/{name}", get(secrets::get_secret).put(secrets::update_secret))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authn::require_user));
    Router::new().route("/version", get(discovery::version)).merge(authenticated).with_state(state)
}
