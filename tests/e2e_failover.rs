//! No gap, ever, end to end: three replica processes of the real binary over
//! 30 simulated nodes at a 2 s resolution, observed every 500 ms (nodes) and
//! 2 s (pods) from every surviving replica, while one is killed, paused or
//! stopped. Protocol bounds are asserted with the slack a loaded 2-core
//! machine needs; the measured figures are printed (`--no-capture`).

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use common::observe::{Observer, Seen};
use common::raft_cluster::RaftCluster;
use raft::MemberState;
use sim::scrapes::{reached, unix_ms};

const NODES: usize = 30;
const RESOLUTION: Duration = Duration::from_secs(2);
const LEASE: Duration = Duration::from_secs(3);
/// Slack on protocol bounds for a loaded 2-core machine.
const SLACK: u32 = 3;
/// How long clients are watched after a failover completes: the new owner's
/// second scrape (one resolution after its first) is what gives a rate, so a
/// gap would show within two.
const AFTER: Duration = Duration::from_secs(RESOLUTION.as_secs() * 2);

/// Whether replica `i` serves all `nodes` nodes to `admin`.
async fn serves_all(env: &sim::env::DevEnv, i: usize, admin: &tls::pki::CertPair, nodes: usize) -> bool {
    let answer = sim::answer::fetch(env.replica_addr(i), sim::answer::NODES, admin, Duration::from_secs(5)).await;
    answer.is_ok_and(|a| a.status == 200 && a.items.len() == nodes)
}

async fn cluster() -> (RaftCluster, tls::pki::CertPair) {
    cluster_with(&[]).await
}

async fn cluster_with(args: &[&str]) -> (RaftCluster, tls::pki::CertPair) {
    let r = RaftCluster::start_on(3, NODES, 2, "2s", args).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster with a committed ring");
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    sim::wait::expect("every replica to serve every node", Duration::from_secs(90), async || {
        let mut ok = 0;
        for i in 0..3 {
            ok += usize::from(serves_all(&r.c.env, i, &admin, NODES).await);
        }
        ok == 3
    })
    .await;
    sim::wait::expect("every replica to hold two points of every node", Duration::from_secs(60), async || {
        let mut ok = 0;
        for i in 0..3 {
            ok += usize::from(held_locally(&r, i, &admin).await == Some(NODES));
        }
        ok == 3
    })
    .await;
    (r, admin)
}

/// How many nodes replica `i` can serve from its own store (scraped there
/// or copied to it): its servable node points, scraped plus copies.
async fn held_locally(r: &RaftCluster, i: usize, admin: &tls::pki::CertPair) -> Option<usize> {
    let scraped = r.gauge(i, admin, "metrics_server_storage_points{type=\"node\"}").await?;
    let copies = r.gauge(i, admin, "ha_metrics_server_backup_points{type=\"node\"}").await?;
    Some((scraped + copies) as usize)
}

/// The replica holding the Raft leadership, and one that does not.
async fn leader_and_follower(r: &RaftCluster) -> (usize, usize) {
    let l = r.leader(&[0, 1, 2]).await.expect("a replica that names the leader");
    (l, (l + 1) % 3)
}

fn source_ip(r: &RaftCluster, i: usize) -> IpAddr {
    IpAddr::V4(r.c.env.block.replica(i))
}

/// The nodes `victim` owns: those it scraped last, once every node has been
/// scraped since now (so the scrape log shows every current owner).
async fn owned_by(r: &RaftCluster, victim: usize) -> BTreeSet<String> {
    let since = SystemTime::now();
    let owners = sim::wait::expect_some("every node scraped once more", RESOLUTION * 5, async || {
        let log = r.c.env.fleet.scrapes_since(since);
        let owners = sim::scrapes::last_scraper(reached(&log));
        (owners.len() == NODES).then_some(owners)
    })
    .await;
    let ip = Some(source_ip(r, victim));
    owners.into_iter().filter(|(_, by)| *by == ip).map(|(node, _)| node).collect()
}

