//! Faults with a clean undo, as data ([`Fault`]) and as actions on a
//! [`Harness`]: [`inject`] does the fault and returns the [`Undo`] that
//! [`heal`] carries out. Signals go to the pids the harness started. The
//! faults of issue 17 (several replicas at once, partial partitions, a clock
//! stepped while running) are done in [`more`].

mod more;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sim::kubelet::BlockMode;
use sim::kubelet::Fault as KFault;

use crate::harness::{Harness, HarnessError};
use crate::record::{Event, now_ms};
use crate::rng::Rng;

/// Which replica a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Any,
    Leader,
    Follower,
}

/// A simulated kubelet fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KubeletFault {
    Down,
    Slow,
    Http500,
    Malformed,
    Frozen,
    CounterReset,
    Flapping,
}

/// A stand-in apiserver fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiFault {
    /// Every Node and Pod watch cut, and new watches refused with 410 Gone.
    WatchDropGone,
    /// Lists delayed by a resolution.
    SlowLists,
    /// Lists answered 500.
    ListErrors,
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// kill -9; undo: restart with the same data dir.
    Kill(Target),
    /// SIGSTOP; undo: SIGCONT.
    Pause(Target),
    /// kill -9, data dir removed, restarted at once.
    WipeRestart(Target),
    /// Cut from its peers by the proxies; undo: heal.
    PartitionPeers(Target),
    /// Cut from every kubelet; undo: let it through.
    PartitionKubelets(Target),
    /// SIGTERM and restart of every replica in turn.
    RollingRestart,
    /// Scale the StatefulSet to `to` and start the newcomers; undo: scale back.
    ScaleTo(usize),
    /// kill -9 of all but one; undo: restart them.
    QuorumLoss,
    /// A kubelet fault on `nodes` nodes; undo: healthy.
    Kubelet {
        fault: KubeletFault,
        nodes: usize,
    },
    Api(ApiFault),
    /// One replica's wall clock moved by `secs` (libfaketime); undo: restart without.
    ClockSkew {
        secs: i64,
    },
    /// kill -9 of the leader and one follower at once; undo: restart both.
    KillTwo,
    /// Cut from its peers while the aggregation proxy keeps routing to it
    /// for `route_secs` whatever its `/readyz` says; undo: heal.
    PartitionMinority {
        target: Target,
        route_secs: u64,
    },
    /// Cut from a third of the kubelets (the ones it scrapes first); undo: let it through.
    PartitionSomeKubelets(Target),
    /// SIGTERM of a follower and, once it is handing its nodes over, kill -9
    /// of the other follower; the first restarted once it exited; undo: restart the killed one.
    RestartDuringKill,
    /// A running replica's wall clock stepped by `secs` (libfaketime's
    /// timestamp file; monotonic clock untouched); undo: stepped back to true.
    ClockStep {
        secs: i64,
    },
}

/// What undoes an injected fault.
#[derive(Debug)]
pub enum Undo {
    Nothing,
    Restart(Vec<usize>),
    Resume(usize),
    HealPeers,
    HealKubelets(usize),
    ScaleBack {
        from: usize,
        to: usize,
    },
    KubeletsHealthy(Vec<String>),
    Api,
    Unskew(usize),
    /// Heal the peer partition and stop pinning the route to the replica.
    HealMinority(usize),
    Unstep(usize),
}

/// A fault could not be done here (for example libfaketime is missing).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("not supported here: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

pub(crate) async fn target(h: &Harness, t: Target, rng: &mut Rng) -> Result<usize, FaultError> {
    let live = h.live();
    if live.is_empty() {
        return Err(FaultError::Failed("no live replica to hit".into()));
    }
    let leader = h.leader().await;
    let pick = match (t, leader) {
        (Target::Any, _) => live[rng.below(live.len())],
        (Target::Leader, Some(l)) => l,
        (Target::Follower, Some(l)) => {
            let f: Vec<usize> = live.iter().copied().filter(|i| *i != l).collect();
            *f.get(rng.below(f.len())).ok_or_else(|| FaultError::Failed("no follower".into()))?
        }
        (_, None) => return Err(FaultError::Failed("no replica knows a leader".into())),
    };
    Ok(pick)
}

pub(crate) fn note(events: &mut Vec<Event>, what: String, wiped: Option<usize>) {
    events.push(Event { at_ms: now_ms(), what, wiped });
}

