//! The scenario catalogue: each scenario is a few lines of data — which
//! fault, how long it holds in the short (CI) and long (soak) forms, what
//! the invariants allow — and nothing else. The runner turns one into a run.

use serde::Serialize;

use crate::faults::{ApiFault, Fault, KubeletFault, Target};

/// One scenario.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub fault: Fault,
    /// How long the fault holds before its undo, short form (seconds).
    pub hold_short: u64,
    /// Long form (seconds).
    pub hold_long: u64,
    /// Degraded mode (quorum lost, a replica cut off) may scrape a node twice.
    pub may_duplicate: bool,
    /// The kubelets the fault breaks are exempt from freshness and correctness.
    pub breaks_kubelets: bool,
    /// ... and from coverage too: broken for longer than `--max-staleness`,
    /// they leave the answers (as with metrics-server) until healed.
    pub kubelets_may_vanish: bool,
    /// How often the fault may move one node between owners (one extra
    /// scrape allowed per move): 1 for a replica lost, 2 when it comes back
    /// and takes its nodes again within the window.
    pub moves_per_node: u64,
}

const fn s(name: &'static str, what: &'static str, fault: Fault, hold_short: u64, hold_long: u64) -> Scenario {
    Scenario {
        name,
        what,
        fault,
        hold_short,
        hold_long,
        may_duplicate: false,
        breaks_kubelets: false,
        kubelets_may_vanish: false,
        moves_per_node: 1,
    }
}

const fn moves(mut sc: Scenario, n: u64) -> Scenario {
    sc.moves_per_node = n;
    sc
}

const fn vanishing(mut sc: Scenario) -> Scenario {
    sc.breaks_kubelets = true;
    sc.kubelets_may_vanish = true;
    sc
}

const fn degraded(mut sc: Scenario) -> Scenario {
    sc.may_duplicate = true;
    sc
}

const fn on_kubelets(mut sc: Scenario) -> Scenario {
    sc.breaks_kubelets = true;
    sc
}

/// Every scenario but the soak, in report order: name, what it does, the
/// fault, hold in seconds (short, long), then what the invariants allow.
#[rustfmt::skip] // one scenario per entry, laid out as a table
pub const CATALOGUE: &[Scenario] = &[
    moves(s("kill-leader", "kill -9 of the Raft leader; restarted with its data dir after the hold",
        Fault::Kill(Target::Leader), 10, 60), 2),
    moves(s("kill-follower", "kill -9 of a follower; restarted with its data dir after the hold",
        Fault::Kill(Target::Follower), 10, 60), 2),
    moves(s("pause-30s", "SIGSTOP of a follower, SIGCONT after the hold (30 s long, 10 s short)",
        Fault::Pause(Target::Follower), 10, 30), 2),
    degraded(s("partition-one-from-peers", "one follower cut from its peers by the proxies, both ways; healed after the hold",
        Fault::PartitionPeers(Target::Follower), 10, 60)),
    degraded(s("partition-from-kubelets", "one follower's connections to every kubelet refused; healed after the hold",
        Fault::PartitionKubelets(Target::Follower), 10, 60)),
    moves(s("rolling-restart", "SIGTERM and restart with the same data dir of every replica in turn, each back before the next",
        Fault::RollingRestart, 0, 0), 2),
    moves(s("scale-3-5-3", "StatefulSet scaled to 5 with two newcomers started, then back to 3 (SIGTERM of the two)",
        Fault::ScaleTo(5), 6, 30), 2),
    degraded(s("quorum-loss", "kill -9 of all replicas but one; both restarted with their data dirs after the hold",
        Fault::QuorumLoss, 10, 60)),
    moves(s("empty-data-dir-restart", "kill -9 of a follower, data dir removed, restarted at once",
        Fault::WipeRestart(Target::Follower), 10, 30), 2),
    vanishing(s("kubelet-flap", "two kubelets flapping (down R, up 2R); healthy after the hold",
        Fault::Kubelet { fault: KubeletFault::Flapping, nodes: 2 }, 12, 60)),
    on_kubelets(s("slow-kubelets", "a third of the kubelets answer after 0.4 R; healthy after the hold",
        Fault::Kubelet { fault: KubeletFault::Slow, nodes: 0 }, 10, 60)),
    vanishing(s("malformed-kubelet", "one kubelet answers 200 with a body that is not Prometheus text (it leaves the answers after --max-staleness); healthy after the hold",
        Fault::Kubelet { fault: KubeletFault::Malformed, nodes: 1 }, 10, 60)),
    s("apiserver-watch-drop", "every Node and Pod watch cut and new watches refused 410 Gone; healthy after the hold",
        Fault::Api(ApiFault::WatchDropGone), 10, 60),
    moves(s("clock-skew", "a follower restarted with its wall clock 30 s ahead (libfaketime); restarted true after the hold",
        Fault::ClockSkew { secs: 30 }, 10, 60), 4),
    moves(s("kill-two", "kill -9 of the leader and one follower at once; both restarted with their data dirs after the hold",
        Fault::KillTwo, 10, 60), 2),
    degraded(s("partition-minority", "the leader cut from its peers while the aggregation proxy keeps routing to it (for 30 s, or the whole hold if shorter); healed after the hold",
        Fault::PartitionMinority { target: Target::Leader, route_secs: 30 }, 10, 60)),
    degraded(s("kubelet-partial-partition", "one follower's connections to a third of the kubelets (its own first) refused; healed after the hold",
        Fault::PartitionSomeKubelets(Target::Follower), 10, 60)),
    degraded(moves(s("rolling-restart-during-kill", "SIGTERM of a follower and, while it hands its nodes over, kill -9 of the other follower; the first restarted once it exited, the second after the hold",
        Fault::RestartDuringKill, 10, 60), 4)),
    moves(s("clock-step-back", "a running follower's wall clock stepped 30 s back (libfaketime timestamp file, monotonic clock untouched); stepped true after the hold",
        Fault::ClockStep { secs: -30 }, 10, 60), 2),
];

/// The soak: a seeded random mix of the catalogue.
pub const SOAK: &str = "soak";

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// The node count a kubelet fault touches: `nodes` = 0 means a third of them.
pub fn kubelet_count(fault: Fault, total_nodes: usize) -> Fault {
    match fault {
        Fault::Kubelet { fault, nodes: 0 } => Fault::Kubelet { fault, nodes: total_nodes.div_ceil(3) },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_the_issue_names_is_in_the_catalogue_once() {
        let names = [
            "kill-leader",
            "kill-follower",
            "pause-30s",
            "partition-one-from-peers",
            "partition-from-kubelets",
            "rolling-restart",
            "scale-3-5-3",
            "quorum-loss",
            "empty-data-dir-restart",
            "kubelet-flap",
            "slow-kubelets",
            "malformed-kubelet",
            "apiserver-watch-drop",
            "clock-skew",
            "kill-two",
            "partition-minority",
            "kubelet-partial-partition",
            "rolling-restart-during-kill",
            "clock-step-back",
        ];
        for n in names {
            assert_eq!(CATALOGUE.iter().filter(|s| s.name == n).count(), 1, "{n}");
        }
        assert_eq!(CATALOGUE.len(), names.len());
        assert!(find(SOAK).is_none(), "the soak is not a catalogue entry");
    }
}
