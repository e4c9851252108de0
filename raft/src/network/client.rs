//! The peer RPC client: pooled hyper-util clients (HTTP/2 over mutual TLS
//! via ALPN, or plain HTTP for crate tests) that post an [`Envelope`] and
//! decode the reply, with a deadline per call. Knows nothing of Raft.
//!
//! Two pools: the control plane's calls ([`PeerClient::call`]: Raft, liveness,
//! membership) never share a connection with the server's own calls
//! ([`PeerClient::call_with`]: queries, copies, pulls), and with
//! [`PeerClient::on_control_runtime`] they run, connections included, on
//! the runtime given, so a vote is not queued behind a saturated runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::wire::{Envelope, FROM_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION};
use crate::codec;

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Could not build the request (bad address).
    #[error("peer {addr}: bad request: {reason}")]
    Request {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// Connection or protocol failure.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("peer {addr} did not answer {path} within {timeout:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// Route.
        path: String,
        /// Deadline.
        timeout: Duration,
    },
    /// The peer refused the request (wrong cluster, version or target id, or stopped).
    #[error("peer {addr} refused {path}: {status} {reason}")]
    Refused {
        /// Peer address.
        addr: String,
        /// Route.
        path: String,
        /// HTTP status.
        status: u16,
        /// The peer's reason.
        reason: String,
    },
    /// The reply could not be decoded.
    #[error("peer {addr} sent an undecodable reply to {path}: {reason}")]
    Decode {
        /// Peer address.
        addr: String,
        /// Route.
        path: String,
        /// Cause.
        reason: String,
    },
}

/// How large a reply may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplySize {
    /// Raft and membership replies: [`codec::DECODE_LIMIT`].
    Small,
    /// Query fan-out replies: [`codec::LARGE_DECODE_LIMIT`].
    Large,
}

/// The client every node uses to reach its peers. Cheap to clone (the
/// clones share one pool and one [`Traffic`] count).
#[derive(Clone)]
pub struct PeerClient {
    /// The server's own calls.
    http: Http,
    /// The control plane's calls, on connections of their own.
    control: Http,
    /// Where the control plane's calls run (`None`: in the caller's task).
    control_runtime: Option<tokio::runtime::Handle>,
    scheme: &'static str,
    traffic: Arc<Traffic>,
}

type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Body bytes of this node's peer calls, per route: requests sent and
/// replies received (HTTP and TLS framing not counted). Every peer call
/// goes through one client, so the sum over all replicas is the traffic on
/// the peer port.
#[derive(Debug, Default)]
pub struct Traffic {
    by_route: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Traffic {
    fn add(&self, path: &str, sent: u64, received: u64) {
        let mut m = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = m.get_mut(path) {
            t.0 += sent;
            t.1 += received;
        } else {
            m.insert(path.to_string(), (sent, received));
        }
    }

    /// `(route, bytes sent, bytes received)` since the start, by route.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        let m = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(r, (s, rx))| (r.clone(), *s, *rx)).collect()
    }
}

impl PeerClient {
    /// A client for the mutual-TLS peer port: `config` trusts the cluster CA
    /// and carries this replica's client certificate. Peers are addressed by
    /// `host:port`; the host must be in the peer certificate's SANs.
    /// Any ALPN list in `config` is replaced by `h2, http/1.1`.
    pub fn tls(mut config: rustls::ClientConfig) -> PeerClient {
        // hyper-rustls sets ALPN itself and refuses a preset list.
        config.alpn_protocols.clear();
        PeerClient::build(config, "https", None)
    }

    /// Like [`PeerClient::tls`], with connections made from `local` (the
    /// replica's own address, so peers and tests can tell replicas apart).
    pub fn tls_from(mut config: rustls::ClientConfig, local: Option<std::net::IpAddr>) -> PeerClient {
        config.alpn_protocols.clear();
        PeerClient::build(config, "https", local)
    }

