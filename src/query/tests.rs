//! The fan-out end to end over an in-process transport: three members with
//! their own stores holding what the ring gives them (owned nodes scraped,
//! copies of the others'), queried through the real planner, executor, wire
//! encoding and local answers; members die, go silent or lack nodes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::selector::LabelSelector;
use raft::state::RingParams;
use raft::{ClusterState, Command, MemberState};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::model::{Inventory, ObjectMeta};
use crate::peer::routes::Answers;
use crate::store::Store;
use crate::store::tests::{MIB, batch, container, node_point, pod};

const NODES: usize = 30;

struct Cluster {
    nodes: Vec<ObjectMeta>,
    pods: Vec<Arc<ObjectMeta>>,
}

impl Inventory for Cluster {
    fn nodes(&self) -> Vec<ObjectMeta> {
        self.nodes.clone()
    }
    fn node(&self, name: &str) -> Option<ObjectMeta> {
        self.nodes.iter().find(|n| n.name == name).cloned()
    }
    fn pods(&self, namespace: Option<&str>, labels: &LabelSelector) -> Vec<Arc<ObjectMeta>> {
        self.pods
            .iter()
            .filter(|p| namespace.is_none_or(|ns| p.namespace.as_deref() == Some(ns)) && labels.matches(&p.labels))
            .cloned()
            .collect()
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        self.pods.iter().find(|p| p.namespace.as_deref() == Some(namespace) && p.name == name).cloned()
    }
    fn synced(&self) -> bool {
        true
    }
}

fn inventory() -> Arc<Cluster> {
    let nodes =
        (0..NODES).map(|i| ObjectMeta { name: format!("node-{i}"), namespace: None, labels: Default::default() });
    let pods = (0..NODES).map(|i| {
        let labels = [("app".to_string(), if i % 2 == 0 { "even" } else { "odd" }.to_string())].into();
        Arc::new(ObjectMeta { name: format!("pod-{i}"), namespace: Some("ns".into()), labels })
    });
    Arc::new(Cluster { nodes: nodes.collect(), pods: pods.collect() })
}

fn state(rf: u32) -> ClusterState {
    raft::fixture::replicated(3, RingParams { hash_version: 1, vnodes: 64 }, rf)
}

/// The wall clock 46 s after the points' base: peers answer by the wall
/// clock, so the points are placed 16 and 31 s before it.
fn base() -> UnixNanos {
    static BASE: std::sync::OnceLock<UnixNanos> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| crate::model::now_nanos() - 46_000_000_000)
}

fn at(secs: i64) -> UnixNanos {
    base() + secs * 1_000_000_000
}

/// Two scrapes of `node-i` (its pod `pod-i`), 15 s apart: scraped here, or
/// copies `from` its owner.
fn two_points(store: &Store, i: usize, from: Option<NodeId>) {
    let node = format!("node-{i}");
    for (k, ts) in [15, 30].into_iter().enumerate() {
        let b = batch(
            Some(node_point_at(at(ts), 10.0 * (k + 1) as f64 + i as f64)),
            vec![pod("ns", &format!("pod-{i}"), vec![container_at(at(ts), 1.0 + k as f64 + i as f64)])],
        );
        if let Some(from) = from {
            store.store_replica(&node, b, at(ts), crate::store::Held::Copy, crate::store::Origin::Member(from));
        } else {
            store.store_scrape(&node, b, at(ts));
        }
    }
}

struct Member {
    local: Local,
}

/// The in-process peer port: calls go through the wire encoding to the
/// member's [`Answers`]; dead members are unreachable, slow ones never answer.
#[derive(Default)]
struct Fake {
    members: BTreeMap<NodeId, Member>,
    dead: Mutex<HashSet<NodeId>>,
    silent: Mutex<HashSet<NodeId>>,
    slow: Mutex<HashSet<NodeId>>,
    /// Members that take this long to answer an unselected pods query.
    slow_at_large: Mutex<BTreeMap<NodeId, Duration>>,
    calls: Mutex<Vec<(NodeId, &'static str)>>,
}

impl Transport for Fake {
    fn call<Req, Resp>(
        &self,
        to: NodeId,
        path: &'static str,
        body: Req,
        timeout: Duration,
        _size: ReplySize,
    ) -> impl std::future::Future<Output = Result<Resp, CallError>> + Send
    where
        Req: Serialize + Send + Sync,
        Resp: DeserializeOwned + Send + 'static,
    {
        self.calls.lock().unwrap().push((to, path));
        let dead = self.dead.lock().unwrap().contains(&to);
        let mut delay = Duration::ZERO;
        let reply: Result<Vec<u8>, CallError> = if dead {
            Err(CallError::Unreachable { addr: format!("{to}"), reason: "connection refused".into() })
        } else {
            let member = &self.members[&to];
            let bytes = raft::codec::encode(&body).expect("encodes");
            let encoded = match path {
                p if p == path::NODES => {
                    let q = raft::codec::decode(&bytes).expect("a nodes query");
                    raft::codec::encode(&Answers::nodes(&member.local, 9, q))
                }
                p if p == path::PODS => {
                    let q: PodsQuery = raft::codec::decode(&bytes).expect("a pods query");
                    if q.labels.is_empty() && q.one.is_none() {
                        delay = self.slow_at_large.lock().unwrap().get(&to).copied().unwrap_or_default();
                    }
                    raft::codec::encode(&Answers::pods(&member.local, 9, q).expect("pods"))
                }
                other => panic!("unexpected path {other}"),
            };
            Ok(encoded.expect("encodes"))
        };
        let slow = self.slow.lock().unwrap().contains(&to);
        async move {
            // As the real transport: no answer past the call's timeout.
            if slow || delay > timeout {
                tokio::time::sleep(timeout).await;
                return Err(CallError::Timeout { addr: to.to_string(), path: path.into(), timeout });
            }
            tokio::time::sleep(delay).await;
            let bytes = reply?;
            raft::codec::decode_large(&bytes).map_err(|e| CallError::Decode {
                addr: String::new(),
                path: path.into(),
                reason: e.to_string(),
            })
        }
    }

