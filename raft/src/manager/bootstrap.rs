//! Getting into the cluster. A replica that is not yet in its own Raft
//! membership asks the declared initial members who they are (hello):
//! - someone knows an initialized cluster that lists our id → wait, Raft
//!   will reach us;
//! - someone knows an initialized cluster without us → join through its
//!   leader (a new replica, or a new incarnation after a wiped data dir);
//! - we are an initial member and every initial member answered, none
//!   initialized → initialize with the ids they all reported. Every initial
//!   member computes the same list, so simultaneous bootstraps make one
//!   cluster; an unreachable member means wait, never "initialize alone".
//!
//! Whom the replies name (ids, names, addresses) is recorded as
//! introductions, so Raft's first requests to this node are bound to their
//! senders' certificates before this node is in any membership.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};

use crate::app::App;
use crate::network::wire::{ANY_NODE, HelloReply, Manage, ManageReply, path};
use crate::state::{MemberInfo, NodeId};

/// Pause between attempts (a retry backoff, not synchronisation).
const RETRY: Duration = Duration::from_millis(300);

/// Whether this node is in its own Raft membership.
pub(crate) fn is_member(app: &App) -> bool {
    app.raft.metrics().borrow().membership_config.membership().get_node(&app.id).is_some()
}

/// Runs until this node is a member, or joining was refused for good.
pub(crate) async fn run(app: Arc<App>) {
    loop {
        if is_member(&app) || app.stop.is_cancelled() {
            return;
        }
        if let Err(reason) = attempt(&app).await {
            tracing::error!(member = app.id, name = %app.info.name, reason, "cannot join the cluster");
            *app.join_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            return;
        }
        tokio::select! {
            _ = app.stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One attempt; `Ok(true)` when something was done, `Err` when refused for good.
async fn attempt(app: &App) -> Result<bool, String> {
    let peers: Vec<(String, String)> =
        app.config.initial_members.iter().filter(|(n, _)| *n != app.info.name).cloned().collect();
    let calls = peers.iter().map(|(name, addr)| async move {
        let env = app.envelope_any(());
        let r: Result<HelloReply, _> = app.client.call(addr, path::HELLO, &env, app.rpc_timeout()).await;
        (name.clone(), r.ok().filter(|h| h.info.name == *name))
    });
    let replies: Vec<(String, Option<HelloReply>)> = futures::future::join_all(calls).await;
    // Whom they name is whom this node binds requests from unknown ids to
    // (Raft reaches a joiner, or an initial member, before it is in any membership).
    app.introductions.record(replies.iter().filter_map(|(_, r)| r.as_ref()));

    if let Some(h) = replies.iter().filter_map(|(_, r)| r.as_ref()).find(|h| h.initialized) {
        if h.nodes.contains_key(&app.id) {
            return Ok(false);
        }
        let via = h.leader.as_ref().map(|(id, n)| (*id, n.clone())).unwrap_or((h.node_id, h.info.clone()));
        return join(app, via).await;
    }
    let listed = app.config.initial_members.iter().any(|(n, _)| *n == app.info.name);
    if !listed || replies.iter().any(|(_, r)| r.is_none()) {
        return Ok(false);
    }
    let mut members: BTreeMap<NodeId, MemberInfo> =
        replies.into_iter().filter_map(|(_, r)| r).map(|h| (h.node_id, h.info)).collect();
    members.insert(app.id, app.info.clone());
    tracing::info!(member = app.id, members = members.len(), "initializing the cluster from the declared member list");
    match app.raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(true),
        Err(e) => {
            tracing::warn!(error = %e, "initialize failed; retrying");
            Ok(false)
        }
    }
}

/// Asks the leader (following redirects) to let us join.
async fn join(app: &App, mut via: (NodeId, MemberInfo)) -> Result<bool, String> {
    for _ in 0..3 {
        let env = app.envelope(via.0, Manage::Join(app.info.clone()));
        let reply: ManageReply =
            match app.client.call(&via.1.peer_addr, path::MANAGE, &env, app.config.write_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "join request not delivered");
                    return Ok(false);
                }
            };
        match reply {
            ManageReply::Done { epoch } => {
                tracing::info!(member = app.id, name = %app.info.name, epoch, via = %via.1, "joined the cluster");
                return Ok(true);
            }
            ManageReply::NotLeader { leader: Some(l) } => {
                via = (ANY_NODE, l);
            }
            ManageReply::NotLeader { leader: None } => return Ok(false),
            ManageReply::Refused(reason) if reason.contains("retired") => return Err(reason),
            ManageReply::Refused(reason) => {
                tracing::debug!(reason, "join refused for now");
                return Ok(false);
            }
        }
    }
    Ok(false)
}
