//! The operator's TLS policy: `--tls-min-version` and `--tls-cipher-suites`
//! with metrics-server's (Go's) names, mapped onto what rustls with the ring
//! provider implements. Parsing is pure; the result is a `CryptoProvider`
//! and a protocol-version list every config builder in `tls::config` uses.
//! It refuses what rustls cannot do (TLS 1.0/1.1, CBC, RC4, 3DES, static
//! RSA key exchange) with an error naming the flag, never silently weakens
//! or ignores a setting.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{self, cipher_suite as cs};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

/// The lowest TLS version the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// Versions and cipher suites allowed on every TLS socket.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPolicy {
    /// `--tls-min-version`.
    pub min_version: MinVersion,
    /// `--tls-cipher-suites`, resolved; empty means the provider's defaults.
    /// As in Go, naming only TLS 1.2 suites leaves the TLS 1.3 suites on.
    pub cipher_suites: Vec<SupportedCipherSuite>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy { min_version: MinVersion::Tls12, cipher_suites: Vec::new() }
    }
}

/// A policy flag that cannot be honoured; [`PolicyError::flag`] names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "{0}: TLS 1.2 or newer is required (rustls does not implement TLS 1.0/1.1); use VersionTLS12 or VersionTLS13"
    )]
    VersionTooOld(String),
    #[error("{0}: unknown version; use VersionTLS12 or VersionTLS13")]
    UnknownVersion(String),
    #[error("{0} is not implemented by rustls ({1}); supported: {supported}", supported = SUPPORTED_NAMES)]
    Unsupported(String, &'static str),
    #[error("unknown cipher suite {0:?}; supported: {supported}", supported = SUPPORTED_NAMES)]
    UnknownSuite(String),
}

impl PolicyError {
    /// The flag at fault.
    pub fn flag(&self) -> &'static str {
        match self {
            PolicyError::VersionTooOld(_) | PolicyError::UnknownVersion(_) => "--tls-min-version",
            PolicyError::Unsupported(..) | PolicyError::UnknownSuite(_) => "--tls-cipher-suites",
        }
    }
}

const SUPPORTED_NAMES: &str = "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, \
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";

/// Parses `--tls-min-version` (empty: the default, TLS 1.2).
pub fn parse_min_version(flag: &str) -> Result<MinVersion, PolicyError> {
    match flag.trim() {
        "" | "VersionTLS12" => Ok(MinVersion::Tls12),
        "VersionTLS13" => Ok(MinVersion::Tls13),
        "VersionTLS10" | "VersionTLS11" => Err(PolicyError::VersionTooOld(flag.to_string())),
        _ => Err(PolicyError::UnknownVersion(flag.to_string())),
    }
}

/// Maps one Go/IANA cipher suite name to the ring provider's suite.
pub fn parse_cipher_suite(name: &str) -> Result<SupportedCipherSuite, PolicyError> {
    let suite = match name {
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return Err(unsupported_reason(name)),
    };
    Ok(suite)
}

/// Why a name rustls has no suite for is refused.
fn unsupported_reason(name: &str) -> PolicyError {
    if !name.starts_with("TLS_") {
        return PolicyError::UnknownSuite(name.to_string());
    }
    let reason = if name.contains("_RC4_") {
        "RC4 is broken"
    } else if name.contains("_3DES_") {
        "3DES is obsolete"
    } else if name.contains("_CBC_") {
        "CBC-mode suites are not implemented"
    } else if name.starts_with("TLS_RSA_WITH_") {
        "static RSA key exchange has no forward secrecy"
    } else {
        return PolicyError::UnknownSuite(name.to_string());
    };
    PolicyError::Unsupported(name.to_string(), reason)
}

impl TlsPolicy {
    /// Builds the policy from the two flags' raw values (empty: default).
    /// `cipher_suites` is a comma-separated list.
    pub fn from_flags(min_version: &str, cipher_suites: &str) -> Result<TlsPolicy, PolicyError> {
        let min_version = parse_min_version(min_version)?;
        let mut suites = Vec::new();
        for name in cipher_suites.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let suite = parse_cipher_suite(name)?;
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
        if min_version == MinVersion::Tls13 && suites.iter().any(|s| s.tls13().is_none()) {
            // Go accepts this and ignores the TLS 1.2 names; so do we, loudly.
            tracing::warn!(
                "--tls-cipher-suites names TLS 1.2 suites but --tls-min-version is VersionTLS13: they are never used"
            );
        }
        Ok(TlsPolicy { min_version, cipher_suites: suites })
    }