    fn silence(&self, id: NodeId) -> Option<Duration> {
        let silent = self.silent.lock().unwrap().contains(&id);
        Some(if silent { Duration::from_secs(60) } else { Duration::ZERO })
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(3)
    }
}

/// Three members at factor `rf`, each holding what the ring gives it;
/// `lacking` nodes are held by nobody.
fn fake(rf: u32, lacking: &[usize]) -> (Arc<Fake>, BTreeMap<NodeId, watch::Sender<Arc<Ownership>>>) {
    let s = state(rf);
    let inv = inventory();
    let mut fake = Fake::default();
    let mut views = BTreeMap::new();
    for id in 1..=3 {
        let view = Ownership::from_state(id, &s);
        let store =
            Arc::new(Store::new(Duration::from_secs(15), Duration::from_secs(30), Arc::new(SelfMetrics::new(15.0))));
        for i in (0..NODES).filter(|i| !lacking.contains(i)) {
            let holders = view.holders(&format!("node-{i}"));
            if holders.contains(id) {
                two_points(&store, i, holders.owner().filter(|o| *o != id));
            }
        }
        let (tx, rx) = watch::channel(Arc::new(view));
        fake.members.insert(id, Member { local: Local { store, inventory: inv.clone(), ownership: rx } });
        views.insert(id, tx);
    }
    (Arc::new(fake), views)
}

fn source(fake: &Arc<Fake>, me: NodeId) -> ClusterSource<Fake> {
    let local = fake.members[&me].local.clone();
    let ownership = local.ownership.clone();
    let metrics = Arc::new(SelfMetrics::new(15.0));
    let pause = Arc::default();
    ClusterSource::new(fake.clone(), local, ownership, Duration::from_secs(2), Duration::from_secs(15), metrics, pause)
}

fn node_names() -> Vec<String> {
    (0..NODES).map(|i| format!("node-{i}")).collect()
}

fn pod_keys() -> Vec<PodKey> {
    (0..NODES).map(|i| ("ns".to_string(), format!("pod-{i}"))).collect()
}

fn all_pods() -> PodQuery {
    PodQuery { namespace: None, labels: String::new(), fields: String::new(), one: None }
}

/// Now, by the test's clock (the wall clock never runs backwards past it).
fn now() -> UnixNanos {
    crate::model::now_nanos().max(at(46))
}

fn node_point_at(ts: UnixNanos, cpu_s: f64) -> crate::model::Point {
    crate::model::Point { timestamp: ts, ..node_point(0, cpu_s, MIB) }
}

fn container_at(ts: UnixNanos, cpu_s: f64) -> crate::model::ContainerPoint {
    let mut c = container("c", Some(0), 0, cpu_s, MIB);
    c.point.timestamp = ts;
    c
}

#[tokio::test]
async fn with_every_member_up_each_answers_every_node_and_pod_the_same() {
    let (fake, _views) = fake(2, &[]);
    let mut answers = Vec::new();
    for me in 1..=3 {
        let src = source(&fake, me);
        let nodes = src.nodes(&node_names(), now()).await;
        let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
        assert!(nodes.missing.is_empty() && pods.missing.is_empty(), "{:?} {:?}", nodes.missing, pods.missing);
        assert!(nodes.value.iter().all(Option::is_some) && pods.value.iter().all(Option::is_some));
        answers.push((nodes.value, pods.value));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "replicas differ");
}

#[tokio::test]
async fn the_survivor_of_two_lost_replicas_answers_everything_from_its_copies_at_factor_three() {
    let (fake, _views) = fake(3, &[]);
    fake.dead.lock().unwrap().extend([1, 2]);
    let reference = source(&fake, 3);
    let nodes = reference.nodes(&node_names(), now()).await;
    assert!(nodes.missing.is_empty(), "{:?}", nodes.missing);
    assert!(nodes.value.iter().all(Option::is_some), "a node missing");
    let pods = reference.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.missing.is_empty(), "{:?}", pods.missing);
    assert!(pods.value.iter().all(Option::is_some), "a pod missing");
    // Once they are suspected, they are not even asked.
    fake.silent.lock().unwrap().extend([1, 2]);
    fake.calls.lock().unwrap().clear();
    let again = reference.nodes(&node_names(), now()).await;
    assert_eq!(again.value, nodes.value);
    let calls = fake.calls.lock().unwrap().clone();
    assert!(calls.is_empty(), "suspected members asked: {calls:?}");
}