/// Stops replica `i` with SIGTERM and waits for it to exit (60 s grace).
pub async fn terminate(h: &mut Harness, i: usize) -> Result<(), FaultError> {
    let Some(r) = h.replicas[i].as_mut() else { return Ok(()) };
    r.signal(libc::SIGTERM);
    let exited = sim::wait::until(Duration::from_secs(60), async || {
        h.replicas[i].as_mut().is_some_and(|r| r.exited().is_some())
    })
    .await;
    h.replicas[i] = None;
    h.reroute();
    exited.map(|_| ()).ok_or_else(|| FaultError::Failed(format!("replica-{i} did not exit within 60 s of SIGTERM")))
}

pub(crate) fn kill(h: &mut Harness, i: usize) {
    if let Some(mut r) = h.replicas[i].take() {
        r.signal(libc::SIGKILL);
        drop(r); // reaps
    }
    h.reroute();
}

/// Does `fault`; returns how to undo it.
pub async fn inject(h: &mut Harness, fault: Fault, rng: &mut Rng, ev: &mut Vec<Event>) -> Result<Undo, FaultError> {
    let r = h.opts.resolution;
    Ok(match fault {
        Fault::Kill(t) => {
            let i = target(h, t, rng).await?;
            kill(h, i);
            note(ev, format!("kill -9 replica-{i}"), None);
            Undo::Restart(vec![i])
        }
        Fault::Pause(t) => {
            let i = target(h, t, rng).await?;
            if let Some(p) = h.replicas[i].as_mut() {
                p.signal(libc::SIGSTOP);
            }
            h.reroute();
            note(ev, format!("SIGSTOP replica-{i}"), None);
            Undo::Resume(i)
        }
        Fault::WipeRestart(t) => {
            let i = target(h, t, rng).await?;
            kill(h, i);
            let dir = h.data_dir(i);
            std::fs::remove_dir_all(&dir)
                .map_err(|e| FaultError::Failed(format!("removing {}: {e}", dir.display())))?;
            h.spawn(i)?;
            note(ev, format!("kill -9 replica-{i}, data dir removed, restarted"), Some(i));
            Undo::Nothing
        }
        Fault::PartitionPeers(t) => {
            let i = target(h, t, rng).await?;
            h.partitions.isolate(h.ip(i));
            note(ev, format!("replica-{i} cut from its peers"), None);
            Undo::HealPeers
        }
        Fault::PartitionKubelets(t) => {
            let i = target(h, t, rng).await?;
            h.env.fleet.block_source(h.ip(i), BlockMode::Refuse);
            note(ev, format!("replica-{i} cut from the kubelets"), None);
            Undo::HealKubelets(i)
        }
        Fault::RollingRestart => {
            for i in h.live() {
                terminate(h, i).await?;
                h.spawn(i)?;
                note(ev, format!("SIGTERM and restart of replica-{i}"), None);
                let all = h.live();
                h.settled(&all, all.len(), Duration::from_secs(60)).await?;
            }
            Undo::Nothing
        }
        Fault::ScaleTo(to) => {
            let from = h.live().len();
            h.env.set_replica_count(to);
            for i in from..to {
                h.spawn(i)?;
            }
            note(ev, format!("scaled {from} → {to}"), None);
            let all = h.live();
            h.settled(&all, to, Duration::from_secs(60)).await?;
            Undo::ScaleBack { from: to, to: from }
        }
        Fault::QuorumLoss => {
            let live = h.live();
            let victims: Vec<usize> = live.iter().copied().skip(1).collect();
            for &i in &victims {
                kill(h, i);
            }
            note(ev, format!("kill -9 of {victims:?}: quorum lost"), None);
            Undo::Restart(victims)
        }
        Fault::Kubelet { fault, nodes } => {
            let names: Vec<String> = h.env.spec.nodes.iter().map(|n| n.name.clone()).collect();
            let picked = rng.pick(&names, nodes);
            let f = match fault {
                KubeletFault::Down => KFault::Down,
                KubeletFault::Slow => KFault::Slow(r.mul_f64(0.4)),
                KubeletFault::Http500 => KFault::Http500,
                KubeletFault::Malformed => KFault::Malformed,
                KubeletFault::Frozen => KFault::FrozenTimestamps,
                KubeletFault::CounterReset => KFault::CounterReset,
                KubeletFault::Flapping => KFault::Flapping { down: r, up: r * 2 },
            };
            for n in &picked {
                h.env.fleet.set_fault(n, f).await.map_err(|e| FaultError::Failed(e.to_string()))?;
            }
            note(ev, format!("kubelet {fault:?} on {picked:?}"), None);
            Undo::KubeletsHealthy(picked)
        }
        Fault::Api(a) => {
            match a {
                ApiFault::WatchDropGone => {
                    h.env.apiserver.set_watch_error(Some(http::StatusCode::GONE));
                    h.env.apiserver.drop_watches();
                }
                ApiFault::SlowLists => h.env.apiserver.set_list_delay(r),
                ApiFault::ListErrors => h.env.apiserver.set_list_error(Some(http::StatusCode::INTERNAL_SERVER_ERROR)),
            }
            note(ev, format!("apiserver {a:?}"), None);
            Undo::Api
        }
        Fault::ClockSkew { secs } => {
            let why = "the clock-skew scenario restarts a replica under libfaketime";
            let libfaketime = tokio::task::spawn_blocking(move || sim::tools::libfaketime(why))
                .await
                .map_err(|e| FaultError::Failed(format!("installing libfaketime: {e}")))?
                .map_err(|e| FaultError::Unsupported(e.to_string()))?;
            let i = target(h, Target::Follower, rng).await?;
            terminate(h, i).await?;
            h.env_of[i] = vec![
                ("LD_PRELOAD".into(), libfaketime.display().to_string()),
                ("FAKETIME".into(), format!("{secs:+}s")),
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ];
            h.spawn(i)?;
            note(ev, format!("replica-{i} restarted with its clock {secs:+}s off"), None);
            Undo::Unskew(i)
        }
        Fault::KillTwo => more::kill_two(h, rng, ev).await?,
        Fault::PartitionMinority { target: t, route_secs } => {
            let i = target(h, t, rng).await?;
            more::partition_minority(h, i, route_secs, ev)
        }
        Fault::PartitionSomeKubelets(t) => {
            let i = target(h, t, rng).await?;
            more::partition_some_kubelets(h, i, rng, ev)
        }
        Fault::RestartDuringKill => more::restart_during_kill(h, rng, ev).await?,
        Fault::ClockStep { secs } => {
            let i = target(h, Target::Follower, rng).await?;
            more::step_clock(h, i, secs, ev).await?
        }
    })
}

