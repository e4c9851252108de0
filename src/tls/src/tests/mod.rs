//! Tests of the accept loop and the server configs, through real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::pki::Ca;
use sim::addr::Block;

mod limits;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A handler that reports what the accept loop attached to the request.
async fn whoami(req: Request) -> String {
    let peer = req.extensions().get::<PeerCertificates>().map(|p| p.0.len()).unwrap_or(0);
    let remote = req.extensions().get::<RemoteAddr>().map(|r| r.0.ip().to_string()).unwrap_or_default();
    format!("certs={peer} remote={remote} version={:?}", req.version())
}

pub(crate) fn app() -> Router {
    Router::new().route("/whoami", get(whoami))
}

/// One GET over a fresh TLS connection, HTTP/2 or HTTP/1.1 as asked.
pub(crate) async fn fetch(
    addr: SocketAddr,
    mut config: ClientConfig,
    h2: bool,
    path: &str,
) -> Result<(u16, String), BoxError> {
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    // Connect from the server's own address so RemoteAddr is predictable.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(addr.ip(), 0))?;
    let tcp = socket.connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    let io = TokioIo::new(tls);
    let req = http::Request::get(format!("https://{addr}{path}")).body(Empty::<Bytes>::new())?;
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A CA, a server certificate for `ip` and a client certificate.
pub(crate) struct Pki {
    pub ca: Ca,
    pub server: CertKey,
    pub client: CertKey,
}

pub(crate) fn pki(ip: std::net::IpAddr) -> Pki {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = Ca::new("test-ca").unwrap();
    let server = CertKey::from_pair(&ca.issue_server("server", &[ip.to_string()]).unwrap(), "server").unwrap();
    let client = CertKey::from_pair(&ca.issue_client("front-proxy-client", &[]).unwrap(), "client").unwrap();
    Pki { ca, server, client }
}

pub(crate) async fn start(ip: std::net::IpAddr, tls: TlsSource) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(serve(listener, tls, app(), token.clone()));
    (addr, token)
}

#[tokio::test]
async fn api_port_passes_client_chain_to_handlers_over_h2_and_http1() {
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let p = pki(ip);
    let policy = TlsPolicy::default();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let (addr, token) = start(ip, TlsSource::new(server)).await;
    let ca = p.ca.cert_pem().as_bytes();

    for h2 in [true, false] {
        let with_cert = config::verifying_client_config(ca, Some(p.client.clone()), &policy).unwrap();
        let (status, body) = fetch(addr, with_cert, h2, "/whoami").await.unwrap();
        assert_eq!(status, 200);
        assert!(body.starts_with(&format!("certs=1 remote={ip} ")), "h2={h2}: {body}");
        let version = if h2 { "HTTP/2.0" } else { "HTTP/1.1" };
        assert!(body.ends_with(version), "h2={h2}: {body}");

        let without = config::verifying_client_config(ca, None, &policy).unwrap();
        let (status, body) = fetch(addr, without, h2, "/whoami").await.unwrap();
        assert_eq!(status, 200);
        assert!(body.starts_with(&format!("certs=0 remote={ip} ")), "h2={h2}: {body}");
    }
    token.cancel();
}

