//! Every knob of the membership cluster and its defaults (DESIGN.md
//! "Defaults": lease 3 s, Raft heartbeat 250 ms, election timeout 1–2 s), and
//! the openraft `Config` derived from them. One place for these defaults:
//! the server's flags take theirs from here ([`DEFAULT_LEASE`],
//! [`DEFAULT_VOTERS`]) and check a config with [`RaftConfig::validate`]
//! before anything is started.

use std::path::PathBuf;
use std::time::Duration;

/// Default lease: a member silent for longer is committed Down.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);
/// Default number of voters.
pub const DEFAULT_VOTERS: usize = 3;
/// The voter counts a cluster may have: 3 or 5, or 1 for a single replica.
pub const ALLOWED_VOTERS: [usize; 3] = [1, 3, 5];
/// Default replication factor: every node's last points on three members,
/// so a three-replica cluster loses any two replicas at once without a gap.
pub const DEFAULT_REPLICATION: u32 = 3;
/// The largest replication factor accepted (the server's ring hands out at
/// most this many holders per node).
pub const MAX_REPLICATION: u32 = 7;

/// A knob that is wrong, alone or against another one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The cluster id is empty.
    #[error("the cluster id is empty")]
    EmptyClusterId,
    /// The replica name is empty.
    #[error("the replica name is empty")]
    EmptyName,
    /// A voter count outside [`ALLOWED_VOTERS`].
    #[error("{0} voters; use 3 or 5 (1 for a single replica)")]
    Voters(usize),
    /// The initial member list names a replica twice.
    #[error("the initial member list names {0} twice")]
    DuplicateMember(String),
    /// The initial member list gives this replica another peer address.
    #[error("the initial member list gives {name} the peer address {listed}, but this replica is reached at {own}")]
    OwnAddress {
        /// This replica's name.
        name: String,
        /// The address the list gives it.
        listed: String,
        /// The address it advertises.
        own: String,
    },
    /// The lease leaves no room for two liveness heartbeats.
    #[error("a lease of {lease:?} must be more than twice the liveness interval ({interval:?})")]
    Lease {
        /// The lease.
        lease: Duration,
        /// The liveness heartbeat interval.
        interval: Duration,
    },
    /// Raft timers that contradict each other.
    #[error("raft timers: {0}")]
    Timers(&'static str),
    /// A replication factor outside `1..=MAX_REPLICATION`.
    #[error("a replication factor of {0}; use 1 to {MAX_REPLICATION} (how many replicas hold each node's points)")]
    Replication(u32),
}

/// Configuration of one replica's membership node.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// Cluster id; every peer RPC carries it and a mismatch is refused.
    pub cluster_id: String,
    /// This replica's stable name (StatefulSet pod name).
    pub name: String,
    /// Address (`host:port`) peers reach this replica's peer listener at.
    pub peer_addr: String,
    /// Address (`host:port`) this replica's metrics API is reached at
    /// (informational; peers use `peer_addr`).
    pub api_addr: String,
    /// Directory for the identity, Raft log, vote and snapshots.
    pub data_dir: PathBuf,
    /// The declared initial members (`--peers name=addr,...`), this replica
    /// included if it is one. Only these bootstrap the cluster; anyone else
    /// joins through any of them.
    pub initial_members: Vec<(String, String)>,
    /// How many voters the cluster keeps (3 or 5; 1 for single-replica tests).
    pub voters: usize,
    /// A member silent or unhealthy for longer than this is committed Down.
    pub lease: Duration,
    /// A member healthy for this long is committed Active again.
    pub hysteresis: Duration,
    /// Interval of our own liveness heartbeats (to every member).
    pub liveness_interval: Duration,
    /// Raft heartbeat interval.
    pub raft_heartbeat: Duration,
    /// Raft election timeout, lower bound. openraft 0.9 lets a follower
    /// campaign only after its leader lease (= `election_timeout_max`) plus a
    /// random timeout in `[min, max)`, so the defaults (0.5 s, 1 s) give an
    /// effective election timeout of 1.5–2 s after the last Raft heartbeat.
    pub election_timeout_min: Duration,
    /// Raft election timeout, upper bound (also openraft's leader lease).
    pub election_timeout_max: Duration,
    /// Deadline of one peer RPC outside Raft (hello, heartbeat, manage).
    pub rpc_timeout: Duration,
    /// Deadline of a membership write (commit through the leader).
    pub write_timeout: Duration,
    /// Build a snapshot after this many log entries.
    pub snapshot_after: u64,
    /// Log entries kept behind a snapshot (a lagging follower within them
    /// gets entries; beyond them, the snapshot).
    pub logs_kept_after_snapshot: u64,
    /// A follower within this many entries of the leader counts as caught up.
    pub max_lag: u64,
    /// The replication factor this member asks for; the leader commits a
    /// factor once every member asks for the same one.
    pub replication: u32,
    /// Whether this member says it holds its points from the start. A
    /// server that hands points over starts with `false` and calls
    /// `Node::set_ready_to_own` once it does; crate users without handover
    /// keep the default `true`.
    pub ready_at_start: bool,
}

