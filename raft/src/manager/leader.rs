//! Leader duties: answer membership requests ([`handle_manage`]), run the
//! failure detector ([`detect`]) and keep the Raft membership in line with
//! the cluster state ([`reconcile`]): register initial members, add learners,
//! promote learners to voters while there are fewer than the configured
//! count, and remove retired incarnations. Followers run the same loops but
//! do nothing. Membership requests from non-leaders are answered with the
//! leader's address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};

use super::detector::{self, Bounds};
use crate::app::App;
use crate::network::wire::{Manage, ManageReply, REPLICATION_SINCE, RING_SINCE};
use crate::state::{Command, MemberInfo, MemberState, NodeId, RingParams};
use crate::types::Metrics;

/// Commits `cmd` through the local Raft (which must be the leader).
pub(crate) async fn write(app: &App, cmd: Command) -> ManageReply {
    let leader_info =
        |m: &Metrics| m.current_leader.and_then(|l| m.membership_config.membership().get_node(&l).cloned());
    match tokio::time::timeout(app.config.write_timeout, app.raft.client_write(cmd)).await {
        Err(_) => ManageReply::Refused(format!("commit did not finish within {:?}", app.config.write_timeout)),
        Ok(Ok(resp)) => match resp.data.refused {
            Some(reason) => ManageReply::Refused(reason),
            None => ManageReply::Done { epoch: resp.data.epoch },
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            let leader = f.leader_node.or_else(|| leader_info(&app.raft.metrics().borrow()));
            ManageReply::NotLeader { leader }
        }
        Ok(Err(e)) => ManageReply::Refused(e.to_string()),
    }
}

/// Handles a membership request from `from` (on the leader).
pub(crate) async fn handle_manage(app: &App, from: NodeId, req: Manage) -> ManageReply {
    match req {
        Manage::Join(info) => {
            let reply = write(app, Command::Join { id: from, info: info.clone() }).await;
            if let ManageReply::Done { .. } = reply {
                tracing::info!(member = from, name = %info.name, "member joined");
                let known = app.raft.metrics().borrow().membership_config.membership().get_node(&from).is_some();
                if !known {
                    let add = app.raft.add_learner(from, info, false);
                    if let Ok(Err(e)) = tokio::time::timeout(app.config.write_timeout, add).await {
                        tracing::debug!(member = from, error = %e, "add learner deferred to reconcile");
                    }
                }
            }
            reply
        }
        Manage::Drain => {
            // The member says it is leaving: remember it at once, so the
            // detector does not make it Active again on a heartbeat sent
            // before it asked.
            if let Some(seen) = app.liveness().seen.get_mut(&from) {
                seen.leaving = true;
            }
            write(app, Command::SetStates(vec![(from, MemberState::Draining)])).await
        }
        Manage::Retire => write(app, Command::Retire { id: from }).await,
    }
}

fn is_leader(app: &App) -> Option<Metrics> {
    let m = app.raft.metrics().borrow().clone();
    (m.state == ServerState::Leader && m.current_leader == Some(app.id)).then_some(m)
}

fn caught_up(m: &Metrics, me: NodeId, max_lag: u64) -> impl Fn(NodeId) -> bool + '_ {
    let last = m.last_log_index.unwrap_or(0);
    move |id| {
        id == me
            || m.replication
                .as_ref()
                .and_then(|r| r.get(&id))
                .and_then(|l| l.as_ref())
                .is_some_and(|l| l.index + max_lag >= last)
    }
}

