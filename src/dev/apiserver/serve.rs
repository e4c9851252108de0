//! The stand-in's HTTPS accept loop: rustls (ring) with ALPN h2/http1.1,
//! client certificates requested but not required, the peer's chain put into
//! each request's extensions as [`PeerChain`], the router served by hyper's
//! auto (HTTP/1.1 or HTTP/2) connection builder. Stops on the token.
//! It authenticates nobody: `authn` decides what a chain means.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::pki::CertPair;

/// The client certificate chain a connection presented (leaf first).
#[derive(Debug, Clone)]
pub struct PeerChain(pub Arc<Vec<CertificateDer<'static>>>);

/// A TLS configuration that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("parsing PEM of {what}: {source}")]
    Pem {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("building TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("building the client-certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates (leaf first) from PEM.
pub fn certs_from_pem(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem { what, source })
}

/// A private key from PEM.
pub fn key_from_pem(
    pem: &str,
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|source| TlsConfigError::Pem { what, source })
}

/// Root store holding the certificates of a PEM bundle.
pub fn roots_from_pem(pem: &str, what: &'static str) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, what)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A server configuration that serves `serving` and requests (does not
/// require) client certificates signed by one of `client_cas`.
pub fn server_config(
    serving: &CertPair,
    client_cas: &[&str],
) -> Result<rustls::ServerConfig, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for pem in client_cas {
        for cert in certs_from_pem(pem, "client CA")? {
            roots.add(cert)?;
        }
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), ring())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(&serving.cert_pem, "serving certificate")?,
            key_from_pem(&serving.key_pem, "serving key")?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts connections until `shutdown`, each served on its own task.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "stand-in apiserver accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { serve_connection(acceptor, tcp, peer, router, shutdown).await });
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(error) => {
            tracing::debug!(%peer, %error, "stand-in apiserver TLS handshake failed");
            return;
        }
    };
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| PeerChain(Arc::new(c.to_vec())));
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            if let Some(chain) = &chain {
                req.extensions_mut().insert(chain.clone());
            }
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "stand-in apiserver connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {}
    }
}
