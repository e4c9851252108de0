//! Introductions: the name and peer address of node ids this node knows
//! from neither its cluster state nor its Raft membership, as members it
//! does know (and the declared initial members) report them in their hello
//! replies. Through them a replica that is in no membership yet (a joiner,
//! an initial member before the cluster is initialized) or that restarted
//! with an old log binds a request from such an id to its certificate
//! (`bind`) instead of taking the id on the sender's word. Refreshed when
//! a request from an unknown id was refused, at most once per
//! [`MIN_INTERVAL`]; bounded to [`MAX_INTRODUCED`] entries. Decides
//! nothing: the routes do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::wire::{HelloReply, path};
use crate::app::App;
use crate::state::{MemberInfo, NodeId};

/// Least time between two rounds of hellos (a rate limit, not synchronisation).
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Most ids remembered (the replies of one round replace the last round's).
pub const MAX_INTRODUCED: usize = 1024;

/// Ids introduced by members, with who they are.
#[derive(Default)]
pub(crate) struct Introductions {
    table: Mutex<BTreeMap<NodeId, MemberInfo>>,
    wanted: Notify,
}

impl Introductions {
    /// Who `id` is, as the last replies said.
    pub fn get(&self, id: NodeId) -> Option<MemberInfo> {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Replaces the table with what `replies` say: each replier itself,
    /// the Raft nodes it knows and its leader.
    pub fn record<'a>(&self, replies: impl IntoIterator<Item = &'a HelloReply>) {
        let mut fresh = BTreeMap::new();
        for r in replies {
            let said = std::iter::once((r.node_id, &r.info))
                .chain(r.nodes.iter().map(|(id, info)| (*id, info)))
                .chain(r.leader.iter().map(|(id, info)| (*id, info)));
            for (id, info) in said {
                if fresh.len() >= MAX_INTRODUCED {
                    break;
                }
                fresh.entry(id).or_insert_with(|| info.clone());
            }
        }
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// Asks for a round soon (a request from an unknown id was refused).
    pub fn want(&self) {
        self.wanted.notify_one();
    }
}

/// Runs rounds when wanted, until the node stops.
pub(crate) async fn run(app: Arc<App>) {
    loop {
        tokio::select! {
            _ = app.stop.cancelled() => return,
            _ = app.introductions.wanted.notified() => {}
        }
        round(&app).await;
        tokio::select! {
            _ = app.stop.cancelled() => return,
            _ = tokio::time::sleep(MIN_INTERVAL) => {}
        }
    }
}

/// Asks every member this node knows, and every declared initial member,
/// who they are and whom they know.
async fn round(app: &App) {
    let mut asked: BTreeMap<String, String> = BTreeMap::new();
    {
        let state = app.state.borrow();
        for m in state.members.values() {
            asked.insert(m.info.peer_addr.clone(), m.info.name.clone());
        }
        let metrics = app.raft.metrics().borrow().clone();
        for (_, n) in metrics.membership_config.membership().nodes() {
            asked.entry(n.peer_addr.clone()).or_insert_with(|| n.name.clone());
        }
    }
    for (name, addr) in &app.config.initial_members {
        asked.entry(addr.clone()).or_insert_with(|| name.clone());
    }
    asked.remove(&app.info.peer_addr);
    let calls = asked.iter().map(|(addr, name)| async move {
        let env = app.envelope_any(());
        let r: Result<HelloReply, _> = app.client.call(addr, path::HELLO, &env, app.rpc_timeout()).await;
        // Only the replica that should be there speaks for its address.
        r.ok().filter(|h| h.info.name == *name)
    });
    let replies: Vec<HelloReply> = futures::future::join_all(calls).await.into_iter().flatten().collect();
    tracing::debug!(member = app.id, asked = asked.len(), answered = replies.len(), "introductions refreshed");
    app.introductions.record(&replies);
}
