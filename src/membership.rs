//! The server's side of ring membership: turns the cluster flags into a
//! running [`raft::Node`], owns the one peer listener (mutual TLS with the
//! cluster CA) on which the raft routes and the status view are mounted,
//! and mirrors the node's status into `/metrics`. Who owns which kubelet is
//! not decided here (that is the ring's job, built on [`raft::Node::state`]).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::routing::get;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use raft::{MemberState, PeerClient, RaftConfig, Role, StatusView};
use tokio_util::sync::CancellationToken;

use crate::config::flags::ClusterArgs;
use crate::config::{ConfigError, parse_go_duration};
use tls::{CertKey, TlsPolicy, TlsSource, mutual_tls_client_config, mutual_tls_server_config};

/// The peer route that serves the [`StatusView`] as JSON.
pub const STATUS_PATH: &str = "/cluster/status";

/// Validated cluster settings; absent when the server runs as a single replica.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub name: String,
    pub cluster_id: String,
    pub peers: Vec<(String, String)>,
    pub data_dir: PathBuf,
    pub peer_listen: SocketAddr,
    pub peer_advertise: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub voters: usize,
    pub lease: Duration,
    /// `(namespace, name)` of the StatefulSet whose replica count tells a
    /// scale-down from a restart.
    pub statefulset: Option<(String, String)>,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { flag, message: message.into() }
}

impl ClusterSettings {
    /// Checks the cluster flags. `None` when `--peers` is empty.
    pub fn from_args(args: &ClusterArgs, bind: IpAddr) -> Result<Option<ClusterSettings>, ConfigError> {
        if args.peers.is_empty() {
            return Ok(None);
        }
        let mut peers = Vec::new();
        for p in &args.peers {
            let (name, addr) = p
                .split_once('=')
                .filter(|(n, a)| !n.is_empty() && a.contains(':'))
                .ok_or_else(|| bad("--peers", format!("{p:?} is not name=host:port")))?;
            peers.push((name.to_string(), addr.to_string()));
        }
        let name = match &args.node_name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => hostname()
                .ok_or_else(|| bad("--node-name", "not given, and $POD_NAME and the host name are unknown"))?,
        };
        let peer_ip: IpAddr = match &args.peer_bind_address {
            Some(a) => a.parse().map_err(|_| bad("--peer-bind-address", format!("{a:?} is not an IP address")))?,
            None => bind,
        };
        let peer_listen = SocketAddr::new(peer_ip, args.peer_port);
        let peer_advertise = match &args.peer_advertise_address {
            Some(a) => a.clone(),
            None => match peers.iter().find(|(n, _)| *n == name) {
                Some((_, a)) => a.clone(),
                None if peer_ip.is_unspecified() => {
                    return Err(bad(
                        "--peer-advertise-address",
                        "needed when this replica is not in --peers and the peer port binds a wildcard address",
                    ));
                }
                None => peer_listen.to_string(),
            },
        };
        let need = |flag: &'static str, v: &Option<PathBuf>| {
            v.clone().ok_or_else(|| bad(flag, "required with --peers: peers authenticate each other with mutual TLS"))
        };
        if !(args.voters == 3 || args.voters == 5 || args.voters == 1) {
            return Err(bad("--voters", format!("{} voters; use 3 or 5 (1 for a single replica)", args.voters)));
        }
        let lease = parse_go_duration(&args.lease).map_err(|m| bad("--lease", m))?;
        if lease < Duration::from_secs(1) {
            return Err(bad("--lease", "must be at least 1s (liveness heartbeats are every 500ms)"));
        }
        Ok(Some(ClusterSettings {
            name,
            cluster_id: args.cluster_id.clone(),
            peers,
            data_dir: args.data_dir.clone(),
            peer_listen,
            peer_advertise,
            ca_file: need("--peer-ca-file", &args.peer_ca_file)?,
            cert_file: need("--peer-cert-file", &args.peer_cert_file)?,
            key_file: need("--peer-key-file", &args.peer_key_file)?,
            voters: args.voters,
            lease,
            statefulset: (!args.statefulset.is_empty()).then(|| {
                let ns = args
                    .pod_namespace
                    .clone()
                    .or_else(|| {
                        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                            .ok()
                            .map(|s| s.trim().to_string())
                    })
                    .unwrap_or_else(|| "kube-system".to_string());
                (ns, args.statefulset.clone())
            }),
        }))
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The peer client configuration of these settings.
pub fn peer_client(settings: &ClusterSettings) -> anyhow::Result<rustls::ClientConfig> {
    let ca =
        std::fs::read(&settings.ca_file).with_context(|| format!("--peer-ca-file {}", settings.ca_file.display()))?;
    let ck = CertKey::load(&settings.cert_file, &settings.key_file)?;
    Ok(mutual_tls_client_config(&ca, ck.chain, ck.key)?)
}