#[tokio::test]
async fn at_factor_two_nodes_whose_both_holders_died_are_named_missing_with_the_owner() {
    let (fake, _views) = fake(2, &[]);
    fake.dead.lock().unwrap().extend([1, 2]);
    let src = source(&fake, 3);
    let view = fake.members[&3].local.ownership.borrow().clone();
    let lost: BTreeSet<String> = node_names().into_iter().filter(|n| !view.holders(n).contains(3)).collect();
    assert!(!lost.is_empty());
    let nodes = src.nodes(&node_names(), now()).await;
    for (n, u) in node_names().iter().zip(&nodes.value) {
        assert_eq!(u.is_none(), lost.contains(n), "{n}");
    }
    let blamed: usize = nodes
        .missing
        .iter()
        .map(|m| match m.what {
            What::Nodes { missing, of } => {
                assert_eq!(of, NODES);
                assert_eq!(m.cause, Cause::Unreachable, "{m}");
                missing
            }
            What::Pods => panic!("{m}"),
        })
        .sum();
    assert_eq!(blamed, lost.len(), "every missing node is counted once, on its owner");
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.value.iter().any(Option::is_none));
    assert!(!pods.missing.is_empty(), "missing pods without a Warning");
}

#[tokio::test]
async fn an_owner_that_answers_without_a_node_nobody_else_holds_is_named_as_lacking_it() {
    let (fake, _views) = fake(2, &[7]);
    let src = source(&fake, 1);
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.value[7].is_none() && nodes.value.iter().filter(|u| u.is_none()).count() == 1);
    let view = fake.members[&1].local.ownership.borrow().clone();
    let owner = view.name_of(view.owner("node-7").unwrap());
    assert_eq!(
        nodes.missing,
        vec![Missing { member: owner, cause: Cause::Lacks, what: What::Nodes { missing: 1, of: NODES } }]
    );
}

#[tokio::test]
async fn a_dead_owner_not_yet_suspected_costs_one_failed_call_and_its_holders_answer() {
    let (fake, _views) = fake(2, &[]);
    fake.dead.lock().unwrap().insert(2);
    let src = source(&fake, 1);
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.missing.is_empty(), "{:?}", nodes.missing);
    assert!(nodes.value.iter().all(Option::is_some));
    let to_dead = fake.calls.lock().unwrap().iter().filter(|(to, _)| *to == 2).count();
    assert_eq!(to_dead, 1, "the dead owner is asked once per request");
}

#[tokio::test]
async fn a_label_selected_pod_list_and_a_get_answer_from_the_holders() {
    let (fake, _views) = fake(2, &[]);
    let src = source(&fake, 2);
    let even = PodQuery { namespace: Some("ns".into()), labels: "app=even".into(), ..all_pods() };
    let keys: Vec<PodKey> = (0..NODES).step_by(2).map(|i| ("ns".to_string(), format!("pod-{i}"))).collect();
    let got = src.pods(&even, &keys, now()).await;
    assert!(got.missing.is_empty() && got.value.iter().all(Option::is_some));
    // A GET of a pod seen before goes to its node's holders only.
    fake.calls.lock().unwrap().clear();
    let one = PodQuery { one: Some(keys[3].clone()), ..all_pods() };
    let got = src.pods(&one, &keys[3..4], now()).await;
    assert!(got.value[0].is_some());
    let view = fake.members[&2].local.ownership.borrow().clone();
    let holders = view.holders("node-6");
    for (to, _) in fake.calls.lock().unwrap().iter() {
        assert!(holders.contains(*to), "asked {to}, not a holder of node-6");
    }
}