    /// A plain-HTTP client (crate tests only; the server always uses [`PeerClient::tls`]).
    pub fn plain() -> PeerClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
        match config {
            Ok(c) => PeerClient::build(c, "http", None),
            // The ring provider always supports the default versions.
            Err(e) => panic!("ring provider lacks default TLS versions: {e}"),
        }
    }

    /// Whether this client speaks mutual TLS (the node's routes then
    /// expect a client certificate on every request).
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    fn build(config: rustls::ClientConfig, scheme: &'static str, local: Option<std::net::IpAddr>) -> PeerClient {
        let mut http_conn = HttpConnector::new();
        http_conn.set_local_address(local);
        http_conn.enforce_http(false);
        http_conn.set_nodelay(true);
        http_conn.set_connect_timeout(Some(Duration::from_secs(1)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http_conn);
        let pool = || {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(4)
                .build(connector.clone())
        };
        PeerClient { http: pool(), control: pool(), control_runtime: None, scheme, traffic: Arc::default() }
    }

    /// This client with the control plane's calls (and their connections)
    /// run on `runtime`, whichever runtime calls.
    pub fn on_control_runtime(mut self, runtime: tokio::runtime::Handle) -> PeerClient {
        self.control_runtime = Some(runtime);
        self
    }

    /// The bytes this client (and its clones) sent and received, by route.
    pub fn traffic(&self) -> Vec<(String, u64, u64)> {
        self.traffic.snapshot()
    }

    /// Posts `envelope` to `path` at `addr` and decodes the reply (at most
    /// [`codec::DECODE_LIMIT`] bytes).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned + Send + 'static>(
        &self,
        addr: &str,
        path: &str,
        envelope: &Envelope<Req>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        self.request(true, addr, path, envelope, timeout, ReplySize::Small).await
    }

    /// A call of the server's own routes (on the other pool, in the
    /// caller's task), with the reply size bound given.
    pub async fn call_with<Req: Serialize, Resp: DeserializeOwned + Send + 'static>(
        &self,
        addr: &str,
        path: &str,
        envelope: &Envelope<Req>,
        timeout: Duration,
        size: ReplySize,
    ) -> Result<Resp, CallError> {
        self.request(false, addr, path, envelope, timeout, size).await
    }

    async fn request<Req: Serialize, Resp: DeserializeOwned + Send + 'static>(
        &self,
        control: bool,
        addr: &str,
        path: &str,
        envelope: &Envelope<Req>,
        timeout: Duration,
        size: ReplySize,
    ) -> Result<Resp, CallError> {
        let limit = match size {
            ReplySize::Small => codec::DECODE_LIMIT,
            ReplySize::Large => codec::LARGE_DECODE_LIMIT,
        };
        let body = codec::encode(envelope)
            .map_err(|e| CallError::Request { addr: addr.to_string(), reason: e.to_string() })?;
        let sent = body.len() as u64;
        let request = http::Request::post(format!("{}://{addr}{path}", self.scheme))
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(FROM_HEADER, format!("{:x}", envelope.from))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Request { addr: addr.to_string(), reason: e.to_string() })?;
        let http = if control { self.control.clone() } else { self.http.clone() };
        let exchange = exchange(http, request, limit, timeout, self.traffic.clone(), sent, addr.into(), path.into());
        let (status, bytes) = match (&self.control_runtime, control) {
            (Some(runtime), true) => {
                tokio_util::task::AbortOnDropHandle::new(runtime.spawn(exchange)).await.map_err(|e| {
                    CallError::Unreachable { addr: addr.into(), reason: format!("the control runtime: {e}") }
                })??
            }
            _ => exchange.await?,
        };
        if !status.is_success() {
            return Err(CallError::Refused {
                addr: addr.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                reason: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            });
        }
        let decoded = match size {
            ReplySize::Small => codec::decode(&bytes),
            ReplySize::Large => codec::decode_large_off_runtime(bytes).await,
        };
        decoded.map_err(|e| CallError::Decode { addr: addr.to_string(), path: path.to_string(), reason: e.to_string() })
    }
}

/// Sends `request` on `http` and reads the reply (at most `limit` bytes)
/// within `timeout`; owns what it needs, so it can run on another runtime.
#[allow(clippy::too_many_arguments)] // one call's parts, each once
async fn exchange(
    http: Http,
    request: http::Request<Full<Bytes>>,
    limit: usize,
    timeout: Duration,
    traffic: Arc<Traffic>,
    sent: u64,
    addr: String,
    path: String,
) -> Result<(http::StatusCode, Bytes), CallError> {
    let unreachable = |e: &dyn std::fmt::Display| CallError::Unreachable { addr: addr.clone(), reason: e.to_string() };
    let exchange = async {
        let resp = http.request(request).await.map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), limit).collect().await.map_err(|e| unreachable(&e))?.to_bytes();
        traffic.add(&path, sent, bytes.len() as u64);
        Ok::<_, CallError>((status, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout { addr, path, timeout }),
    }
}
