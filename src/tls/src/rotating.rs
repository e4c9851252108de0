//! Mutual-TLS material that can change while connections are made: a
//! trusted CA bundle and this side's certificate, swapped as one. The
//! server side is a [`TlsSource`] whose config is rebuilt on every swap;
//! the client side is one `ClientConfig` (built once, as long-lived clients
//! such as the Raft peer client need) whose certificate resolver and server
//! verifier read the current material at each handshake. Deciding what to
//! trust when is the caller's job.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::config::{CertKey, mutual_tls_server_config};
use super::pem::roots_from_pem;
use super::{TlsError, TlsPolicy, TlsSource};

/// One consistent set: what is trusted and what is presented.
struct Material {
    certified: Arc<CertifiedKey>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material").finish_non_exhaustive()
    }
}

/// Swappable mutual-TLS material for one listener and its clients.
#[derive(Debug, Clone)]
pub struct RotatingTls {
    current: Arc<ArcSwap<Material>>,
    server: TlsSource,
    policy: TlsPolicy,
}

fn material(ca_bundle_pem: &[u8], ck: &CertKey, policy: &TlsPolicy) -> Result<Material, TlsError> {
    let provider = policy.provider();
    let roots = Arc::new(roots_from_pem(ca_bundle_pem, "the peer CA bundle")?);
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|source| TlsError::Verifier { what: "the peer client".into(), source })?;
    let key = provider
        .key_provider
        .load_private_key(ck.key.clone_key())
        .map_err(|source| TlsError::Rustls { what: "the peer key".into(), source })?;
    Ok(Material { certified: Arc::new(CertifiedKey::new(ck.chain.clone(), key)), server_verifier })
}

impl RotatingTls {
    /// Trusts the CAs in `ca_bundle_pem` and presents `ck`, on both sides.
    pub fn new(ca_bundle_pem: &[u8], ck: CertKey, policy: &TlsPolicy) -> Result<RotatingTls, TlsError> {
        let current = material(ca_bundle_pem, &ck, policy)?;
        let server = mutual_tls_server_config(ck.chain, ck.key, ca_bundle_pem, policy)?;
        Ok(RotatingTls {
            current: Arc::new(ArcSwap::from_pointee(current)),
            server: TlsSource::new(server),
            policy: policy.clone(),
        })
    }

    /// Swaps both sides to trust `ca_bundle_pem` and present `ck`; handshakes
    /// that start afterwards use them, established connections are kept.
    /// On error nothing changes.
    pub fn update(&self, ca_bundle_pem: &[u8], ck: CertKey) -> Result<(), TlsError> {
        let next = material(ca_bundle_pem, &ck, &self.policy)?;
        let server = mutual_tls_server_config(ck.chain, ck.key, ca_bundle_pem, &self.policy)?;
        self.current.store(Arc::new(next));
        self.server.replace(server);
        Ok(())
    }

    /// The server side, for `serve`.
    pub fn server(&self) -> TlsSource {
        self.server.clone()
    }

    /// The certificate chain presented now (leaf first).
    pub fn presented(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().certified.cert.clone()
    }

    /// A client config that always uses the current material. ALPN is left
    /// empty for the connector to fill. Session resumption is off: a
    /// resumed session skips certificate checks, so it could outlive a CA
    /// this side has stopped trusting.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let dynamic = Arc::new(Dynamic { current: self.current.clone() });
        let mut config = ClientConfig::builder_with_provider(self.policy.provider())
            .with_protocol_versions(self.policy.versions())
            .map_err(|source| TlsError::Rustls { what: "the peer client".into(), source })?
            .dangerous()
            .with_custom_certificate_verifier(dynamic.clone())
            .with_client_cert_resolver(dynamic);
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }
}

/// The client config's view of the current material.
#[derive(Debug)]
struct Dynamic {
    current: Arc<ArcSwap<Material>>,
}

impl ResolvesClientCert for Dynamic {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ServerCertVerifier for Dynamic {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let current = self.current.load();
        current.server_verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current.load().server_verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current.load().server_verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.load().server_verifier.supported_verify_schemes()
    }
}
