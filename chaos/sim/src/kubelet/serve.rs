//! TLS and sockets for the simulated kubelets: the serving configurations,
//! and one accept loop per node that closes and reopens its listener as the
//! node goes down and up, hands each connection to hyper (HTTP/1.1 and h2 by
//! ALPN) and drops connections when the node goes down or the fleet stops.
//! What a request gets back is `node`'s business, not this module's.
//!
//! The fleet has its own accept loop rather than a general serving helper
//! because its faults act on sockets: closing a listener while keeping the
//! node, dropping live connections, and swapping certificates per node.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::net::SocketAddr;

use super::FleetError;
use super::node::{ConnInfo, NodeState, handle};
use super::partition::BlockMode;
use super::scrape_log::ScrapeOutcome;
use tls::pki::CertPair;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before trying again when the listener cannot be reopened.
const REBIND_PAUSE: Duration = Duration::from_millis(100);

/// The client-certificate policy: optional certificates from `client_ca_pem`
/// (a presented certificate must verify), or none asked for.
pub(crate) fn client_verifier(
    provider: &Arc<CryptoProvider>,
    client_ca_pem: Option<&str>,
) -> Result<Arc<dyn ClientCertVerifier>, FleetError> {
    let Some(pem) = client_ca_pem else {
        return Ok(WebPkiClientVerifier::no_client_auth());
    };
    let bad = |reason: String| FleetError::ClientCa { reason };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(format!("reading PEM: {e}")))?;
        roots.add(cert).map_err(|e| bad(format!("adding certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the PEM".to_string()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// Resumable TLS sessions shared by all of a fleet's normal certificates:
/// one cache instead of rustls' default 256-entry cache per node, which
/// would be most of a node's memory.
pub(crate) fn shared_sessions() -> Arc<dyn StoresServerSessions> {
    ServerSessionMemoryCache::new(4096)
}

/// A serving configuration for `node` with the given certificate; resumable
/// sessions go to `sessions`, or to a cache of its own when `None` (so a
/// swapped-in certificate is never skipped by resuming an older session).
pub(crate) fn server_config(
    node: &str,
    provider: &Arc<CryptoProvider>,
    verifier: &Arc<dyn ClientCertVerifier>,
    pair: &CertPair,
    sessions: Option<&Arc<dyn StoresServerSessions>>,
) -> Result<Arc<ServerConfig>, FleetError> {
    let bad = |reason: String| FleetError::Tls { node: node.to_string(), reason };
    let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("reading certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| bad(format!("reading key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let Some(sessions) = sessions {
        config.session_storage = sessions.clone();
    }
    Ok(Arc::new(config))
}

/// Runs `node`'s kubelet until `stop`: accepts while the node should be up,
/// closes the listener and drops every connection while it is down.
pub(crate) async fn run_node(
    node: Arc<NodeState>,
    mut listener: Option<TcpListener>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let mut want_up = node.want_up.subscribe();
    loop {
        if !*want_up.borrow_and_update() {
            listener = None;
            node.listening.send_replace(false);
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = want_up.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(node.addr).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(node = %node.name, addr = %node.addr, %error, "simulated kubelet cannot listen again; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(REBIND_PAUSE) => {}
                    }
                    continue;
                }
            },
        };
        node.listening.send_replace(true);
        let connections = stop.child_token();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = want_up.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*want_up.borrow() {
                        connections.cancel();
                        break;
                    }
                }
                accepted = current.accept() => match accepted {
                    Ok((tcp, client)) => {
                        let _ = tcp.set_nodelay(true);
                        tracker.spawn(serve_connection(node.clone(), tcp, client, connections.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off a little.
                        tracing::debug!(node = %node.name, %error, "simulated kubelet accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
        // `current` is dropped here: the port refuses connections from now on.
    }
}

/// Serves one connection until the client closes it or `closed` fires;
/// a connection from a blocked source (see `partition`) is turned away,
/// and cut when its source becomes blocked.
async fn serve_connection(node: Arc<NodeState>, tcp: TcpStream, client: SocketAddr, closed: CancellationToken) {
    let shared = node.shared.clone();
    let name = node.name.clone();
    let blocks = &shared.blocks;
    let mut block_changes = blocks.subscribe();
    if let Some(mode) = blocks.mode_at(client.ip(), &name) {
        let now = super::node::now_nanos();
        match mode {
            BlockMode::Refuse => node.log_scrape(now, Some(client), ScrapeOutcome::Refused),
            BlockMode::Blackhole => {
                node.log_scrape(now, Some(client), ScrapeOutcome::Blackholed);
                // Hold the socket unread until the block is lifted or the node goes.
                loop {
                    tokio::select! {
                        _ = closed.cancelled() => break,
                        changed = block_changes.changed() => {
                            if changed.is_err() || blocks.mode_at(client.ip(), &name).is_none() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        drop(tcp);
        return;
    }
    let acceptor = TlsAcceptor::from(node.tls.load_full());
    let tls = tokio::select! {
        _ = closed.cancelled() => return,
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(node = %node.name, %error, "TLS handshake with simulated kubelet failed");
                return;
            }
            Err(_) => return,
        },
    };
    let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|certs| !certs.is_empty());
    let conn = ConnInfo { client_cert, client: Some(client), closed: closed.clone() };
    let service = hyper::service::service_fn(move |req| {
        let node = node.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&node, &conn, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let serving = builder.serve_connection(TokioIo::new(tls), service);
    let blocked = async {
        loop {
            if block_changes.changed().await.is_err() {
                return std::future::pending().await;
            }
            if blocks.mode_at(client.ip(), &name).is_some() {
                return;
            }
        }
    };
    tokio::select! {
        _ = closed.cancelled() => {}
        _ = blocked => {}
        _ = serving => {}
    }
}
