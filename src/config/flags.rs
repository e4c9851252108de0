//! Command-line flags of the server: every flag metrics-server 0.9
//! accepts, with its name, short form, value syntax ([`values`]) and
//! default, in metrics-server's `--help` sections, plus ours (the replica
//! cluster and a few extensions), each under a heading that says so.
//! Parsing only (a value that does not parse is clap's error, naming the
//! flag); [`super::Config::from_args`] checks values and combinations and
//! turns them into typed settings. Defaults come from [`super::defaults`].

mod audit;
mod generic;
mod logging;
mod serving;
pub mod values;

use std::path::PathBuf;

use apimachinery::GoDuration;
use clap::{ArgAction, Args};

use super::defaults as d;
pub use audit::AuditArgs;
pub use generic::GenericArgs;
pub use logging::{FeaturesArgs, LoggingArgs};
pub use serving::SecureServingArgs;
use values::{StringList, go_bool, go_int64};

/// The `--help` heading of flags metrics-server does not have.
pub const OURS_HEADING: &str = "ha-metrics-server flags (not in metrics-server)";
/// The `--help` heading of the replica-cluster flags (ours).
pub const REPLICATION_HEADING: &str = "Replication flags (ha-metrics-server only: peers, Raft, ring)";

/// Flags of `ha-metrics-server` (the server itself), in metrics-server's
/// sections and order, then ours.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub main: MetricsServerArgs,
    #[command(flatten)]
    pub generic: GenericArgs,
    #[command(flatten)]
    pub kubelet: KubeletArgs,
    #[command(flatten)]
    pub serving: SecureServingArgs,
    /// Delegated authentication and authorization (front proxy, client
    /// certificates, TokenReview, SubjectAccessReview).
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    #[command(flatten)]
    pub features: FeaturesArgs,
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(flatten)]
    pub ours: OwnArgs,
    /// Replica cluster (Raft membership, peer port).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Positional arguments: metrics-server (cobra) accepts and ignores
    /// them, and so `--some-bool false` leaves `false` here.
    #[arg(hide = true, value_name = "IGNORED")]
    pub positional: Vec<String>,
    /// Print this help and exit (`-h`, `--help`, `--help=true`, as cobra's).
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub help: bool,
    /// Long names of the flags given on the command line (filled by the
    /// command line parser, for the compatibility notes; empty otherwise).
    #[arg(skip)]
    pub given: std::collections::BTreeSet<String>,
}

/// metrics-server's own section.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Metrics server flags")]
pub struct MetricsServerArgs {
    /// Path to the kubeconfig for kube-apiserver and, for its token and CA,
    /// the kubelets. Empty: the in-cluster service account, else $KUBECONFIG.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// How often each kubelet is scraped; the served CPU rate spans about one
    /// period. At least 10s, and --kubelet-request-timeout at most 90% of it.
    /// (metrics-server's built-in default is 1m; its manifests and chart set 15s.)
    #[arg(long, default_value_t = GoDuration(d::METRIC_RESOLUTION), value_name = "DURATION")]
    pub metric_resolution: GoDuration,

    /// Print the version and exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub version: bool,
}

/// metrics-server's "Kubelet client" section.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubelet client flags")]
pub struct KubeletArgs {
    /// Deprecated: scrape kubelets over plain HTTP without any credentials.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub deprecated_kubelet_completely_insecure: bool,

    /// CA certificate that signs the kubelets' serving certificates.
    /// Default: the CA of the kubeconfig or service account.
    #[arg(long, value_name = "PATH")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Client certificate presented to kubelets (beside the token).
    #[arg(long, value_name = "PATH")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// Key of --kubelet-client-certificate.
    #[arg(long, value_name = "PATH")]
    pub kubelet_client_key: Option<PathBuf>,

    /// Do not verify the kubelets' serving certificates. For testing only.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub kubelet_insecure_tls: bool,