#[tokio::test]
async fn right_after_this_replica_was_away_silent_peers_are_still_asked() {
    let (fake, _views) = fake(2, &[]);
    fake.silent.lock().unwrap().extend([2, 3]);
    let local = fake.members[&1].local.clone();
    let ownership = local.ownership.clone();
    let pause = Arc::new(pause::PauseClock::default());
    pause.tick(std::time::Instant::now() + Duration::from_secs(2));
    let metrics = Arc::new(SelfMetrics::new(15.0));
    let src = ClusterSource::new(
        fake.clone(),
        local,
        ownership,
        Duration::from_secs(2),
        Duration::from_secs(15),
        metrics,
        pause,
    );
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.missing.is_empty() && nodes.value.iter().all(Option::is_some), "{:?}", nodes.missing);
    let asked: BTreeSet<NodeId> = fake.calls.lock().unwrap().iter().map(|(to, _)| *to).collect();
    assert_eq!(asked, [2, 3].into(), "peers that only look silent because this replica was stopped");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_owner_is_hedged_on_its_holders_well_within_one_deadline() {
    let (fake, _views) = fake(2, &[]);
    fake.slow.lock().unwrap().insert(2);
    let src = source(&fake, 1);
    let started = tokio::time::Instant::now();
    let nodes = src.nodes(&node_names(), now()).await;
    let took = started.elapsed();
    assert!(nodes.missing.is_empty() && nodes.value.iter().all(Option::is_some), "{:?}", nodes.missing);
    assert!(took <= Duration::from_secs(2) / 4 + Duration::from_millis(50), "hedged after {took:?}");
    let hedges = src.metrics.fanout_hedges.get_or_create(&vec![("peer", "r2".to_string())]).get();
    assert_eq!(hedges, 1, "one hedge per slow call");
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.missing.is_empty() && pods.value.iter().all(Option::is_some), "{:?}", pods.missing);
    // Once its heartbeats are missed too, it is skipped at once, without waiting.
    fake.silent.lock().unwrap().insert(2);
    let started = tokio::time::Instant::now();
    let again = src.nodes(&node_names(), now()).await;
    assert!(again.value.iter().all(Option::is_some));
    assert!(started.elapsed() < Duration::from_millis(5), "a suspected member was waited for");
    assert_eq!(src.metrics.fanout_suspected.get_or_create(&vec![("peer", "r2".to_string())]).get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_member_fast_at_small_answers_is_not_hedged_for_taking_longer_over_its_whole_part() {
    let (fake, _views) = fake(2, &[]);
    fake.slow_at_large.lock().unwrap().insert(2, Duration::from_millis(400));
    let src = source(&fake, 1);
    let hedges = || src.metrics.fanout_hedges.get_or_create(&vec![("peer", "r2".to_string())]).get();
    // Many quick small answers (an HPA's queries) teach a usual time of ~0;
    // r2 owns some of the even pods' nodes, so it is asked each time.
    let even = PodQuery { namespace: Some("ns".into()), labels: "app=even".into(), ..all_pods() };
    let even_keys: Vec<PodKey> = pod_keys().into_iter().step_by(2).collect();
    for _ in 0..20 {
        let got = src.pods(&even, &even_keys, now()).await;
        assert!(got.value.iter().all(Option::is_some));
    }
    assert!(fake.calls.lock().unwrap().iter().filter(|(to, _)| *to == 2).count() >= 20, "r2 was not asked");
    assert_eq!(hedges(), 0);
    let started = tokio::time::Instant::now();
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.missing.is_empty() && pods.value.iter().all(Option::is_some), "{:?}", pods.missing);
    assert!(started.elapsed() >= Duration::from_millis(400), "answered before the member did");
    assert_eq!(hedges(), 0, "a whole part was hedged by the time small answers take");
    // Once it is slower than even its usual large answers, it is hedged.
    fake.slow_at_large.lock().unwrap().insert(2, Duration::from_secs(5));
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.value.iter().all(Option::is_some), "the hedge on r2's holders did not complete it");
    assert_eq!(hedges(), 1);
}

#[tokio::test]
async fn a_large_call_that_ran_out_of_time_leaves_its_member_unsuspected_and_a_small_one_does_not() {
    let (fake, _views) = fake(2, &[]);
    let src = source(&fake, 1);
    let ownership = src.ownership.borrow().clone();
    let timeout =
        || Err::<(), _>(CallError::Timeout { addr: "r2".into(), path: path::PODS.into(), timeout: Duration::ZERO });
    src.observe(2, Size::Large, &timeout(), Duration::from_secs(2));
    assert!(!src.suspect(&ownership, 2), "slow at a whole part is not gone");
    let refused = Err::<(), _>(CallError::Unreachable { addr: "r2".into(), reason: "connection refused".into() });
    src.observe(3, Size::Large, &refused, Duration::ZERO);
    assert!(src.suspect(&ownership, 3), "a refused large call");
    src.observe(2, Size::Small, &timeout(), Duration::from_secs(2));
    assert!(src.suspect(&ownership, 2), "a timed-out small call");
}

