//! One simulated kubelet: its model, template, fault and counters, and the
//! request handler that authenticates a request, applies the node's fault and
//! answers with the current sample. Sockets and TLS are `serve`'s; the handler
//! only sees a request and what the connection proved about the client.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use rustls::ServerConfig;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Fault;
use super::model::{Nanos, NodeModel};
use super::partition::SourceBlocks;
use super::render::{Layout, ModelAt, Template, malformed};
use super::scrape_log::{ScrapeLog, ScrapeOutcome};

/// The path a kubelet serves resource metrics on.
pub(crate) const METRICS_PATH: &str = "/metrics/resource";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What every node of a fleet shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub anonymous: bool,
    pub tokens: ArcSwap<HashSet<String>>,
    pub total_scrapes: AtomicU64,
    pub sample_lag: Nanos,
    /// Every scrape, with its client and outcome.
    pub log: ScrapeLog,
    /// Sources cut off from every kubelet.
    pub blocks: SourceBlocks,
}

/// The parts of a node that change together, under one lock.
#[derive(Debug)]
pub(crate) struct NodeInner {
    pub model: NodeModel,
    pub template: Template,
    pub fault: Fault,
    /// The sample time kept by [`Fault::FrozenTimestamps`], Unix ms.
    pub frozen_ms: u64,
    /// How far the node's wall clock is off, in ms (positive: ahead); set
    /// with [`KubeletFleet::set_clock_offset`](super::KubeletFleet::set_clock_offset).
    pub clock_offset_ms: i64,
}

impl NodeInner {
    pub fn new(model: NodeModel) -> NodeInner {
        NodeInner {
            template: Template::build(Layout::of_model(&model)),
            model,
            fault: Fault::None,
            frozen_ms: 0,
            clock_offset_ms: 0,
        }
    }

    /// Lays the text out again after pods came or went.
    pub fn rebuild(&mut self) {
        self.template = Template::build(Layout::of_model(&self.model));
    }

    pub fn render(&self, t_ms: u64) -> String {
        let mut out = String::with_capacity(self.template.capacity_hint());
        self.template.render(&ModelAt::new(&self.model, t_ms).clock_offset(self.clock_offset_ms), &mut out);
        out
    }
}

/// One node's kubelet.
pub(crate) struct NodeState {
    pub name: String,
    /// The name again, shared by the node's scrape-log records.
    pub log_name: Arc<str>,
    /// Bumped by every `set_fault`, so a flapping task knows it was replaced.
    pub fault_gen: AtomicU64,
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub inner: Mutex<NodeInner>,
    pub scrapes: AtomicU64,
    /// Unix ms of the last scrape, 0 before the first.
    pub last_scrape_ms: AtomicU64,
    /// The certificate from the fleet CA.
    pub trusted_tls: Arc<ServerConfig>,
    /// The certificate served to new connections.
    pub tls: ArcSwap<ServerConfig>,
    /// Whether the node should be listening (false while [`Fault::Down`]).
    pub want_up: watch::Sender<bool>,
    /// Whether it is listening, as the accept loop last reported.
    pub listening: watch::Sender<bool>,
}

/// What the connection a request came on proved.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The client presented a certificate that the client CA verified.
    pub client_cert: bool,
    /// The client's address, when the socket reported it.
    pub client: Option<SocketAddr>,
    /// Cancelled when the connection must go (node down, fleet stopped).
    pub closed: CancellationToken,
}

pub(crate) fn now_nanos() -> Nanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl NodeState {
    pub fn lock(&self) -> MutexGuard<'_, NodeInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sample time for a scrape at `now`: trailing by the lag, whole ms.
    pub fn sample_ms(&self, now: Nanos) -> u64 {
        now.saturating_sub(self.shared.sample_lag) / 1_000_000
    }

    fn authenticated<B>(&self, conn: &ConnInfo, req: &Request<B>) -> bool {
        if self.shared.anonymous || conn.client_cert {
            return true;
        }
        let Some(value) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or("");
        let token = parts.next().unwrap_or("").trim();
        scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && self.shared.tokens.load().contains(token)
    }

    fn count_scrape(&self, now: Nanos) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        self.shared.total_scrapes.fetch_add(1, Ordering::Relaxed);
        self.last_scrape_ms.store(now / 1_000_000, Ordering::Relaxed);
    }

    /// Appends one record to the fleet's scrape log.
    pub fn log_scrape(&self, now: Nanos, client: Option<SocketAddr>, outcome: ScrapeOutcome) {
        self.shared.log.push(&self.log_name, now / 1_000_000, client.map(|a| a.ip()), outcome);
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn metrics(body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// Answers one request as the node's kubelet, with its current fault.
pub(crate) async fn handle<B>(node: &NodeState, conn: &ConnInfo, req: Request<B>) -> Response<Full<Bytes>> {
    let arrived = now_nanos();
    let is_metrics = req.uri().path() == METRICS_PATH;
    if is_metrics {
        node.count_scrape(arrived);
    }
    // The kubelet authenticates before it routes.
    if !node.authenticated(conn, &req) {
        if is_metrics {
            node.log_scrape(arrived, conn.client, ScrapeOutcome::Unauthorized);
        }
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if !is_metrics {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    let fault = node.lock().fault;
    let outcome = match fault {
        Fault::Hang => ScrapeOutcome::Hang,
        Fault::Slow(_) => ScrapeOutcome::Slow,
        Fault::Http500 => ScrapeOutcome::Http500,
        Fault::Malformed => ScrapeOutcome::Malformed,
        Fault::FrozenTimestamps => ScrapeOutcome::Frozen,
        Fault::None | Fault::Down | Fault::CounterReset | Fault::Flapping { .. } => ScrapeOutcome::Ok,
    };
    node.log_scrape(arrived, conn.client, outcome);
    match fault {
        Fault::Hang => {
            conn.closed.cancelled().await;
            return text(StatusCode::SERVICE_UNAVAILABLE, "kubelet is going away\n");
        }
        Fault::Slow(delay) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = conn.closed.cancelled() => {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "kubelet is going away\n");
                }
            }
        }
        Fault::Http500 => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
        }
        Fault::None
        | Fault::Down
        | Fault::Malformed
        | Fault::FrozenTimestamps
        | Fault::CounterReset
        | Fault::Flapping { .. } => {}
    }
    let inner = node.lock();
    let body = match inner.fault {
        Fault::FrozenTimestamps => inner.render(inner.frozen_ms),
        Fault::Malformed => malformed(&inner.render(node.sample_ms(now_nanos()))),
        _ => inner.render(node.sample_ms(now_nanos())),
    };
    drop(inner);
    metrics(body)
}
