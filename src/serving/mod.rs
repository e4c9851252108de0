//! The request-handling chain of the API port, in the generic apiserver's
//! order (outermost first): HSTS, the audit of failed authentication, the
//! answer counter (availability SLI), the shutdown gate
//! (`--shutdown-send-retry-after`), the request deadline
//! (`--request-timeout`), CORS, authentication, the audit log, the
//! in-flight limits (probes exempt), authorization, then the routes. It
//! composes layers that live in `auth`, `audit`, `limit` and here; it owns
//! no state of its own beyond the [`ShutdownGate`] it is given, and decides
//! nothing a layer decides.

pub mod deadline;
pub mod headers;
pub mod shutdown;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use http::HeaderValue;

use crate::config::RequestSettings;
use crate::limit::Limits;
use crate::selfmetrics::SelfMetrics;
pub use shutdown::ShutdownGate;

/// What the chain needs.
#[derive(Clone)]
pub struct Chain {
    pub requests: RequestSettings,
    pub auth: crate::auth::AuthState,
    pub audit: Option<crate::audit::Auditor>,
    pub gate: ShutdownGate,
    pub metrics: Arc<SelfMetrics>,
}

/// `routes` behind the whole chain.
pub fn guard(routes: Router, chain: Chain) -> Router {
    let r = &chain.requests;
    let limits = Limits { read_only: r.max_requests_inflight, mutating: r.max_mutating_requests_inflight };
    let mut app = routes.layer(crate::auth::authz_layer(chain.auth.clone()));
    app = crate::limit::limited(app, limits);
    if let Some(auditor) = &chain.audit {
        app = app.layer(axum::middleware::from_fn_with_state(auditor.clone(), crate::audit::layer::record));
    }
    app = app.layer(crate::auth::authn_layer(chain.auth.clone()));
    if !r.cors_allowed_origins.is_empty() {
        let origins = Arc::new(r.cors_allowed_origins.clone());
        app = app.layer(axum::middleware::from_fn_with_state(origins, headers::cors));
    }
    app = app
        .layer(axum::middleware::from_fn_with_state(r.request_timeout, deadline::bound))
        .layer(axum::middleware::from_fn_with_state(chain.gate.clone(), shutdown::gate))
        .layer(axum::middleware::from_fn_with_state(chain.metrics.clone(), count_api_answers));
    if let Some(auditor) = &chain.audit {
        app = app.layer(axum::middleware::from_fn_with_state(auditor.clone(), crate::audit::layer::unauthenticated));
    }
    if let Some(value) = r.hsts.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        app = app.layer(axum::middleware::from_fn_with_state(value, headers::hsts));
    }
    app
}

/// Counts every answer of the metrics API by status class (the
/// availability SLI), authentication and authorization refusals included.
async fn count_api_answers(
    axum::extract::State(metrics): axum::extract::State<Arc<SelfMetrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = request.uri().path().starts_with("/apis/metrics.k8s.io/");
    let response = next.run(request).await;
    if api {
        let class = match response.status().as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        metrics.api_requests.get_or_create(&vec![("code", class)]).inc();
    }
    response
}
