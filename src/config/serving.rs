//! The validated settings of the HTTPS listener ([`ServingSettings`]) and of
//! request handling ([`RequestSettings`]): metrics-server's secure-serving
//! and generic run options, checked as metrics-server checks them. Nothing
//! binds or serves here (`server`, `serving` and the `tls` crate do).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tls::TlsPolicy;

use super::defaults as d;
use super::flags::values::{NamedCertKey, flatten};
use super::flags::{GenericArgs, SecureServingArgs};
use super::{ConfigError, bad};

/// How to serve HTTPS.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--secure-port`; 0 means the API is not served at all.
    pub port: u16,
    /// `--cert-dir`.
    pub cert_dir: PathBuf,
    /// `--tls-cert-file` and `--tls-private-key-file`.
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// `--tls-sni-cert-key`, in flag order.
    pub sni_cert_keys: Vec<NamedCertKey>,
    /// `--tls-min-version`, `--tls-cipher-suites`, `--tls-curve-preferences`, checked.
    pub tls_policy: TlsPolicy,
    /// `--disable-http2-serving`.
    pub disable_http2: bool,
    /// `--http2-max-streams-per-connection` (0 resolved to Go's default).
    pub http2_max_streams: u32,
    /// `--permit-port-sharing` (SO_REUSEPORT). (SO_REUSEADDR is always set,
    /// as Go sets it, so `--permit-address-sharing` changes nothing.)
    pub reuse_port: bool,
}

impl ServingSettings {
    /// Where the API listens (port 0 when it does not).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }

    /// Whether the API is served (`--secure-port` is not 0).
    pub fn enabled(&self) -> bool {
        self.port != 0
    }

    /// Checks the secure-serving flags.
    pub fn from_args(a: &SecureServingArgs) -> Result<ServingSettings, ConfigError> {
        let bind_address: IpAddr = a
            .bind_address
            .parse()
            .map_err(|_| bad("--bind-address", format!("{:?} is not an IP address", a.bind_address)))?;
        let port = u16::try_from(a.secure_port)
            .map_err(|_| bad("--secure-port", format!("{} is not a port number (0 to 65535)", a.secure_port)))?;
        let cert_files =
            super::file_pair("--tls-cert-file", &a.tls_cert_file, "--tls-private-key-file", &a.tls_private_key_file)?;
        let suites = flatten(&a.tls_cipher_suites);
        let curves: Vec<i32> = a.tls_curve_preferences.iter().flat_map(|l| l.0.iter().copied()).collect();
        let tls_policy = TlsPolicy::from_go_flags(a.tls_min_version.as_deref().unwrap_or(""), &suites, &curves)
            .map_err(|e| bad(e.flag(), e.to_string()))?;
        let http2_max_streams = match a.http2_max_streams_per_connection {
            0 => d::HTTP2_MAX_STREAMS,
            n => u32::try_from(n).map_err(|_| {
                bad("--http2-max-streams-per-connection", format!("{n} must be 0 (the default) or a positive number"))
            })?,
        };
        Ok(ServingSettings {
            bind_address,
            port,
            cert_dir: a.cert_dir.clone(),
            cert_files,
            sni_cert_keys: a.tls_sni_cert_key.clone(),
            tls_policy,
            disable_http2: a.disable_http2_serving,
            http2_max_streams,
            reuse_port: a.permit_port_sharing,
        })
    }
}

