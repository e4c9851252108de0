//! metrics-server's "Generic" section: the generic apiserver's run options
//! (request handling, shutdown, emulation, feature gates). Parsing only.

use apimachinery::GoDuration;
use clap::{ArgAction, Args};

use super::super::defaults as d;
use super::values::{StringList, go_bool, go_float, go_int64};

/// The generic apiserver's run options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Generic flags")]
pub struct GenericArgs {
    /// The IP address the generic apiserver advertises for itself (accepted;
    /// nothing here uses it, as in metrics-server).
    #[arg(long, value_name = "IP")]
    pub advertise_address: Option<String>,

    /// Regular expressions of browser origins allowed by CORS; each must be
    /// anchored at both ends of the host. Empty: CORS off.
    #[arg(long, value_name = "REGEXES")]
    pub cors_allowed_origins: Vec<StringList>,

    /// Emulate an older version of a component. metrics-server registers no
    /// component, so any value is refused, as there.
    #[arg(long, value_name = "COMPONENT=VERSION")]
    pub emulated_version: Vec<StringList>,

    /// Emulation mode: also enable newer APIs (accepted; no emulation here).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub emulation_forward_compatible: bool,

    /// The host name the generic apiserver builds external URLs with (accepted; unused, as in metrics-server).
    #[arg(long, value_name = "HOST")]
    pub external_hostname: Option<String>,

    /// `component:Gate=true|false` pairs. metrics-server registers no
    /// component and no gate, so any entry is refused, as there.
    #[arg(long, value_name = "GATES")]
    pub feature_gates: Vec<String>,

    /// Fraction of HTTP/2 requests after which the connection gets a GOAWAY,
    /// so clients reconnect (and spread) elsewhere. 0 to 0.02.
    #[arg(long, default_value_t = 0.0, value_parser = go_float, value_name = "FLOAT")]
    pub goaway_chance: f64,

    /// After start, for this long, /livez reports the generic checks (not
    /// metric-collection-timely) as passing.
    #[arg(long, default_value_t = GoDuration(std::time::Duration::ZERO), value_name = "DURATION")]
    pub livez_grace_period: GoDuration,

    /// Most mutating (POST, PUT, PATCH, DELETE) requests served at once; more
    /// get 429. 0: no limit.
    #[arg(long, default_value_t = d::MAX_MUTATING_REQUESTS_INFLIGHT, value_parser = go_int64, value_name = "N")]
    pub max_mutating_requests_inflight: i64,

    /// Most other requests served at once (probes excepted); more get 429. 0: no limit.
    #[arg(long, default_value_t = d::MAX_REQUESTS_INFLIGHT, value_parser = go_int64, value_name = "N")]
    pub max_requests_inflight: i64,

    /// Oldest control-plane version to stay compatible with. metrics-server
    /// registers no component, so any value is refused, as there.
    #[arg(long, value_name = "COMPONENT=VERSION")]
    pub min_compatibility_version: Vec<StringList>,

    /// Lower bound, in seconds, of a watch's timeout. This server refuses
    /// watches at once (as metrics-server serves none), so nothing uses it.
    #[arg(long, default_value_t = 1800, value_parser = go_int64, value_name = "SECONDS")]
    pub min_request_timeout: i64,

    /// Longest a request may take before it is answered 504 (shorter with a
    /// `timeout` query parameter); also how long requests in flight at
    /// shutdown may finish (within --shutdown-grace-period).
    #[arg(long, default_value_t = GoDuration(d::REQUEST_TIMEOUT), value_name = "DURATION")]
    pub request_timeout: GoDuration,

    /// Emulation mode switch for --runtime-config APIs (accepted; no emulation here).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub runtime_config_emulation_forward_compatible: bool,

    /// After SIGTERM, keep serving for this long while /readyz fails, so load
    /// balancers stop sending requests first.
    #[arg(long, default_value_t = GoDuration(d::SHUTDOWN_DELAY), value_name = "DURATION")]
    pub shutdown_delay_duration: GoDuration,

    /// At shutdown, keep listening until the requests in flight have finished
    /// and answer new ones 429 with Retry-After: 5 and Connection: close
    /// (probes, /metrics and kube-apiserver excepted).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub shutdown_send_retry_after: bool,

    /// Longest wait for open watches at shutdown (this server serves no
    /// watch, so there is never one to wait for).
    #[arg(long, default_value_t = GoDuration(std::time::Duration::ZERO), value_name = "DURATION")]
    pub shutdown_watch_termination_grace_period: GoDuration,

    /// How long the generic apiserver waits for its storage (accepted; there is no storage here).
    #[arg(long, default_value_t = GoDuration(std::time::Duration::from_secs(60)), value_name = "DURATION")]
    pub storage_initialization_timeout: GoDuration,

    /// HSTS directives (max-age=N, includeSubDomains, preload); when set,
    /// every response carries a Strict-Transport-Security header.
    #[arg(long, value_name = "DIRECTIVES")]
    pub strict_transport_security_directives: Vec<StringList>,
}