/// Undoes an injected fault.
pub async fn heal(h: &mut Harness, undo: Undo, ev: &mut Vec<Event>) -> Result<(), FaultError> {
    match undo {
        Undo::Nothing => {}
        Undo::Restart(list) => {
            for i in list {
                h.spawn(i)?;
                note(ev, format!("replica-{i} restarted with its data dir"), None);
            }
        }
        Undo::Resume(i) => {
            if let Some(p) = h.replicas[i].as_mut() {
                p.signal(libc::SIGCONT);
            }
            h.reroute();
            note(ev, format!("SIGCONT replica-{i}"), None);
        }
        Undo::HealPeers => {
            h.partitions.heal();
            note(ev, "peer partition healed".into(), None);
        }
        Undo::HealKubelets(i) => {
            h.env.fleet.unblock_source(h.ip(i));
            note(ev, format!("replica-{i} reaches the kubelets again"), None);
        }
        Undo::ScaleBack { from, to } => {
            h.env.set_replica_count(to);
            for i in (to..from).rev() {
                terminate(h, i).await?;
            }
            note(ev, format!("scaled {from} → {to}"), None);
        }
        Undo::KubeletsHealthy(nodes) => {
            for n in &nodes {
                h.env.fleet.set_fault(n, KFault::None).await.map_err(|e| FaultError::Failed(e.to_string()))?;
            }
            note(ev, format!("kubelets {nodes:?} healthy"), None);
        }
        Undo::Api => {
            h.env.apiserver.set_watch_error(None);
            h.env.apiserver.set_list_delay(Duration::ZERO);
            h.env.apiserver.set_list_error(None);
            note(ev, "apiserver healthy".into(), None);
        }
        Undo::Unskew(i) => {
            terminate(h, i).await?;
            h.env_of[i] = h.base_env(i);
            h.spawn(i)?;
            note(ev, format!("replica-{i} restarted with the true clock"), None);
        }
        Undo::HealMinority(i) => {
            h.partitions.heal();
            h.pin_route(i, None);
            note(ev, format!("peer partition of replica-{i} healed; routed by /readyz again"), None);
        }
        Undo::Unstep(i) => {
            h.set_clock(i, 0).map_err(FaultError::Harness)?;
            note(ev, format!("replica-{i}'s clock stepped back to true"), None);
        }
    }
    Ok(())
}
