//! A stand-in for the metrics server behind the aggregation proxy: mutual
//! TLS that requires a certificate from the front-proxy CA, an echo of
//! every request it receives, and a fixed NodeMetricsList for `kubectl top`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterSpec;
use tls::pki::Ca;
use tls::{PeerCertificates, TlsPolicy, TlsSource};

/// What the backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    pub headers: Vec<(String, String)>,
    pub peer_cn: Option<String>,
}

impl Seen {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

#[derive(Clone)]
struct BackendState {
    seen: Arc<Mutex<Vec<Seen>>>,
    nodes: Arc<Vec<String>>,
}

pub struct Backend {
    pub addr: SocketAddr,
    /// The CA that signed the backend's serving certificate (for `caBundle`).
    pub ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl Backend {
    /// Serves on `ip` (port 0), trusting client certificates from `front_proxy_ca_pem`.
    pub async fn start(ip: IpAddr, front_proxy_ca_pem: &str, spec: &ClusterSpec) -> Backend {
        let ca = Ca::new("backend-ca").expect("ca");
        let serving =
            ca.issue_server("metrics-server", &["metrics-server.kube-system.svc".to_string()]).expect("serving cert");
        let chain = tls::pem::certs_from_pem(serving.cert_pem.as_bytes(), "backend").expect("chain");
        let key = tls::pem::key_from_pem(serving.key_pem.as_bytes(), "backend").expect("key");
        let tls = tls::mutual_tls_server_config(chain, key, front_proxy_ca_pem.as_bytes(), &TlsPolicy::default())
            .expect("backend tls config");
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0)).await.expect("backend binds");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state =
            BackendState { seen: seen.clone(), nodes: Arc::new(spec.nodes.iter().map(|n| n.name.clone()).collect()) };
        let app = Router::new().fallback(handle).with_state(state);
        let stop = CancellationToken::new();
        tokio::spawn(tls::serve(listener, TlsSource::new(tls), app, stop.clone()));
        Backend { addr, ca_pem: ca.cert_pem().to_string(), seen, _stop: stop.drop_guard() }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().iter_common_name().next()?.as_str().ok()?.to_string())
}

async fn handle(State(state): State<BackendState>, req: Request) -> Response {
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        version: req.version(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        peer_cn: req.extensions().get::<PeerCertificates>().and_then(|c| common_name(c.0.first()?)),
    };
    state.seen.lock().expect("lock").push(seen.clone());
    if seen.path == "/apis/metrics.k8s.io/v1beta1/nodes" {
        let items: Vec<Value> = state
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "metadata": {"name": n, "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
                    "usage": {"cpu": "250m", "memory": "1Gi"},
                })
            })
            .collect();
        let body =
            json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items});
        return ([(http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    let body = json!({"path": seen.path, "query": seen.query, "peer_cn": seen.peer_cn});
    let mut resp = (http::StatusCode::IM_A_TEAPOT, body.to_string()).into_response();
    resp.headers_mut().insert("warning", http::HeaderValue::from_static("299 - \"echo backend\""));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}
