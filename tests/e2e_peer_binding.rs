//! A peer can no longer claim to be another member (issue 18, finding 3),
//! against three replica processes on their mutual-TLS peer ports: with a
//! certificate that names replica-1 (minted from the cluster CA, as a thief
//! of replica-1's certificate would hold it), points pushed under
//! replica-0's id, or under an id no member has, are refused, counted in
//! `/metrics` and never reach the store, while the same push under replica-1's own id is taken; a join
//! under replica-0's name is refused, counted, and replica-0 stays the
//! Active member it was.

mod common;

use std::time::Duration;

use common::raft_cluster::RaftCluster;
use ha_metrics_server::model::{NodeBatch, Point, now_nanos};
use ha_metrics_server::peer::wire::{PointsQuery, PointsReply, Push, PushAck, path as server_path};
use raft::network::wire::{ANY_NODE, BASE_VERSION, Envelope, Manage, ManageReply, path};
use raft::{CallError, MemberInfo, MemberState, NodeId, PeerClient};
use sim::env::{NAMESPACE, PEER_CA_SECRET};
use tls::pki::{Ca, LeafSpec, Usage};

const T: Duration = Duration::from_secs(5);
/// The kubelet whose points are pushed (every member holds every node: RF 3 of 3).
const NODE: &str = "node-0";

/// A peer client presenting a certificate from the cluster CA that names
/// replica `i` exactly as its own does (common name, peer IP).
fn client_as(r: &RaftCluster, i: usize) -> PeerClient {
    let data = r.c.env.apiserver.secret_data(NAMESPACE, PEER_CA_SECRET).expect("the certgen Job made the CA Secret");
    let text = |k: &str| String::from_utf8(data[k].clone()).expect("PEM");
    let ca = Ca::from_pem("peer CA", &text("ca.crt"), &text("ca.key")).expect("the CA parses");
    let name = format!("replica-{i}");
    let sans = vec![r.c.env.peer_addr(i).ip().to_string()];
    let spec = LeafSpec { common_name: &name, organizations: &[], sans: &sans, usage: Usage::ServerAndClient };
    let leaf = tls::CertKey::from_pair(&ca.issue(&spec).expect("leaf"), &name).expect("leaf parses");
    let config = tls::mutual_tls_client_config(ca.cert_pem().as_bytes(), leaf.chain, leaf.key).expect("client config");
    PeerClient::tls(config)
}

fn envelope<B>(from: NodeId, to: NodeId, body: B) -> Envelope<B> {
    Envelope { protocol_version: BASE_VERSION, cluster_id: "ha-metrics-server".into(), from, to, body }
}

/// A node point nobody scraped: its memory value marks it.
fn marked(memory_bytes: u64) -> NodeBatch {
    let point = Point { timestamp: now_nanos(), cpu_cumulative_ns: 1, memory_bytes, start_time: None };
    NodeBatch { node: Some(point), pods: Vec::new() }
}

/// Whether replica `i`'s store holds a point of [`NODE`] with `memory_bytes`
/// (asked over the points route, as an honest replica-1).
async fn holds(r: &RaftCluster, as_r1: &PeerClient, ids: &[NodeId], i: usize, memory_bytes: u64) -> bool {
    let q = PointsQuery { epoch: 0, names: vec![NODE.to_string()] };
    let addr = r.c.env.peer_addr(i).to_string();
    let reply: PointsReply = as_r1
        .call(&addr, server_path::POINTS, &envelope(ids[1], ids[i], q), T)
        .await
        .expect("points of an honest asker");
    reply.points.iter().flat_map(|(_, batches)| batches).any(|b| b.node.is_some_and(|p| p.memory_bytes == memory_bytes))
}

async fn refused_count(r: &RaftCluster, i: usize, reason: &str) -> Option<u64> {
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).expect("admin cert");
    let (code, text) = sim::client::direct_get(r.c.env.replica_addr(i), "/metrics", Some(&admin), &[]).await;
    let line = format!("ha_metrics_server_peer_requests_refused_total{{reason=\"{reason}\"}} ");
    (code == 200).then_some(())?;
    text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.trim().parse().ok())
}

