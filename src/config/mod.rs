//! Configuration: the flags ([`flags::ServeArgs`]) and the validated
//! settings every other module reads ([`Config`]). Defaults live in the flag
//! definitions and nowhere else; bad combinations fail here, at start, with a
//! message that names the flags.

pub mod flags;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use apimachinery::parse_go_duration;
pub use flags::ServeArgs;

/// A start-up configuration error: which flag, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { flag, message: message.into() }
}

/// A node address type, in `--kubelet-preferred-address-types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Hostname,
    InternalDns,
    InternalIp,
    ExternalDns,
    ExternalIp,
}

impl AddressType {
    /// The name used in `node.status.addresses[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::Hostname => "Hostname",
            AddressType::InternalDns => "InternalDNS",
            AddressType::InternalIp => "InternalIP",
            AddressType::ExternalDns => "ExternalDNS",
            AddressType::ExternalIp => "ExternalIP",
        }
    }

    fn parse(s: &str) -> Option<AddressType> {
        [
            AddressType::Hostname,
            AddressType::InternalDns,
            AddressType::InternalIp,
            AddressType::ExternalDns,
            AddressType::ExternalIp,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// How to reach and authenticate to kubelets.
#[derive(Debug, Clone)]
pub struct KubeletSettings {
    pub port: u16,
    pub use_node_status_port: bool,
    pub address_types: Vec<AddressType>,
    pub insecure_tls: bool,
    pub certificate_authority: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub request_timeout: Duration,
    pub completely_insecure: bool,
    pub token_file: Option<PathBuf>,
}

/// How to serve HTTPS.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    pub bind_address: IpAddr,
    pub port: u16,
    pub cert_dir: PathBuf,
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// `--tls-min-version` and `--tls-cipher-suites`, checked.
    pub tls_policy: tls::TlsPolicy,
    pub max_requests_inflight: usize,
    pub shutdown_delay: Duration,
}

/// Every validated setting of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    pub resolution: Duration,
    pub max_staleness: Duration,
    pub kubeconfig: Option<PathBuf>,
    /// `--node-selector`, parsed.
    pub node_selector: apimachinery::selector::LabelSelector,
    pub kubelet: KubeletSettings,
    pub serving: ServingSettings,
    /// The replica cluster; `None` runs a single replica without Raft.
    pub cluster: Option<crate::membership::ClusterSettings>,
    pub verbosity: u8,
    pub json_logs: bool,
    /// The raw flags, for the parts (authentication) that read their own.
    pub args: ServeArgs,
}

/// The smallest resolution metrics-server accepts.
pub const MIN_RESOLUTION: Duration = Duration::from_secs(10);

fn duration_flag(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_go_duration(value).map_err(|m| bad(flag, m))
}

fn file_pair(
    cert_flag: &'static str,
    cert: &Option<PathBuf>,
    key_flag: &'static str,
    key: &Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad(key_flag, format!("must be set together with {cert_flag}"))),
        (None, Some(_)) => Err(bad(cert_flag, format!("must be set together with {key_flag}"))),
    }
}