/// One failure-detector round: commit the state changes liveness calls for.
/// A commit that cannot reach a quorum does not stall detection: the write
/// runs in a task of its own, and rounds while it is in flight only watch.
pub(crate) async fn detect(app: &Arc<App>) {
    app.record_heartbeat(app.id, &app.heartbeat());
    let Some(m) = is_leader(app) else { return };
    if app.detector_busy.load(Ordering::Acquire) {
        return;
    }
    let state = app.state.borrow().clone();
    let bounds = Bounds { lease: app.config.lease, hysteresis: app.config.hysteresis };
    let now = Instant::now();
    let changes = {
        let live = app.liveness();
        let flaps = app.flaps.lock().unwrap_or_else(|p| p.into_inner());
        detector::decide(&state, &live, &flaps, now, bounds, caught_up(&m, app.id, app.config.max_lag))
    };
    if changes.is_empty() {
        return;
    }
    for (id, s) in &changes {
        let name = state.members.get(id).map(|m| m.info.name.as_str()).unwrap_or("?");
        tracing::info!(member = id, name, state = %s, "failure detector commits state");
    }
    app.detector_busy.store(true, Ordering::Release);
    let app = app.clone();
    app.clone().spawn_once("failure detector commit", async move {
        let _busy = crate::app::ClearOnDrop(&app.detector_busy);
        let downs: Vec<NodeId> = changes.iter().filter(|(_, s)| *s == MemberState::Down).map(|(id, _)| *id).collect();
        match write(&app, Command::SetStates(changes)).await {
            ManageReply::Done { .. } => {
                let mut flaps = app.flaps.lock().unwrap_or_else(|p| p.into_inner());
                for id in downs {
                    flaps.down(id, now);
                }
            }
            ManageReply::Refused(reason) => tracing::warn!(reason, "failure detector could not commit"),
            ManageReply::NotLeader { .. } => {}
        }
    });
}

