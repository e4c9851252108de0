//! Command-line flags of the server, with metrics-server's names, meanings
//! and (shipped-manifest) defaults, which come from [`super::defaults`].
//! Parsing only (a value that does not parse is clap's error, naming the
//! flag); [`super::Config::from_args`] checks combinations and turns them
//! into typed settings.

use std::path::PathBuf;

use apimachinery::GoDuration;
use clap::Args;

use super::defaults as d;

/// Flags of `ha-metrics-server` (the server itself).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    // ----- metrics-server's own flags -----
    /// The resolution at which metrics are scraped from kubelets: each kubelet
    /// is scraped once per period, and the served CPU rate is over about one
    /// period. At least 10s, and kubelet-request-timeout must be at most 90% of it.
    #[arg(long, default_value_t = GoDuration(d::METRIC_RESOLUTION), value_name = "DURATION")]
    pub metric_resolution: GoDuration,

    /// Path to a kubeconfig for talking to kube-apiserver. Empty: the
    /// in-cluster service account (KUBERNETES_SERVICE_HOST), or $KUBECONFIG.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Do not verify the CA of the kubelets' serving certificates. For testing only.
    #[arg(long)]
    pub kubelet_insecure_tls: bool,

    /// Use the port in node.status.daemonEndpoints.kubeletEndpoint (when non-zero)
    /// instead of --kubelet-port.
    #[arg(long)]
    pub kubelet_use_node_status_port: bool,

    /// The port to use to connect to kubelets.
    #[arg(long, default_value_t = d::KUBELET_PORT, value_name = "PORT")]
    pub kubelet_port: u16,

    /// The priority of node address types used to reach kubelets; the first
    /// type a node has wins.
    #[arg(long, default_value = d::KUBELET_ADDRESS_TYPES, value_name = "TYPES")]
    pub kubelet_preferred_address_types: String,

    /// Path to the CA certificate that signs the kubelets' serving certificates.
    /// Default: the cluster CA of the kubeconfig or service account.
    #[arg(long, value_name = "PATH")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Path to a client certificate for authenticating to kubelets.
    #[arg(long, value_name = "PATH")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// Path to the key of --kubelet-client-certificate.
    #[arg(long, value_name = "PATH")]
    pub kubelet_client_key: Option<PathBuf>,

    /// Timeout of one request to a kubelet.
    #[arg(long, default_value_t = GoDuration(d::KUBELET_REQUEST_TIMEOUT), value_name = "DURATION")]
    pub kubelet_request_timeout: GoDuration,

    /// Label selector of the nodes to scrape and serve (=, ==, !=, in, notin, exists).
    #[arg(short = 'l', long, default_value = "", value_name = "SELECTOR")]
    pub node_selector: String,

    /// Deprecated: scrape kubelets over plain HTTP without any credentials.
    #[arg(long)]
    pub deprecated_kubelet_completely_insecure: bool,

    /// Path to the bearer token sent to kubelets, re-read when it changes.
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
    #[arg(long)]
    pub allow_short_resolution: bool,

    // ----- secure serving -----
    /// The IP address to serve on. Default: all interfaces (0.0.0.0), as metrics-server.
    #[arg(long, default_value = d::BIND_ADDRESS, value_name = "IP")]
    pub bind_address: String,

    /// The port to serve HTTPS on.
    #[arg(long, default_value_t = d::SECURE_PORT, value_name = "PORT")]
    pub secure_port: u16,

    /// Directory for the self-signed certificate (apiserver.crt, apiserver.key)
    /// made when --tls-cert-file is not given.
    #[arg(long, default_value = d::CERT_DIR, value_name = "DIR")]
    pub cert_dir: PathBuf,

    /// Serving certificate (PEM, chain allowed); reloaded when its contents change.
    #[arg(long, value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,

    /// Key of --tls-cert-file.
    #[arg(long, value_name = "PATH")]
    pub tls_private_key_file: Option<PathBuf>,

    /// Minimum TLS version: VersionTLS12 or VersionTLS13 (older versions are not supported).
    #[arg(long, value_name = "VERSION")]
    pub tls_min_version: Option<String>,

    /// Comma-separated cipher suites (IANA/Go names). Default: rustls' safe defaults.
    #[arg(long, value_name = "SUITES")]
    pub tls_cipher_suites: Option<String>,

    /// Delegated authentication and authorization (front proxy, client
    /// certificates, TokenReview, SubjectAccessReview).
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Replica cluster (Raft membership, peer port).
    #[command(flatten)]
    pub cluster: ClusterArgs,

    // ----- generic server -----
    /// Maximum number of requests served at once; more get 429.
    #[arg(long, default_value_t = d::MAX_REQUESTS_INFLIGHT, value_name = "N")]
    pub max_requests_inflight: usize,

    /// After SIGTERM, keep serving for this long while /readyz fails, so load
    /// balancers stop sending requests first.
    #[arg(long, default_value_t = GoDuration(d::SHUTDOWN_DELAY), value_name = "DURATION")]
    pub shutdown_delay_duration: GoDuration,

    /// The time the process has between SIGTERM and SIGKILL (the pod's
    /// terminationGracePeriodSeconds). A replica in a cluster spends it handing
    /// its kubelets over (make before break), leaving Raft, and finishing
    /// in-flight requests; the timeouts of each are derived from it.
    #[arg(long, default_value_t = GoDuration(d::SHUTDOWN_GRACE_PERIOD), value_name = "DURATION")]
    pub shutdown_grace_period: GoDuration,

    /// Log verbosity (klog style): 0 errors/warnings/info, 2 more info, 4+ debug.
    #[arg(short = 'v', long = "v", default_value_t = 0, value_name = "LEVEL")]
    pub verbosity: u8,

    /// Log format: text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub logging_format: String,

    /// Accepted for compatibility with metrics-server manifests; this server has
    /// no pprof endpoints, so the value has no effect (a warning is logged when true).
    #[arg(long, default_value_t = false, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub profiling: bool,
}