fn refusal<T: std::fmt::Debug>(r: Result<T, CallError>) -> String {
    match r {
        Err(CallError::Refused { status: 403, reason, .. }) => reason,
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_or_a_join_under_another_members_identity_is_refused_and_counted() {
    let r = RaftCluster::start(3).await;
    let views = r.settled(&[0, 1, 2], 3).await.expect("one cluster of three");
    let id_of = |name: &str| views[0].members.iter().find(|m| m.name == name).map(|m| m.id).expect("member");
    let ids: Vec<NodeId> = (0..3).map(|i| id_of(&format!("replica-{i}"))).collect();
    let as_r1 = client_as(&r, 1);
    let addr2 = r.c.env.peer_addr(2).to_string();
    let epoch = r.full_status(2).await.expect("replica-2's status").ring_epoch;
    // The metric exists from the start, at zero.
    let zero = sim::wait::until_some(Duration::from_secs(10), async || refused_count(&r, 2, "not_the_sender").await);
    assert_eq!(zero.await, Some(0), "a refusal among honest replicas");

    // Forged: replica-1's certificate, replica-0's id, a handover straight into the store.
    const FORGED: u64 = 7_777_777_777;
    let push = Push { epoch, handover: true, points: vec![(NODE.to_string(), marked(FORGED))] };
    let reply: Result<PushAck, CallError> =
        as_r1.call(&addr2, server_path::PUSH, &envelope(ids[0], ids[2], push), T).await;
    let reason = refusal(reply);
    assert!(reason.contains("replica-0@") && reason.contains("CN=replica-1"), "names both: {reason}");
    assert!(!holds(&r, &as_r1, &ids, 2, FORGED).await, "the forged point reached replica-2's store");
    let counted =
        sim::wait::until(Duration::from_secs(10), async || refused_count(&r, 2, "not_the_sender").await == Some(1))
            .await;
    assert!(counted.is_some(), "the refusal is not in replica-2's /metrics as not_the_sender 1");

    // An id no member knows: refused before any ownership check.
    let push = Push { epoch, handover: true, points: vec![(NODE.to_string(), marked(FORGED))] };
    let reply: Result<PushAck, CallError> =
        as_r1.call(&addr2, server_path::PUSH, &envelope(0x5eed_5eed, ids[2], push), T).await;
    let reason = refusal(reply);
    assert!(reason.contains("000000005eed5eed") && reason.contains("CN=replica-1"), "{reason}");
    assert!(!holds(&r, &as_r1, &ids, 2, FORGED).await, "the point of an unknown sender reached replica-2's store");
    let counted = sim::wait::until(Duration::from_secs(10), async || {
        refused_count(&r, 2, "unknown_sender").await.is_some_and(|n| n >= 1)
    })
    .await;
    assert!(counted.is_some(), "the refusal is not in replica-2's /metrics as unknown_sender");

    // The same push under replica-1's own id is taken: the refusal was for the sender alone.
    const HONEST: u64 = 6_666_666_666;
    let push = Push { epoch, handover: true, points: vec![(NODE.to_string(), marked(HONEST))] };
    let ack: PushAck =
        as_r1.call(&addr2, server_path::PUSH, &envelope(ids[1], ids[2], push), T).await.expect("an honest push");
    assert_eq!(ack.taken, 1, "the honest push was not taken");
    assert!(holds(&r, &as_r1, &ids, 2, HONEST).await, "the honest point is not in replica-2's store");

    // A join under replica-0's name, at replica-1's own address (which its certificate names).
    let info = MemberInfo {
        name: "replica-0".into(),
        api_addr: r.c.env.replica_addr(1).to_string(),
        peer_addr: r.c.env.peer_addr(1).to_string(),
    };
    let join = envelope(0x0bad_0bad_0bad_0bad, ANY_NODE, Manage::Join(info));
    for i in 0..3 {
        let reply: Result<ManageReply, CallError> =
            as_r1.call(&r.c.env.peer_addr(i).to_string(), path::MANAGE, &join, T).await;
        let reason = refusal(reply);
        assert!(reason.contains("replica-0@") && reason.contains("its own name"), "{reason}");
    }
    let counted =
        sim::wait::until(Duration::from_secs(10), async || refused_count(&r, 2, "join_not_self").await == Some(1))
            .await;
    assert!(counted.is_some(), "the refused join is not in replica-2's /metrics as join_not_self 1");
    sim::wait::expect_holds("replica-0 stays the Active member it was", Duration::from_secs(3), async || {
        r.status(0).await.is_some_and(|v| {
            v.members.iter().any(|m| m.name == "replica-0" && m.id == ids[0] && m.state == MemberState::Active)
                && v.members.len() == 3
        })
    })
    .await;
}