#[tokio::test]
async fn a_pod_list_whose_pods_are_all_placed_asks_only_the_owners_of_their_nodes() {
    let (fake, _views) = fake(2, &[]);
    let src = source(&fake, 1);
    let view = fake.members[&1].local.ownership.borrow().clone();
    // Two pods: one on a node replica 1 owns, one on a node replica 2 owns
    // that replica 1 holds no copies of (it would answer that list itself).
    let on = |owner: NodeId| {
        let node = |i: &usize| format!("node-{i}");
        let held_by = |i: &usize, id: NodeId| view.holders(&node(i)).contains(id);
        (0..NODES).find(|i| view.owner(&node(i)) == Some(owner) && (owner == 1 || !held_by(i, 1))).expect("a node")
    };
    let picked = [on(1), on(2)];
    let keys: Vec<PodKey> = picked.iter().map(|i| ("ns".to_string(), format!("pod-{i}"))).collect();
    let query = PodQuery { namespace: Some("ns".into()), ..all_pods() };
    // Placed only once someone answered for them: the first list asks everyone.
    let first = src.pods(&query, &keys, now()).await;
    assert!(first.missing.is_empty() && first.value.iter().all(Option::is_some), "{:?}", first.missing);
    fake.calls.lock().unwrap().clear();
    let again = src.pods(&query, &keys, now()).await;
    assert_eq!(again.value, first.value);
    assert!(again.missing.is_empty(), "{:?}", again.missing);
    let asked: BTreeSet<NodeId> = fake.calls.lock().unwrap().iter().map(|(to, _)| *to).collect();
    assert_eq!(asked, [2].into(), "only the other owner is asked");
    assert_eq!(src.metrics.fanout_routed.get(), 1);
    // A placed pod that is not where it was placed: the other members are asked too.
    fake.members[&2].local.store.forget_node(&format!("node-{}", picked[1]));
    fake.members[&1].local.store.forget_node(&format!("node-{}", picked[1]));
    fake.calls.lock().unwrap().clear();
    let moved = src.pods(&query, &keys, now()).await;
    let asked: BTreeSet<NodeId> = fake.calls.lock().unwrap().iter().map(|(to, _)| *to).collect();
    assert!(asked.contains(&3), "the rest not asked after a miss: {asked:?}");
    assert_eq!(moved.value[0], first.value[0]);
}

#[tokio::test]
async fn a_placed_pod_list_on_nodes_whose_points_still_arrive_here_is_answered_without_asking_anyone() {
    // Factor 3: every member holds every node; the points arrived 16 s ago,
    // each copy from its node's owner.
    let (fake, _views) = fake(3, &[]);
    let query = PodQuery { namespace: Some("ns".into()), labels: "app=even".into(), ..all_pods() };
    let keys: Vec<PodKey> = (0..NODES).step_by(2).map(|i| ("ns".to_string(), format!("pod-{i}"))).collect();
    // Points that stopped arriving (at a resolution of 5 s, 16 s is too old
    // for a copy still coming in): the owners are asked.
    let strict = {
        let local = fake.members[&1].local.clone();
        let ownership = local.ownership.clone();
        let (deadline, resolution) = (Duration::from_secs(2), Duration::from_secs(5));
        ClusterSource::new(
            fake.clone(),
            local,
            ownership,
            deadline,
            resolution,
            Arc::new(SelfMetrics::new(5.0)),
            Arc::default(),
        )
    };
    let asked = strict.pods(&query, &keys, now()).await;
    assert!(asked.missing.is_empty() && asked.value.iter().all(Option::is_some), "{:?}", asked.missing);
    assert!(!fake.calls.lock().unwrap().is_empty(), "copies that stopped arriving were trusted");
    assert_eq!(strict.metrics.fanout_local.get(), 0);
    // Current (a resolution of 15 s allows 22.5 s): answered here, the same
    // answer.
    let src = source(&fake, 1);
    fake.calls.lock().unwrap().clear();
    let here = src.pods(&query, &keys, now()).await;
    assert_eq!(here.value, asked.value);
    assert!(here.missing.is_empty());
    assert!(fake.calls.lock().unwrap().is_empty(), "asked {:?}", fake.calls.lock().unwrap());
    assert_eq!(src.metrics.fanout_local.get(), 1);
    // A pod this replica does not hold: asked of the others.
    fake.calls.lock().unwrap().clear();
    fake.members[&1].local.store.forget_node("node-0");
    let without = src.pods(&query, &keys, now()).await;
    assert_eq!(without.value, asked.value, "the owners' answer");
    assert!(!fake.calls.lock().unwrap().is_empty(), "a node not held here was not asked for");
    assert_eq!(src.metrics.fanout_local.get(), 1);
}

