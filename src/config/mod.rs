//! Configuration: the flags ([`flags`]), every default ([`defaults`]) and
//! the validated settings every other module reads ([`Config`]). Every flag
//! is checked here, once, by [`Config::from_args`], before anything binds a
//! port: bad values and bad combinations fail at start with a message that
//! names the flag, and the flags of metrics-server 0.9 that have no effect
//! here are listed for the start-up log ([`compat`]). A leaf: it uses the
//! leaf crates (`apimachinery`, `tls`, `raft`'s config) and no other module
//! of the server.

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod compat;
pub mod defaults;
pub mod flags;
pub mod logging;
pub mod peer;
pub mod serving;

use std::path::PathBuf;
use std::time::Duration;

use apimachinery::selector::LabelSelector;

pub use apimachinery::parse_go_duration;
pub use audit::AuditSettings;
pub use auth::{AlwaysAllowPaths, AuthSettings, TrustOverrides};
pub use cluster::ClusterSettings;
pub use compat::CompatNote;
pub use flags::{AuthArgs, ClusterArgs, ServeArgs};

pub use logging::{LoggingSettings, VmoduleRule};
pub use peer::{PeerCredentials, PeerTlsSettings, SecretRef, parse_secret_ref};
pub use serving::{RequestSettings, ServingSettings};

use flags::values::{flatten, parse_feature_gates};

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
    /// `--kubelet-preferred-address-types`, in order (names no node
    /// address has are dropped, as they never match).
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

/// How this replica stops on SIGTERM, within `--shutdown-grace-period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// The whole budget.
    pub grace: Duration,
    /// `--shutdown-delay-duration`: serving on while /readyz fails.
    pub delay: Duration,
    /// `--shutdown-send-retry-after`: after the delay, keep listening and
    /// answer new requests 429 until those in flight are done.
    pub send_retry_after: bool,
    /// How long the handover may take: Draining committed, every moved node
    /// served fresh by its new owner (60% of the grace period).
    pub handover_timeout: Duration,
    /// How long leaving Raft may take afterwards (20%).
    pub leave_timeout: Duration,
    /// How long in-flight requests may run after the listeners stop:
    /// `--request-timeout`, within 10% of the grace period and at most 10 s;
    /// 2 s with `--shutdown-send-retry-after` (they were drained before).
    pub in_flight_drain: Duration,
}

impl ShutdownSettings {
    /// The timeouts derived from a grace period; their sum, plus
    /// `--shutdown-delay-duration`, stays within it.
    pub fn from_grace(grace: Duration) -> ShutdownSettings {
        ShutdownSettings {
            grace,
            delay: Duration::ZERO,
            send_retry_after: false,
            handover_timeout: grace.mul_f64(0.6),
            leave_timeout: grace.mul_f64(0.2),
            in_flight_drain: grace.mul_f64(0.1).min(Duration::from_secs(10)),
        }
    }

