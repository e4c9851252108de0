//! A replica that reaches its peers but not the kubelets, end to end: three
//! replica processes of the real binary over 30 simulated nodes at a 2 s
//! resolution. One replica's connections to every kubelet are refused (the
//! simulated kubelets turn its source address away); it reports its nodes
//! with its heartbeats, the next holder of each scrapes it instead, every
//! node stays in every answer with a fresh sample, and each kubelet is
//! scraped by exactly one replica; once the path heals, the owner takes its
//! nodes back. A kubelet nobody can reach leaves the answers after
//! `--max-staleness`, and every answer that lacks it says so in a
//! `Warning`. Measured figures are printed (`--no-capture`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use common::observe::Observer;
use common::raft_cluster::RaftCluster;
use sim::kubelet::{BlockMode, Fault};
use sim::scrapes::{reached, unix_ms};

const NODES: usize = 30;
const RESOLUTION: Duration = Duration::from_secs(2);
/// The served-age bound: a resolution plus 5 s.
const AGE_BOUND: Duration = Duration::from_secs(RESOLUTION.as_secs() + 5);
/// How long the take-over (and the give-back) may take: the report rides
/// the next heartbeat, the leader commits it, the stand-in catches up
/// within a second; generous for a loaded 2-core machine.
const MOVE_WITHIN: Duration = Duration::from_secs(30);

async fn cluster() -> (RaftCluster, tls::pki::CertPair) {
    let r = RaftCluster::start_on(3, NODES, 2, "2s", &[]).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster with a committed ring");
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    sim::wait::expect("every replica to serve every node", Duration::from_secs(90), async || {
        let mut ok = 0;
        for i in 0..3 {
            let a =
                sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::NODES, &admin, Duration::from_secs(5)).await;
            ok += usize::from(a.is_ok_and(|a| a.status == 200 && a.items.len() == NODES));
        }
        ok == 3
    })
    .await;
    (r, admin)
}

fn source_ip(r: &RaftCluster, i: usize) -> IpAddr {
    IpAddr::V4(r.c.env.block.replica(i))
}

/// Who scraped each node last since `since` (once every node was scraped).
async fn last_scrapers(r: &RaftCluster, since: SystemTime) -> BTreeMap<String, Option<IpAddr>> {
    sim::wait::expect_some("every node scraped once more", RESOLUTION * 5, async || {
        let owners = sim::scrapes::last_scraper(reached(&r.c.env.fleet.scrapes_since(since)));
        (owners.len() == NODES).then_some(owners)
    })
    .await
}

/// The first scrape since `since` of each of `nodes` by `by` (`Some`), or
/// by anyone but `except`.
fn firsts(
    r: &RaftCluster,
    nodes: &BTreeSet<String>,
    since: SystemTime,
    by: Option<IpAddr>,
    except: Option<IpAddr>,
) -> BTreeMap<String, u64> {
    let log = r.c.env.fleet.scrapes_since(since);
    let mut first = BTreeMap::new();
    for s in reached(&log) {
        let wanted = match by {
            Some(ip) => s.by == Some(ip),
            None => s.by != except,
        };
        if wanted && s.at_ms >= unix_ms(since) && nodes.contains(s.node) {
            first.entry(s.node.to_string()).or_insert(s.at_ms);
        }
    }
    first
}

