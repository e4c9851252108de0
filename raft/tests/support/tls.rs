//! A throwaway cluster CA from the project's own PKI (`tls::pki`) with one
//! certificate per replica, as the server issues them (common name = the
//! replica's name, SAN = its peer IP, server and client usage), and the
//! rustls configs a replica would use.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tls::pki::{Ca, LeafSpec, Usage};

pub struct Pki {
    ca: Ca,
}

/// A certificate chain and its key.
pub type Leaf = tls::CertKey;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    pub fn new() -> Pki {
        Pki { ca: Ca::new("test cluster CA").expect("ca") }
    }

    /// Replica `name`'s certificate, for its peer address `ip`.
    pub fn leaf(&self, name: &str, ip: IpAddr) -> Leaf {
        let sans = vec![ip.to_string()];
        let spec = LeafSpec { common_name: name, organizations: &[], sans: &sans, usage: Usage::ServerAndClient };
        let pair = self.ca.issue(&spec).expect("leaf cert");
        tls::CertKey::from_pair(&pair, name).expect("leaf parses")
    }

    pub fn ca(&self) -> CertificateDer<'static> {
        tls::pem::certs_from_pem(self.ca.cert_pem().as_bytes(), "test CA").expect("ca parses").remove(0)
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca()).expect("ca root");
        Arc::new(roots)
    }

    /// Server side: only clients with a certificate from the CA get in.
    pub fn server_config(&self, leaf: &Leaf) -> rustls::ServerConfig {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider()).build().expect("verifier");
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
            .expect("server cert");
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        cfg
    }

    /// Client side: trusts the CA, presents `leaf` (or nothing).
    pub fn client_config(&self, leaf: Option<&Leaf>) -> rustls::ClientConfig {
        let b = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots());
        match leaf {
            Some(l) => b.with_client_auth_cert(l.chain.clone(), l.key.clone_key()).expect("client cert"),
            None => b.with_no_client_auth(),
        }
    }
}
