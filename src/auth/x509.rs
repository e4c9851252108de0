//! Client certificate chains: parses CA bundles (PEM) and verifies a
//! presented chain against one, for the `ClientAuth` purpose, with the
//! intermediates taken from the presented chain; reads the subject (CN, O)
//! of a verified leaf. It must not decide who the user is (the authenticators
//! do) and never trusts a certificate it did not verify.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// A CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA bundle {source_name}: no PEM certificate found")]
    Empty { source_name: String },
    #[error("CA bundle {source_name}: bad PEM: {reason}")]
    BadPem { source_name: String, reason: String },
    #[error("CA bundle {source_name}: certificate {index} is not a usable trust anchor: {reason}")]
    BadAnchor { source_name: String, index: usize, reason: String },
    #[error("CA bundle {source_name}: building the verifier: {reason}")]
    Verifier { source_name: String, reason: String },
}

/// A presented chain was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no client certificate presented")]
    NoCertificate,
    #[error("certificate rejected by {ca}: {reason}")]
    Rejected { ca: String, reason: String },
    #[error("certificate accepted by {ca} but its subject could not be read: {reason}")]
    BadSubject { ca: String, reason: String },
}

/// A parsed CA bundle and the verifier built from it.
#[derive(Clone)]
pub struct CaBundle {
    /// Where the bundle came from (a file or ConfigMap key), for messages.
    name: String,
    /// The PEM text, to tell whether a reload changed anything.
    pem: Arc<str>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Subject of a verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSubject {
    /// Subject common name (the last CN attribute, as Go reads it).
    pub common_name: String,
    /// Subject organizations, in order.
    pub organizations: Vec<String>,
}

impl CaBundle {
    /// Parses a PEM bundle named `name` (used in messages).
    pub fn from_pem(name: &str, pem: &str) -> Result<CaBundle, CaError> {
        let mut roots = RootCertStore::empty();
        let mut count = 0;
        for (index, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
            let cert = cert.map_err(|e| CaError::BadPem { source_name: name.to_string(), reason: e.to_string() })?;
            roots.add(cert).map_err(|e| CaError::BadAnchor {
                source_name: name.to_string(),
                index,
                reason: e.to_string(),
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(CaError::Empty { source_name: name.to_string() });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| CaError::Verifier { source_name: name.to_string(), reason: e.to_string() })?;
        Ok(CaBundle { name: name.to_string(), pem: Arc::from(pem), verifier })
    }

    /// Where the bundle came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PEM text it was built from.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Verifies `chain` (leaf first, then intermediates) for client
    /// authentication now, and reads the leaf's subject.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<CertSubject, ChainError> {
        self.verify_at(chain, UnixTime::now())
    }

    /// As [`verify`](Self::verify), at time `now`.
    pub fn verify_at(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<CertSubject, ChainError> {
        let (leaf, intermediates) = chain.split_first().ok_or(ChainError::NoCertificate)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| ChainError::Rejected { ca: self.name.clone(), reason: e.to_string() })?;
        subject(leaf).map_err(|reason| ChainError::BadSubject { ca: self.name.clone(), reason })
    }
}

/// Reads CN and O of a DER certificate.
fn subject(cert: &CertificateDer<'_>) -> Result<CertSubject, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let name = parsed.subject();
    let mut common_name = String::new();
    for cn in name.iter_common_name() {
        common_name = cn.as_str().map_err(|e| format!("common name: {e}"))?.to_string();
    }
    let organizations = name
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string).map_err(|e| format!("organization: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CertSubject { common_name, organizations })
}

/// Decodes a PEM certificate chain (leaf first), as a client presents it.
pub fn chain_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls::pki::{Ca, LeafSpec, Usage};

    #[test]
    fn client_cert_from_its_ca_verifies_and_yields_cn_and_orgs() {
        let ca = Ca::new("client-ca").unwrap();
        let bundle = CaBundle::from_pem("client-ca-file", ca.cert_pem()).unwrap();
        // One O only: rcgen's DistinguishedName keeps one value per attribute type.
        let leaf = ca.issue_client("alice", &["devs"]).unwrap();
        let chain = chain_from_pem(&leaf.cert_pem).unwrap();
        let s = bundle.verify(&chain).unwrap();
        assert_eq!(s.common_name, "alice");
        assert_eq!(s.organizations, vec!["devs".to_string()]);
    }

    #[test]
    fn cert_from_another_ca_is_rejected() {
        let ca = Ca::new("client-ca").unwrap();
        let other = Ca::new("other").unwrap();
        let bundle = CaBundle::from_pem("client-ca-file", ca.cert_pem()).unwrap();
        let leaf = other.issue_client("mallory", &["system:masters"]).unwrap();
        let chain = chain_from_pem(&leaf.cert_pem).unwrap();
        assert!(matches!(bundle.verify(&chain), Err(ChainError::Rejected { .. })));
        assert_eq!(bundle.verify(&[]), Err(ChainError::NoCertificate));
    }

    #[test]
    fn server_only_cert_is_not_accepted_for_client_auth() {
        let ca = Ca::new("client-ca").unwrap();
        let bundle = CaBundle::from_pem("client-ca-file", ca.cert_pem()).unwrap();
        let leaf =
            ca.issue(&LeafSpec { common_name: "srv", organizations: &[], sans: &[], usage: Usage::Server }).unwrap();
        let chain = chain_from_pem(&leaf.cert_pem).unwrap();
        assert!(matches!(bundle.verify(&chain), Err(ChainError::Rejected { .. })));
    }

    #[test]
    fn bundle_with_two_cas_accepts_both() {
        let a = Ca::new("a").unwrap();
        let b = Ca::new("b").unwrap();
        let pem = format!("{}\n{}", a.cert_pem(), b.cert_pem());
        let bundle = CaBundle::from_pem("bundle", &pem).unwrap();
        for ca in [&a, &b] {
            let leaf = ca.issue_client("u", &[]).unwrap();
            assert!(bundle.verify(&chain_from_pem(&leaf.cert_pem).unwrap()).is_ok());
        }
    }

    #[test]
    fn garbage_pem_is_an_error_not_a_panic() {
        assert!(matches!(CaBundle::from_pem("x", "not pem at all"), Err(CaError::Empty { .. })));
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(CaBundle::from_pem("x", broken).is_err());
    }
}