#[tokio::test]
async fn after_a_member_is_lost_its_nodes_are_answered_here_once_a_point_comes_from_their_new_scraper() {
    let (fake, views) = fake(3, &[]);
    let query = PodQuery { namespace: Some("ns".into()), ..all_pods() };
    let keys: Vec<PodKey> = (0..NODES).map(|i| ("ns".to_string(), format!("pod-{i}"))).collect();
    let old = views[&1].borrow().clone();
    // Member 3 is lost (unreachable, or Down): its nodes are scraped by the
    // next holders; the copies here of those now scraped by 2 came from 3,
    // and 2 may hold newer points.
    views[&1].send_modify(|o| {
        let mut v = Ownership::clone(o);
        v.unreachable.insert(3);
        *o = Arc::new(v);
    });
    fake.dead.lock().unwrap().insert(3);
    let view = views[&1].borrow().clone();
    let moved: Vec<usize> = (0..NODES)
        .filter(|i| {
            let n = format!("node-{i}");
            old.scraper(&n) == Some(3) && view.scraper(&n) == Some(2)
        })
        .collect();
    assert!(!moved.is_empty(), "the fixture moves none of 3's nodes to 2");
    assert!((0..NODES).all(|i| view.scraper(&format!("node-{i}")) != Some(3)));
    let src = source(&fake, 1);
    let before = src.pods(&query, &keys, now()).await;
    assert!(before.missing.is_empty() && before.value.iter().all(Option::is_some), "{:?}", before.missing);
    assert!(!fake.calls.lock().unwrap().is_empty(), "points from the lost member were trusted");
    assert_eq!(src.metrics.fanout_local.get(), 0);
    // 2 scrapes them and its copies arrive (6 s ago): answered here.
    let store = &fake.members[&1].local.store;
    for i in &moved {
        let b = batch(
            Some(node_point_at(at(40), 40.0 + *i as f64)),
            vec![pod("ns", &format!("pod-{i}"), vec![container_at(at(40), 4.0 + *i as f64)])],
        );
        let from = crate::store::Origin::Member(2);
        assert!(store.store_replica(&format!("node-{i}"), b, at(40), crate::store::Held::Copy, from));
    }
    fake.calls.lock().unwrap().clear();
    let after = src.pods(&query, &keys, now()).await;
    assert!(after.missing.is_empty() && after.value.iter().all(Option::is_some), "{:?}", after.missing);
    assert!(fake.calls.lock().unwrap().is_empty(), "asked {:?}", fake.calls.lock().unwrap());
    assert_eq!(src.metrics.fanout_local.get(), 1);
    assert_ne!(after.value, before.value, "the answer is not from the new points");
    // A node this replica does not hold at the ring (factor 1: each node
    // has its scraper only) is asked of its scraper even with a point from
    // it.
    views[&1].send_modify(|o| {
        let mut v = Ownership::clone(o);
        v.replication = 1;
        *o = Arc::new(v);
    });
    fake.calls.lock().unwrap().clear();
    let narrow = src.pods(&query, &keys, now()).await;
    assert!(narrow.value.iter().all(Option::is_some), "{:?}", narrow.missing);
    assert!(!fake.calls.lock().unwrap().is_empty(), "nodes held elsewhere were answered from copies here");
    assert_eq!(src.metrics.fanout_local.get(), 1);
}

#[tokio::test]
async fn a_draining_member_that_looks_silent_is_still_asked_for_what_it_held() {
    let (fake, views) = fake(1, &[]);
    // Member 2 leaves: the ring moves its nodes to 1 and 3, whose stores do
    // not have them yet; 2 still holds them, and is too busy to heartbeat.
    let old = views[&1].borrow().clone();
    let mut s = state(1);
    s.apply(&Command::SetStates(vec![(2, MemberState::Draining)]));
    let mut now_view = Ownership::from_state(1, &s);
    now_view.previous = old.ring_arc().map(|r| (r, old.replication));
    views[&1].send(Arc::new(now_view)).unwrap();
    fake.silent.lock().unwrap().insert(2);
    let src = source(&fake, 1);
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.missing.is_empty() && nodes.value.iter().all(Option::is_some), "{:?}", nodes.missing);
    assert!(fake.calls.lock().unwrap().iter().any(|(to, _)| *to == 2), "the draining member was not asked");
    // Once a call to it fails, it is a suspect like any other.
    fake.dead.lock().unwrap().insert(2);
    let _ = src.nodes(&node_names(), now()).await;
    fake.calls.lock().unwrap().clear();
    let after = src.nodes(&node_names(), now()).await;
    assert!(after.value.iter().any(Option::is_none), "its nodes are nowhere else at factor 1");
    assert!(!fake.calls.lock().unwrap().iter().any(|(to, _)| *to == 2), "a failed draining member asked again");
}

