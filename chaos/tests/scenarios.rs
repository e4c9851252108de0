//! The short form of every catalogue scenario the product passes reliably
//! today, one test each (8 nodes × 2 pods, 3 replicas, R = 2 s), every
//! invariant judged, the HPA decisions included. Scenarios it does not pass
//! yet (kill-two, quorum-loss, partition-from-kubelets,
//! kubelet-partial-partition, clock-skew, clock-step-back), or only
//! sometimes (pause-30s, rolling-restart, rolling-restart-during-kill and
//! partition-one-from-peers: two replicas served one sample with rates a few
//! nanocores apart at one epoch, in one run of three or five: a holder that
//! missed copies keeps a different previous point), are not
//! here but in the report of `chaos run --all` and in chaos/README.md ("What
//! fails today"), with the invariant that catches them and its cause.

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
}
