//! A rolling upgrade from the previous release (protocol 2: one successor
//! holds a copy, no replication factor; see `common::previous`) to this
//! build, one replica at a time as the StatefulSet does it: SIGTERM, the
//! new binary started with the new manifests' flags on the same data dir.
//! Watched from every ready replica the whole time: no answer lacks a node
//! or a pod, every value is the true usage; the replication factor of this
//! build is committed only once every member speaks the protocol that
//! carries it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::observe::Observer;
use common::raft_cluster::RaftCluster;
use sim::env::{NAMESPACE, PEER_CA_SECRET, ReplicaProcess};

const NODES: usize = 30;
const RESOLUTION: Duration = Duration::from_secs(2);
/// Slack on protocol bounds for a loaded 2-core machine.
const SLACK: u32 = 3;

/// The previous release's peer flags for replica `i`: its certificate in
/// files (issued here from the peer CA the certgen Job made, as that
/// release's cert-manager component did), the cluster of replicas 0..3.
fn previous_cluster_args(r: &RaftCluster, i: usize) -> Vec<String> {
    let env = &r.c.env;
    let data = env.apiserver.secret_data(NAMESPACE, PEER_CA_SECRET).expect("the certgen Job made the peer CA");
    let text = |k: &str| String::from_utf8(data.get(k).cloned().expect("a CA file")).expect("PEM");
    let ca = tls::pki::Ca::from_pem("peer CA", &text("ca.crt"), &text("ca.key")).expect("the peer CA");
    let dir = env.work_dir.join(format!("replica-{i}"));
    std::fs::create_dir_all(&dir).expect("replica dir");
    let name = format!("replica-{i}");
    let sans = [env.block.replica(i).to_string(), name.clone()];
    let pair = ca
        .issue(&tls::pki::LeafSpec {
            common_name: &name,
            organizations: &[],
            sans: &sans,
            usage: tls::pki::Usage::ServerAndClient,
        })
        .expect("a peer certificate");
    let (ca_file, cert, key) =
        (dir.join("previous-ca.crt"), dir.join("previous-peer.crt"), dir.join("previous-peer.key"));
    for (path, contents) in [(&ca_file, ca.cert_pem()), (&cert, pair.cert_pem.as_str()), (&key, pair.key_pem.as_str())]
    {
        std::fs::write(path, contents).expect("write a peer file");
    }
    let peers: Vec<String> = (0..3).map(|j| format!("replica-{j}={}", env.peer_addr(j))).collect();
    vec![
        format!("--node-name={name}"),
        format!("--peers={}", peers.join(",")),
        format!("--peer-port={}", env.peer_addr(i).port()),
        format!("--peer-advertise-address={}", env.peer_addr(i)),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--peer-ca-file={}", ca_file.display()),
        format!("--peer-cert-file={}", cert.display()),
        format!("--peer-key-file={}", key.display()),
        "--statefulset=replica".to_string(),
        format!("--pod-namespace={NAMESPACE}"),
    ]
}

fn spawn(r: &RaftCluster, i: usize, binary: &Path, args: Vec<String>, what: &str) -> ReplicaProcess {
    let log = r.c.env.work_dir.join(format!("replica-{i}-{what}.log"));
    ReplicaProcess::spawn(binary, &args, &log).expect("spawn a replica")
}

/// Whether replica `i` is ready and serves all nodes to `admin`.
async fn serves_all(r: &RaftCluster, i: usize, admin: &tls::pki::CertPair) -> bool {
    let addr = r.c.env.replica_addr(i);
    let ready = sim::client::fetch(addr, "/readyz", None, &[]).await.is_ok_and(|a| a.status == 200);
    let answer = sim::answer::fetch(addr, sim::answer::NODES, admin, Duration::from_secs(5)).await;
    ready && answer.is_ok_and(|a| a.status == 200 && a.items.len() == NODES)
}

/// The replication factor replica `i` (of this build) says is committed.
async fn committed_factor(r: &RaftCluster, i: usize) -> Option<Option<u32>> {
    r.status(i).await.map(|v| v.replication)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_from_the_previous_release_loses_no_node_and_commits_the_factor_last() {
    let previous = match common::previous::binary() {
        Ok(b) => b,
        Err(e) => panic!("the previous release's binary: {e}"),
    };
    let current = common::binary();
    let c = common::Cluster::start_empty(NODES, 2, "2s").await;
    let mut r = RaftCluster { c };
    for i in 0..3 {
        let mut args = r.c.env.replica_args(i, "2s");
        args.extend(previous_cluster_args(&r, i));
        let p = spawn(&r, i, &previous, args, "previous");
        r.c.replicas.push(p);
    }
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).expect("admin cert");
    sim::wait::expect("the previous release to serve every node", Duration::from_secs(90), async || {
        let mut ok = 0;
        for i in 0..3 {
            ok += usize::from(serves_all(&r, i, &admin).await);
        }
        ok == 3
    })
    .await;
    let obs = Observer::start(&r.c, &[0, 1, 2], &admin);
    obs.saw_whole(&[0, 1, 2]).await;
    let mut took = Vec::new();
    for i in 0..3 {
        let started = std::time::Instant::now();
        r.c.replicas[i].signal(libc::SIGTERM);
        let exited = sim::wait::until(Duration::from_secs(60), async || r.c.replicas[i].try_wait().is_some()).await;
        assert!(exited.is_some(), "replica {i} of the previous release did not exit within 60 s of SIGTERM");
        let mut args = r.c.env.replica_args(i, "2s");
        args.extend(r.c.env.cluster_args(i, 3).expect("the new peer flags"));
        let p = spawn(&r, i, &current, args, "current");
        r.c.replicas[i] = p;
        // Back: ready, serving every node, Active in everyone's view.
        let back = sim::wait::until(Duration::from_secs(60) * SLACK, async || {
            serves_all(&r, i, &admin).await
                && r.status(i).await.is_some_and(|v| v.count(raft::MemberState::Active) == 3)
        })
        .await;
        assert!(back.is_some(), "replica {i} did not come back Active and serving:\n{}", r.c.replicas[i].log_text());
        took.push(started.elapsed());
        if i < 2 {
            // A member still runs the previous release: no factor is committed.
            let factor = committed_factor(&r, i).await;
            assert_eq!(factor, Some(None), "a factor was committed while a member speaks protocol 2");
        }
    }
    let factor =
        sim::wait::until_some(Duration::from_secs(30) * SLACK, async || committed_factor(&r, 0).await.flatten()).await;
    // Watched for two more resolutions after the factor took effect.
    obs.watch(RESOLUTION * 2, RESOLUTION * 3 * SLACK).await;
    let mut seen = obs.stop().await;
    // The stopped replicas' pollers saw connection errors while they were down.
    seen.errors = 0;
    println!("rolling upgrade: each replica back after {took:?}; committed factor {factor:?}; observed {seen:?}");
    assert_eq!(factor, Some(3), "the default factor was not committed after every member was upgraded");
    assert!(seen.node_answers > 10 && seen.pod_answers > 3, "too few answers observed: {seen:?}");
    assert_eq!(seen.missing_node_answers, 0, "answers lacked nodes: {:?}", seen.example_missing);
    assert_eq!(seen.missing_pod_answers, 0, "answers lacked pods: {:?}", seen.example_missing);
    assert_eq!(seen.wrong_values, 0, "served values other than the true usage: {:?}", seen.example_wrong);
    for i in 0..3 {
        r.c.replicas[i].signal(libc::SIGKILL);
    }
}
