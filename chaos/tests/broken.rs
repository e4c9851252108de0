//! Each invariant catches what it is for: the observer and the invariants
//! run against setups broken on purpose, and the invariant that guards
//! against that breakage fails (while a healthy cluster passes them all).

mod setup;

use chaos::faults::{Fault, KubeletFault};
use chaos::scenarios::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_without_peers_scrape_every_kubelet_three_times_and_fail_exactly_once() {
    let (mut opts, _dir) = setup::options();
    opts.clustered = false;
    let o = setup::run_steps("no-peers", "three replicas without --peers", &[], &opts).await;
    assert_eq!(o.verdict, "fail", "{o:?}");
    let c = setup::check(&o, "exactly_once");
    assert!(!c.pass);
    assert!(c.detail.iter().any(|d| d.contains("scraped by")), "{c:?}");
    assert!(setup::check(&o, "coverage").pass, "every node is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_down_longer_than_max_staleness_disappears_and_fails_coverage() {
    let (mut opts, _dir) = setup::options();
    opts.extra_args = vec!["--max-staleness=4s".into()];
    let down = Scenario {
        name: "kubelet-down-12s",
        what: "one kubelet down for 12 s, three times --max-staleness",
        fault: Fault::Kubelet { fault: KubeletFault::Down, nodes: 1 },
        hold_short: 12,
        hold_long: 12,
        may_duplicate: false,
        breaks_kubelets: true,
        kubelets_may_vanish: false,
        moves_per_node: 1,
    };
    let o = setup::run_steps(down.name, down.what, &[down], &opts).await;
    let c = setup::check(&o, "coverage");
    assert!(!c.pass, "{c:?}");
    assert!(c.figures["missing_node_answers"] > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_given_the_wrong_kubelet_ca_serves_no_values_and_fails_correctness() {
    let (mut opts, _dir) = setup::options();
    opts.replicas = 1;
    opts.clustered = false;
    opts.expect_serving = false;
    opts.wrong_kubelet_ca = true;
    let o = setup::run_steps("wrong-ca", "a replica with the wrong kubelet CA", &[], &opts).await;
    let c = setup::check(&o, "correctness");
    assert!(!c.pass, "{c:?}");
    assert_eq!(c.figures["values_checked"], 0.0);
    assert!(!setup::check(&o, "coverage").pass);
}
