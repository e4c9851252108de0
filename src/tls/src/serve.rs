//! The one TLS accept loop every listener uses (API port, peer port, the
//! dev-mode apiserver and simulated kubelets): TLS handshake with a
//! timeout, HTTP/1.1 or HTTP/2 per connection, the client's certificate
//! chain and address attached to every request, graceful shutdown. The
//! serving config can be swapped at runtime through [`TlsSource`]. It does
//! not authenticate anyone: handlers and `auth` decide what a chain means.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client may take to send request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may run after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain the client presented (leaf first). Absent from
/// the request extensions when the client presented none.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// The client's TCP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// A swappable server config: clones share it; [`TlsSource::replace`]
/// affects connections accepted afterwards.
#[derive(Debug, Clone)]
pub struct TlsSource(Arc<ArcSwap<ServerConfig>>);

impl TlsSource {
    /// Wraps `config`; ALPN `h2`, `http/1.1` is set when it has none.
    pub fn new(config: ServerConfig) -> TlsSource {
        TlsSource(Arc::new(ArcSwap::from_pointee(with_alpn(config))))
    }

    /// The config new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.0.load_full()
    }

    /// Swaps the config for new connections; existing ones keep theirs.
    pub fn replace(&self, config: ServerConfig) {
        self.0.store(Arc::new(with_alpn(config)));
    }
}

fn with_alpn(mut config: ServerConfig) -> ServerConfig {
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = super::config::alpn_protocols();
    }
    config
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled, then
/// stops accepting and gives in-flight requests [`DRAIN_TIMEOUT`] to finish.
/// Accept errors (such as running out of file descriptors) are logged and
/// retried; the loop only ends on shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: TlsSource,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
    let tracker = TaskTracker::new();
    tracing::debug!(addr = %local, "serving TLS");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                let conn = connection(tcp, remote, tls.current(), app.clone(), http.clone(), shutdown.clone());
                tracker.spawn(conn);
            }
            Err(error) if is_per_connection(&error) => {
                tracing::debug!(addr = %local, %error, "accept failed for one connection");
            }
            Err(error) => {
                tracing::warn!(addr = %local, %error, "accept failed; backing off");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    // Connections drain on their own bound; this one only guards against a
    // task that ignores it.
    if tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), tracker.wait()).await.is_err() {
        tracing::warn!(addr = %local, open = tracker.len(), "connections still open after drain");
    }
    tracing::debug!(addr = %local, "stopped serving");
    Ok(())
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(error.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted)
}

/// One connection: handshake, then HTTP until the client leaves or
/// shutdown has drained it.
async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    config: Arc<ServerConfig>,
    app: Router,
    http: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .map(|chain| PeerCertificates(Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect())));
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let ext = req.extensions_mut();
        ext.insert(RemoteAddr(remote));
        if let Some(peer) = &peer {
            ext.insert(peer.clone());
        }
        app.clone().oneshot(req)
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(%remote, "connection cut after drain timeout");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}