/// Presents a certificate with a key that does not belong to it.
#[derive(Debug)]
struct Forged(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Forged {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn api_port_rejects_client_that_cannot_prove_its_key() {
    // Any chain is accepted, but a client certificate presented with
    // someone else's key fails the handshake signature check.
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let p = pki(ip);
    let other = pki(ip);
    let policy = TlsPolicy::default();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let (addr, token) = start(ip, TlsSource::new(server)).await;
    let key =
        rustls::crypto::ring::default_provider().key_provider.load_private_key(other.client.key.clone_key()).unwrap();
    let forged = Arc::new(rustls::sign::CertifiedKey::new(p.client.chain.clone(), key));
    let roots = Arc::new(pem::roots_from_pem(p.ca.cert_pem().as_bytes(), "ca").unwrap());
    let client =
        ClientConfig::builder().with_root_certificates(roots).with_client_cert_resolver(Arc::new(Forged(forged)));
    assert!(fetch(addr, client, true, "/whoami").await.is_err(), "forged client certificate accepted");
    token.cancel();
}

#[tokio::test]
async fn peer_port_refuses_client_without_certificate_from_its_ca() {
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let p = pki(ip);
    let stranger = pki(ip);
    let policy = TlsPolicy::default();
    let ca = p.ca.cert_pem().as_bytes();
    let server = mutual_tls_server_config(p.server.chain.clone(), p.server.key.clone_key(), ca, &policy).unwrap();
    let (addr, token) = start(ip, TlsSource::new(server)).await;

    let member = mutual_tls_client_config(ca, p.client.chain.clone(), p.client.key.clone_key()).unwrap();
    let (status, body) = fetch(addr, member, true, "/whoami").await.unwrap();
    assert_eq!((status, body.starts_with("certs=1")), (200, true), "{body}");

    let anonymous = config::verifying_client_config(ca, None, &policy).unwrap();
    assert!(fetch(addr, anonymous, true, "/whoami").await.is_err());
    let foreign = mutual_tls_client_config(ca, stranger.client.chain.clone(), stranger.client.key.clone_key()).unwrap();
    assert!(fetch(addr, foreign, false, "/whoami").await.is_err());
    token.cancel();
}

#[tokio::test]
async fn replaced_config_is_used_by_new_connections() {
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let first = pki(ip);
    let second = pki(ip);
    let policy = TlsPolicy::default();
    let source =
        TlsSource::new(api_server_config(first.server.chain.clone(), first.server.key.clone_key(), &policy).unwrap());
    let (addr, token) = start(ip, source.clone()).await;
    let trust_second = config::verifying_client_config(second.ca.cert_pem().as_bytes(), None, &policy).unwrap();
    assert!(fetch(addr, trust_second.clone(), true, "/whoami").await.is_err());
    source.replace(api_server_config(second.server.chain.clone(), second.server.key.clone_key(), &policy).unwrap());
    let (status, _) = fetch(addr, trust_second, true, "/whoami").await.unwrap();
    assert_eq!(status, 200);
    token.cancel();
}

#[tokio::test]
async fn silent_client_does_not_block_others_and_shutdown_ends_serve() {
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let p = pki(ip);
    let policy = TlsPolicy::default();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let task = tokio::spawn(serve(listener, TlsSource::new(server), app(), token.clone()));
    // A client that connects and never says anything.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = config::verifying_client_config(p.ca.cert_pem().as_bytes(), None, &policy).unwrap();
    let (status, _) = fetch(addr, client, true, "/whoami").await.unwrap();
    assert_eq!(status, 200);
    token.cancel();
    // The silent connection's handshake is abandoned on shutdown.
    let done = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "serve did not stop: {done:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener still open");
}

mod rotating;
mod source;

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let block = Block::acquire().unwrap();
    let ip = block.aux(2).into();
    let p = pki(ip);
    let policy = TlsPolicy::default();
    let (entered_tx, mut entered) = tokio::sync::mpsc::channel::<()>(4);
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let app = {
        let release = release.clone();
        Router::new().route(
            "/slow",
            get(move || async move {
                let _ = entered_tx.send(()).await;
                let _permit = release.acquire().await;
                "done"
            }),
        )
    };
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let task = tokio::spawn(serve(listener, TlsSource::new(server), app, token.clone()));
    let client = config::verifying_client_config(p.ca.cert_pem().as_bytes(), None, &policy).unwrap();

    // One HTTP/2 and one HTTP/1.1 request in flight.
    let requests = [true, false].map(|h2| tokio::spawn(fetch(addr, client.clone(), h2, "/slow")));
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), entered.recv()).await.unwrap();
    }
    token.cancel();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "listener still open after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!task.is_finished(), "serve returned before its in-flight requests finished");
    release.add_permits(2);
    for request in requests {
        let (status, body) = request.await.unwrap().unwrap();
        assert_eq!((status, body.as_str()), (200, "done"));
    }
    let done = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "serve did not stop: {done:?}");
}