/// Raft gauges in `/metrics`.
#[derive(Clone, Default)]
struct RaftMetrics {
    is_leader: Gauge,
    term: Gauge,
    epoch: Gauge,
    members: Family<Vec<(&'static str, &'static str)>, Gauge<i64, std::sync::atomic::AtomicI64>>,
    role: Family<Vec<(&'static str, &'static str)>, Gauge>,
    last_applied: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl RaftMetrics {
    fn register(self, registry: &mut prometheus_client::registry::Registry) -> Self {
        let r = registry.sub_registry_with_prefix("ha_metrics_server_raft");
        r.register("is_leader", "1 on the Raft leader, 0 elsewhere", self.is_leader.clone());
        r.register("term", "Current Raft term", self.term.clone());
        r.register(
            "epoch",
            "Epoch of the committed ring membership (bumps on every Active-set change)",
            self.epoch.clone(),
        );
        r.register("members", "Ring members by state", self.members.clone());
        r.register("role", "1 for this replica's current Raft role", self.role.clone());
        r.register("last_applied_index", "Last applied Raft log index", self.last_applied.clone());
        self
    }

    fn update(&self, s: &StatusView) {
        self.is_leader.set(i64::from(s.is_leader()));
        self.term.set(s.term as i64);
        self.epoch.set(s.epoch as i64);
        self.last_applied.set(s.last_applied.map_or(-1, |v| v as i64));
        for (state, label) in [
            (MemberState::Joining, "Joining"),
            (MemberState::Active, "Active"),
            (MemberState::Draining, "Draining"),
            (MemberState::Down, "Down"),
        ] {
            self.members.get_or_create(&vec![("state", label)]).set(s.count(state) as i64);
        }
        for (role, label) in [
            (Role::Leader, "Leader"),
            (Role::Follower, "Follower"),
            (Role::Candidate, "Candidate"),
            (Role::Learner, "Learner"),
            (Role::Stopped, "Stopped"),
        ] {
            self.role.get_or_create(&vec![("role", label)]).set(i64::from(s.role == role));
        }
    }
}

/// A running membership node and its peer listener.
pub struct Membership {
    pub node: Arc<raft::Node>,
}

/// Registers the Raft gauges; call before the registry is shared.
pub fn register_metrics(registry: &mut prometheus_client::registry::Registry) -> RaftMetricsHandle {
    RaftMetricsHandle(RaftMetrics::default().register(registry))
}

/// The registered Raft gauges, handed to [`start`].
pub struct RaftMetricsHandle(RaftMetrics);

/// Starts the node and the peer listener.
pub async fn start(
    settings: &ClusterSettings,
    api_addr: SocketAddr,
    policy: &TlsPolicy,
    metrics: RaftMetricsHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<Membership> {
    let ca =
        std::fs::read(&settings.ca_file).with_context(|| format!("--peer-ca-file {}", settings.ca_file.display()))?;
    let ck = CertKey::load(&settings.cert_file, &settings.key_file)?;
    let server_tls = mutual_tls_server_config(ck.chain.clone(), ck.key.clone_key(), &ca, policy)?;
    let client = PeerClient::tls(peer_client(settings)?);
    let mut cfg = RaftConfig::new(
        settings.cluster_id.clone(),
        settings.name.clone(),
        settings.peer_advertise.clone(),
        api_addr.to_string(),
        settings.data_dir.clone(),
    )
    .with_initial_members(settings.peers.clone());
    cfg.voters = settings.voters;
    cfg.lease = settings.lease;
    let node = Arc::new(raft::Node::start(cfg, client, shutdown.clone()).await.context("starting the Raft node")?);
    let listener = tokio::net::TcpListener::bind(settings.peer_listen)
        .await
        .with_context(|| format!("binding the peer port {}", settings.peer_listen))?;
    let status_node = node.clone();
    let app = node.routes().route(
        STATUS_PATH,
        get(move || {
            let n = status_node.clone();
            async move { Json(n.status()) }
        }),
    );
    tracing::info!(addr = %settings.peer_listen, name = %settings.name, node = node.id(), "serving the peer port");
    tokio::spawn(tls::serve(listener, TlsSource::new(server_tls), app, shutdown.clone()));
    let (m, n) = (metrics.0, node.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => m.update(&n.status()),
            }
        }
    });
    Ok(Membership { node })
}