fn ms_after(ms: u64, since: SystemTime) -> Duration {
    Duration::from_millis(ms.saturating_sub(unix_ms(since)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_its_kubelets_hands_them_to_the_next_holders_and_takes_them_back() {
    cut_off_and_heal(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_cut_off_from_its_kubelets_hands_them_to_the_next_holders_and_takes_them_back() {
    cut_off_and_heal(true).await;
}

/// Cuts the leader (or a follower) off from every kubelet, then heals.
async fn cut_off_and_heal(leader: bool) {
    let (r, admin) = cluster().await;
    let l = r.leader(&[0, 1, 2]).await.expect("a replica that names the leader");
    let victim = if leader { l } else { (l + 1) % 3 };
    let ip = source_ip(&r, victim);
    let owners = last_scrapers(&r, SystemTime::now()).await;
    let cut: BTreeSet<String> = owners.iter().filter(|(_, by)| **by == Some(ip)).map(|(n, _)| n.clone()).collect();
    assert!(!cut.is_empty(), "replica {victim} owns no node");
    let obs = Observer::start(&r.c, &[0, 1, 2], &admin);
    obs.saw_whole(&[0, 1, 2]).await;

    // Cut: every kubelet refuses the victim's connections.
    let cut_at = SystemTime::now();
    r.c.env.fleet.block_source(ip, BlockMode::Refuse);
    let taken = sim::wait::until(MOVE_WITHIN, async || firsts(&r, &cut, cut_at, None, Some(ip)).len() == cut.len())
        .await
        .is_some();
    assert!(taken, "not every node of the cut-off replica was scraped by another replica within {MOVE_WITHIN:?}");
    let takeover = firsts(&r, &cut, cut_at, None, Some(ip)).values().map(|ms| ms_after(*ms, cut_at)).max().unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let standin = sim::wait::until(Duration::from_secs(10), async || {
        let mut sum = 0;
        for &i in &others {
            sum += r.gauge(i, &admin, "ha_metrics_server_standin_nodes").await.map_or(0, |v| v as i64);
        }
        sum as usize == cut.len()
    })
    .await;
    assert!(standin.is_some(), "the others' ha_metrics_server_standin_nodes do not add up to {}", cut.len());
    let unreached = r.gauge(victim, &admin, "ha_metrics_server_kubelets_unreached").await.map_or(0, |v| v as i64);
    assert!(unreached as usize >= cut.len(), "the victim reports {unreached} kubelets unreached");
    obs.watch(RESOLUTION * 3, AGE_BOUND).await;
    let during = obs.seen();
    let scrapers = r.exactly_once(4, RESOLUTION).await;
    for (node, who) in &scrapers {
        assert!(!who.contains(&Some(ip)), "{node} scraped by the cut-off replica");
    }

    // Heal: the owner reaches its kubelets again and takes its nodes back.
    let healed_at = SystemTime::now();
    r.c.env.fleet.unblock_source(ip);
    let back = sim::wait::until_some(MOVE_WITHIN, async || {
        let firsts = firsts(&r, &cut, healed_at, Some(ip), None);
        let last = sim::scrapes::last_scraper(reached(&r.c.env.fleet.scrapes_since(healed_at)));
        (firsts.len() == cut.len() && cut.iter().all(|n| last.get(n) == Some(&Some(ip)))).then_some(firsts)
    })
    .await;
    let back = back.expect("the owner did not take every node back");
    let giveback = back.values().map(|ms| ms_after(*ms, healed_at)).max().unwrap();
    let scrapers = r.exactly_once(4, RESOLUTION).await;
    for node in &cut {
        assert_eq!(scrapers[node], BTreeSet::from([Some(ip)]), "{node} not back with its owner");
    }
    let seen = obs.stop().await;
    println!(
        "kubelets cut off from replica {victim} (leader: {leader}, {} nodes): all scraped by another replica {takeover:?} after the \
         cut; all back with their owner {giveback:?} after the heal; oldest sample served while cut {:?}, over \
         the whole run {:?}; {seen:?}",
        cut.len(),
        during.max_age,
        seen.max_age
    );
    assert!(seen.node_answers > 20 && seen.pod_answers > 5, "too few answers observed: {seen:?}");
    assert_eq!(seen.missing_node_answers, 0, "answers lacked nodes: {:?}", seen.example_missing);
    assert_eq!(seen.missing_pod_answers, 0, "answers lacked pods: {:?}", seen.example_missing);
    assert!(seen.max_age <= AGE_BOUND, "a served sample was {:?} old (bound {AGE_BOUND:?})", seen.max_age);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_nobody_can_reach_leaves_the_answers_with_a_warning_and_comes_back() {
    let (r, admin) = cluster().await;
    let node = r.c.env.spec.nodes[0].name.clone();
    // Clients have listed pods before (a replica learns a pod's node from answers).
    let all_pods = r.c.env.spec.nodes.iter().map(|n| n.pods.len()).sum::<usize>();
    sim::wait::expect("every replica to serve every pod", Duration::from_secs(30), async || {
        let mut ok = 0;
        for i in 0..3 {
            let a =
                sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::PODS, &admin, Duration::from_secs(5)).await;
            ok += usize::from(a.is_ok_and(|a| a.items.len() == all_pods));
        }
        ok == 3
    })
    .await;
    r.c.env.fleet.set_fault(&node, Fault::Down).await.expect("the kubelet closes its listener");
    let down_at = SystemTime::now();
    // Resolution + --max-staleness (2 R by default) after its last sample
    // it leaves the answers; once every holder has reported it, every
    // answer names it as unreachable. No answer lacks it without a Warning.
    let mut silent_holes = Vec::new();
    let gone = sim::wait::until_some(Duration::from_secs(60), async || {
        let mut answers = Vec::new();
        for i in 0..3 {
            let a = sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::NODES, &admin, Duration::from_secs(5))
                .await
                .ok()?;
            if !a.keys().contains(&node) && a.warnings.is_empty() {
                silent_holes.push(i);
            }
            answers.push(a);
        }
        let named = |a: &sim::answer::Answer| {
            !a.keys().contains(&node) && a.warnings.iter().any(|w| w.contains("their kubelets cannot be reached"))
        };
        answers.iter().all(named).then_some(answers)
    })
    .await
    .expect("the unreachable node never left every answer with a Warning naming it");
    let left_after = down_at.elapsed().unwrap_or_default();
    assert!(silent_holes.is_empty(), "answers of replicas {silent_holes:?} lacked the node without a Warning");
    for (i, a) in gone.iter().enumerate() {
        assert_eq!(a.items.len(), NODES - 1, "replica {i}: only the unreachable node is missing");
        assert!(a.warnings.iter().any(|w| w.contains("1 of 30 nodes missing")), "replica {i}: {:?}", a.warnings);
    }
    // The pods of that node are missing too, and the pod lists say why.
    let pods: BTreeSet<String> =
        r.c.env.spec.nodes[0].pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    for i in 0..3 {
        let a = sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::PODS, &admin, Duration::from_secs(5))
            .await
            .expect("a pod list");
        assert!(a.keys().is_disjoint(&pods), "replica {i} serves pods of a node nobody reaches");
        assert!(
            a.warnings.iter().any(|w| w.contains("their kubelets cannot be reached")),
            "replica {i}: the pod list does not say why pods are missing: {:?}",
            a.warnings
        );
    }
    // Every later answer that lacks it says so, until it is back.
    let checked = sim::wait::holds_for(RESOLUTION * 3, async || {
        let mut ok = true;
        for i in 0..3 {
            let a =
                sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::NODES, &admin, Duration::from_secs(5)).await;
            ok &= a.is_ok_and(|a| a.keys().contains(&node) || !a.warnings.is_empty());
        }
        ok
    })
    .await;
    assert!(checked.is_ok(), "an answer lacked the node without a Warning");
    r.c.env.fleet.set_fault(&node, Fault::None).await.expect("the kubelet listens again");
    let up_at = SystemTime::now();
    sim::wait::expect("the node back in every answer", Duration::from_secs(30), async || {
        let mut ok = 0;
        for i in 0..3 {
            let a =
                sim::answer::fetch(r.c.env.replica_addr(i), sim::answer::NODES, &admin, Duration::from_secs(5)).await;
            ok += usize::from(a.is_ok_and(|a| a.items.len() == NODES && a.warnings.is_empty()));
        }
        ok == 3
    })
    .await;
    println!(
        "a kubelet nobody reaches: gone from every answer (with a Warning) {left_after:?} after it went down, \
         back {:?} after it came up",
        up_at.elapsed().unwrap_or_default()
    );
}
