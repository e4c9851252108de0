//! Failover times over repeated runs (ignored by default; run with
//! `cargo nextest run -p ha-raft --run-ignored only failover_medians`):
//! leader kill → new leader, leader kill → Down committed, follower kill →
//! Down committed. Prints the medians.

mod support;

use std::time::{Duration, Instant};

use raft::MemberState;
use support::{Cluster, settled, slack, wait_cluster};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: several cluster runs"]
async fn failover_medians() {
    let bound = slack(Duration::from_secs(5));
    let (mut elect, mut leader_down, mut follower_down) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let mut c = Cluster::new(3, 3, 3);
        c.start_all(&[0, 1, 2]).await;
        wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
        let old = c.agreed_leader().expect("leader");
        let name = c.replicas[old].name.clone();
        let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
        let t0 = Instant::now();
        c.kill(old).await;
        wait_cluster(&c, "new leader", bound, |c| c.leader_among(&rest).is_some()).await;
        elect.push(t0.elapsed());
        wait_cluster(&c, "old leader Down", bound, |c| {
            rest.iter().all(|&i| c.member_state(i, &name) == Some(MemberState::Down))
        })
        .await;
        leader_down.push(t0.elapsed());

        let leader = c.leader_among(&rest).expect("leader");
        let victim = rest.iter().copied().find(|i| *i != leader).expect("follower");
        let vname = c.replicas[victim].name.clone();
        // Restart the old leader so the cluster keeps a majority without the victim.
        c.start(old).await;
        wait_cluster(&c, "old leader back", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
        let t1 = Instant::now();
        c.kill(victim).await;
        wait_cluster(&c, "follower Down", bound, |c| {
            c.running().all(|(i, _)| c.member_state(i, &vname) == Some(MemberState::Down))
        })
        .await;
        follower_down.push(t1.elapsed());
        println!(
            "run {run}: new leader {:?}, leader Down {:?}, follower Down {:?}",
            elect[run], leader_down[run], follower_down[run]
        );
    }
    println!(
        "medians over {RUNS} runs (lease 3 s, effective election timeout 1.5-2 s): leader kill -> new leader {:?}; leader kill -> Down committed {:?}; follower kill -> Down committed {:?}",
        median(elect),
        median(leader_down),
        median(follower_down)
    );
}
