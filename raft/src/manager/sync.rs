//! Catching up after a start: a node restarted with its data dir holds the
//! cluster state it had, which may be older than the cluster's. It asks the
//! leader how far it has applied and counts as synced once it has applied
//! as much itself (a leader, once it has a quorum acknowledgement and has
//! applied its whole log). Until then the server treats the ring as a guess.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ServerState;

use crate::app::App;
use crate::network::client::CallError;
use crate::network::wire::path;

/// Pause between attempts (a retry backoff, not synchronisation).
const RETRY: Duration = Duration::from_millis(250);

/// Runs until this node is synced or stops.
pub(crate) async fn run(app: Arc<App>) {
    loop {
        if app.stop.is_cancelled() {
            return;
        }
        if attempt(&app).await {
            app.synced.store(true, Ordering::Release);
            tracing::info!(member = app.id, name = %app.info.name, "caught up with the leader; the ring is authoritative");
            return;
        }
        tokio::select! {
            _ = app.stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn attempt(app: &App) -> bool {
    let m = app.raft.metrics().borrow().clone();
    let applied = m.last_applied.map(|l| l.index);
    let Some(leader) = m.current_leader else { return false };
    if leader == app.id {
        return m.state == ServerState::Leader
            && m.millis_since_quorum_ack.is_some()
            && applied.is_some()
            && applied == m.last_log_index;
    }
    let Some(info) = app.member_info(leader) else { return false };
    let env = app.envelope(leader, ());
    let wanted: Option<u64> = match app.client.call(&info.peer_addr, path::APPLIED, &env, app.rpc_timeout()).await {
        Ok(idx) => idx,
        // A leader of the previous release has no such route: nothing better to wait for.
        Err(CallError::Refused { status: 404, .. }) => return true,
        Err(_) => return false,
    };
    let Some(wanted) = wanted else { return true };
    let mut rx = app.raft.metrics();
    let caught_up = tokio::time::timeout(
        app.config.write_timeout,
        rx.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= wanted)),
    )
    .await;
    matches!(caught_up, Ok(Ok(_)))
}
