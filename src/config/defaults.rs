//! Every default of the server, written once. The flags show them in
//! `--help`, the settings fall back to them, and the modules that need one
//! read it from here (the Raft timers that are not flags live in the raft
//! crate's `config`, which these re-export where a flag exposes them).

use std::time::Duration;

/// `--metric-resolution`: the value metrics-server's shipped manifests set.
pub const METRIC_RESOLUTION: Duration = Duration::from_secs(15);
/// The smallest `--metric-resolution` metrics-server accepts.
pub const MIN_RESOLUTION: Duration = Duration::from_secs(10);
/// The smallest resolution with `--allow-short-resolution` (tests, dev mode).
pub const MIN_SHORT_RESOLUTION: Duration = Duration::from_secs(1);
/// `--kubelet-request-timeout`.
pub const KUBELET_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `--kubelet-port`.
pub const KUBELET_PORT: u16 = 10250;
/// `--kubelet-preferred-address-types`.
pub const KUBELET_ADDRESS_TYPES: &str = "InternalIP,ExternalIP,Hostname";
/// `--secure-port`: the value metrics-server's shipped manifests set.
pub const SECURE_PORT: u16 = 10250;
/// `--bind-address`: all interfaces, as metrics-server.
pub const BIND_ADDRESS: &str = "0.0.0.0";
/// `--cert-dir`.
pub const CERT_DIR: &str = "apiserver.local.config/certificates";
/// `--max-requests-inflight`.
pub const MAX_REQUESTS_INFLIGHT: i64 = 400;
/// `--max-mutating-requests-inflight`.
pub const MAX_MUTATING_REQUESTS_INFLIGHT: i64 = 200;
/// `--request-timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP/2 concurrent streams per connection when
/// `--http2-max-streams-per-connection` is 0: Go's `http2` server default,
/// which metrics-server keeps.
pub const HTTP2_MAX_STREAMS: u32 = 250;
/// How long TokenReview failures (kube-apiserver unreachable, timeouts)
/// are remembered per token, so a burst of requests with one token cannot
/// turn into a burst of reviews (not a flag).
pub const TOKEN_FAILURE_TTL: Duration = Duration::from_secs(1);
/// Most TokenReviews in flight at once; further distinct tokens wait for
/// one to finish, so unknown tokens cannot flood kube-apiserver (not a flag).
pub const TOKEN_REVIEWS_IN_FLIGHT: usize = 32;
/// `--peer-max-connections`.
pub const PEER_MAX_CONNECTIONS: usize = 1024;
/// `--peer-max-requests-inflight`.
pub const PEER_MAX_REQUESTS_INFLIGHT: usize = 512;
/// Kubelet scrapes in flight at once, per replica (not a flag).
pub const SCRAPE_CONCURRENCY: usize = 256;
/// `--authentication-token-webhook-cache-ttl`.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries of the TokenReview cache (not a flag).
pub const TOKEN_CACHE_SIZE: usize = 4096;
/// `--authorization-webhook-cache-authorized-ttl`.
pub const AUTHORIZED_TTL: Duration = Duration::from_secs(10);
/// `--authorization-webhook-cache-unauthorized-ttl`.
pub const UNAUTHORIZED_TTL: Duration = Duration::from_secs(10);
/// Entries of the SubjectAccessReview cache (not a flag).
pub const DECISION_CACHE_SIZE: usize = 8192;
/// `--authorization-always-allow-paths`: the probes.
pub const ALWAYS_ALLOW_PATHS: &str = "/healthz,/readyz,/livez";
/// `--cluster-id`.
pub const CLUSTER_ID: &str = "ha-metrics-server";
/// `--data-dir`.
pub const DATA_DIR: &str = "/var/lib/ha-metrics-server";
/// `--peer-port`.
pub const PEER_PORT: u16 = 10251;
/// `--peer-cert-validity`: how long a certificate issued from the
/// `--peer-ca-dir` CA is valid; it is renewed when two thirds have passed.
pub const PEER_CERT_VALIDITY: Duration = Duration::from_secs(24 * 3_600);
/// `--peer-reload-interval`: how often the mounted peer CA (or the peer
/// certificate files) are read again to pick up a change.
pub const PEER_RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// `--voters`.
pub const VOTERS: usize = raft::config::DEFAULT_VOTERS;
/// `--lease`.
pub const LEASE: Duration = raft::config::DEFAULT_LEASE;
/// `--replication-factor`.
pub const REPLICATION_FACTOR: u32 = raft::config::DEFAULT_REPLICATION;
/// `--fanout-deadline`.
pub const FANOUT_DEADLINE: Duration = Duration::from_secs(2);
/// `--shutdown-grace-period`: the pod's `terminationGracePeriodSeconds`
/// (the manifests set 60). The handover, leaving Raft and draining in-flight
/// requests share it (see `config::ShutdownSettings::from_grace`).
pub const SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// `--shutdown-delay-duration`.
pub const SHUTDOWN_DELAY: Duration = Duration::ZERO;
