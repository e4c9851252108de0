//! The validated replica-cluster settings (`--peers` and the `--peer-*`
//! flags): who the declared members are, where this replica listens and is
//! reached, where its peer credentials come from (`peer`), and the Raft configuration built
//! from them and checked by the raft crate's own rules. Nothing is started
//! here.

use raft::RaftConfig;
use std::net::{IpAddr, SocketAddr};

use super::flags::ClusterArgs;
use super::peer::PeerTlsSettings;
use super::{ConfigError, bad};

/// Where the service account's namespace is mounted in a pod.
const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Validated cluster settings; absent when the server runs as a single replica.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This replica's stable name (`--node-name`, `$POD_NAME`, the host name).
    pub name: String,
    /// The declared initial members, `(name, peer address)`.
    pub peers: Vec<(String, String)>,
    /// Where the peer port listens.
    pub peer_listen: SocketAddr,
    /// Where the other replicas reach this one's peer port.
    pub peer_advertise: String,
    /// Where the peer CA and this replica's certificate come from.
    pub tls: PeerTlsSettings,
    /// `(namespace, name)` of the StatefulSet whose replica count tells a
    /// scale-down from a restart.
    pub statefulset: Option<(String, String)>,
    /// The Raft node's configuration (validated).
    pub raft: RaftConfig,
    /// How long a query waits for a peer's answer (`--fanout-deadline`).
    pub fanout_deadline: std::time::Duration,
    /// `--peer-max-connections` and `--peer-max-requests-inflight`.
    pub peer_limits: tls::serve::ServeLimits,
}

impl ClusterSettings {
    /// Checks the cluster flags. `None` when `--peers` is empty.
    pub fn from_args(args: &ClusterArgs, api: SocketAddr) -> Result<Option<ClusterSettings>, ConfigError> {
        let bind = api.ip();
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
        let namespace = args
            .pod_namespace
            .clone()
            .or_else(|| std::fs::read_to_string(SA_NAMESPACE_FILE).ok().map(|s| s.trim().to_string()))
            .unwrap_or_else(|| "kube-system".to_string());
        let tls = PeerTlsSettings::from_args(args)?;
        // The API's address as the other replicas and operators can reach it
        // (informational: the fan-out goes over the peer port): the bind
        // address, or the peer host when the API binds a wildcard.
        let api_advertise = if api.ip().is_unspecified() {
            let host = peer_advertise.rsplit_once(':').map_or(peer_advertise.as_str(), |(h, _)| h);
            format!("{host}:{}", api.port())
        } else {
            api.to_string()
        };
        let mut raft = RaftConfig::new(
            args.cluster_id.clone(),
            name.clone(),
            peer_advertise.clone(),
            api_advertise,
            &args.data_dir,
        )
        .with_initial_members(peers.clone());
        raft.voters = args.voters;
        raft.lease = args.lease.0;
        raft.replication = args.replication_factor;
        // Into Active only once the replica manager holds the points of the
        // nodes it would hold (`replica::Manager::prepare`): a restarted
        // replica is otherwise made Active before it has pulled them.
        raft.ready_at_start = false;
        raft.validate().map_err(raft_flag)?;
        Ok(Some(ClusterSettings {
            name,
            peers,
            peer_listen,
            peer_advertise,
            tls,
            statefulset: (!args.statefulset.is_empty()).then(|| (namespace, args.statefulset.clone())),
            raft,
            fanout_deadline: args.fanout_deadline.0,
            peer_limits: tls::serve::ServeLimits {
                max_connections: Some(args.peer_max_connections.max(1)),
                max_requests_in_flight: Some(args.peer_max_requests_inflight.max(1)),
            },
        }))
    }
}

/// The flag behind a Raft configuration error.
fn raft_flag(e: raft::ConfigError) -> ConfigError {
    use raft::ConfigError as E;
    let flag = match &e {
        E::EmptyClusterId => "--cluster-id",
        E::EmptyName => "--node-name",
        E::Voters(_) => "--voters",
        E::DuplicateMember(_) => "--peers",
        E::OwnAddress { .. } => "--peer-advertise-address",
        E::Lease { .. } | E::Timers(_) => "--lease",
        E::Replication(_) => "--replication-factor",
    };
    bad(flag, e.to_string())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
