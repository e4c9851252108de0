//! The cluster as this node knows it, for `/metrics`, the `cluster`
//! subcommand and tests, with a table rendering for humans.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::state::{MemberState, NodeId};

/// This node's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Leads the cluster.
    Leader,
    /// Votes and follows.
    Follower,
    /// Campaigning.
    Candidate,
    /// Follows without a vote.
    Learner,
    /// Not running (shut down).
    Stopped,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node id (of this incarnation).
    pub id: NodeId,
    /// Replica name.
    pub name: String,
    /// Committed ring state.
    pub state: MemberState,
    /// Incarnation number.
    pub incarnation: u64,
    /// Whether it votes in Raft.
    pub voter: bool,
    /// Peer address.
    pub peer_addr: String,
    /// API address.
    pub api_addr: String,
}

/// What this node knows about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// This node's id.
    pub id: NodeId,
    /// This node's name.
    pub name: String,
    /// This node's Raft role.
    pub role: Role,
    /// Current Raft term.
    pub term: u64,
    /// Current leader (id, name), if known.
    pub leader: Option<(NodeId, String)>,
    /// Committed epoch.
    pub epoch: u64,
    /// The committed replication factor (`None`: none committed yet, the
    /// owner and its successor hold each node's points).
    #[serde(default)]
    pub replication: Option<u32>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last applied entry.
    pub last_applied: Option<u64>,
    /// Members, sorted by name.
    pub members: Vec<MemberView>,
    /// Why this node could not join, if it could not.
    pub join_error: Option<String>,
    /// Why this node can no longer take part in Raft (its store failed,
    /// Raft stopped), if it cannot.
    #[serde(default)]
    pub fault: Option<String>,
}

impl ClusterView {
    /// Number of members in `state`.
    pub fn count(&self, state: MemberState) -> usize {
        self.members.iter().filter(|m| m.state == state).count()
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

impl fmt::Display for ClusterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let leader = self.leader.as_ref().map(|(id, n)| format!("{n} ({id:016x})")).unwrap_or_else(|| "none".into());
        writeln!(f, "node {} ({:016x}) role {} term {} leader {}", self.name, self.id, self.role, self.term, leader)?;
        writeln!(
            f,
            "epoch {}  members: {} active, {} joining, {} draining, {} down",
            self.epoch,
            self.count(MemberState::Active),
            self.count(MemberState::Joining),
            self.count(MemberState::Draining),
            self.count(MemberState::Down)
        )?;
        if let Some(e) = &self.join_error {
            writeln!(f, "join error: {e}")?;
        }
        if let Some(e) = &self.fault {
            writeln!(f, "FAULT: {e}")?;
        }
        writeln!(f, "{:<20} {:<16} {:<9} {:>4} {:<7} {:<22} API", "NAME", "ID", "STATE", "INC", "RAFT", "PEER")?;
        for m in &self.members {
            writeln!(
                f,
                "{:<20} {:016x} {:<9} {:>4} {:<7} {:<22} {}",
                m.name,
                m.id,
                m.state.to_string(),
                m.incarnation,
                if m.voter { "voter" } else { "learner" },
                m.peer_addr,
                m.api_addr
            )?;
        }
        Ok(())
    }
}