/// Checks exactly-once over `periods` resolutions from now: each node by
/// one replica of `owners`, `periods` ± 1 times, never twice within R/2.
async fn assert_exactly_once(r: &RaftCluster, periods: u32, owners: &[usize]) {
    let scrapers = r.exactly_once(periods, RESOLUTION).await;
    let allowed: BTreeSet<Option<IpAddr>> = owners.iter().map(|i| Some(source_ip(r, *i))).collect();
    for (node, who) in &scrapers {
        assert!(who.is_subset(&allowed), "{node} scraped by {who:?}, not one of {allowed:?}");
    }
}

/// The first scrape of each of `nodes` since `since` by a replica other than `victim`.
fn first_rescrape(r: &RaftCluster, nodes: &BTreeSet<String>, since: SystemTime, victim: usize) -> Vec<SystemTime> {
    let log = r.c.env.fleet.scrapes_since(since);
    let first = sim::scrapes::first_after(reached(&log), nodes, unix_ms(since), &Some(source_ip(r, victim)));
    first.values().map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(*ms)).collect()
}

/// Waits until the survivors commit `victim` Down, then until each of
/// `orphans` was scraped by a survivor; returns when the Down was seen and
/// how long after `since` the last orphan was re-scraped.
async fn taken_over(
    r: &RaftCluster,
    victim: usize,
    survivor: usize,
    orphans: &BTreeSet<String>,
    since: SystemTime,
) -> (Duration, Duration) {
    let name = format!("replica-{victim}");
    let down = sim::wait::until((LEASE + Duration::from_secs(2)) * SLACK + Duration::from_secs(5), async || {
        r.status(survivor)
            .await
            .is_some_and(|v| v.members.iter().any(|m| m.name == name && m.state == MemberState::Down))
    })
    .await
    .expect("the stopped replica committed Down");
    let rescraped = sim::wait::until(Duration::from_secs(30), async || {
        first_rescrape(r, orphans, since, victim).len() == orphans.len()
    })
    .await;
    assert!(rescraped.is_some(), "not every orphan was scraped by a new owner");
    let firsts = first_rescrape(r, orphans, since, victim);
    let latest = firsts.iter().max().and_then(|t| t.duration_since(since).ok()).unwrap_or_default();
    (down, latest)
}

fn assert_no_gap(seen: &Seen, bound: Duration) {
    println!("observed: {seen:?}");
    assert!(seen.node_answers > 10 && seen.pod_answers > 3, "too few answers observed: {seen:?}");
    assert_eq!(seen.missing_node_answers, 0, "answers lacked nodes: {:?}", seen.example_missing);
    assert_eq!(seen.missing_pod_answers, 0, "answers lacked pods: {:?}", seen.example_missing);
    assert_eq!(seen.wrong_values, 0, "served values other than the true usage: {:?}", seen.example_wrong);
    assert!(seen.max_age <= bound * SLACK, "a served sample was {:?} old (bound {bound:?})", seen.max_age);
}

