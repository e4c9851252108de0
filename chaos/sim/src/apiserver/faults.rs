//! Faults of the stand-in apiserver, for the chaos suite: open watch
//! connections of Nodes and Pods cut (as when kube-apiserver restarts or a
//! load balancer drops idle streams), new watches refused with a status
//! (for example 410 Gone, or 500), and lists of Nodes and Pods made slow or
//! answered with a 5xx. One layer in front of the router applies them; it
//! only looks at the method, path and `watch` parameter, never at who asks.
//! For 410 on a resumed watch after a compaction, see
//! [`StandInApiServer::compact_event_log`](super::StandInApiServer::compact_event_log).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{Method, StatusCode};
use tokio::sync::watch;

use super::StandInApiServer;
use apimachinery::status::Status;

/// The fault settings, shared by the handle and the layer.
#[derive(Debug)]
pub struct ApiFaults {
    settings: Mutex<Settings>,
    /// Bumped to cut every open watch.
    cuts: watch::Sender<u64>,
    /// Node and Pod lists asked for (each page counts).
    lists: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Settings {
    list_delay: Duration,
    list_error: Option<StatusCode>,
    watch_error: Option<StatusCode>,
}

impl Default for ApiFaults {
    fn default() -> Self {
        ApiFaults { settings: Mutex::new(Settings::default()), cuts: watch::Sender::new(0), lists: Default::default() }
    }
}

impl ApiFaults {
    fn get(&self) -> Settings {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.settings.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A GET of Nodes or Pods (list or watch): what the metrics server's
/// reflectors ask for.
fn is_node_or_pod_read(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == Method::GET && path.starts_with("/api/v1/") && (path.ends_with("/nodes") || path.ends_with("/pods"))
}

fn is_watch(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

fn refusal(code: StatusCode, what: &str) -> Response {
    let reason = match code {
        StatusCode::GONE => "Expired",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        _ => "InternalError",
    };
    Status::failure(code, reason, format!("{what} refused by an injected fault")).into_response()
}

/// The layer: applies the current settings to Node and Pod reads.
pub(crate) async fn apply(State(faults): State<Arc<ApiFaults>>, req: Request, next: Next) -> Response {
    if !is_node_or_pod_read(&req) {
        return next.run(req).await;
    }
    let settings = faults.get();
    if !is_watch(&req) {
        faults.lists.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(code) = settings.list_error {
            return refusal(code, "list");
        }
        if !settings.list_delay.is_zero() {
            tokio::time::sleep(settings.list_delay).await;
        }
        return next.run(req).await;
    }
    if let Some(code) = settings.watch_error {
        return refusal(code, "watch");
    }
    let mut cut = faults.cuts.subscribe();
    cut.borrow_and_update();
    let (parts, body) = next.run(req).await.into_parts();
    // The stream ends with an error when a cut comes: hyper aborts the
    // connection mid-body, as a dropped TCP connection would look.
    enum State<S> {
        Open(S, watch::Receiver<u64>),
        Done,
    }
    let stream = futures::stream::unfold(State::Open(body.into_data_stream(), cut), |state| async move {
        let State::Open(mut body, mut cut) = state else { return None };
        tokio::select! {
            item = body.next() => item.map(|chunk| (chunk.map_err(std::io::Error::other), State::Open(body, cut))),
            _ = cut.changed() => Some((Err(std::io::Error::other("watch cut by an injected fault")), State::Done)),
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

impl StandInApiServer {
    /// Cuts every open Node and Pod watch now (clients must re-watch).
    pub fn drop_watches(&self) {
        self.faults.cuts.send_modify(|g| *g += 1);
    }

    /// Refuses new Node and Pod watches with `code` (e.g. 410, 500), or
    /// serves them again (`None`).
    pub fn set_watch_error(&self, code: Option<StatusCode>) {
        self.faults.update(|s| s.watch_error = code);
    }

    /// How many Node and Pod lists (each page counts) were asked for.
    pub fn node_and_pod_lists(&self) -> u64 {
        self.faults.lists.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Delays every Node and Pod list by `delay` (zero: no delay).
    pub fn set_list_delay(&self, delay: Duration) {
        self.faults.update(|s| s.list_delay = delay);
    }

    /// Answers every Node and Pod list with `code` (a 5xx), or serves them
    /// again (`None`).
    pub fn set_list_error(&self, code: Option<StatusCode>) {
        self.faults.update(|s| s.list_error = code);
    }
}