    /// The suites actually offered: the named TLS 1.2 suites (all when none
    /// is named), the named TLS 1.3 suites (all when none is named, as Go
    /// does), minus those below the minimum version.
    pub fn effective_suites(&self) -> Vec<SupportedCipherSuite> {
        let all = ring::ALL_CIPHER_SUITES;
        let is13 = |s: &SupportedCipherSuite| s.tls13().is_some();
        let named12 = self.cipher_suites.iter().any(|s| !is13(s));
        let named13 = self.cipher_suites.iter().any(is13);
        all.iter()
            .copied()
            .filter(|s| match (is13(s), self.min_version) {
                (false, MinVersion::Tls13) => false,
                (false, MinVersion::Tls12) => !named12 || self.cipher_suites.contains(s),
                (true, _) => !named13 || self.cipher_suites.contains(s),
            })
            .collect()
    }

    /// The ring provider restricted to this policy's suites.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = ring::default_provider();
        provider.cipher_suites = self.effective_suites();
        Arc::new(provider)
    }

    /// The protocol versions to enable.
    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS12_AND_13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self.min_version {
            MinVersion::Tls12 => TLS12_AND_13,
            MinVersion::Tls13 => TLS13_ONLY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(policy: &TlsPolicy) -> Vec<String> {
        policy.effective_suites().iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn min_version_flag_table() {
        let table: &[(&str, Result<MinVersion, &str>)] = &[
            ("", Ok(MinVersion::Tls12)),
            ("VersionTLS12", Ok(MinVersion::Tls12)),
            ("VersionTLS13", Ok(MinVersion::Tls13)),
            ("VersionTLS10", Err("TLS 1.2 or newer is required")),
            ("VersionTLS11", Err("TLS 1.2 or newer is required")),
            ("TLS1.2", Err("unknown version")),
        ];
        for (flag, want) in table {
            match (parse_min_version(flag), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{flag}"),
                (Err(e), Err(want)) => {
                    let text = e.to_string();
                    assert_eq!(e.flag(), "--tls-min-version", "{flag}");
                    assert!(text.contains(want), "{flag}: {text}");
                }
                (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cipher_suite_flag_table() {
        let table: &[(&str, Result<&str, &str>)] = &[
            ("TLS_AES_128_GCM_SHA256", Ok("TLS13_AES_128_GCM_SHA256")),
            ("TLS_CHACHA20_POLY1305_SHA256", Ok("TLS13_CHACHA20_POLY1305_SHA256")),
            ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Ok("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")),
            ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Ok("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")),
            ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", Ok("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256")),
            ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", Ok("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")),
            ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Err("CBC-mode")),
            ("TLS_RSA_WITH_RC4_128_SHA", Err("RC4")),
            ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Err("3DES")),
            ("TLS_RSA_WITH_AES_128_GCM_SHA256", Err("static RSA")),
            ("TLS_FOO", Err("unknown cipher suite")),
            ("aes", Err("unknown cipher suite")),
        ];
        for (name, want) in table {
            match (parse_cipher_suite(name), want) {
                (Ok(got), Ok(want)) => assert_eq!(format!("{:?}", got.suite()), *want, "{name}"),
                (Err(e), Err(want)) => {
                    let text = e.to_string();
                    assert_eq!(e.flag(), "--tls-cipher-suites", "{name}");
                    assert!(text.contains(want), "{name}: {text}");
                    assert!(text.contains(name), "{name}: error does not name the suite: {text}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn naming_tls12_suites_restricts_tls12_and_keeps_tls13_like_go() {
        let policy =
            TlsPolicy::from_flags("", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
                .unwrap();
        let got = names(&policy);
        assert!(got.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        assert!(!got.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()), "{got:?}");
        assert_eq!(got.iter().filter(|n| n.starts_with("TLS13_")).count(), 3, "{got:?}");
        assert_eq!(policy.provider().cipher_suites.len(), got.len());
    }

    #[test]
    fn tls13_minimum_drops_tls12_suites_even_when_named_like_go() {
        for list in ["", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] {
            let policy = TlsPolicy::from_flags("VersionTLS13", list).unwrap();
            let got = names(&policy);
            assert_eq!(got.len(), 3, "{list}: {got:?}");
            assert!(got.iter().all(|n| n.starts_with("TLS13_")), "{list}: {got:?}");
            assert_eq!(policy.versions().len(), 1);
        }
        let policy = TlsPolicy::from_flags("VersionTLS13", "TLS_AES_256_GCM_SHA384").unwrap();
        assert_eq!(names(&policy), ["TLS13_AES_256_GCM_SHA384"]);
    }

    #[test]
    fn default_policy_offers_every_ring_suite_on_tls12_and_13() {
        let policy = TlsPolicy::default();
        assert_eq!(policy.effective_suites().len(), ring::ALL_CIPHER_SUITES.len());
        assert_eq!(policy.versions().len(), 2);
    }
}
