//! Who a peer certificate says it is: its common name and subject
//! alternative names, and whether it names a given replica (by name, or by
//! the host of its peer address, wildcards included). Used to check that a
//! peer claiming to be member M presents M's certificate. Pure parsing and
//! matching; the chain itself was verified by the TLS handshake.

use rustls::pki_types::CertificateDer;

/// The names in a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// DNS subject alternative names (may start with `*.`).
    pub dns_names: Vec<String>,
    /// IP subject alternative names, as text.
    pub ips: Vec<String>,
}

impl Identity {
    /// Reads the names of a DER certificate; `None` if it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Identity> {
        use x509_parser::extensions::GeneralName;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let common_name =
            parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        let mut id = Identity { common_name, ..Identity::default() };
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => id.dns_names.push(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => None,
                        };
                        id.ips.extend(ip);
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// Whether this certificate names the replica called `name` reached at
    /// `addr` (`host:port`): its common name is `name`, or a SAN matches the
    /// host (an IP exactly, a DNS name exactly or by a one-label wildcard).
    pub fn names_member(&self, name: &str, addr: &str) -> bool {
        self.common_name.as_deref() == Some(name) || self.names_host(addr)
    }
}

impl Identity {
    /// Whether this certificate names the replica called `name` reached at
    /// `addr` on both counts: the name is its common name or one of its DNS
    /// SANs exactly, and a SAN matches the host of `addr` (as
    /// [`Identity::names_member`] matches hosts). What a joiner's
    /// certificate must say of the name and address it asks to join under,
    /// so one replica's certificate cannot claim another replica's name.
    pub fn names_itself(&self, name: &str, addr: &str) -> bool {
        let named = self.common_name.as_deref() == Some(name) || self.dns_names.iter().any(|d| d == name);
        named && self.names_host(addr)
    }

    /// Whether a SAN matches the host of `addr` (an IP exactly, a DNS name
    /// exactly or by a one-label wildcard).
    fn names_host(&self, addr: &str) -> bool {
        let host = host_of(addr).to_ascii_lowercase();
        if self.ips.contains(&host) {
            return true;
        }
        self.dns_names.iter().any(|d| match d.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
            None => *d == host,
        })
    }
}

impl std::fmt::Display for Identity {
    /// `CN=replica-1, SANs 127.0.3.11, replica-1` (for refusal messages).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.common_name {
            Some(cn) => write!(f, "CN={cn}")?,
            None => write!(f, "no CN")?,
        }
        let sans: Vec<&str> = self.ips.iter().chain(self.dns_names.iter()).map(String::as_str).collect();
        if sans.is_empty() { write!(f, ", no SANs") } else { write!(f, ", SANs {}", sans.join(", ")) }
    }
}

/// The host of `host:port` (IPv6 literals in brackets).
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, LeafSpec, Usage};

    fn identity(cn: &str, sans: &[&str]) -> Identity {
        let ca = Ca::new("cluster-ca").unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let pair = ca
            .issue(&LeafSpec { common_name: cn, organizations: &[], sans: &sans, usage: Usage::ServerAndClient })
            .unwrap();
        let chain = crate::pem::certs_from_pem(pair.cert_pem.as_bytes(), "test").unwrap();
        Identity::of(&chain[0]).unwrap()
    }

    #[test]
    fn a_certificate_names_a_member_by_common_name_ip_or_dns_san() {
        let id = identity("replica-1", &["127.0.3.11", "replica-1"]);
        assert!(id.names_member("replica-1", "10.0.0.1:10251"));
        assert!(id.names_member("other", "127.0.3.11:10251"));
        assert!(!id.names_member("replica-2", "127.0.3.12:10251"));
    }

    #[test]
    fn a_wildcard_san_covers_one_label_only() {
        let id = identity("metrics-server-peer", &["*.metrics-server-peers.kube-system.svc"]);
        assert!(id.names_member("metrics-server-0", "metrics-server-0.metrics-server-peers.kube-system.svc:10251"));
        assert!(!id.names_member("x", "a.b.metrics-server-peers.kube-system.svc:10251"));
        assert!(!id.names_member("x", "metrics-server-peers.kube-system.svc:10251"));
        assert_eq!(host_of("[::1]:10251"), "::1");
    }

    #[test]
    fn a_certificate_names_itself_only_by_both_its_name_and_its_host() {
        let id = identity("replica-1", &["127.0.3.11"]);
        assert!(id.names_itself("replica-1", "127.0.3.11:10251"));
        // Its own host under another replica's name, or its name at another host.
        assert!(!id.names_itself("replica-2", "127.0.3.11:10251"));
        assert!(!id.names_itself("replica-1", "127.0.3.12:10251"));
        let by_dns = identity("peer", &["replica-1", "replica-1.peers.svc"]);
        assert!(by_dns.names_itself("replica-1", "replica-1.peers.svc:10251"));
        // A shared wildcard certificate names no replica's name.
        let shared = identity("metrics-server-peer", &["*.peers.svc"]);
        assert!(!shared.names_itself("replica-1", "replica-1.peers.svc:10251"));
        assert_eq!(id.to_string(), "CN=replica-1, SANs 127.0.3.11");
    }
}