#[tokio::test]
async fn pods_a_member_answers_its_part_without_are_served_from_this_replicas_copies() {
    let (fake, views) = fake(3, &[]);
    // The ring has not moved for long (no last-resort pass over everyone).
    let mut settled = (*views[&1].borrow().clone()).clone();
    settled.since = std::time::Instant::now() - Duration::from_secs(600);
    views[&1].send(Arc::new(settled)).unwrap();
    // Member 2 restarted a moment ago: Active, answering, but its store is empty.
    let view = fake.members[&2].local.ownership.borrow().clone();
    for n in node_names() {
        fake.members[&2].local.store.forget_node(&n);
    }
    assert!(node_names().iter().any(|n| view.owner(n) == Some(2)));
    let src = source(&fake, 1);
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.value.iter().all(Option::is_some), "pods of the restarted member's nodes left out");
    assert!(pods.missing.is_empty(), "{:?}", pods.missing);
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_last_holder_ran_out_of_time_makes_the_answer_partial_not_a_silent_hole() {
    let (fake, _views) = fake(3, &[]);
    let view = fake.members[&1].local.ownership.borrow().clone();
    let i = (0..NODES).find(|i| view.owner(&format!("node-{i}")) == Some(2)).expect("a node member 2 owns");
    // Its owner answers without it (restarted a moment ago), this replica
    // holds nothing of it, and member 3, which holds its copy, answers a
    // namespace's whole list only after the deadline.
    for id in [1, 2] {
        fake.members[&id].local.store.forget_node(&format!("node-{i}"));
    }
    fake.slow_at_large.lock().unwrap().insert(3, Duration::from_secs(5));
    let src = source(&fake, 1);
    let query = PodQuery { namespace: Some("ns".into()), ..all_pods() };
    let pods = src.pods(&query, &pod_keys(), now()).await;
    assert!(pods.value[i].is_none());
    assert!(pods.value.iter().enumerate().all(|(k, v)| k == i || v.is_some()), "only pod-{i} is missing");
    let named: Vec<(String, Cause)> = pods.missing.iter().map(|m| (m.member.clone(), m.cause)).collect();
    assert!(
        named.contains(&(raft::fixture::name(3), Cause::Timeout)),
        "the answer does not say it is partial: {named:?}"
    );
}

#[test]
fn hedging_adds_at_most_a_tenth_to_the_calls_made_after_its_burst() {
    let mut b = HedgeBudget::full();
    let burst = std::iter::from_fn(|| Some(b.take())).take_while(|ok| *ok).count();
    assert_eq!(burst, HEDGE_BURST as usize, "a quiet replica may hedge a burst at once");
    let mut hedged = 0;
    for _ in 0..1000 {
        b.called(1);
        if b.take() {
            hedged += 1;
        }
    }
    assert_eq!(hedged, 100, "one hedge per ten calls once the burst is spent");
    for _ in 0..1000 {
        b.called(1);
    }
    let saved = std::iter::from_fn(|| Some(b.take())).take_while(|ok| *ok).count();
    assert_eq!(saved, HEDGE_BURST as usize, "no more than a burst is saved up");
}

#[tokio::test]
async fn members_a_ring_ahead_of_the_asker_answer_every_pod_they_hold_not_their_new_part() {
    // Members 1 and 2 have applied a ring with a fourth member (which holds
    // nothing yet, as a newcomer right after it became Active); member 3
    // still plans by the three-member ring. Asked for their own parts, the
    // two would leave out the nodes that moved to the newcomer, and
    // member 3, not asking a member it does not know, would miss them.
    let (fake, views) = fake(2, &[]);
    let mut ahead = raft::fixture::replicated(4, RingParams { hash_version: 1, vnodes: 64 }, 2);
    ahead.epoch = state(2).epoch + 1;
    for id in [1, 2] {
        let view = Ownership::from_state(id, &ahead);
        assert!(node_names().iter().any(|n| view.owner(n) == Some(4)), "some node moves to the newcomer");
        views[&id].send(Arc::new(view)).unwrap();
    }
    // Member 3's ring is old: its answers no longer look wider for a while.
    let mut old = (*views[&3].borrow()).as_ref().clone();
    old.since = std::time::Instant::now().checked_sub(Duration::from_secs(600)).expect("an instant 10 min ago");
    views[&3].send(Arc::new(old)).unwrap();
    let pods = source(&fake, 3).pods(&all_pods(), &pod_keys(), now()).await;
    let left_out = pods.value.iter().filter(|v| v.is_none()).count();
    assert_eq!(left_out, 0, "pods left out of {}", pods.value.len());
    let labelled = PodQuery { labels: "app=even".into(), ..all_pods() };
    let even: Vec<PodKey> = pod_keys().into_iter().step_by(2).collect();
    let hpa = source(&fake, 3).pods(&labelled, &even, now()).await;
    assert!(hpa.value.iter().all(Option::is_some), "a label-selected pod left out");
}

