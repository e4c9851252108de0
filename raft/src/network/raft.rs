//! openraft's network traits over [`PeerClient`]: every Raft RPC goes out in
//! an envelope addressed to the target's node id, with openraft's deadline.
//! A transport failure or a refusal (wrong cluster, version or target id, a
//! wiped replica at an old member's address) maps to `Unreachable`, so the
//! leader backs off instead of acting on an answer from the wrong node.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::PeerClient;
use super::wire::{BASE_VERSION, Envelope, path};
use crate::state::{MemberInfo, NodeId};
use crate::types::TypeConfig;

/// Creates one [`Connection`] per replication target.
#[derive(Clone)]
pub struct Network {
    /// The shared client.
    pub client: PeerClient,
    /// Our cluster id.
    pub cluster_id: String,
    /// Our node id.
    pub me: NodeId,
}

/// A Raft RPC channel to one target.
pub struct Connection {
    net: Network,
    target: NodeId,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &MemberInfo) -> Connection {
        Connection { net: self.clone(), target, addr: node.peer_addr.clone() }
    }
}

impl Connection {
    async fn send<
        Req: Serialize,
        Resp: DeserializeOwned + Send + 'static,
        E: std::error::Error + DeserializeOwned + Send + 'static,
    >(
        &self,
        route: &str,
        body: Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, MemberInfo, RaftError<NodeId, E>>> {
        let envelope = Envelope {
            protocol_version: BASE_VERSION,
            cluster_id: self.net.cluster_id.clone(),
            from: self.net.me,
            to: self.target,
            body,
        };
        let reply: Result<Resp, RaftError<NodeId, E>> = self
            .net
            .client
            .call(&self.addr, route, &envelope, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberInfo, RaftError<NodeId>>> {
        self.send(path::APPEND, rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, MemberInfo, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.send(path::SNAPSHOT, rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberInfo, RaftError<NodeId>>> {
        self.send(path::VOTE, rpc, &option).await
    }
}
