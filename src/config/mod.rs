//! Configuration: the flags ([`flags`]), every default ([`defaults`]) and
//! the validated settings every other module reads ([`Config`]). Every flag
//! is checked here, once, by [`Config::from_args`], before anything binds a
//! port: bad values and bad combinations fail at start with a message that
//! names the flag. A leaf: it uses the leaf crates (`apimachinery`, `tls`,
//! `raft`'s config) and no other module of the server.

pub mod auth;
pub mod cluster;
pub mod defaults;
pub mod flags;
pub mod peer;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use apimachinery::selector::LabelSelector;
use tls::TlsPolicy;

pub use apimachinery::parse_go_duration;
pub use auth::{AlwaysAllowPaths, AuthSettings, TrustOverrides};
pub use cluster::ClusterSettings;
pub use flags::{AuthArgs, ClusterArgs, ServeArgs};
pub use peer::{PeerCredentials, PeerTlsSettings, SecretRef, parse_secret_ref};

/// A start-up configuration error: which flag, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag at fault (the first one named, for combinations).
    pub flag: &'static str,
    /// What is wrong, for the operator.
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
    /// `--kubelet-port`.
    pub port: u16,
    /// `--kubelet-use-node-status-port`.
    pub use_node_status_port: bool,
    /// `--kubelet-preferred-address-types`, in order.
    pub address_types: Vec<AddressType>,
    /// `--kubelet-insecure-tls`.
    pub insecure_tls: bool,
    /// `--kubelet-certificate-authority`.
    pub certificate_authority: Option<PathBuf>,
    /// `--kubelet-client-certificate` and `--kubelet-client-key`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `--kubelet-request-timeout`.
    pub request_timeout: Duration,
    /// `--deprecated-kubelet-completely-insecure`.
    pub completely_insecure: bool,
    /// `--kubelet-token-file`.
    pub token_file: Option<PathBuf>,
    /// Scrapes in flight at once.
    pub concurrency: usize,
}

/// How to serve HTTPS.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--secure-port`.
    pub port: u16,
    /// `--cert-dir`.
    pub cert_dir: PathBuf,
    /// `--tls-cert-file` and `--tls-private-key-file`.
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// `--tls-min-version` and `--tls-cipher-suites`, checked.
    pub tls_policy: TlsPolicy,
    /// `--max-requests-inflight`.
    pub max_requests_inflight: usize,
    /// `--shutdown-delay-duration`.
    pub shutdown_delay: Duration,
}

impl ServingSettings {
    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.port)
    }
}

/// How this replica stops on SIGTERM, within `--shutdown-grace-period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// The whole budget.
    pub grace: Duration,
    /// How long the handoff may take: Draining committed, every moved node
    /// served fresh by its new owner (60% of the grace period).
    pub handoff_timeout: Duration,
    /// How long leaving Raft may take afterwards (20%).
    pub leave_timeout: Duration,
    /// How long in-flight requests may run after the listeners stop (10%, at most 10 s).
    pub in_flight_drain: Duration,
}

impl ShutdownSettings {
    /// The timeouts derived from a grace period; their sum, plus
    /// `--shutdown-delay-duration`, stays within it.
    pub fn from_grace(grace: Duration) -> ShutdownSettings {
        ShutdownSettings {
            grace,
            handoff_timeout: grace.mul_f64(0.6),
            leave_timeout: grace.mul_f64(0.2),
            in_flight_drain: grace.mul_f64(0.1).min(Duration::from_secs(10)),
        }
    }
}

/// How to log.
#[derive(Debug, Clone, Copy)]
pub struct LoggingSettings {
    /// `-v`.
    pub verbosity: u8,
    /// `--logging-format=json`.
    pub json: bool,
}

