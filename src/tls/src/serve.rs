//! The one TLS accept loop every listener uses (API port, peer port, the
//! dev-mode apiserver and simulated kubelets): TLS handshake with a
//! timeout, HTTP/1.1 or HTTP/2 per connection, the client's certificate
//! chain and address attached to every request, graceful shutdown. The
//! serving config can be swapped at runtime through [`TlsSource`].
//! [`ServeOptions`] carry what the operator tunes per listener: HTTP/2 on
//! or off and its stream limit, the chance of a GOAWAY after an HTTP/2
//! request, and caps on open connections and requests in flight ([`bind`]
//! adds SO_REUSEPORT). It does not authenticate anyone: handlers and
//! `auth` decide what a chain means.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
use tokio::sync::{Notify, Semaphore};
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
pub struct TlsSource {
    current: Arc<ArcSwap<ServerConfig>>,
    /// Configs for connections to these local addresses that send no SNI.
    by_local_ip: Arc<ArcSwap<HashMap<IpAddr, Arc<ServerConfig>>>>,
}

impl TlsSource {
    /// Wraps `config`; ALPN `h2`, `http/1.1` is set when it has none.
    pub fn new(config: ServerConfig) -> TlsSource {
        TlsSource {
            current: Arc::new(ArcSwap::from_pointee(with_alpn(config))),
            by_local_ip: Arc::new(ArcSwap::from_pointee(HashMap::new())),
        }
    }

    /// The config new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Swaps the config for new connections; existing ones keep theirs.
    pub fn replace(&self, config: ServerConfig) {
        self.current.store(Arc::new(with_alpn(config)));
    }

    /// Sets the configs for connections to a local address without SNI.
    pub fn set_local_ip_configs(&self, configs: HashMap<IpAddr, Arc<ServerConfig>>) {
        self.by_local_ip.store(Arc::new(configs));
    }

    /// The config for a connection to `local` asking for `server_name`.
    pub fn for_connection(&self, server_name: Option<&str>, local: IpAddr) -> Arc<ServerConfig> {
        if server_name.is_none()
            && let Some(c) = self.by_local_ip.load().get(&local)
        {
            return c.clone();
        }
        self.current()
    }

    fn picks_by_local_ip(&self) -> bool {
        !self.by_local_ip.load().is_empty()
    }
}

/// Caps of one listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once (handshakes included); further ones wait
    /// in the listen backlog until one closes.
    pub max_connections: Option<usize>,
    /// Requests served at once; more are answered 429 with `Retry-After: 1`.
    pub max_requests_in_flight: Option<usize>,
}

/// What the operator tunes per listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Serve HTTP/2 (ALPN `h2`); `false`: HTTP/1.1 only.
    pub http2: bool,
    /// Concurrent HTTP/2 streams per connection; `None`: hyper's default.
    pub http2_max_streams: Option<u32>,
    /// How many streams a client may reset before this side accepted them
    /// before the connection is closed (h2's guard against the "rapid
    /// reset" attack); `None`: h2's default of 20.
    pub http2_max_pending_accept_reset_streams: Option<usize>,
    /// Chance, per HTTP/2 request, that the connection then gets a GOAWAY
    /// (the client reconnects, possibly to another replica).
    pub goaway_chance: f64,
    pub limits: ServeLimits,
    /// How long requests in flight may finish once shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            http2: true,
            http2_max_streams: None,
            http2_max_pending_accept_reset_streams: None,
            goaway_chance: 0.0,
            limits: ServeLimits::default(),
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// Binds a listener on `addr`, with SO_REUSEPORT when asked
/// (`--permit-port-sharing`). SO_REUSEADDR is always set, as Go (and so
/// metrics-server) and tokio set it on every listener: a restart does not
/// wait for the kernel to release connections in TIME_WAIT.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(1024)
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
    serve_with(listener, tls, app, ServeOptions::default(), shutdown).await
}

/// [`serve`] with the operator's [`ServeOptions`].
pub async fn serve_with(
    listener: TcpListener,
    tls: TlsSource,
    app: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    http.http2().timer(TokioTimer::new());
    if let Some(n) = options.http2_max_streams {
        http.http2().max_concurrent_streams(n);
    }
    if let Some(n) = options.http2_max_pending_accept_reset_streams {
        http.http2().max_pending_accept_reset_streams(n);
    }
    if !options.http2 {
        http = http.http1_only();
    }
    let shared = Arc::new(Shared {
        http,
        in_flight: options.limits.max_requests_in_flight.map(|n| Arc::new(Semaphore::new(n.max(1)))),
        goaway_chance: options.goaway_chance,
        drain_timeout: options.drain_timeout,
    });
    let connections = options.limits.max_connections.map(|n| Arc::new(Semaphore::new(n.max(1))));
    let tracker = TaskTracker::new();
    tracing::debug!(addr = %local, "serving TLS");
    loop {
        let slot = match &connections {
            None => None,
            Some(sem) => tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = sem.clone().acquire_owned() => permit.ok(),
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                let conn = connection(tcp, remote, tls.clone(), app.clone(), shared.clone(), shutdown.clone());
                tracker.spawn(async move {
                    conn.await;
                    drop(slot);
                });
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
    if tokio::time::timeout(options.drain_timeout + Duration::from_secs(1), tracker.wait()).await.is_err() {
        tracing::warn!(addr = %local, open = tracker.len(), "connections still open after drain");
    }
    tracing::debug!(addr = %local, "stopped serving");
    Ok(())
}

/// What every connection of one listener shares.
struct Shared {
    http: auto::Builder<TokioExecutor>,
    in_flight: Option<Arc<Semaphore>>,
    goaway_chance: f64,
    drain_timeout: Duration,
}

/// The answer past the in-flight cap: a Kubernetes `TooManyRequests` Status.
fn too_many_requests() -> http::Response<axum::body::Body> {
    const BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","code":429}"#;
    let mut r = http::Response::new(axum::body::Body::from(BODY));
    *r.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    h.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    r
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
    tls: TlsSource,
    app: Router,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp.local_addr().map(|a| a.ip()).ok();
    let handshake = async {
        match local_ip.filter(|_| tls.picks_by_local_ip()) {
            None => tokio_rustls::TlsAcceptor::from(tls.current()).accept(tcp).await,
            Some(ip) => {
                let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
                let config = tls.for_connection(start.client_hello().server_name(), ip);
                start.into_stream(config).await
            }
        }
    };
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake) => r,
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
    let goaway = Arc::new(Notify::new());
    let (in_flight, chance, go) = (shared.in_flight.clone(), shared.goaway_chance, goaway.clone());
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let ext = req.extensions_mut();
        ext.insert(RemoteAddr(remote));
        if let Some(peer) = &peer {
            ext.insert(peer.clone());
        }
        let permit = in_flight.as_ref().map(|sem| sem.clone().try_acquire_owned());
        let send_goaway = chance > 0.0 && req.version() == http::Version::HTTP_2 && fastrand::f64() < chance;
        let (app, go) = (app.clone(), go.clone());
        async move {
            let response = match permit {
                Some(Err(_)) => Ok(too_many_requests()),
                Some(Ok(_permit)) => app.oneshot(req).await,
                None => app.oneshot(req).await,
            };
            if send_goaway {
                go.notify_one();
            }
            response
        }
    });
    let conn = shared.http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = goaway.notified(), if !draining => {
                // GOAWAY: the client finishes its open streams and reconnects.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(shared.drain_timeout, conn.as_mut()).await {
                    Ok(r) => break r,
                    Err(_) => {
                        tracing::debug!(%remote, "connection cut after drain timeout");
                        return;
                    }
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}