/// How requests are handled (metrics-server's generic run options).
#[derive(Debug, Clone)]
pub struct RequestSettings {
    /// `--max-requests-inflight`; `None`: no limit.
    pub max_requests_inflight: Option<usize>,
    /// `--max-mutating-requests-inflight`; `None`: no limit.
    pub max_mutating_requests_inflight: Option<usize>,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--goaway-chance`.
    pub goaway_chance: f64,
    /// `--cors-allowed-origins`, compiled; empty: CORS off.
    pub cors_allowed_origins: Vec<regex::Regex>,
    /// `--strict-transport-security-directives`, as the header value.
    pub hsts: Option<String>,
    /// `--livez-grace-period`.
    pub livez_grace_period: Duration,
}

fn limit(flag: &'static str, n: i64) -> Result<Option<usize>, ConfigError> {
    match n {
        0 => Ok(None),
        n if n < 0 => Err(bad(flag, format!("{n} can not be negative (0 means no limit)"))),
        n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

impl RequestSettings {
    /// Checks the generic run options as the generic apiserver's `Validate` does.
    pub fn from_args(g: &GenericArgs) -> Result<RequestSettings, ConfigError> {
        if !(0.0..=0.02).contains(&g.goaway_chance) {
            return Err(bad(
                "--goaway-chance",
                format!("{} must be between 0 (off) and 0.02 (one request in fifty)", g.goaway_chance),
            ));
        }
        if g.min_request_timeout < 0 {
            return Err(bad("--min-request-timeout", "can not be negative"));
        }
        Ok(RequestSettings {
            max_requests_inflight: limit("--max-requests-inflight", g.max_requests_inflight)?,
            max_mutating_requests_inflight: limit(
                "--max-mutating-requests-inflight",
                g.max_mutating_requests_inflight,
            )?,
            request_timeout: g.request_timeout.0,
            goaway_chance: g.goaway_chance,
            cors_allowed_origins: cors_origins(&flatten(&g.cors_allowed_origins))?,
            hsts: hsts(&flatten(&g.strict_transport_security_directives))?,
            livez_grace_period: g.livez_grace_period.0,
        })
    }
}

/// Compiles `--cors-allowed-origins`: each a regular expression anchored at
/// the start (`^` or a `//` before the host) and at the end (`$` or a `:`
/// before the port), and never a bare wildcard.
pub fn cors_origins(origins: &[String]) -> Result<Vec<regex::Regex>, ConfigError> {
    let flag = "--cors-allowed-origins";
    let mut out = Vec::new();
    for o in origins.iter().filter(|o| !o.is_empty()) {
        if o == "*" || o == ".*" {
            return Err(bad(flag, format!("{o:?} allows every origin; name the origins (e.g. //example\\.com(:|$))")));
        }
        let re = regex::Regex::new(o).map_err(|e| bad(flag, format!("{o:?} is not a regular expression: {e}")))?;
        let start = o.starts_with('^') || o.contains("//");
        let end = o.ends_with('$') || o.contains(':');
        if !start || !end {
            return Err(bad(
                flag,
                format!(
                    "{o:?} is not anchored: start it with '^' or '//' and end it with '$' or ':', \
                     e.g. //example\\.com(:|$) or ^https://example\\.com(:|$)"
                ),
            ));
        }
        out.push(re);
    }
    Ok(out)
}

/// The Strict-Transport-Security value of `--strict-transport-security-directives`.
pub fn hsts(directives: &[String]) -> Result<Option<String>, ConfigError> {
    let flag = "--strict-transport-security-directives";
    let items: Vec<&str> = directives.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Ok(None);
    }
    for item in &items {
        let ok = *item == "includeSubDomains"
            || *item == "preload"
            || item.strip_prefix("max-age=").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(bad(flag, format!("{item:?} is not one of max-age=<seconds>, includeSubDomains, preload")));
        }
    }
    Ok(Some(items.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_must_be_anchored_regexes() {
        let ok = cors_origins(&["//example\\.com(:|$)".into(), "^https://a\\.io$".into()]).unwrap();
        assert!(ok[0].is_match("https://example.com") && !ok[0].is_match("https://example.com.evil"));
        for bad_origin in ["example.com", "^example.com", "*", "//a(", ".*"] {
            let e = cors_origins(&[bad_origin.to_string()]).unwrap_err();
            assert_eq!(e.flag, "--cors-allowed-origins", "{bad_origin}");
        }
    }

    #[test]
    fn hsts_directives_are_the_three_known_kinds() {
        let v = hsts(&["max-age=31536000".into(), "includeSubDomains".into(), "preload".into()]).unwrap();
        assert_eq!(v.as_deref(), Some("max-age=31536000; includeSubDomains; preload"));
        assert_eq!(hsts(&[]).unwrap(), None);
        for bad_item in ["max-age=", "max-age=1d", "includesubdomains", "foo"] {
            assert!(hsts(&[bad_item.into()]).is_err(), "{bad_item}");
        }
    }
}
