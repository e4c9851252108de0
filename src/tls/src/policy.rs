//! The operator's TLS policy: `--tls-min-version`, `--tls-cipher-suites`
//! and `--tls-curve-preferences` with metrics-server's (Go's) names and
//! numbers, mapped onto what rustls with the ring provider implements.
//! Parsing is pure; the result is a `CryptoProvider` and a protocol-version
//! list every config builder in `tls::config` uses. A value Go accepts but
//! rustls cannot do (TLS 1.0/1.1, CBC/RC4/3DES/static-RSA suites, P-521,
//! X25519MLKEM768) is accepted and never offered, and said so in
//! [`TlsPolicy::notes`] for the operator's log: the policy only ever
//! narrows what is offered, never widens it past what was asked. Names Go
//! does not know are refused with an error naming the flag.

use std::sync::Arc;

use rustls::crypto::ring::{self, cipher_suite as cs, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

/// The lowest TLS version the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// Versions, cipher suites and key exchange groups allowed on every TLS socket.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// `--tls-min-version`.
    pub min_version: MinVersion,
    /// `--tls-cipher-suites`, resolved; empty means the provider's defaults.
    /// As in Go, naming only TLS 1.2 suites leaves the TLS 1.3 suites on.
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// `--tls-curve-preferences`, resolved, in order; empty means the defaults.
    pub kx_groups: Vec<&'static dyn SupportedKxGroup>,
    /// TLS 1.2 suites were named and none of them can be offered: TLS 1.2
    /// is off rather than widened to the default suites.
    pub tls12_off: bool,
    /// What was asked and cannot be honoured, for the start-up log.
    pub notes: Vec<String>,
}

impl PartialEq for TlsPolicy {
    fn eq(&self, other: &Self) -> bool {
        let groups = |p: &TlsPolicy| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
        self.min_version == other.min_version
            && self.cipher_suites == other.cipher_suites
            && groups(self) == groups(other)
            && self.tls12_off == other.tls12_off
            && self.notes == other.notes
    }
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            min_version: MinVersion::Tls12,
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
            tls12_off: false,
            notes: Vec::new(),
        }
    }
}

/// A policy flag that cannot be honoured; [`PolicyError::flag`] names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}: unknown version; use VersionTLS10, VersionTLS11, VersionTLS12 or VersionTLS13")]
    UnknownVersion(String),
    #[error("cipher suite {0:?} not supported or doesn't exist; supported: {supported}", supported = SUPPORTED_NAMES)]
    UnknownSuite(String),
}

impl PolicyError {
    /// The flag at fault.
    pub fn flag(&self) -> &'static str {
        match self {
            PolicyError::UnknownVersion(_) => "--tls-min-version",
            PolicyError::UnknownSuite(_) => "--tls-cipher-suites",
        }
    }
}

const SUPPORTED_NAMES: &str = "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, \
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";

/// Go's cipher suite names that rustls does not implement (Go's
/// `tls.CipherSuites()` and `tls.InsecureCipherSuites()`): accepted, never offered.
const GO_ONLY_SUITES: [&str; 16] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Parses `--tls-min-version` (empty: the default, TLS 1.2). Go's TLS 1.0
/// and 1.1 give TLS 1.2 here (rustls implements neither), with a note.
pub fn parse_min_version(flag: &str, notes: &mut Vec<String>) -> Result<MinVersion, PolicyError> {
    match flag.trim() {
        "" | "VersionTLS12" => Ok(MinVersion::Tls12),
        "VersionTLS13" => Ok(MinVersion::Tls13),
        v @ ("VersionTLS10" | "VersionTLS11") => {
            notes.push(format!(
                "--tls-min-version={v} is accepted for compatibility; TLS 1.2 is the lowest version served \
                 (rustls implements no older one)"
            ));
            Ok(MinVersion::Tls12)
        }
        _ => Err(PolicyError::UnknownVersion(flag.to_string())),
    }
}

/// Maps one Go/IANA cipher suite name to the ring provider's suite;
/// `Ok(None)` for a Go name rustls does not implement.
pub fn parse_cipher_suite(name: &str) -> Result<Option<SupportedCipherSuite>, PolicyError> {
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
        n if GO_ONLY_SUITES.contains(&n) => return Ok(None),
        _ => return Err(PolicyError::UnknownSuite(name.to_string())),
    };
    Ok(Some(suite))
}

