//! Failures: a killed leader is replaced and committed Down within
//! lease + 2 s; restarts with the same or an empty data dir rejoin; a
//! partitioned member is Down on the majority side and Active after heal.

mod support;

use std::time::{Duration, Instant};

use raft::{MemberState, Role};
use support::{Cluster, settled, slack, wait_cluster};

const LEASE: Duration = Duration::from_secs(3);

async fn three() -> Cluster {
    let mut c = Cluster::new(3, 3, 3);
    c.start_all(&[0, 1, 2]).await;
    wait_cluster(&c, "bootstrap", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"])).await;
    c
}

fn others(dead: usize) -> Vec<usize> {
    (0..3).filter(|i| *i != dead).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_committed_down_within_lease_plus_2s() {
    let mut c = three().await;
    let old = c.agreed_leader().expect("leader");
    let old_name = c.replicas[old].name.clone();
    let rest = others(old);
    let t0 = Instant::now();
    c.kill(old).await;
    let elected =
        wait_cluster(&c, "a new leader", slack(LEASE + Duration::from_secs(2)), |c| c.leader_among(&rest).is_some())
            .await;
    let down = wait_cluster(&c, "old leader committed Down", slack(LEASE + Duration::from_secs(2)), |c| {
        rest.iter().all(|&i| c.member_state(i, &old_name) == Some(MemberState::Down))
    })
    .await;
    let down_total = t0.elapsed();
    println!(
        "leader kill: new leader after {elected:?}, Down committed after {down_total:?} (+{down:?} after election)"
    );
    let new = c.leader_among(&rest).expect("leader");
    assert_ne!(new, old);
    let st = c.node(new).view();
    assert_eq!(st.count(MemberState::Active), 2, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_data_dir_keeps_identity_and_rejoins_active() {
    let mut c = three().await;
    let leader = c.agreed_leader().expect("leader");
    let victim = (leader + 1) % 3;
    let id = c.node(victim).id();
    let name = c.replicas[victim].name.clone();
    c.kill(victim).await;
    wait_cluster(&c, "victim Down", slack(LEASE + Duration::from_secs(2)), |c| {
        c.member_state(leader, &name) == Some(MemberState::Down)
    })
    .await;
    let epoch_down = c.state(leader).epoch;
    c.start(victim).await;
    assert_eq!(c.node(victim).id(), id, "same data dir must keep the node id");
    assert!(!c.node(victim).is_new_incarnation());
    let back =
        wait_cluster(&c, "victim Active again", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
            .await;
    println!("restart with same dir: Active again after {back:?}");
    let s = c.state(leader);
    let (vid, m) = s.by_name(&name).expect("member");
    assert_eq!((vid, m.incarnation), (id, 1));
    assert_eq!(s.epoch, epoch_down + 1, "exactly one epoch bump for Down -> Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_dir_restart_joins_as_a_new_incarnation_without_crashing_the_leader() {
    let mut c = three().await;
    let leader = c.agreed_leader().expect("leader");
    let victim = (leader + 1) % 3;
    let old_id = c.node(victim).id();
    let name = c.replicas[victim].name.clone();
    // Wipe and come back at once: the leader still replicates to the old id
    // at the same address, and must be refused rather than confused.
    c.kill(victim).await;
    c.wipe(victim);
    c.start(victim).await;
    let new_id = c.node(victim).id();
    assert_ne!(new_id, old_id);
    assert!(c.node(victim).is_new_incarnation());
    let took = wait_cluster(&c, "new incarnation Active, old retired", slack(Duration::from_secs(15)), |c| {
        let s = c.state(leader);
        settled(c, &["r0", "r1", "r2"])
            && s.by_name(&name).is_some_and(|(id, m)| id == new_id && m.incarnation == 2)
            && s.retired.contains_key(&old_id)
            && c.node(leader).view().members.iter().all(|m| m.voter)
    })
    .await;
    println!("empty-dir restart: new incarnation Active and voter after {took:?}");
    for (i, s) in c.statuses() {
        assert_ne!(s.role, Role::Stopped, "replica {i} stopped:\n{s}");
    }
    assert_eq!(c.agreed_leader(), Some(leader), "the leader survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_member_is_marked_down_by_the_majority_and_active_after_heal() {
    let c = three().await;
    let leader = c.agreed_leader().expect("leader");
    let victim = (leader + 2) % 3;
    let name = c.replicas[victim].name.clone();
    c.partition(victim);
    let rest = others(victim);
    let down = wait_cluster(&c, "partitioned member Down", slack(LEASE + Duration::from_secs(2)), |c| {
        c.leader_among(&rest).is_some() && rest.iter().all(|&i| c.member_state(i, &name) == Some(MemberState::Down))
    })
    .await;
    println!("partition: Down committed after {down:?}");
    c.heal(victim);
    let back =
        wait_cluster(&c, "healed member Active", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
            .await;
    println!("heal: Active again after {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_leader_comes_back_as_a_new_incarnation_and_the_old_one_is_retired() {
    let mut c = three().await;
    let old = c.agreed_leader().expect("leader");
    let old_id = c.node(old).id();
    let name = c.replicas[old].name.clone();
    c.kill(old).await;
    c.wipe(old);
    c.start(old).await;
    let new_id = c.node(old).id();
    let observer = (old + 1) % 3;
    let took = wait_cluster(&c, "wiped leader back as new incarnation", slack(Duration::from_secs(15)), |c| {
        let s = c.state(observer);
        settled(c, &["r0", "r1", "r2"])
            && s.by_name(&name).is_some_and(|(id, m)| id == new_id && m.incarnation == 2)
            && s.retired.contains_key(&old_id)
            && c.node(observer).view().members.iter().all(|m| m.voter)
    })
    .await;
    println!("wiped leader: new incarnation Active and voter after {took:?}");
    for (i, s) in c.statuses() {
        assert_ne!(s.role, Role::Stopped, "replica {i} stopped:\n{s}");
    }
}