    /// Port of the kubelets (unless --kubelet-use-node-status-port finds one).
    #[arg(long, default_value_t = i64::from(d::KUBELET_PORT), value_parser = go_int64, value_name = "PORT")]
    pub kubelet_port: i64,

    /// Node address types to reach kubelets by, in order of preference; the
    /// first type a node has wins. Repeating the flag appends.
    #[arg(long, default_value = d::KUBELET_ADDRESS_TYPES, value_name = "TYPES")]
    pub kubelet_preferred_address_types: Vec<StringList>,

    /// Timeout of one scrape of one kubelet.
    #[arg(long, default_value_t = GoDuration(d::KUBELET_REQUEST_TIMEOUT), value_name = "DURATION")]
    pub kubelet_request_timeout: GoDuration,

    /// Use the port in node.status.daemonEndpoints.kubeletEndpoint (when
    /// non-zero) instead of --kubelet-port.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub kubelet_use_node_status_port: bool,

    /// Label selector of the nodes to scrape and serve (=, ==, !=, in, notin, exists).
    #[arg(short = 'l', long, default_value = "", value_name = "SELECTOR")]
    pub node_selector: String,
}

/// Our own flags that are not about the replica cluster.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = OURS_HEADING)]
pub struct OwnArgs {
    /// Bearer token file sent to kubelets, re-read when it changes.
    /// Default: the kubeconfig's token file, else the service-account token.
    #[arg(long, value_name = "PATH")]
    pub kubelet_token_file: Option<PathBuf>,

    /// Serve a node's last good metrics (with their true timestamp) for this long
    /// after its kubelet stopped answering. Default: 2 × metric-resolution.
    /// 0 removes a node at its first failed scrape, as metrics-server does.
    #[arg(long, value_name = "DURATION")]
    pub max_staleness: Option<GoDuration>,

    /// Allow --metric-resolution below 10s (down to 1s). For tests and the dev
    /// mode only: kubelets refresh their stats about every 10s.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL")]
    pub allow_short_resolution: bool,

    /// The time the process has between SIGTERM and SIGKILL (the pod's
    /// terminationGracePeriodSeconds). A replica in a cluster spends it handing
    /// its kubelets over (make before break), leaving Raft, and finishing
    /// in-flight requests; the timeouts of each are derived from it.
    #[arg(long, default_value_t = GoDuration(d::SHUTDOWN_GRACE_PERIOD), value_name = "DURATION")]
    pub shutdown_grace_period: GoDuration,
}

/// Flags of the replica cluster (Raft membership and the peer port). With
/// no `--peers`, the server runs as a single replica that owns every node.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = REPLICATION_HEADING)]
pub struct ClusterArgs {
    /// This replica's stable name (a StatefulSet pod name). Default: $POD_NAME, else the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// The declared initial members, `name=host:port,...` (peer addresses). Every
    /// listed member may bootstrap the cluster with the same list; a replica not
    /// in the list joins through any of them.
    #[arg(long, value_delimiter = ',', value_name = "MEMBERS")]
    pub peers: Vec<String>,

    /// Identifies the cluster; peers with another id are refused.
    #[arg(long, default_value = d::CLUSTER_ID, value_name = "ID")]
    pub cluster_id: String,

    /// Where the Raft vote, log and snapshots are kept (fsynced).
    #[arg(long, default_value = d::DATA_DIR, value_name = "DIR")]
    pub data_dir: std::path::PathBuf,

    /// IP address of the peer port (Raft and fan-out). Default: --bind-address.
    #[arg(long, value_name = "IP")]
    pub peer_bind_address: Option<String>,

    /// The peer port (mutual TLS with the cluster CA).
    #[arg(long, default_value_t = d::PEER_PORT, value_name = "PORT")]
    pub peer_port: u16,

    /// The address other replicas reach this one's peer port at. Default: the
    /// address of this replica in --peers, else peer-bind-address:peer-port.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_advertise_address: Option<String>,

