//! The short form of every catalogue scenario but the seeded soak (a random
//! mix of these faults, run by `chaos run --all`), one test each (8 nodes ×
//! 2 pods, 3 replicas, R = 2 s), every invariant judged, the HPA decisions
//! included. The clock scenarios need libfaketime, which `sim::tools`
//! installs from Debian's package on first use.
mod setup;

macro_rules! passes {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let (opts, _dir) = setup::options();
            let o = setup::run($name, &opts).await;
            assert_eq!(o.verdict, "pass", "{}: failing checks: {:?}", $name,
                o.checks.iter().filter(|c| !c.pass).collect::<Vec<_>>());
        }
    )*};
}

passes! {
    kill_9_of_the_leader_keeps_every_invariant => "kill-leader",
    kill_9_of_a_follower_keeps_every_invariant => "kill-follower",
    a_restart_with_an_empty_data_dir_keeps_every_invariant => "empty-data-dir-restart",
    flapping_kubelets_keep_every_invariant => "kubelet-flap",
    slow_kubelets_keep_every_invariant => "slow-kubelets",
    a_malformed_kubelet_keeps_every_invariant => "malformed-kubelet",
    apiserver_watches_dropped_with_410_keep_every_invariant => "apiserver-watch-drop",
    scaling_3_5_3_keeps_every_invariant => "scale-3-5-3",
    a_leader_cut_off_but_still_routed_to_keeps_every_invariant => "partition-minority",
    a_clock_30s_ahead_keeps_every_invariant => "clock-skew",
    losing_quorum_keeps_every_invariant => "quorum-loss",
    a_follower_cut_off_from_its_peers_keeps_every_invariant => "partition-one-from-peers",
    a_30s_pause_keeps_every_invariant => "pause-30s",
    a_clock_stepped_30s_back_keeps_every_invariant => "clock-step-back",
    kill_9_of_two_at_once_keeps_every_invariant => "kill-two",
    a_rolling_restart_keeps_every_invariant => "rolling-restart",
    a_kill_during_a_rolling_restart_keeps_every_invariant => "rolling-restart-during-kill",
    a_replica_cut_off_from_its_kubelets_keeps_every_invariant => "partition-from-kubelets",
    a_replica_cut_off_from_a_third_of_its_kubelets_keeps_every_invariant => "kubelet-partial-partition",
}