impl RaftConfig {
    /// A config with DESIGN.md's defaults.
    pub fn new(
        cluster_id: impl Into<String>,
        name: impl Into<String>,
        peer_addr: impl Into<String>,
        api_addr: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> RaftConfig {
        RaftConfig {
            cluster_id: cluster_id.into(),
            name: name.into(),
            peer_addr: peer_addr.into(),
            api_addr: api_addr.into(),
            data_dir: data_dir.into(),
            initial_members: Vec::new(),
            voters: DEFAULT_VOTERS,
            lease: DEFAULT_LEASE,
            hysteresis: Duration::from_secs(1),
            liveness_interval: Duration::from_millis(500),
            raft_heartbeat: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            rpc_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            snapshot_after: 1000,
            logs_kept_after_snapshot: 100,
            max_lag: 20,
            replication: DEFAULT_REPLICATION,
            ready_at_start: true,
        }
    }

    /// Sets the declared initial members.
    pub fn with_initial_members(mut self, members: Vec<(String, String)>) -> RaftConfig {
        self.initial_members = members;
        self
    }

    /// Checks the knobs, alone and against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster_id.is_empty() {
            return Err(ConfigError::EmptyClusterId);
        }
        if self.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if !ALLOWED_VOTERS.contains(&self.voters) {
            return Err(ConfigError::Voters(self.voters));
        }
        if !(1..=MAX_REPLICATION).contains(&self.replication) {
            return Err(ConfigError::Replication(self.replication));
        }
        let mut names: Vec<&str> = self.initial_members.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateMember(w[0].to_string()));
        }
        if let Some((_, addr)) = self.initial_members.iter().find(|(n, _)| *n == self.name)
            && *addr != self.peer_addr
        {
            return Err(ConfigError::OwnAddress {
                name: self.name.clone(),
                listed: addr.clone(),
                own: self.peer_addr.clone(),
            });
        }
        if self.raft_heartbeat >= self.election_timeout_min {
            return Err(ConfigError::Timers("the raft heartbeat must be under the election timeout"));
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return Err(ConfigError::Timers("the election timeout's lower bound must be below its upper bound"));
        }
        if self.liveness_interval * 2 >= self.lease {
            return Err(ConfigError::Lease { lease: self.lease, interval: self.liveness_interval });
        }
        Ok(())
    }

    /// The openraft config.
    #[allow(clippy::result_large_err)] // openraft's error type; built once at start
    pub fn openraft(&self) -> Result<openraft::Config, openraft::ConfigError> {
        let ms = |d: Duration| d.as_millis() as u64;
        openraft::Config {
            cluster_name: self.cluster_id.clone(),
            heartbeat_interval: ms(self.raft_heartbeat),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.rpc_timeout) * 3,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let c = RaftConfig::new("c", "a", "127.0.0.1:1", "127.0.0.1:2", "/tmp/x");
        assert!(c.validate().is_ok());
        assert_eq!(c.lease, Duration::from_secs(3));
        let o = c.openraft().unwrap();
        assert_eq!((o.heartbeat_interval, o.election_timeout_min, o.election_timeout_max), (250, 500, 1000));
    }

    #[test]
    fn own_address_must_match_the_member_list() {
        let c = RaftConfig::new("c", "a", "127.0.0.1:1", "127.0.0.1:2", "/tmp/x")
            .with_initial_members(vec![("a".into(), "127.0.0.1:9".into())]);
        assert!(matches!(c.validate(), Err(ConfigError::OwnAddress { .. })));
    }
}