async fn kill_and_observe(leader: bool) {
    let (mut r, admin) = cluster().await;
    let (l, f) = leader_and_follower(&r).await;
    let victim = if leader { l } else { f };
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let orphans = owned_by(&r, victim).await;
    let obs = Observer::start(&r.c, &survivors, &admin);
    obs.saw_whole(&survivors).await;
    let killed_at = SystemTime::now();
    let t0 = Instant::now();
    r.c.replicas[victim].signal(libc::SIGKILL);
    let (down, latest) = taken_over(&r, victim, survivors[0], &orphans, killed_at).await;
    let bound = RESOLUTION + LEASE + Duration::from_secs(2);
    obs.watch(AFTER, bound * SLACK).await;
    let seen = obs.stop().await;
    println!(
        "kill -9 of the {}: committed Down after {down:?} (t0 {:?}), all {} orphans re-scraped {latest:?} after the kill",
        if leader { "leader" } else { "follower" },
        t0.elapsed(),
        orphans.len()
    );
    assert_no_gap(&seen, bound);
    assert_exactly_once(&r, 6, &survivors).await;
    let _ = &mut r;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_loses_no_node_and_no_sample_gets_old() {
    kill_and_observe(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_follower_loses_no_node_and_no_sample_gets_old() {
    kill_and_observe(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_is_failed_over_and_after_sigcont_neither_serves_nor_scrapes_by_its_old_ring() {
    let (r, admin) = cluster().await;
    let (_, victim) = leader_and_follower(&r).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let orphans = owned_by(&r, victim).await;
    let obs = Observer::start(&r.c, &survivors, &admin);
    obs.saw_whole(&survivors).await;
    let paused_at = SystemTime::now();
    r.c.replicas[victim].signal(libc::SIGSTOP);
    // The pause lasts until the survivors have failed it over (Down
    // committed, every orphan scraped by a survivor), and is then held while
    // clients are watched: the fault is the pause itself.
    let (down, latest) = taken_over(&r, victim, survivors[0], &orphans, paused_at).await;
    let bound = RESOLUTION + LEASE + Duration::from_secs(2);
    obs.watch(AFTER, bound * SLACK).await;
    r.c.replicas[victim].signal(libc::SIGCONT);
    let seen = obs.stop().await;
    println!("SIGSTOP: committed Down after {down:?}, all {} orphans re-scraped {latest:?} after it", orphans.len());
    assert_no_gap(&seen, bound);
    // Back in the ring, by its points, and exactly once again.
    r.settled(&[0, 1, 2], 3).await.expect("the paused replica back Active");
    assert_exactly_once(&r, 6, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_without_a_gap_and_exits_within_the_grace_period() {
    let (mut r, admin) = cluster().await;
    let (_, victim) = leader_and_follower(&r).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let moved = owned_by(&r, victim).await;
    let obs = Observer::start(&r.c, &(0..3).collect::<Vec<_>>(), &admin);
    obs.saw_whole(&[0, 1, 2]).await;
    let asked = SystemTime::now();
    let t0 = Instant::now();
    r.c.replicas[victim].signal(libc::SIGTERM);
    let exited = sim::wait::until(Duration::from_secs(60), async || r.c.replicas[victim].try_wait().is_some()).await;
    let took = t0.elapsed();
    let bound = RESOLUTION + Duration::from_secs(2);
    obs.watch(AFTER, bound * SLACK).await;
    let mut seen = obs.stop().await;
    // The stopped replica's own poller sees connection errors after it exits.
    seen.errors = 0;
    assert!(exited.is_some(), "the replica did not exit within the 60 s grace period");
    println!("SIGTERM: exited after {took:?}, {} nodes moved", moved.len());
    assert_no_gap(&seen, bound);
    // At most one extra scrape per moved node: count scrapes in the window
    // between SIGTERM and exit plus a resolution, against one per started
    // resolution plus one.
    let window = took + RESOLUTION;
    let log = r.c.env.fleet.scrapes_since(asked);
    let of_moved = reached(&log).filter(|s| moved.contains(s.node));
    let (from, to) = (unix_ms(asked), unix_ms(asked + window));
    let extra = sim::scrapes::extra(of_moved, from, to, RESOLUTION.as_millis() as u64);
    assert!(extra.is_empty(), "moved nodes scraped more than once per resolution (+1) during the handover: {extra:?}");
    assert_exactly_once(&r, 6, &survivors).await;
    let _ = &mut r;
}

/// `/readyz?verbose` of replica `i`.
async fn readyz(r: &RaftCluster, i: usize) -> Option<(u16, String)> {
    sim::client::try_get(r.c.env.replica_addr(i), "/readyz?verbose", None, &[]).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_leaves_a_degraded_survivor_serving_every_node_and_restarts_restore_exactly_once() {
    let (mut r, admin) = cluster().await;
    let survivor = 0;
    let t0 = Instant::now();
    for i in [1, 2] {
        r.c.replicas[i].signal(libc::SIGKILL);
    }
    let bound = RESOLUTION * 2 + LEASE;
    // Degraded first: right after the kills every node is still fresh from
    // before them, so freshness alone would be seen before the survivor has
    // taken anything over.
    let degraded = sim::wait::until(bound * SLACK + Duration::from_secs(10), async || {
        readyz(&r, survivor).await.is_some_and(|(_, body)| body.contains("degraded"))
    })
    .await;
    degraded.expect("the survivor enters degraded mode after losing quorum");
    let obs_after = Instant::now();
    // Every node, fresh, from the survivor alone.
    let fresh = sim::wait::until(bound * SLACK + Duration::from_secs(10), async || {
        let addr = r.c.env.replica_addr(survivor);
        let Ok(answer) = sim::answer::fetch(addr, sim::answer::NODES, &admin, Duration::from_secs(5)).await else {
            return false;
        };
        let now = SystemTime::now();
        answer.items.len() == NODES
            && answer.items.iter().all(|i| i.timestamp.is_some() && i.age(now) <= RESOLUTION + Duration::from_secs(2))
    })
    .await;
    let fresh = fresh.expect("the survivor served every node fresh");
    let (code, body) = readyz(&r, survivor).await.expect("readyz");
    println!(
        "quorum loss: every node fresh from the survivor {:?} after the kills; readyz:\n{body}",
        obs_after - t0 + fresh
    );
    assert_eq!(code, 200, "the degraded survivor stays ready");
    assert!(body.contains("degraded"), "readyz does not say degraded:\n{body}");
    let admin_metrics = sim::client::direct_get(r.c.env.replica_addr(survivor), "/metrics", Some(&admin), &[]).await.1;
    assert!(admin_metrics.contains("ha_metrics_server_degraded 1"), "degraded gauge not set");
    // Both come back with their data dirs: one cluster, exactly once again.
    for i in [1, 2] {
        let mut args = r.c.env.replica_args(i, "2s");
        args.extend(r.c.env.cluster_args(i, 3).unwrap());
        r.c.spawn_replica_args(i, args);
        let restarted = r.c.replicas.pop().expect("spawned");
        r.c.replicas[i] = restarted;
    }
    r.settled(&[0, 1, 2], 3).await.expect("the cluster back together");
    assert_exactly_once(&r, 6, &[0, 1, 2]).await;
}

/// The promise of the replication factor (3 by default): the leader and a
/// follower killed at once, the survivor answers every node and pod at once
/// from its copies and keeps them fresh by scraping them itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_two_at_once_leaves_a_survivor_serving_every_node_and_pod_fresh_and_right() {
    // Served while a sample is at most R + 10 s old: the default bound,
    // R + 2 R, is shorter than the R + 5 s this test measures against only
    // at the 2 s resolution of these tests (at the default 15 s it is 45 s),
    // and a loaded machine needs the slack below.
    let (mut r, admin) = cluster_with(&["--max-staleness=10s"]).await;
    let (l, f) = leader_and_follower(&r).await;
    let survivor = (0..3).find(|i| *i != l && *i != f).expect("a third replica");
    let obs = Observer::start(&r.c, &[survivor], &admin);
    obs.saw_whole(&[survivor]).await;
    let killed_at = SystemTime::now();
    for v in [l, f] {
        r.c.replicas[v].signal(libc::SIGKILL);
    }
    // Watched from the kills through degraded mode (no quorum for twice the
    // lease) until the survivor has scraped every node itself, twice over.
    let everything = NODES;
    let rescraped = sim::wait::until(Duration::from_secs(60), async || {
        let log = r.c.env.fleet.scrapes_since(killed_at);
        let by_survivor = reached(&log).filter(|s| s.by == Some(source_ip(&r, survivor)));
        let nodes: BTreeSet<&str> = by_survivor.map(|s| s.node).collect();
        nodes.len() == everything
    })
    .await;
    let rescraped = rescraped.expect("the survivor scraped every node itself");
    let degraded = sim::wait::until(Duration::from_secs(60), async || {
        readyz(&r, survivor).await.is_some_and(|(_, body)| body.contains("degraded"))
    })
    .await;
    degraded.expect("the survivor enters degraded mode after losing quorum");
    let degraded = killed_at.elapsed().unwrap_or_default();
    let bound = RESOLUTION + Duration::from_secs(5);
    obs.watch(AFTER, bound * 2).await;
    let seen = obs.stop().await;
    println!(
        "kill -9 of two at once: the survivor scraped all {NODES} nodes itself {rescraped:?} after the kills, \
         said degraded by {degraded:?}; {seen:?}"
    );
    assert!(seen.node_answers > 10 && seen.pod_answers > 3, "too few answers observed: {seen:?}");
    assert_eq!(seen.errors, 0, "the survivor failed requests: {seen:?}");
    assert_eq!(seen.missing_node_answers, 0, "answers lacked nodes: {:?}", seen.example_missing);
    assert_eq!(seen.missing_pod_answers, 0, "answers lacked pods: {:?}", seen.example_missing);
    assert_eq!(seen.wrong_values, 0, "served values other than the true usage: {:?}", seen.example_wrong);
    // The bound with slack for a loaded 2-core machine (measured: 5.4-5.7 s
    // alone, 7.7 s in a whole-suite run).
    assert!(seen.max_age <= bound * 2, "a served sample was {:?} old (bound R + 5 s = {bound:?}, x2)", seen.max_age);
    let _ = &mut r;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_with_one_declared_member_missing_serves_every_node_within_two_resolutions() {
    let mut c = common::Cluster::start_empty(NODES, 2, "2s").await;
    let started = Instant::now();
    for i in 0..2 {
        let mut args = c.env.cluster_args(i, 3).unwrap();
        args.extend(c.env.replica_args(i, "2s"));
        c.spawn_replica_args(i, args);
    }
    let admin = c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    let all = sim::wait::until(RESOLUTION * 2 + Duration::from_secs(10) + Duration::from_secs(30), async || {
        let mut ok = 0;
        for i in 0..2 {
            ok += usize::from(serves_all(&c.env, i, &admin, NODES).await);
        }
        ok == 2
    })
    .await;
    let took = started.elapsed();
    println!("first start with replica-2 never started: every node served by both after {took:?} ({all:?} waiting)");
    assert!(all.is_some(), "not every node served without the third member");
    // No cluster was initialized without it: both scrape every node (duplicates, no gap).
    assert!(took <= RESOLUTION * 2 + Duration::from_secs(10) + Duration::from_secs(20), "took {took:?}");
}

/// Restarts replica `i` with its data dir (its flags again).
fn respawn(r: &mut RaftCluster, i: usize, declared: usize) {
    let mut args = r.c.env.replica_args(i, "2s");
    args.extend(r.c.env.cluster_args(i, declared).unwrap());
    r.c.spawn_replica_args(i, args);
    let p = r.c.replicas.pop().expect("spawned");
    if i < r.c.replicas.len() {
        r.c.replicas[i] = p;
    } else {
        r.c.replicas.push(p);
    }
}

async fn wait_ready(r: &RaftCluster, i: usize) {
    sim::wait::expect("the replica to be ready", Duration::from_secs(60), async || {
        readyz(r, i).await.is_some_and(|(code, _)| code == 200)
    })
    .await;
}

/// SIGTERM to replica `i`, its exit, the respawn with its data dir and the
/// wait until it is ready; returns how long it took to exit.
async fn restart_until_ready(r: &mut RaftCluster, i: usize) -> Duration {
    let t0 = Instant::now();
    r.c.replicas[i].signal(libc::SIGTERM);
    sim::wait::expect("the replica to exit", Duration::from_secs(60), async || r.c.replicas[i].try_wait().is_some())
        .await;
    let exit = t0.elapsed();
    respawn(r, i, 3);
    wait_ready(r, i).await;
    exit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_all_three_loses_no_node() {
    let (mut r, admin) = cluster().await;
    let obs = Observer::start(&r.c, &[0, 1, 2], &admin);
    let mut exits = Vec::new();
    for i in 0..3 {
        exits.push(restart_until_ready(&mut r, i).await);
        r.settled(&[0, 1, 2], 3).await.expect("all three Active again");
    }
    let seen = obs.stop().await;
    println!("rolling restart: exits after {exits:?}");
    assert_no_gap(&seen, RESOLUTION + LEASE + Duration::from_secs(2));
    assert_exactly_once(&r, 6, &[0, 1, 2]).await;
}

/// As a StatefulSet's rolling update paces it: the next replica goes as soon
/// as the restarted one is ready, with no look at the ring. A joiner ready
/// before it was Active let three quick restarts leave no member Active
/// (nobody scraping, node lists empty with no warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_paced_by_readiness_alone_loses_no_node() {
    let (mut r, admin) = cluster().await;
    let obs = Observer::start(&r.c, &[0, 1, 2], &admin);
    for i in 0..3 {
        restart_until_ready(&mut r, i).await;
        let state = r.status(i).await.and_then(|v| v.members.iter().find(|m| m.id == v.id).map(|m| m.state));
        assert_eq!(state, Some(MemberState::Active), "replica-{i} ready before it was Active");
    }
    r.settled(&[0, 1, 2], 3).await.expect("all three Active again");
    obs.watch(AFTER, RESOLUTION * SLACK).await;
    let seen = obs.stop().await;
    assert_no_gap(&seen, RESOLUTION + LEASE + Duration::from_secs(2));
    assert_exactly_once(&r, 6, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_three_to_five_and_back_loses_no_node_and_newcomers_own_only_once_they_hold_their_points() {
    let (mut r, admin) = cluster().await;
    let obs = Observer::start(&r.c, &[0, 1, 2], &admin);
    r.c.env.set_replica_count(5);
    for i in 3..5 {
        respawn(&mut r, i, 3);
    }
    r.settled(&[0, 1, 2, 3, 4], 5).await.expect("five Active members");
    // Each newcomer said it held its points before the leader made it Active.
    for i in 3..5 {
        let log = r.c.replicas[i].log_text();
        let held = log.lines().position(|l| l.contains("ready to join the ring"));
        assert!(held.is_some(), "replica-{i} never reported holding its points:\n{log}");
        // A newcomer waits for the ring instead of scraping every kubelet
        // once more before it joins (it used to adopt every node at epoch 0).
        // It logs its first holdings when it applies the epoch that made it
        // Active, which may come a moment after the cluster reports it so.
        let epochs = |log: &str| -> Vec<String> {
            log.lines()
                .filter_map(|l| l.split_once("holdings changed epoch=")?.1.split_whitespace().next())
                .map(str::to_string)
                .collect()
        };
        let logged =
            sim::wait::until(Duration::from_secs(30), async || !epochs(&r.c.replicas[i].log_text()).is_empty()).await;
        let log = r.c.replicas[i].log_text();
        assert!(logged.is_some(), "replica-{i} never logged a change of its holdings:\n{log}");
        assert!(!epochs(&log).iter().any(|e| e == "0"), "replica-{i} took nodes before it had a ring:\n{log}");
    }
    assert_exactly_once(&r, 4, &[0, 1, 2, 3, 4]).await;
    r.c.env.set_replica_count(3);
    for i in [4, 3] {
        r.c.replicas[i].signal(libc::SIGTERM);
        sim::wait::expect("the scaled-down replica to exit", Duration::from_secs(60), async || {
            r.c.replicas[i].try_wait().is_some()
        })
        .await;
    }
    r.settled(&[0, 1, 2], 3).await.expect("back to three");
    let seen = obs.stop().await;
    assert_no_gap(&seen, RESOLUTION + LEASE + Duration::from_secs(2));
    assert_exactly_once(&r, 6, &[0, 1, 2]).await;
}
