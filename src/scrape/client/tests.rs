//! Tests of the kubelet client against real TLS and plain HTTP servers.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use sim::addr::Block;
use tls::pki::Ca;
use tls::{TlsSource, api_server_config, serve};

/// What the kubelet saw: the Authorization header and the client chain.
async fn echo(req: Request) -> String {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let certs = req.extensions().get::<tls::PeerCertificates>().map(|c| c.0.len()).unwrap_or(0);
    format!("auth={auth} certs={certs} version={:?}", req.version())
}

fn kubelet_app() -> Router {
    Router::new()
        .route("/metrics/resource", get(echo))
        .route("/big", get(|| async { "x".repeat(4096) }))
        .route(
            "/big-stream",
            get(|| async {
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 256])));
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/fail", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .route(
            "/port",
            get(|req: Request| async move {
                req.extensions().get::<tls::RemoteAddr>().map(|r| r.0.port()).unwrap_or(0).to_string()
            }),
        )
        .route("/hang", get(std::future::pending::<String>))
}

struct Kubelet {
    addr: SocketAddr,
    ca: Ca,
    stop: CancellationToken,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn tls_kubelet(ip: IpAddr) -> Kubelet {
    tls_kubelet_serving(ip, kubelet_app()).await
}

/// A kubelet on `ip` serving `app` over TLS, with a CA of its own.
async fn tls_kubelet_serving(ip: IpAddr, app: Router) -> Kubelet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = Ca::new("kubelet-ca").unwrap();
    let ck = CertKey::from_pair(&ca.issue_server("node-1", &[ip.to_string()]).unwrap(), "kubelet").unwrap();
    let config = api_server_config(ck.chain, ck.key, &TlsPolicy::default()).unwrap();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, TlsSource::new(config), app, stop.clone()));
    Kubelet { addr, ca, stop }
}

fn url(scheme: &str, addr: SocketAddr, path: &str) -> Uri {
    format!("{scheme}://{addr}{path}").parse().unwrap()
}

fn verifying(ca: &Ca) -> KubeletClientConfig {
    KubeletClientConfig::new(KubeletTls::CaPem(ca.cert_pem().as_bytes().to_vec()))
}

#[tokio::test]
async fn verified_request_over_h2_carries_token_and_client_certificate() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, kubelet.ca.cert_pem()).unwrap();
    let client_pair = kubelet.ca.issue_client("system:metrics-server", &[]).unwrap();
    let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    std::fs::write(&cert, &client_pair.cert_pem).unwrap();
    std::fs::write(&key, &client_pair.key_pem).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret-1\n").unwrap();

    let mut config = KubeletClientConfig::new(KubeletTls::CaFile(ca_file));
    config.client_cert = Some((cert, key));
    config.token_file = Some(token);
    let client = KubeletClient::new(config).unwrap();
    let body = client.get(&url("https", kubelet.addr, "/metrics/resource"), "node-1").await.unwrap();
    assert_eq!(&body[..], b"auth=Bearer secret-1 certs=1 version=HTTP/2.0");
}

#[tokio::test]
async fn sequential_requests_reuse_one_pooled_connection() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let client = KubeletClient::new(verifying(&kubelet.ca)).unwrap();
    let u = url("https", kubelet.addr, "/port");
    let mut ports = Vec::new();
    for _ in 0..5 {
        ports.push(client.get(&u, "node-1").await.unwrap());
    }
    assert!(ports.iter().all(|p| p == &ports[0]), "new connection per request: {ports:?}");
}

#[tokio::test]
async fn wrong_ca_fails_as_tls_error() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let other = Ca::new("other").unwrap();
    let client = KubeletClient::new(verifying(&other)).unwrap();
    let err = client.get(&url("https", kubelet.addr, "/metrics/resource"), "node-1").await.unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
}

#[tokio::test]
async fn insecure_mode_accepts_an_unknown_ca() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let client = KubeletClient::new(KubeletClientConfig::new(KubeletTls::Insecure)).unwrap();
    let body = client.get(&url("https", kubelet.addr, "/metrics/resource"), "node-1").await.unwrap();
    assert!(body.starts_with(b"auth=- certs=0"), "{body:?}");
}

#[tokio::test]
async fn rotated_token_is_sent_on_the_next_request() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "old").unwrap();
    let mut config = verifying(&kubelet.ca);
    config.token_file = Some(token.clone());
    config.token_recheck = Duration::ZERO;
    let client = KubeletClient::new(config).unwrap();
    let u = url("https", kubelet.addr, "/metrics/resource");
    assert!(client.get(&u, "node-1").await.unwrap().starts_with(b"auth=Bearer old "));
    std::fs::write(&token, "new").unwrap();
    assert!(client.get(&u, "node-1").await.unwrap().starts_with(b"auth=Bearer new "));
    // An unreadable token file keeps the last good token.
    std::fs::remove_file(&token).unwrap();
    assert!(client.get(&u, "node-1").await.unwrap().starts_with(b"auth=Bearer new "));
}

#[tokio::test]
async fn token_is_not_reread_before_the_recheck_interval() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "old").unwrap();
    let mut config = verifying(&kubelet.ca);
    config.token_file = Some(token.clone());
    config.token_recheck = Duration::from_secs(3600);
    let client = KubeletClient::new(config).unwrap();
    std::fs::write(&token, "new").unwrap();
    let body = client.get(&url("https", kubelet.addr, "/metrics/resource"), "n").await.unwrap();
    assert!(body.starts_with(b"auth=Bearer old "), "{body:?}");
}