impl Config {
    /// Validates the flags.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigError> {
        let resolution = duration_flag("--metric-resolution", &args.metric_resolution)?;
        let floor = if args.allow_short_resolution { Duration::from_secs(1) } else { MIN_RESOLUTION };
        if resolution < floor {
            return Err(bad(
                "--metric-resolution",
                format!("must be at least {}s, got {}", floor.as_secs(), args.metric_resolution),
            ));
        }
        let request_timeout = duration_flag("--kubelet-request-timeout", &args.kubelet_request_timeout)?;
        if request_timeout.is_zero() {
            return Err(bad("--kubelet-request-timeout", "must be greater than 0"));
        }
        if resolution.mul_f64(0.9) < request_timeout {
            return Err(bad(
                "--kubelet-request-timeout",
                format!(
                    "{} must be at most 90% of --metric-resolution ({}) so a scrape ends before the next one starts",
                    args.kubelet_request_timeout, args.metric_resolution
                ),
            ));
        }
        let max_staleness = match &args.max_staleness {
            Some(v) => duration_flag("--max-staleness", v)?,
            None => resolution * 2,
        };
        if args.kubelet_insecure_tls && args.kubelet_certificate_authority.is_some() {
            return Err(bad(
                "--kubelet-insecure-tls",
                "cannot be combined with --kubelet-certificate-authority: either verify kubelets against a CA or do not",
            ));
        }
        if args.kubelet_insecure_tls && args.deprecated_kubelet_completely_insecure {
            return Err(bad(
                "--kubelet-insecure-tls",
                "cannot be combined with --deprecated-kubelet-completely-insecure",
            ));
        }
        let client_cert = file_pair(
            "--kubelet-client-certificate",
            &args.kubelet_client_certificate,
            "--kubelet-client-key",
            &args.kubelet_client_key,
        )?;
        if args.deprecated_kubelet_completely_insecure
            && (client_cert.is_some() || args.kubelet_certificate_authority.is_some())
        {
            return Err(bad(
                "--deprecated-kubelet-completely-insecure",
                "cannot be combined with kubelet certificates or a kubelet CA (it talks plain HTTP)",
            ));
        }
        let mut address_types = Vec::new();
        for name in args.kubelet_preferred_address_types.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let t = AddressType::parse(name).ok_or_else(|| {
                bad(
                    "--kubelet-preferred-address-types",
                    format!(
                        "unknown address type {name:?}; use Hostname, InternalDNS, InternalIP, ExternalDNS, ExternalIP"
                    ),
                )
            })?;
            address_types.push(t);
        }
        if address_types.is_empty() {
            return Err(bad("--kubelet-preferred-address-types", "must name at least one address type"));
        }
        let bind_address: IpAddr = args
            .bind_address
            .parse()
            .map_err(|_| bad("--bind-address", format!("{:?} is not an IP address", args.bind_address)))?;
        let cert_files =
            file_pair("--tls-cert-file", &args.tls_cert_file, "--tls-private-key-file", &args.tls_private_key_file)?;
        let json_logs = match args.logging_format.as_str() {
            "text" => false,
            "json" => true,
            other => return Err(bad("--logging-format", format!("{other:?} is not one of text, json"))),
        };
        if args.max_requests_inflight == 0 {
            return Err(bad("--max-requests-inflight", "must be at least 1"));
        }
        Ok(Config {
            resolution,
            max_staleness,
            kubeconfig: args.kubeconfig.clone(),
            node_selector: apimachinery::selector::LabelSelector::parse(&args.node_selector)
                .map_err(|e| bad("--node-selector", e.to_string()))?,
            kubelet: KubeletSettings {
                port: args.kubelet_port,
                use_node_status_port: args.kubelet_use_node_status_port,
                address_types,
                insecure_tls: args.kubelet_insecure_tls,
                certificate_authority: args.kubelet_certificate_authority.clone(),
                client_cert,
                request_timeout,
                completely_insecure: args.deprecated_kubelet_completely_insecure,
                token_file: args.kubelet_token_file.clone(),
            },
            serving: ServingSettings {
                bind_address,
                port: args.secure_port,
                cert_dir: args.cert_dir.clone(),
                cert_files,
                tls_policy: tls::TlsPolicy::from_flags(
                    args.tls_min_version.as_deref().unwrap_or(""),
                    args.tls_cipher_suites.as_deref().unwrap_or(""),
                )
                .map_err(|e| {
                    let flag = if e.to_string().starts_with("--tls-min-version") {
                        "--tls-min-version"
                    } else {
                        "--tls-cipher-suites"
                    };
                    ConfigError { flag, message: e.to_string().splitn(2, ": ").nth(1).unwrap_or_default().to_string() }
                })?,
                max_requests_inflight: args.max_requests_inflight,
                shutdown_delay: duration_flag("--shutdown-delay-duration", &args.shutdown_delay_duration)?,
            },
            cluster: crate::membership::ClusterSettings::from_args(&args.cluster, bind_address)?,
            verbosity: args.verbosity,
            json_logs,
            args: args.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ServeArgs,
    }

    fn parse(flags: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(flags);
        Config::from_args(&T::parse_from(argv).a)
    }

    #[test]
    fn manifest_flags_are_accepted() {
        let c = parse(&[
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ])
        .unwrap();
        assert_eq!(c.resolution, Duration::from_secs(15));
        assert_eq!(c.max_staleness, Duration::from_secs(30));
        assert!(c.kubelet.use_node_status_port);
        assert_eq!(c.kubelet.address_types[0], AddressType::InternalIp);
    }

    #[test]
    fn resolution_and_timeout_follow_metrics_server_rules() {
        assert!(parse(&["--metric-resolution=10s", "--kubelet-request-timeout=9s"]).is_ok());
        let e = parse(&["--metric-resolution=10s", "--kubelet-request-timeout=10s"]).unwrap_err();
        assert_eq!(e.flag, "--kubelet-request-timeout");
        assert_eq!(parse(&["--metric-resolution=5s"]).unwrap_err().flag, "--metric-resolution");
        assert!(parse(&["--kubelet-request-timeout=0s"]).is_err());
    }

    #[test]
    fn conflicting_kubelet_flags_fail_with_the_flag_named() {
        let e = parse(&["--kubelet-insecure-tls", "--kubelet-certificate-authority=/ca"]).unwrap_err();
        assert_eq!(e.flag, "--kubelet-insecure-tls");
        let e = parse(&["--kubelet-client-certificate=/c"]).unwrap_err();
        assert_eq!(e.flag, "--kubelet-client-key");
        let e = parse(&["--deprecated-kubelet-completely-insecure", "--kubelet-insecure-tls"]).unwrap_err();
        assert_eq!(e.flag, "--kubelet-insecure-tls");
        let e = parse(&["--tls-private-key-file=/k"]).unwrap_err();
        assert_eq!(e.flag, "--tls-cert-file");
        let e = parse(&["--tls-cert-file=/c"]).unwrap_err();
        assert_eq!(e.flag, "--tls-private-key-file");
        let e = parse(&["--kubelet-preferred-address-types=InternalIP,Bogus"]).unwrap_err();
        assert!(e.message.contains("Bogus"));
        assert_eq!(parse(&["--bind-address=nope"]).unwrap_err().flag, "--bind-address");
        assert_eq!(parse(&["--logging-format=xml"]).unwrap_err().flag, "--logging-format");
    }

    #[test]
    fn zero_max_staleness_is_the_reference_behaviour() {
        assert_eq!(parse(&["--max-staleness=0"]).unwrap().max_staleness, Duration::ZERO);
    }
}