/// One reconcile round: at most one change to the Raft membership or state.
pub(crate) async fn reconcile(app: &App) {
    let Some(m) = is_leader(app) else { return };
    let membership = m.membership_config.membership().clone();
    if membership.get_joint_config().len() > 1 {
        return;
    }
    let state = app.state.borrow().clone();
    let nodes: BTreeMap<NodeId, MemberInfo> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let timeout = app.config.write_timeout;

    // Raft nodes the state does not know yet: initial members after initialize.
    for (id, info) in &nodes {
        if !state.members.contains_key(id) && !state.retired.contains_key(id) && state.by_name(&info.name).is_none() {
            write(app, Command::Join { id: *id, info: info.clone() }).await;
            return;
        }
    }
    // Raft nodes that are retired or replaced by a newer incarnation.
    for (id, info) in &nodes {
        if !state.members.contains_key(id) && (state.retired.contains_key(id) || state.by_name(&info.name).is_some()) {
            let change = if voters.contains(id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([*id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([*id]))
            };
            tracing::info!(member = id, name = %info.name, "removing retired incarnation from raft");
            if let Ok(Err(e)) = tokio::time::timeout(timeout, app.raft.change_membership(change, false)).await {
                tracing::warn!(member = id, error = %e, "removing retired incarnation failed");
            }
            return;
        }
    }
    // Members Raft does not replicate to yet.
    for (id, member) in &state.members {
        if !nodes.contains_key(id) {
            if let Ok(Err(e)) =
                tokio::time::timeout(timeout, app.raft.add_learner(*id, member.info.clone(), false)).await
            {
                tracing::warn!(member = id, error = %e, "adding learner failed");
            }
            return;
        }
    }
    // The ring parameters, once every member speaks the protocol that has them.
    if state.ring.is_none() {
        let all_speak = state.members.keys().all(|id| app.version_of(*id).is_some_and(|v| v >= RING_SINCE));
        if all_speak && !state.members.is_empty() {
            let params = RingParams::CURRENT;
            tracing::info!(%params, "committing the ring parameters");
            write(app, Command::SetRing(params)).await;
            return;
        }
    }
    // The replication factor, once every member speaks the protocol that
    // carries it and every member asks for the same one.
    if let Some(factor) = agreed_replication(app, &state)
        && state.replication != Some(factor)
    {
        tracing::info!(factor, before = ?state.replication, "committing the replication factor");
        write(app, Command::SetReplication(factor)).await;
        return;
    }
    // The kubelets each member fails to scrape, once every member speaks
    // the protocol whose heartbeats carry them.
    if let Some(changes) = failing_changes(app, &state) {
        tracing::info!(members = changes.len(), "committing the kubelets members fail to scrape");
        write(app, Command::SetFailing(changes)).await;
        return;
    }
    // Promote caught-up learners while there are too few voters.
    if voters.len() < app.config.voters {
        let ok = caught_up(&m, app.id, app.config.max_lag);
        let mut candidates: Vec<(&str, NodeId)> = state
            .members
            .iter()
            .filter(|(id, mm)| {
                !voters.contains(id) && matches!(mm.state, MemberState::Active | MemberState::Joining) && ok(**id)
            })
            .map(|(id, mm)| (mm.info.name.as_str(), *id))
            .collect();
        candidates.sort();
        let want = app.config.voters - voters.len();
        let promote: BTreeSet<NodeId> = candidates.into_iter().take(want).map(|(_, id)| id).collect();
        if !promote.is_empty() {
            tracing::info!(nodes = ?promote, "promoting learners to voters");
            let change = ChangeMembers::AddVoterIds(promote);
            if let Ok(Err(e)) = tokio::time::timeout(timeout, app.raft.change_membership(change, false)).await {
                tracing::warn!(error = %e, "promoting learners failed");
            }
        }
    }
}

/// The replication factor every member asks for, if they all speak the
/// protocol that carries it and agree (during a rolling change of the flag
/// they do not, and the committed factor stays until they do).
fn agreed_replication(app: &App, state: &crate::state::ClusterState) -> Option<u32> {
    if state.members.is_empty()
        || !state.members.keys().all(|id| app.version_of(*id).is_some_and(|v| v >= REPLICATION_SINCE))
    {
        return None;
    }
    let live = app.liveness();
    let mut wanted = state.members.keys().map(|id| {
        if *id == app.id { Some(app.config.replication) } else { live.seen.get(id).and_then(|s| s.replication) }
    });
    let first = wanted.next()??;
    wanted.all(|w| w == Some(first)).then_some(first)
}

/// The protocol version whose heartbeats carry the failing kubelets
/// (`Heartbeat::failing`), and so the first that may see `Command::SetFailing`.
pub const FAILING_SINCE: u32 = REPLICATION_SINCE;

/// The failing-kubelet lists to commit: for every member heard within the
/// lease (this node included) whose report differs from its committed
/// list, the report. A silent member's list stays as committed (it is out
/// of reach anyway, and the ring moves its nodes once it is Down). `None`
/// when nothing differs, or while some member does not speak
/// [`FAILING_SINCE`] (it could not decode the command).
fn failing_changes(app: &App, state: &crate::state::ClusterState) -> Option<Vec<(NodeId, Vec<String>)>> {
    if state.members.is_empty()
        || !state.members.keys().all(|id| app.version_of(*id).is_some_and(|v| v >= FAILING_SINCE))
    {
        return None;
    }
    let now = Instant::now();
    let mine = app.heartbeat().failing;
    let live = app.liveness();
    failing_diff(state, |id| {
        if id == app.id {
            return Some(mine.clone());
        }
        live.seen
            .get(&id)
            .filter(|s| now.saturating_duration_since(s.last) <= app.config.lease)
            .map(|s| s.failing.clone())
    })
}

/// The pure part of [`failing_changes`]: `reported(id)` is what member `id`
/// last said (`None`: not heard within the lease, keep its list).
pub(crate) fn failing_diff(
    state: &crate::state::ClusterState,
    reported: impl Fn(NodeId) -> Option<Vec<String>>,
) -> Option<Vec<(NodeId, Vec<String>)>> {
    let changes: Vec<(NodeId, Vec<String>)> = state
        .members
        .keys()
        .filter_map(|id| {
            let r = normalized(reported(*id)?);
            (r.as_slice() != state.failing_of(*id)).then_some((*id, r))
        })
        .collect();
    (!changes.is_empty()).then_some(changes)
}

/// A failing list as the state keeps it: sorted, without repeats, bounded.
fn normalized(mut nodes: Vec<String>) -> Vec<String> {
    nodes.sort_unstable();
    nodes.dedup();
    nodes.truncate(crate::state::ClusterState::MAX_FAILING);
    nodes
}

/// Runs `round` every `every` until the node stops.
pub(crate) async fn every<F, Fut>(app: Arc<App>, every: Duration, round: F)
where
    F: Fn(Arc<App>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.stop.cancelled() => return,
            _ = tick.tick() => round(app.clone()).await,
        }
    }
}
