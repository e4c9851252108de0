//! Our liveness heartbeats: every interval, this replica tells every other
//! member (and every Raft node) that it is alive, whether it is healthy
//! (scraping works and its Raft store has not failed: a replica whose store
//! failed must be committed Down, not kept Active by its heartbeats) and
//! whether it is leaving. Receivers record it in their liveness table (see
//! [`super::detector`]). Each round also bounds this node's tables of
//! senders.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::app::App;
use crate::network::wire::{HeartbeatAck, HeartbeatV2, PROTOCOL_VERSION, REPLICATION_SINCE, path};
use crate::state::NodeId;

/// One round of heartbeats, sent concurrently.
pub(crate) async fn round(app: Arc<App>) {
    app.prune_tables();
    let mut targets: BTreeMap<NodeId, String> = BTreeMap::new();
    {
        let state = app.state.borrow();
        for (id, m) in &state.members {
            targets.insert(*id, m.info.peer_addr.clone());
        }
        let metrics = app.raft.metrics().borrow().clone();
        for (id, n) in metrics.membership_config.membership().nodes() {
            if !state.retired.contains_key(id) {
                targets.entry(*id).or_insert_with(|| n.peer_addr.clone());
            }
        }
    }
    targets.remove(&app.id);
    let body = app.heartbeat();
    let timeout = app.config.liveness_interval;
    let calls = targets.into_iter().map(|(id, addr)| {
        let app = app.clone();
        let body = body.clone();
        async move {
            // The previous protocol's shape until the peer is heard speaking this one.
            let r: Result<HeartbeatAck, _> = if app.version_of(id).is_some_and(|v| v >= REPLICATION_SINCE) {
                let mut env = app.envelope(id, body);
                env.protocol_version = PROTOCOL_VERSION;
                app.client.call(&addr, path::HEARTBEAT, &env, timeout).await
            } else {
                app.client.call(&addr, path::HEARTBEAT, &app.envelope(id, HeartbeatV2::from(&body)), timeout).await
            };
            if let Err(e) = r {
                tracing::trace!(member = id, error = %e, "heartbeat not delivered");
            }
        }
    });
    futures::future::join_all(calls).await;
}