#[test]
fn the_locator_follows_a_pod_to_its_new_node_and_forgets_on_request() {
    let answer = |ns: &str, name: &str, node: &str| PodAnswer {
        namespace: ns.into(),
        name: name.into(),
        node: node.into(),
        usage: PodUsage { timestamp: 0, window_ns: 0, containers: vec![] },
    };
    let key = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    let mut loc = Locator::default();
    loc.remember(&[answer("a", "p", "n1"), answer("b", "p", "n2"), answer("a", "q", "n1")]);
    assert_eq!(loc.node_of(&key("a", "p")), Some("n1"));
    assert_eq!(loc.node_of(&key("b", "p")), Some("n2"));
    assert_eq!(loc.node_of(&key("b", "q")), None);
    assert_eq!(loc.len(), 3);
    // Seen again on the same node, then on another: one entry each.
    loc.remember(&[answer("a", "p", "n1"), answer("a", "q", "n3")]);
    assert_eq!((loc.node_of(&key("a", "q")), loc.len()), (Some("n3"), 3));
    loc.forget(&key("a", "p"));
    loc.forget(&key("a", "p"));
    loc.forget(&key("c", "p"));
    assert_eq!((loc.node_of(&key("a", "p")), loc.len()), (None, 2));
}

#[test]
fn the_locator_starts_over_rather_than_grow_past_its_capacity() {
    let mut loc = Locator::default();
    let answers: Vec<PodAnswer> = (0..3)
        .map(|i| PodAnswer {
            namespace: "a".into(),
            name: format!("p{i}"),
            node: "n".into(),
            usage: PodUsage { timestamp: 0, window_ns: 0, containers: vec![] },
        })
        .collect();
    // Filled up to two short of its capacity: three more do not fit.
    let filler: Vec<PodAnswer> = (0..LOCATOR_CAPACITY - 2)
        .map(|i| PodAnswer {
            namespace: "b".into(),
            name: i.to_string(),
            node: "n".into(),
            usage: PodUsage { timestamp: 0, window_ns: 0, containers: vec![] },
        })
        .collect();
    loc.remember(&filler);
    assert_eq!(loc.len(), LOCATOR_CAPACITY - 2);
    loc.remember(&answers);
    assert_eq!(loc.len(), 3, "the full locator was not cleared first");
}

#[tokio::test]
async fn with_no_member_active_the_joiners_points_answer_and_what_nobody_gave_is_named() {
    let (mut fake, views) = fake(3, &[]);
    // Member 3, the last Active one, has left (a rollout took it down while
    // 1 and 2 were still joining): nobody owns a node. 1 restarted with an
    // empty store; 2 holds every node's points.
    let old = {
        let mut s = state(3);
        s.apply(&Command::SetStates(vec![(1, MemberState::Joining), (2, MemberState::Joining)]));
        Ownership::from_state(1, &s)
    };
    let mut s = state(3);
    s.apply(&Command::SetStates(vec![
        (1, MemberState::Joining),
        (2, MemberState::Joining),
        (3, MemberState::Draining),
    ]));
    let mut view = Ownership::from_state(1, &s);
    view.previous = old.ring_arc().map(|r| (r, old.replication));
    // Long after the change: not only while ownership settles.
    view.since = std::time::Instant::now() - Duration::from_secs(60);
    let empty =
        Arc::new(Store::new(Duration::from_secs(15), Duration::from_secs(30), Arc::new(SelfMetrics::new(15.0))));
    Arc::get_mut(&mut fake).expect("the only reference").members.get_mut(&1).unwrap().local.store = empty;
    views[&1].send(Arc::new(view)).unwrap();
    fake.dead.lock().unwrap().insert(3);
    let src = source(&fake, 1);
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.missing.is_empty() && nodes.value.iter().all(Option::is_some), "{:?}", nodes.missing);
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.missing.is_empty() && pods.value.iter().all(Option::is_some), "{:?}", pods.missing);
    // The joiner gone too: every node is named missing, blamed on the last owner.
    fake.dead.lock().unwrap().insert(2);
    let nodes = src.nodes(&node_names(), now()).await;
    assert!(nodes.value.iter().all(Option::is_none));
    assert_eq!(
        nodes.missing.iter().map(|m| (m.member.as_str(), m.cause, m.what)).collect::<Vec<_>>(),
        vec![("r3", Cause::Unowned, What::Nodes { missing: NODES, of: NODES })]
    );
    let pods = src.pods(&all_pods(), &pod_keys(), now()).await;
    assert!(pods.value.iter().all(Option::is_none) && !pods.missing.is_empty(), "a silent hole");
}