/// Why a Go suite name is not offered.
fn unsupported_reason(name: &str) -> &'static str {
    if name.contains("_RC4_") {
        "RC4 is broken"
    } else if name.contains("_3DES_") {
        "3DES is obsolete"
    } else if name.contains("_CBC_") {
        "CBC-mode suites are not implemented by rustls"
    } else {
        "static RSA key exchange has no forward secrecy and is not implemented by rustls"
    }
}

/// Maps one Go `tls.CurveID` to the ring provider's group; `None` for an
/// id rustls with ring does not implement, with the reason.
pub fn parse_curve(id: i32) -> Result<&'static dyn SupportedKxGroup, &'static str> {
    match id {
        23 => Ok(kx_group::SECP256R1),
        24 => Ok(kx_group::SECP384R1),
        29 => Ok(kx_group::X25519),
        25 => Err("P-521 is not implemented by rustls' ring provider"),
        4588 => Err("X25519MLKEM768 is not implemented by rustls' ring provider"),
        _ => Err("not a curve Go knows"),
    }
}

impl TlsPolicy {
    /// Builds the policy from the two flags' raw values (empty: default).
    /// `cipher_suites` is a comma-separated list.
    pub fn from_flags(min_version: &str, cipher_suites: &str) -> Result<TlsPolicy, PolicyError> {
        let suites: Vec<String> =
            cipher_suites.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
        TlsPolicy::from_go_flags(min_version, &suites, &[])
    }