/// Every validated setting of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--metric-resolution`.
    pub resolution: Duration,
    /// `--max-staleness` (default 2 × resolution).
    pub max_staleness: Duration,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--node-selector`, parsed.
    pub node_selector: LabelSelector,
    /// Kubelet access.
    pub kubelet: KubeletSettings,
    /// The API listener.
    pub serving: ServingSettings,
    /// Delegated authentication and authorization.
    pub auth: AuthSettings,
    /// The replica cluster; `None` runs a single replica without Raft.
    pub cluster: Option<ClusterSettings>,
    /// Stopping.
    pub shutdown: ShutdownSettings,
    /// Logging.
    pub logging: LoggingSettings,
    /// `--profiling` (accepted for compatibility; no pprof here).
    pub profiling: bool,
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
        let resolution = args.metric_resolution.0;
        let floor = if args.allow_short_resolution { defaults::MIN_SHORT_RESOLUTION } else { defaults::MIN_RESOLUTION };
        if resolution < floor {
            return Err(bad(
                "--metric-resolution",
                format!("must be at least {}s, got {}", floor.as_secs(), args.metric_resolution),
            ));
        }
        let request_timeout = args.kubelet_request_timeout.0;
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
        let max_staleness = args.max_staleness.map_or(resolution * 2, |d| d.0);
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
        let tls_policy = TlsPolicy::from_flags(
            args.tls_min_version.as_deref().unwrap_or(""),
            args.tls_cipher_suites.as_deref().unwrap_or(""),
        )
        .map_err(|e| bad(e.flag(), e.to_string()))?;
        let json = match args.logging_format.as_str() {
            "text" => false,
            "json" => true,
            other => return Err(bad("--logging-format", format!("{other:?} is not one of text, json"))),
        };
        if args.shutdown_grace_period.0 < Duration::from_secs(1) {
            return Err(bad("--shutdown-grace-period", "must be at least 1s"));
        }
        if args.shutdown_delay_duration.0 >= args.shutdown_grace_period.0 {
            return Err(bad(
                "--shutdown-delay-duration",
                format!(
                    "{} leaves nothing of --shutdown-grace-period {} for the handoff",
                    args.shutdown_delay_duration, args.shutdown_grace_period
                ),
            ));
        }
        if args.max_requests_inflight == 0 {
            return Err(bad("--max-requests-inflight", "must be at least 1"));
        }
        let serving = ServingSettings {
            bind_address,
            port: args.secure_port,
            cert_dir: args.cert_dir.clone(),
            cert_files,
            tls_policy,
            max_requests_inflight: args.max_requests_inflight,
            shutdown_delay: args.shutdown_delay_duration.0,
        };
        Ok(Config {
            resolution,
            max_staleness,
            kubeconfig: args.kubeconfig.clone(),
            node_selector: LabelSelector::parse(&args.node_selector)
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
                concurrency: defaults::SCRAPE_CONCURRENCY,
            },
            cluster: ClusterSettings::from_args(&args.cluster, serving.addr())?,
            serving,
            auth: AuthSettings::from_args(&args.auth)?,
            shutdown: ShutdownSettings::from_grace(args.shutdown_grace_period.0),
            logging: LoggingSettings { verbosity: args.verbosity, json },
            profiling: args.profiling,
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
    fn bad_values_name_their_flag_before_anything_starts() {
        let e = parse(&["--tls-min-version=VersionTLS11"]).unwrap_err();
        assert_eq!(e.flag, "--tls-min-version");
        assert!(e.message.contains("TLS 1.2 or newer"), "{e}");
        assert_eq!(parse(&["--tls-cipher-suites=TLS_FOO"]).unwrap_err().flag, "--tls-cipher-suites");
        assert_eq!(
            parse(&["--authorization-always-allow-paths=/a*b"]).unwrap_err().flag,
            "--authorization-always-allow-paths"
        );
        let cluster = |extra: &[&str]| {
            let mut f = vec![
                "--peers=a=127.0.0.1:1,b=127.0.0.2:1,c=127.0.0.3:1",
                "--node-name=a",
                "--peer-ca-file=/ca",
                "--peer-cert-file=/c",
                "--peer-key-file=/k",
            ];
            f.extend_from_slice(extra);
            parse(&f)
        };
        assert!(cluster(&[]).is_ok());
        for voters in ["--voters=2", "--voters=4", "--voters=7"] {
            let e = cluster(&[voters]).unwrap_err();
            assert_eq!(e.flag, "--voters", "{voters}: {e}");
            assert!(e.message.contains("use 3 or 5"), "{e}");
        }
        assert!(cluster(&["--voters=5"]).is_ok());
        assert_eq!(cluster(&["--lease=900ms"]).unwrap_err().flag, "--lease");
        assert_eq!(cluster(&["--peer-advertise-address=127.0.0.9:1"]).unwrap_err().flag, "--peer-advertise-address");
        assert_eq!(
            parse(&[
                "--peers=a=127.0.0.1:1,a=127.0.0.2:1",
                "--node-name=b",
                "--peer-ca-file=/ca",
                "--peer-cert-file=/c",
                "--peer-key-file=/k",
                "--peer-advertise-address=127.0.0.5:1"
            ])
            .unwrap_err()
            .flag,
            "--peers"
        );
    }

    #[test]
    fn auth_defaults_match_the_generic_apiserver() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.auth, AuthSettings::default());
        assert_eq!(c.auth.token_cache_ttl, Duration::from_secs(10));
        assert_eq!(c.auth.authorized_ttl, Duration::from_secs(10));
        assert_eq!(c.auth.unauthorized_ttl, Duration::from_secs(10));
        assert!(c.auth.always_allow_paths.matches("/readyz"));
        assert!(!c.auth.always_allow_paths.matches("/metrics"));
        assert_eq!(c.auth.trust, TrustOverrides::default());
    }

    #[test]
    fn auth_list_flags_split_on_commas_and_win() {
        let c = parse(&[
            "--requestheader-allowed-names=front-proxy-client,aggregator",
            "--authorization-always-allow-paths=/healthz,/metrics*",
            "--authentication-token-webhook-cache-ttl=1m30s",
        ])
        .unwrap();
        assert_eq!(
            c.auth.trust.requestheader_allowed_names,
            Some(vec!["front-proxy-client".into(), "aggregator".into()])
        );
        assert!(c.auth.always_allow_paths.matches("/metrics/slis"));
        assert_eq!(c.auth.token_cache_ttl, Duration::from_secs(90));
    }

    #[test]
    fn always_allow_paths_take_exact_paths_and_trailing_star_prefixes() {
        let d = AlwaysAllowPaths::default();
        assert!(d.matches("/healthz") && d.matches("/livez") && d.matches("readyz"));
        assert!(!d.matches("/healthz/etcd"));
        assert!(!d.matches("/metrics"));
        let p = AlwaysAllowPaths::new(&["/healthz/*", "/version"]).unwrap();
        assert!(p.matches("/healthz/ping"));
        assert!(p.matches("/healthz/"));
        assert!(!p.matches("/healthz"));
        assert!(p.matches("/version") && !p.matches("/versions"));
        assert!(AlwaysAllowPaths::new(&["/a*b"]).is_err());
        assert!(AlwaysAllowPaths::new(&["/a**"]).is_err());
    }

    #[test]
    fn zero_max_staleness_is_the_reference_behaviour() {
        assert_eq!(parse(&["--max-staleness=0"]).unwrap().max_staleness, Duration::ZERO);
    }
}