/// Flags of the replica cluster (Raft membership and the peer port). With
/// no `--peers`, the server runs as a single replica that owns every node.
#[derive(Debug, Clone, Args)]
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
}

/// The generic apiserver's delegated authentication and authorization
/// flags, with the same names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AuthArgs {
    /// kubeconfig for TokenReview (default: the main client).
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// TTL of cached TokenReview answers.
    #[arg(long, default_value_t = GoDuration(d::TOKEN_CACHE_TTL))]
    pub authentication_token_webhook_cache_ttl: GoDuration,
    /// kubeconfig for SubjectAccessReview (default: the main client).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths allowed without authentication or authorization (`*` suffix = prefix).
    #[arg(long, value_delimiter = ',', default_value = d::ALWAYS_ALLOW_PATHS)]
    pub authorization_always_allow_paths: Vec<String>,
    /// TTL of cached "allowed" answers.
    #[arg(long, default_value_t = GoDuration(d::AUTHORIZED_TTL))]
    pub authorization_webhook_cache_authorized_ttl: GoDuration,
    /// TTL of cached "denied" answers.
    #[arg(long, default_value_t = GoDuration(d::UNAUTHORIZED_TTL))]
    pub authorization_webhook_cache_unauthorized_ttl: GoDuration,
    /// CA bundle for client certificates (overrides the ConfigMap's client-ca-file).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA bundle for the front proxy's client certificate.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Allowed front-proxy common names; empty = any signed by the CA.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Option<Vec<String>>,
    /// Headers holding the user name (default x-remote-user).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Option<Vec<String>>,
    /// Headers holding groups (default x-remote-group).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Option<Vec<String>>,
    /// Prefixes of headers holding extra attributes (default x-remote-extra-).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// Headers holding the user's UID.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Option<Vec<String>>,
}