    /// Builds the policy from `--tls-min-version`, the `--tls-cipher-suites`
    /// names and the `--tls-curve-preferences` ids.
    pub fn from_go_flags(
        min_version: &str,
        cipher_suites: &[String],
        curves: &[i32],
    ) -> Result<TlsPolicy, PolicyError> {
        let mut notes = Vec::new();
        let min_version = parse_min_version(min_version, &mut notes)?;
        let mut suites = Vec::new();
        let mut dropped = Vec::new();
        for name in cipher_suites.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match parse_cipher_suite(name)? {
                Some(suite) if !suites.contains(&suite) => suites.push(suite),
                Some(_) => {}
                None => dropped.push(format!("{name} ({})", unsupported_reason(name))),
            }
        }
        // Only what was asked is ever offered: TLS 1.2 suites named and none
        // implementable leaves TLS 1.2 off instead of widening it to the defaults.
        let tls12_off = !dropped.is_empty() && suites.iter().all(|s| s.tls13().is_some());
        if !dropped.is_empty() {
            notes.push(format!(
                "--tls-cipher-suites: not offered, as rustls does not implement them: {}{}",
                dropped.join(", "),
                if tls12_off { "; no TLS 1.2 suite is left, so clients need TLS 1.3" } else { "" }
            ));
        }
        if min_version == MinVersion::Tls13 && suites.iter().any(|s| s.tls13().is_none()) {
            notes.push(
                "--tls-cipher-suites names TLS 1.2 suites but --tls-min-version is VersionTLS13: they are never used"
                    .to_string(),
            );
        }
        let mut kx_groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        let mut unknown = Vec::new();
        for id in curves {
            match parse_curve(*id) {
                Ok(g) if !kx_groups.iter().any(|k| k.name() == g.name()) => kx_groups.push(g),
                Ok(_) => {}
                Err(why) => unknown.push(format!("{id} ({why})")),
            }
        }
        if !unknown.is_empty() {
            let fallback = if kx_groups.is_empty() {
                "; none of the listed ones is left, so the defaults (X25519, P-256, P-384) are used"
            } else {
                ""
            };
            notes.push(format!("--tls-curve-preferences: not offered: {}{fallback}", unknown.join(", ")));
        }
        Ok(TlsPolicy { min_version, cipher_suites: suites, kx_groups, tls12_off, notes })
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
                (false, _) if self.tls12_off => false,
                (false, MinVersion::Tls13) => false,
                (false, MinVersion::Tls12) => !named12 || self.cipher_suites.contains(s),
                (true, _) => !named13 || self.cipher_suites.contains(s),
            })
            .collect()
    }

    /// The ring provider restricted to this policy's suites and groups.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = ring::default_provider();
        provider.cipher_suites = self.effective_suites();
        if !self.kx_groups.is_empty() {
            provider.kx_groups = self.kx_groups.clone();
        }
        Arc::new(provider)
    }

    /// The protocol versions to enable.
    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS12_AND_13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self.min_version {
            MinVersion::Tls12 if !self.tls12_off => TLS12_AND_13,
            _ => TLS13_ONLY,
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
        let table: &[(&str, Result<MinVersion, &str>, bool)] = &[
            ("", Ok(MinVersion::Tls12), false),
            ("VersionTLS12", Ok(MinVersion::Tls12), false),
            ("VersionTLS13", Ok(MinVersion::Tls13), false),
            ("VersionTLS10", Ok(MinVersion::Tls12), true),
            ("VersionTLS11", Ok(MinVersion::Tls12), true),
            ("TLS1.2", Err("unknown version"), false),
        ];
        for (flag, want, noted) in table {
            let mut notes = Vec::new();
            match (parse_min_version(flag, &mut notes), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{flag}"),
                (Err(e), Err(want)) => {
                    let text = e.to_string();
                    assert_eq!(e.flag(), "--tls-min-version", "{flag}");
                    assert!(text.contains(want), "{flag}: {text}");
                }
                (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
            }
            assert_eq!(!notes.is_empty(), *noted, "{flag}: {notes:?}");
        }
    }

    #[test]
    fn cipher_suite_flag_table() {
        let table: &[(&str, Result<Option<&str>, &str>)] = &[
            ("TLS_AES_128_GCM_SHA256", Ok(Some("TLS13_AES_128_GCM_SHA256"))),
            ("TLS_CHACHA20_POLY1305_SHA256", Ok(Some("TLS13_CHACHA20_POLY1305_SHA256"))),
            ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Ok(Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"))),
            ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Ok(Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"))),
            ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", Ok(Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"))),
            (
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                Ok(Some("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256")),
            ),
            ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Ok(None)),
            ("TLS_RSA_WITH_RC4_128_SHA", Ok(None)),
            ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", Ok(None)),
            ("TLS_RSA_WITH_AES_128_GCM_SHA256", Ok(None)),
            ("TLS_FOO", Err("not supported or doesn't exist")),
            ("aes", Err("not supported or doesn't exist")),
        ];
        for (name, want) in table {
            match (parse_cipher_suite(name), want) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got.map(|g| format!("{:?}", g.suite())).as_deref(), *want, "{name}")
                }
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
    fn go_suites_rustls_lacks_are_noted_and_never_widen_the_offer() {
        let p = TlsPolicy::from_flags("", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            .unwrap();
        assert_eq!(names(&p).iter().filter(|n| !n.starts_with("TLS13_")).count(), 1, "{:?}", names(&p));
        assert!(p.notes[0].contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (CBC-mode"), "{:?}", p.notes);
        // Only unimplementable TLS 1.2 suites: TLS 1.2 is off, not defaulted.
        let p = TlsPolicy::from_flags("", "TLS_RSA_WITH_AES_128_CBC_SHA").unwrap();
        assert!(names(&p).iter().all(|n| n.starts_with("TLS13_")), "{:?}", names(&p));
        assert_eq!(p.versions().len(), 1);
        assert!(p.notes[0].contains("clients need TLS 1.3"), "{:?}", p.notes);
    }

    #[test]
    fn curve_preferences_pick_ring_groups_in_order_and_note_the_rest() {
        let p = TlsPolicy::from_go_flags("", &[], &[29, 23]).unwrap();
        let groups: Vec<_> = p.provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]);
        assert!(p.notes.is_empty());
        let p = TlsPolicy::from_go_flags("", &[], &[25, 24]).unwrap();
        assert_eq!(p.provider().kx_groups.len(), 1);
        assert!(p.notes[0].contains("25 (P-521"), "{:?}", p.notes);
        let p = TlsPolicy::from_go_flags("", &[], &[4588]).unwrap();
        assert_eq!(p.provider().kx_groups.len(), ring::default_provider().kx_groups.len());
        assert!(p.notes[0].contains("defaults"), "{:?}", p.notes);
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