    /// CA that signs every replica's peer certificate.
    #[arg(long, value_name = "PATH")]
    pub peer_ca_file: Option<std::path::PathBuf>,

    /// This replica's peer certificate (client and server auth), signed by --peer-ca-file.
    #[arg(long, value_name = "PATH")]
    pub peer_cert_file: Option<std::path::PathBuf>,

    /// Key of --peer-cert-file.
    #[arg(long, value_name = "PATH")]
    pub peer_key_file: Option<std::path::PathBuf>,

    /// A directory holding the cluster CA as the peer CA Secret mounted
    /// there has it: `ca.crt` and `ca.key` (and, during a rotation,
    /// `previous-ca.crt` and `rotation.json`). The Secret is made by
    /// `ha-metrics-server certgen` (the certgen Job) or by cert-manager; each
    /// replica issues its own peer certificate from it. Instead of the three
    /// --peer-*-file flags.
    #[arg(long, value_name = "DIR")]
    pub peer_ca_dir: Option<std::path::PathBuf>,

    /// No longer supported: replicas do not read the peer CA Secret through
    /// the API (their service account may not read Secrets). Mount the Secret
    /// and pass --peer-ca-dir.
    #[arg(long, value_name = "NAMESPACE/NAME", hide = true)]
    pub peer_secret: Option<String>,

    /// Validity of a peer certificate issued from --peer-ca-dir's CA (renewed at two thirds).
    #[arg(long, default_value_t = GoDuration(d::PEER_CERT_VALIDITY), value_name = "DURATION")]
    pub peer_cert_validity: GoDuration,

    /// How often --peer-ca-dir, or the --peer-*-file files, are read again to pick up a change.
    #[arg(long, default_value_t = GoDuration(d::PEER_RELOAD_INTERVAL), value_name = "DURATION")]
    pub peer_reload_interval: GoDuration,

    /// Number of voting members (3 or 5); further replicas join as learners and still own shards.
    #[arg(long, default_value_t = d::VOTERS, value_name = "N")]
    pub voters: usize,

    /// A replica silent for longer than this is marked Down and its nodes move.
    #[arg(long, default_value_t = GoDuration(d::LEASE), value_name = "DURATION")]
    pub lease: GoDuration,

    /// How many replicas hold each node's last points, the owner included
    /// (capped at the number of Active replicas); 3 lets a three-replica
    /// cluster lose any two at once. Takes effect when every replica asks for
    /// the same factor: change it by rolling the new value out to all.
    #[arg(long, default_value_t = d::REPLICATION_FACTOR, value_name = "N")]
    pub replication_factor: u32,

    /// How long a query waits for another replica's answer before the
    /// response is served without that part (with a Warning header).
    #[arg(long, default_value_t = GoDuration(d::FANOUT_DEADLINE), value_name = "DURATION")]
    pub fanout_deadline: GoDuration,

    /// The StatefulSet this replica belongs to. On SIGTERM the replica reads its
    /// replica count: an ordinal at or above it means the count was lowered, so
    /// the replica leaves Raft for good; otherwise it only leaves the ring
    /// (Draining) and comes back as the same member. Empty: always the latter.
    #[arg(long, default_value = "", value_name = "NAME")]
    pub statefulset: String,

    /// Namespace of --statefulset. Default: $POD_NAMESPACE, else the service
    /// account's namespace, else kube-system.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// Most connections the peer port holds open at once (TLS handshakes
    /// included); further ones wait in the listen backlog.
    #[arg(long, default_value_t = d::PEER_MAX_CONNECTIONS, value_name = "N")]
    pub peer_max_connections: usize,

    /// Most requests the peer port serves at once; more get 429 and are retried.
    #[arg(long, default_value_t = d::PEER_MAX_REQUESTS_INFLIGHT, value_name = "N")]
    pub peer_max_requests_inflight: usize,
}

