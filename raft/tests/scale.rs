//! Scaling 3 → 5 → 3: non-listed replicas join through any member, stay
//! learners beyond the voter count, own shards (Active), and leave with
//! ScaleDown; the epoch bumps once per Active-set change.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::{LeaveMode, NodeId};
use support::{Cluster, settled, slack, wait_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_3_to_5_to_3_bumps_the_epoch_once_per_active_set_change() {
    let mut c = Cluster::new(5, 3, 3);
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;

    // Record every committed state r0 sees.
    type Seen = Vec<(u64, BTreeSet<NodeId>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let mut rx = c.node(0).state();
    let log = seen.clone();
    let watcher = tokio::spawn(async move {
        loop {
            {
                let s = rx.borrow_and_update();
                log.lock().unwrap().push((s.epoch, s.active_ids()));
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    let epoch0 = c.state(0).epoch;

    c.start(3).await;
    c.start(4).await;
    let up =
        wait_cluster(&c, "5 Active", slack(Duration::from_secs(15)), |c| settled(c, &["r0", "r1", "r2", "r3", "r4"]))
            .await;
    println!("scale up 3 -> 5: {up:?}");
    let st = c.node(0).view();
    assert_eq!(st.members.iter().filter(|m| m.voter).count(), 3, "voters stay at 3:\n{st}");
    assert!(st.members.iter().filter(|m| m.name == "r3" || m.name == "r4").all(|m| !m.voter), "{st}");

    for i in [4, 3] {
        c.node(i).leave(LeaveMode::ScaleDown).await.expect("scale-down leave");
        c.kill(i).await;
    }
    let down = wait_cluster(&c, "back to 3", slack(Duration::from_secs(15)), |c| {
        settled(c, &["r0", "r1", "r2"]) && c.state(0).members.len() == 3 && c.node(0).view().members.len() == 3
    })
    .await;
    println!("scale down 5 -> 3: {down:?}");
    let s = c.state(0);
    assert_eq!(s.retired.len(), 2);
    println!("{}", c.node(0).view());

    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    for w in seen.windows(2) {
        let ((e0, a0), (e1, a1)) = (&w[0], &w[1]);
        assert!(e1 >= e0, "epoch went backwards: {seen:?}");
        if a0 == a1 {
            assert_eq!(e0, e1, "epoch bumped without an Active-set change: {seen:?}");
        } else {
            assert!(e1 > e0, "Active set changed without an epoch bump: {seen:?}");
        }
    }
    // r3 and r4 Active (one commit if the detector saw both at once), r4
    // Draining, r3 Draining: at most four Active-set changes, so at most four bumps.
    let bumps = s.epoch - epoch0;
    println!("epoch bumps over 3 -> 5 -> 3: {bumps}");
    assert!((3..=4).contains(&bumps), "states seen: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_of_the_leader_removes_it_from_raft_and_promotes_a_learner() {
    let mut c = Cluster::new(4, 3, 3);
    c.start_all(&[0, 1, 2, 3]).await;
    wait_cluster(&c, "4 Active", slack(Duration::from_secs(15)), |c| settled(c, &["r0", "r1", "r2", "r3"])).await;
    let leader = c.agreed_leader().expect("leader");
    let gone = c.node(leader).id();
    let learner = c.node(3).id();
    assert!(!c.node(leader).view().members.iter().any(|m| m.id == learner && m.voter));
    c.node(leader).leave(LeaveMode::ScaleDown).await.expect("leader leaves");
    c.kill(leader).await;
    let rest: Vec<&str> = ["r0", "r1", "r2", "r3"].into_iter().filter(|n| *n != c.replicas[leader].name).collect();
    let took = wait_cluster(&c, "learner promoted, leader gone", slack(Duration::from_secs(15)), |c| {
        let st = c.running().next().map(|(_, n)| n.view());
        settled(c, &rest)
            && st.is_some_and(|s| {
                s.members.len() == 3
                    && s.members.iter().all(|m| m.voter)
                    && s.members.iter().any(|m| m.id == learner)
                    && !s.members.iter().any(|m| m.id == gone)
            })
    })
    .await;
    println!("leader scale-down: learner promoted after {took:?}");
}
