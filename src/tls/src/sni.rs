//! `--tls-sni-cert-key`: extra serving certificates chosen by the name the
//! client asks for (SNI), as the generic apiserver chooses them: explicit
//! names win over names read from the certificate (its CN when it is a
//! host name, and its DNS SANs; never its IPs), earlier flags over later
//! ones; an exact name wins over a `*.` wildcard for the first label; no
//! match gives the default certificate. An explicit IP name selects the
//! certificate for connections to that local address that send no SNI.
//! It loads and chooses certificates; it does not serve.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;
use super::config::CertKey;

/// One `--tls-sni-cert-key` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Explicit names; empty: the certificate's own.
    pub names: Vec<String>,
}

/// The loaded SNI certificates, by name.
#[derive(Debug, Clone, Default)]
pub struct SniCertificates {
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl SniCertificates {
    /// Loads every spec (files read now) and builds the name map.
    pub fn load(specs: &[SniSpec], provider: &CryptoProvider) -> Result<SniCertificates, TlsError> {
        let mut loaded = Vec::new();
        for spec in specs {
            let ck = CertKey::load(&spec.cert, &spec.key)?;
            let key = provider.key_provider.load_private_key(ck.key.clone_key()).map_err(|source| {
                TlsError::Rustls { what: format!("--tls-sni-cert-key {}", spec.key.display()), source }
            })?;
            let certified = Arc::new(CertifiedKey::new(ck.chain.clone(), key));
            certified.keys_match().map_err(|e| TlsError::Invalid {
                what: format!("--tls-sni-cert-key {},{}", spec.cert.display(), spec.key.display()),
                message: format!("the key does not belong to the certificate: {e}"),
            })?;
            let implicit = if spec.names.is_empty() { names_in_certificate(&ck)? } else { Vec::new() };
            loaded.push((spec.names.clone(), implicit, certified));
        }
        let mut by_name = HashMap::new();
        // Implicit names first, then explicit ones over them; within each,
        // in reverse so that an earlier flag wins.
        for (_, implicit, key) in loaded.iter().rev() {
            for n in implicit {
                by_name.insert(n.to_ascii_lowercase(), key.clone());
            }
        }
        for (explicit, _, key) in loaded.iter().rev() {
            for n in explicit {
                by_name.insert(n.to_ascii_lowercase(), key.clone());
            }
        }
        Ok(SniCertificates { by_name })
    }

    /// Whether no certificate was given.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The certificate for an SNI name: exact, then the first label as `*`.
    pub fn for_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return Some(k.clone());
        }
        let (_, rest) = name.split_once('.')?;
        self.by_name.get(&format!("*.{rest}")).cloned()
    }

    /// The certificates named by an IP address, for connections without SNI.
    pub fn by_ip(&self) -> HashMap<IpAddr, Arc<CertifiedKey>> {
        self.by_name.iter().filter_map(|(n, k)| Some((n.parse::<IpAddr>().ok()?, k.clone()))).collect()
    }
}

/// The DNS names a certificate answers for: its CN when it is a host name
/// (or `*`), and its DNS SANs.
fn names_in_certificate(ck: &CertKey) -> Result<Vec<String>, TlsError> {
    let leaf = ck.chain.first().ok_or_else(|| TlsError::Invalid {
        what: "--tls-sni-cert-key".into(),
        message: "the certificate file holds no certificate".into(),
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::Invalid {
        what: "--tls-sni-cert-key".into(),
        message: format!("unparsable certificate: {e}"),
    })?;
    let mut names = Vec::new();
    if let Some(cn) = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        let host = cn.strip_prefix("*.").unwrap_or(cn);
        if cn == "*" || is_dns_subdomain(host) {
            names.push(cn.to_string());
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = g {
                names.push(d.to_string());
            }
        }
    }
    Ok(names)
}

fn is_dns_subdomain(s: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label)
}

/// Picks the SNI certificate for the client's name, else the default.
#[derive(Debug)]
pub struct SniResolver {
    pub default: Arc<CertifiedKey>,
    pub named: SniCertificates,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(hello.server_name().and_then(|n| self.named.for_name(n)).unwrap_or_else(|| self.default.clone()))
    }
}

/// Always the same certificate (a connection to an address an SNI
/// certificate is named for, without SNI).
#[derive(Debug)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