/// The generic apiserver's delegated authentication and authorization
/// flags, with the same names, defaults and `--help` sections.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AuthArgs {
    /// kubeconfig for TokenReview calls and for reading the
    /// extension-apiserver-authentication ConfigMap. Default: the main client.
    #[arg(long, value_name = "PATH", help_heading = AUTHN)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Do not read client-ca-file and the front-proxy (requestheader)
    /// settings from ConfigMap kube-system/extension-apiserver-authentication.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL", help_heading = AUTHN)]
    pub authentication_skip_lookup: bool,
    /// How long TokenReview answers are cached.
    #[arg(long, default_value_t = GoDuration(d::TOKEN_CACHE_TTL), value_name = "DURATION", help_heading = AUTHN)]
    pub authentication_token_webhook_cache_ttl: GoDuration,
    /// If reading the authentication ConfigMap fails at start, warn and go on
    /// (front-proxy and client-certificate requests then fail until it can be
    /// read) instead of exiting.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set, value_name = "BOOL", help_heading = AUTHN)]
    pub authentication_tolerate_lookup_failure: bool,
    /// CA bundle for client certificates (CN = user, O = groups); instead of
    /// the ConfigMap's client-ca-file.
    #[arg(long, value_name = "PATH", help_heading = AUTHN)]
    pub client_ca_file: Option<PathBuf>,
    /// Common names the front proxy's certificate may have; empty: any
    /// certificate signed by the request-header CA.
    #[arg(long, value_name = "NAMES", help_heading = AUTHN)]
    pub requestheader_allowed_names: Option<Vec<StringList>>,
    /// CA bundle that signs the front proxy's client certificate, whose
    /// identity headers are then trusted; instead of the ConfigMap's.
    #[arg(long, value_name = "PATH", help_heading = AUTHN)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Header prefixes holding the user's extra attributes [default: x-remote-extra-].
    #[arg(long, value_name = "PREFIXES", help_heading = AUTHN)]
    pub requestheader_extra_headers_prefix: Option<Vec<StringList>>,
    /// Headers holding the user's groups [default: x-remote-group].
    #[arg(long, value_name = "HEADERS", help_heading = AUTHN)]
    pub requestheader_group_headers: Option<Vec<StringList>>,
    /// Headers holding the user's UID [default: none].
    #[arg(long, value_name = "HEADERS", help_heading = AUTHN)]
    pub requestheader_uid_headers: Option<Vec<StringList>>,
    /// Headers holding the user name [default: x-remote-user].
    #[arg(long, value_name = "HEADERS", help_heading = AUTHN)]
    pub requestheader_username_headers: Option<Vec<StringList>>,

    /// Paths served to anyone without a SubjectAccessReview (a trailing `*`
    /// matches a prefix). Repeating the flag appends; the first use replaces
    /// the default.
    #[arg(long, default_value = d::ALWAYS_ALLOW_PATHS, value_name = "PATHS", help_heading = AUTHZ)]
    pub authorization_always_allow_paths: Vec<StringList>,
    /// kubeconfig for SubjectAccessReview calls. Default: the main client.
    #[arg(long, value_name = "PATH", help_heading = AUTHZ)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// How long "allowed" SubjectAccessReview answers are cached.
    #[arg(long, default_value_t = GoDuration(d::AUTHORIZED_TTL), value_name = "DURATION", help_heading = AUTHZ)]
    pub authorization_webhook_cache_authorized_ttl: GoDuration,
    /// How long "denied" SubjectAccessReview answers are cached.
    #[arg(long, default_value_t = GoDuration(d::UNAUTHORIZED_TTL), value_name = "DURATION", help_heading = AUTHZ)]
    pub authorization_webhook_cache_unauthorized_ttl: GoDuration,
}

const AUTHN: &str = "Apiserver authentication flags";
const AUTHZ: &str = "Apiserver authorization flags";
