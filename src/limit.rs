//! `--max-requests-inflight` and `--max-mutating-requests-inflight`: at most
//! that many requests (mutating ones: POST, PUT, PATCH, DELETE) are served
//! at once; past a limit a request gets 429 with `Retry-After: 1` and a
//! `TooManyRequests` Status, as the generic apiserver's max-in-flight filter
//! answers. It never queues: a client retries. The probes (`/livez`,
//! `/readyz`, `/healthz`) are never limited, so a flood of requests cannot
//! make the kubelet restart the pod or take it out of its Service. It sits
//! after authentication (see `serving`), so requests without credentials
//! never hold a slot.

use std::sync::Arc;

use apimachinery::status::Status;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use tokio::sync::Semaphore;

/// The two limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub read_only: Option<usize>,
    pub mutating: Option<usize>,
}

struct Slots {
    read_only: Option<Semaphore>,
    mutating: Option<Semaphore>,
}

/// Whether `path` is a probe, which no limit applies to.
pub fn is_probe(path: &str) -> bool {
    ["/livez", "/readyz", "/healthz"]
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

fn is_mutating(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// `router` with at most `limits` requests served at once (probes aside).
pub fn limited(router: Router, limits: Limits) -> Router {
    let slots = Arc::new(Slots {
        read_only: limits.read_only.map(|n| Semaphore::new(n.max(1))),
        mutating: limits.mutating.map(|n| Semaphore::new(n.max(1))),
    });
    router.layer(axum::middleware::from_fn_with_state(slots, admit))
}

async fn admit(State(slots): State<Arc<Slots>>, request: Request, next: Next) -> Response {
    if is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let pool = if is_mutating(request.method()) { &slots.mutating } else { &slots.read_only };
    let Some(pool) = pool else {
        return next.run(request).await;
    };
    let Ok(_permit) = pool.try_acquire() else {
        let mut r = Status::failure(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    next.run(request).await
}

#[cfg(test)]
mod tests;