#[tokio::test]
async fn bodies_over_the_cap_fail_as_too_large() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let mut config = verifying(&kubelet.ca);
    config.max_body_bytes = 1024;
    let client = KubeletClient::new(config).unwrap();
    for path in ["/big", "/big-stream"] {
        let err = client.get(&url("https", kubelet.addr, path), "node-1").await.unwrap_err();
        assert_eq!(err, ScrapeError::TooLarge(1024), "{path}");
    }
    assert!(client.get(&url("https", kubelet.addr, "/metrics/resource"), "node-1").await.is_ok());
}

#[tokio::test]
async fn slow_kubelet_fails_as_timeout_within_the_bound() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let mut config = verifying(&kubelet.ca);
    config.request_timeout = Duration::from_millis(300);
    let client = KubeletClient::new(config).unwrap();
    let started = Instant::now();
    let err = client.get(&url("https", kubelet.addr, "/hang"), "node-1").await.unwrap_err();
    assert_eq!(err, ScrapeError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn non_200_fails_with_metrics_server_message() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let client = KubeletClient::new(verifying(&kubelet.ca)).unwrap();
    let err = client.get(&url("https", kubelet.addr, "/fail"), "node-1").await.unwrap_err();
    assert_eq!(err, ScrapeError::Status(500));
    assert_eq!(err.to_string(), "request failed, status: \"500 Internal Server Error\"");
}

#[tokio::test]
async fn refused_connection_fails_as_connect_error() {
    let block = Block::acquire().unwrap();
    let listener = std::net::TcpListener::bind((IpAddr::from(block.kubelet(1)), 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = KubeletClient::new(KubeletClientConfig::new(KubeletTls::Insecure)).unwrap();
    let err = client.get(&url("https", addr, "/metrics/resource"), "node-2").await.unwrap_err();
    assert_eq!(err.reason(), "connect", "{err}");
}

#[tokio::test]
async fn completely_insecure_mode_speaks_plain_http_without_token() {
    let block = Block::acquire().unwrap();
    let listener = TcpListener::bind((IpAddr::from(block.kubelet(2)), 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, kubelet_app()).await });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret").unwrap();
    let mut config = KubeletClientConfig::new(KubeletTls::PlainHttp);
    config.token_file = Some(token);
    let client = KubeletClient::new(config).unwrap();
    let body = client.get(&url("http", addr, "/metrics/resource"), "node-3").await.unwrap();
    assert_eq!(&body[..], b"auth=- certs=0 version=HTTP/1.1");
    // The TLS client refuses plain http URLs rather than downgrading.
    let tls_client = KubeletClient::new(KubeletClientConfig::new(KubeletTls::Insecure)).unwrap();
    assert!(tls_client.get(&url("http", addr, "/metrics/resource"), "node-3").await.is_err());
    server.abort();
}

#[test]
fn missing_token_file_is_a_startup_error_naming_it() {
    let mut config = KubeletClientConfig::new(KubeletTls::Insecure);
    config.token_file = Some("/nonexistent/token".into());
    let err = KubeletClient::new(config).err().unwrap();
    assert!(err.to_string().contains("/nonexistent/token"), "{err}");
}

#[tokio::test]
async fn an_answer_carries_the_kubelets_clock_from_its_date_header() {
    let block = Block::acquire().unwrap();
    let kubelet = tls_kubelet(block.kubelet(0).into()).await;
    let client = KubeletClient::new(verifying(&kubelet.ca)).unwrap();
    let before = crate::model::clock::system_nanos();
    let dated = client.get_dated(&url("https", kubelet.addr, "/metrics/resource"), "node-1").await.unwrap();
    let after = crate::model::clock::system_nanos();
    let date = dated.date.expect("hyper's server sends Date, as Go's does");
    // Truncated to the second, so up to 1 s before the request.
    assert!(date > before - 1_000_000_000 && date <= after, "{before} {date} {after}");
}

#[tokio::test]
async fn reach_handshakes_without_a_request_and_fails_as_a_scrape_would() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let block = Block::acquire().unwrap();
    let ip: IpAddr = block.kubelet(0).into();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "ok" }
    });
    let kubelet = tls_kubelet_serving(ip, app).await;
    let (addr, ca) = (kubelet.addr, &kubelet.ca);
    let u = url("https", addr, "/metrics/resource");

    let client = KubeletClient::new(verifying(ca)).unwrap();
    client.reach(&u, "node-1").await.unwrap();
    client.reach(&u, "node-1").await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 0, "a reach sends no request");
    client.get(&u, "node-1").await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let wrong = KubeletClient::new(verifying(&Ca::new("other").unwrap())).unwrap();
    assert_eq!(wrong.reach(&u, "node-1").await.unwrap_err().reason(), "tls");

    // A port that accepts TCP but never answers the handshake: a timeout within the bound.
    let silent = std::net::TcpListener::bind((ip, 0)).unwrap();
    let mut quick = verifying(ca);
    quick.request_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = KubeletClient::new(quick).unwrap().reach(&url("https", silent.local_addr().unwrap(), "/"), "n").await;
    assert_eq!(err.unwrap_err().reason(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    drop(kubelet);
    let closed = std::net::TcpListener::bind((IpAddr::from(block.kubelet(1)), 0)).unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    assert_eq!(client.reach(&url("https", gone, "/"), "n").await.unwrap_err().reason(), "connect");
    let plain = KubeletClient::new(KubeletClientConfig::new(KubeletTls::PlainHttp)).unwrap();
    assert_eq!(plain.reach(&url("http", gone, "/"), "n").await.unwrap_err().reason(), "connect");
}