/// Fetches a replica's [`StatusView`] from its peer port (`host:port`), as
/// `ha-metrics-server status` does.
pub async fn fetch_status(peer: &str, client: rustls::ClientConfig) -> anyhow::Result<StatusView> {
    use http_body_util::{BodyExt, Empty};
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let http: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let req = http::Request::get(format!("https://{peer}{STATUS_PATH}")).body(Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), http.request(req))
        .await
        .with_context(|| format!("{peer}: no answer within 10s"))?
        .with_context(|| format!("{peer}: request failed"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.with_context(|| format!("{peer}: reading the answer"))?.to_bytes();
    anyhow::ensure!(status.is_success(), "{peer}: {status}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).with_context(|| format!("{peer}: not a status view"))
}

/// The StatefulSet ordinal at the end of a replica name (`metrics-server-2` → 2).
pub fn ordinal(name: &str) -> Option<i64> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// How this replica leaves on SIGTERM: for good (`ScaleDown`) when its
/// StatefulSet's replica count no longer covers its ordinal, else `Restart`
/// (rolling update, eviction). Any doubt (no StatefulSet configured, no
/// ordinal, the API unreachable) means `Restart`, which keeps the voters.
pub async fn leave_mode(client: &kube::Client, settings: &ClusterSettings) -> raft::LeaveMode {
    let (Some((ns, name)), Some(ord)) = (&settings.statefulset, ordinal(&settings.name)) else {
        return raft::LeaveMode::Restart;
    };
    let req = match http::Request::get(format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")).body(Vec::new()) {
        Ok(r) => r,
        Err(_) => return raft::LeaveMode::Restart,
    };
    match tokio::time::timeout(Duration::from_secs(5), client.request::<serde_json::Value>(req)).await {
        Ok(Ok(sts)) => match sts["spec"]["replicas"].as_i64() {
            Some(replicas) if ord >= replicas => {
                tracing::info!(statefulset = %name, replicas, ordinal = ord, "replica count lowered: leaving for good");
                raft::LeaveMode::ScaleDown
            }
            _ => raft::LeaveMode::Restart,
        },
        Ok(Err(e)) => {
            tracing::warn!(statefulset = %name, error = %e, "cannot read the StatefulSet; leaving as a restart");
            raft::LeaveMode::Restart
        }
        Err(_) => {
            tracing::warn!(statefulset = %name, "reading the StatefulSet timed out; leaving as a restart");
            raft::LeaveMode::Restart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_is_the_numeric_suffix() {
        assert_eq!(ordinal("metrics-server-2"), Some(2));
        assert_eq!(ordinal("replica-10"), Some(10));
        assert_eq!(ordinal("metrics-server"), None);
        assert_eq!(ordinal("solo"), None);
    }
}