    /// With metrics-server's request-handling flags applied.
    fn with_requests(mut self, delay: Duration, request_timeout: Duration, send_retry_after: bool) -> Self {
        self.delay = delay;
        self.send_retry_after = send_retry_after;
        self.in_flight_drain = if send_retry_after {
            self.in_flight_drain.min(Duration::from_secs(2))
        } else {
            self.in_flight_drain.min(request_timeout)
        };
        self
    }
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
    /// Request handling: in-flight limits, timeouts, CORS, HSTS, GOAWAY.
    pub requests: RequestSettings,
    /// Delegated authentication and authorization.
    pub auth: AuthSettings,
    /// Auditing; `None`: nothing is audited.
    pub audit: Option<AuditSettings>,
    /// The replica cluster; `None` runs a single replica without Raft.
    pub cluster: Option<ClusterSettings>,
    /// Stopping.
    pub shutdown: ShutdownSettings,
    /// Logging.
    pub logging: LoggingSettings,
    /// The metrics-server flags given that have no effect here, for the log.
    pub compat_notes: Vec<CompatNote>,
    /// Values accepted but not honoured exactly (TLS parameters rustls
    /// lacks, unknown address types, ...), for the log.
    pub warnings: Vec<String>,
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

/// `--emulated-version`, `--min-compatibility-version` and `--feature-gates`:
/// metrics-server registers no component, so any entry fails its start.
fn refuse_component_flags(args: &ServeArgs) -> Result<(), ConfigError> {
    let g = &args.generic;
    for (flag, items) in [
        ("--emulated-version", flatten(&g.emulated_version)),
        ("--min-compatibility-version", flatten(&g.min_compatibility_version)),
    ] {
        if let Some(item) = items.iter().find(|i| !i.trim().is_empty()) {
            let component = item.split_once('=').map_or("kube", |(c, _)| c.trim());
            return Err(bad(
                flag,
                format!(
                    "{item:?}: component not registered: {component} (metrics-server registers no component whose \
                     version could be set, so metrics-server 0.9 refuses any value too)"
                ),
            ));
        }
    }
    for value in &g.feature_gates {
        let gates = parse_feature_gates(value).map_err(|e| bad("--feature-gates", e))?;
        if let Some(gate) = gates.first() {
            return Err(bad(
                "--feature-gates",
                format!(
                    "{}:{}={}: component not registered: {} (metrics-server registers no feature gates, so \
                     metrics-server 0.9 refuses any entry too)",
                    gate.component, gate.gate, gate.enabled, gate.component
                ),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Validates the flags, in metrics-server's order: kubelet client,
    /// resolution, logging, generic options, then the rest.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let k = &args.kubelet;
        let ours = &args.ours;
        if k.kubelet_insecure_tls && k.kubelet_certificate_authority.is_some() {
            return Err(bad(
                "--kubelet-insecure-tls",
                "cannot be combined with --kubelet-certificate-authority: either verify kubelets against a CA or do not",
            ));
        }
        let client_cert = file_pair(
            "--kubelet-client-certificate",
            &k.kubelet_client_certificate,
            "--kubelet-client-key",
            &k.kubelet_client_key,
        )?;
        if k.deprecated_kubelet_completely_insecure
            && (k.kubelet_insecure_tls || client_cert.is_some() || k.kubelet_certificate_authority.is_some())
        {
            return Err(bad(
                "--deprecated-kubelet-completely-insecure",
                "cannot be combined with --kubelet-insecure-tls, kubelet certificates or a kubelet CA (it talks \
                 plain HTTP)",
            ));
        }
        let request_timeout = k.kubelet_request_timeout.0;
        if request_timeout.is_zero() {
            return Err(bad("--kubelet-request-timeout", "must be greater than 0"));
        }
        let resolution = args.main.metric_resolution.0;
        let floor = if ours.allow_short_resolution { defaults::MIN_SHORT_RESOLUTION } else { defaults::MIN_RESOLUTION };
        if resolution < floor {
            return Err(bad(
                "--metric-resolution",
                format!("must be at least {}s, got {}", floor.as_secs(), args.main.metric_resolution),
            ));
        }
        if resolution.mul_f64(0.9) < request_timeout {
            return Err(bad(
                "--kubelet-request-timeout",
                format!(
                    "{} must be at most 90% of --metric-resolution ({}) so a scrape ends before the next one starts",
                    k.kubelet_request_timeout, args.main.metric_resolution
                ),
            ));
        }
        let logging = LoggingSettings::from_args(&args.logging)?;
        let requests = RequestSettings::from_args(&args.generic)?;
        refuse_component_flags(args)?;

        let max_staleness = ours.max_staleness.map_or(resolution * 2, |d| d.0);
        let mut address_types = Vec::new();
        for name in flatten(&k.kubelet_preferred_address_types).iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match AddressType::parse(name) {
                Some(t) => address_types.push(t),
                None => warnings.push(format!(
                    "--kubelet-preferred-address-types: {name:?} is not a node address type (Hostname, \
                     InternalDNS, InternalIP, ExternalDNS, ExternalIP); it never matches, as in metrics-server"
                )),
            }
        }
        if address_types.is_empty() {
            return Err(bad(
                "--kubelet-preferred-address-types",
                "names no node address type, so no kubelet could be reached; use Hostname, InternalDNS, \
                 InternalIP, ExternalDNS or ExternalIP",
            ));
        }
        let kubelet_port = u16::try_from(k.kubelet_port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("--kubelet-port", format!("{} is not a port number (1 to 65535)", k.kubelet_port)))?;
        let serving = ServingSettings::from_args(&args.serving)?;
        warnings.extend(serving.tls_policy.notes.iter().cloned());
        if ours.shutdown_grace_period.0 < Duration::from_secs(1) {
            return Err(bad("--shutdown-grace-period", "must be at least 1s"));
        }
        let delay = args.generic.shutdown_delay_duration.0;
        if delay >= ours.shutdown_grace_period.0 {
            return Err(bad(
                "--shutdown-delay-duration",
                format!(
                    "{} leaves nothing of --shutdown-grace-period {} for the handover",
                    args.generic.shutdown_delay_duration, ours.shutdown_grace_period
                ),
            ));
        }
        let audit = AuditSettings::from_args(&args.audit, &mut warnings)?;
        for p in &args.positional {
            warnings.push(format!("argument {p:?} is not a flag; ignored, as metrics-server ignores it"));
        }
        Ok(Config {
            resolution,
            max_staleness,
            kubeconfig: args.main.kubeconfig.clone(),
            node_selector: LabelSelector::parse(k.node_selector.trim())
                .map_err(|e| bad("--node-selector", e.to_string()))?,
            kubelet: KubeletSettings {
                port: kubelet_port,
                use_node_status_port: k.kubelet_use_node_status_port,
                address_types,
                insecure_tls: k.kubelet_insecure_tls,
                certificate_authority: k.kubelet_certificate_authority.clone(),
                client_cert,
                request_timeout,
                completely_insecure: k.deprecated_kubelet_completely_insecure,
                token_file: ours.kubelet_token_file.clone(),
                concurrency: defaults::SCRAPE_CONCURRENCY,
            },
            cluster: ClusterSettings::from_args(&args.cluster, serving.addr())?,
            serving,
            auth: AuthSettings::from_args(&args.auth)?,
            audit,
            shutdown: ShutdownSettings::from_grace(ours.shutdown_grace_period.0).with_requests(
                delay,
                requests.request_timeout,
                args.generic.shutdown_send_retry_after,
            ),
            requests,
            logging,
            compat_notes: compat::no_effect_notes(&args.given),
            warnings,
        })
    }
}

#[cfg(test)]
mod tests;
