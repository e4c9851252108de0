//! Certificate authorities and leaf certificates made on the fly: the
//! self-signed serving certificate, and every CA and certificate the
//! simulated cluster, the dev mode and the tests need. Only generation lives
//! here; loading and verifying is `tls`'s and `auth`'s job.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Failure to generate a key or certificate.
#[derive(Debug, thiserror::Error)]
#[error("generating certificate {what}: {source}")]
pub struct PkiError {
    what: String,
    #[source]
    source: rcgen::Error,
}

fn err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError { what: what.to_string(), source }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that can issue leaf certificates.
pub struct Ca {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    /// Both (the peer port: each replica is client and server).
    ServerAndClient,
}

/// The description of a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec<'a> {
    /// Subject common name (the user name for client certificates).
    pub common_name: &'a str,
    /// Subject organizations (the groups for client certificates).
    pub organizations: &'a [&'a str],
    /// DNS names and IP addresses.
    pub sans: &'a [String],
    pub usage: Usage,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err(name))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err(name))?;
        let cert = params.self_signed(&key).map_err(err(name))?;
        Ok(Ca { name: name.to_string(), cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A CA from its certificate and private key, both PEM (as a Secret
    /// holds them); `name` names it in errors.
    pub fn from_pem(name: &str, cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(err(name))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(err(name))?;
        Ok(Ca { name: name.to_string(), issuer, cert_pem: cert_pem.to_string() })
    }

    /// The CA's private key, PEM. Whoever calls this keeps it in memory or
    /// in a Secret: never on disk, never in a log.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Issues a leaf certificate (valid 1975–4096, rcgen's default).
    pub fn issue(&self, spec: &LeafSpec<'_>) -> Result<CertPair, PkiError> {
        self.issue_params(spec, |_| {})
    }

    /// Issues a leaf certificate valid from `not_before` to `not_after`.
    pub fn issue_valid(
        &self,
        spec: &LeafSpec<'_>,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Result<CertPair, PkiError> {
        self.issue_params(spec, |params| {
            params.not_before = not_before.into();
            params.not_after = not_after.into();
        })
    }

    fn issue_params(
        &self,
        spec: &LeafSpec<'_>,
        tune: impl FnOnce(&mut CertificateParams),
    ) -> Result<CertPair, PkiError> {
        let what = spec.common_name;
        let mut params = CertificateParams::new(spec.sans.to_vec()).map_err(err(what))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name);
        for org in spec.organizations {
            dn.push(DnType::OrganizationName, *org);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => {
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
            }
        };
        params.use_authority_key_identifier_extension = true;
        tune(&mut params);
        let key = KeyPair::generate().map_err(err(what))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err(what))?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Issues a server certificate for the given DNS names and IPs.
    pub fn issue_server(&self, common_name: &str, sans: &[String]) -> Result<CertPair, PkiError> {
        self.issue(&LeafSpec { common_name, organizations: &[], sans, usage: Usage::Server })
    }

    /// Issues a client certificate: user `common_name`, groups `organizations`.
    pub fn issue_client(&self, common_name: &str, organizations: &[&str]) -> Result<CertPair, PkiError> {
        self.issue(&LeafSpec { common_name, organizations, sans: &[], usage: Usage::Client })
    }
}

/// A self-signed serving certificate (no CA), as metrics-server makes when no
/// certificate is given.
pub fn self_signed_server(common_name: &str, sans: &[String]) -> Result<CertPair, PkiError> {
    let mut params = CertificateParams::new(sans.to_vec()).map_err(err(common_name))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(err(common_name))?;
    let cert = params.self_signed(&key).map_err(err(common_name))?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Standard base64 with padding (RFC 4648), for PEM bodies and kubeconfig `*-data` fields.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding (RFC 4648), as Kubernetes encodes
/// Secret `data` values; ASCII whitespace is skipped. `None` when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// DER certificates as one PEM bundle.
pub fn certs_to_pem(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b = base64(der);
        for line in b.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_round_trips_through_pem_and_issues_leaves_with_bounded_validity() {
        let ca = Ca::new("round-trip").unwrap();
        let again = Ca::from_pem("round-trip", ca.cert_pem(), &ca.key_pem()).unwrap();
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        let spec = LeafSpec { common_name: "a", organizations: &[], sans: &[], usage: Usage::ServerAndClient };
        let leaf = again.issue_valid(&spec, now, now + day).unwrap();
        let der = crate::pem::certs_from_pem(leaf.cert_pem.as_bytes(), "leaf").unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let span = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(span, 86_400);
        let ca_der = crate::pem::certs_from_pem(ca.cert_pem().as_bytes(), "ca").unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der[0]).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject(), "issued by the CA read back from PEM");
        assert!(Ca::from_pem("bad", ca.cert_pem(), "not a key").is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), want);
            assert_eq!(base64_decode(want).as_deref(), Some(input.as_bytes()));
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
