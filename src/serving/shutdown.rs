//! `--shutdown-send-retry-after`: once shutdown stops accepting requests,
//! the listener stays open until the requests in flight have finished, and
//! every new request is answered 429 with `Retry-After: 5` and
//! `Connection: close` (the client retries, most likely on another
//! replica), as the generic apiserver's `WithRetryAfter` and
//! `WithWaitGroup` do. Probes, `/metrics` and kube-apiserver itself are
//! exempt. The gate only counts and answers; `server` decides when to close it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio::sync::watch;

/// What the gate answers requests arriving while it is closed.
pub const RETRY_AFTER_BODY: &str = "The apiserver is shutting down, please try again later.\n";

/// Counts requests in flight and refuses new ones once closed.
#[derive(Clone, Debug)]
pub struct ShutdownGate {
    closed: Arc<AtomicBool>,
    in_flight: Arc<watch::Sender<usize>>,
}

impl Default for ShutdownGate {
    fn default() -> Self {
        ShutdownGate { closed: Arc::new(AtomicBool::new(false)), in_flight: Arc::new(watch::Sender::new(0)) }
    }
}

/// Decrements the count when a request is done (or dropped).
struct InFlight(Arc<watch::Sender<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl ShutdownGate {
    /// From now on, new non-exempt requests get 429 with Retry-After.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        *self.in_flight.borrow()
    }

    /// Waits until no admitted request is left, or `within` passed
    /// (`false` then).
    pub async fn drained(&self, within: Duration) -> bool {
        let mut rx = self.in_flight.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Requests the gate never refuses: the probes, `/metrics`, and
/// kube-apiserver's own (its health checks of this APIService).
pub fn is_exempt(request: &Request) -> bool {
    let path = request.uri().path();
    let exempt_path = ["/readyz", "/livez", "/healthz", "/metrics"].iter().any(|p| path.starts_with(p));
    let apiserver = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("kube-apiserver/"));
    exempt_path || apiserver
}

/// The middleware: admits and counts, or answers 429 once closed.
pub async fn gate(State(gate): State<ShutdownGate>, request: Request, next: Next) -> Response {
    if gate.closed.load(Ordering::Acquire) {
        if is_exempt(&request) {
            return next.run(request).await;
        }
        let mut r = (StatusCode::TOO_MANY_REQUESTS, RETRY_AFTER_BODY).into_response();
        let h = r.headers_mut();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return r;
    }
    gate.in_flight.send_modify(|n| *n += 1);
    let _counted = InFlight(gate.in_flight.clone());
    next.run(request).await
}
