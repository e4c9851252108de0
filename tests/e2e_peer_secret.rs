//! One-step install: three replicas started at once with `--peer-secret`
//! against a stand-in apiserver that has no such Secret make one cluster
//! CA between them (exactly one creates the Secret, the others read it)
//! and form one cluster; then the Secret is replaced with a new CA and every
//! replica presents certificates from it and drops the old one, without a
//! restart. Measured times are printed (`--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use ha_metrics_server::peer::fetch_view;
use raft::MemberState;
use tls::pki::Ca;

const NAMESPACE: &str = "kube-system";
const SECRET: &str = "ha-metrics-server-peer-ca";
/// How often the replicas read the Secret again in this test.
const RELOAD: &str = "1s";

/// The replica flags for `--peer-secret` instead of the three files.
fn secret_args(c: &Cluster, i: usize) -> Vec<String> {
    let mut args = c.env.replica_args(i, &c.resolution);
    let cluster = c.env.cluster_args(i, 3).expect("cluster flags");
    args.extend(cluster.into_iter().filter(|a| {
        !a.starts_with("--peer-ca-file") && !a.starts_with("--peer-cert-file") && !a.starts_with("--peer-key-file")
    }));
    args.push(format!("--peer-secret={NAMESPACE}/{SECRET}"));
    args.push(format!("--peer-reload-interval={RELOAD}"));
    args
}

/// A client of the peer port that trusts only `ca` and presents a
/// certificate from it.
fn client_of(ca: &Ca) -> rustls::ClientConfig {
    client_trusting(&[ca], ca)
}

/// A client that trusts `roots` and presents a certificate from `signer`.
fn client_trusting(roots: &[&Ca], signer: &Ca) -> rustls::ClientConfig {
    let pair = signer.issue_client("e2e-observer", &[]).expect("client certificate");
    let ck = tls::CertKey::from_pair(&pair, "observer").expect("parsed");
    let bundle: String = roots.iter().map(|ca| ca.cert_pem()).collect::<Vec<_>>().join("\n");
    tls::config::verifying_client_config(bundle.as_bytes(), Some(ck), &tls::TlsPolicy::default())
        .expect("client config")
}

/// The Secret's CA, read through the stand-in's handle.
fn secret_ca(c: &Cluster) -> Option<Ca> {
    let data = c.env.apiserver.secret_data(NAMESPACE, SECRET)?;
    let text = |k: &str| String::from_utf8(data.get(k)?.clone()).ok();
    Ca::from_pem("secret", &text("ca.crt")?, &text("ca.key")?).ok()
}

async fn view(c: &Cluster, i: usize, client: rustls::ClientConfig) -> Option<ha_metrics_server::member::ClusterStatus> {
    let peer = c.env.peer_addr(i).to_string();
    tokio::time::timeout(Duration::from_secs(3), fetch_view(&peer, client)).await.ok()?.ok()
}

/// Whether every replica, asked with `ca` as the only root, reports the
/// same leader and three Active members with a ring.
async fn one_cluster(c: &Cluster, ca: &Ca) -> bool {
    let mut leaders = Vec::new();
    for i in 0..3 {
        match view(c, i, client_of(ca)).await {
            Some(s) if !s.ring.starts_with("none") && s.raft.count(MemberState::Active) == 3 => {
                leaders.push(s.raft.leader.clone())
            }
            _ => return false,
        }
    }
    sim::leader::agreed(leaders).is_some()
}

fn logs(c: &Cluster) -> String {
    (0..3).map(|i| format!("--- replica {i}\n{}", c.log_tail(i))).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_make_one_ca_from_a_missing_secret_and_take_a_rotated_one_without_restarting() {
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    assert!(c.env.apiserver.secret(NAMESPACE, SECRET).is_none(), "no Secret before the start");
    let all: Vec<Vec<String>> = (0..3).map(|i| secret_args(&c, i)).collect();
    let started = Instant::now();
    for (i, args) in all.into_iter().enumerate() {
        c.spawn_replica_args(i, args);
    }
    c.env.route_metrics_to(&[0, 1, 2]);
    c.env.set_replica_count(3);
    let pids: Vec<u32> = c.replicas.iter().map(|r| r.pid()).collect();

    // One Secret, created by exactly one replica, and one cluster over its CA.
    let created = sim::wait::until(common::STARTUP, async || secret_ca(&c).is_some()).await;
    assert!(created.is_some(), "no usable Secret was created\n{}", logs(&c));
    let ca = secret_ca(&c).expect("the Secret's CA");
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &ca).await).await;
    assert!(formed.is_some(), "the replicas never formed one cluster over the Secret's CA\n{}", logs(&c));
    println!("one cluster over the Secret's CA {:?} after the start", started.elapsed());
    let writes = c.env.apiserver.secret_writes();
    let creates: Vec<_> = writes.iter().filter(|w| w.verb == "create" && w.name == SECRET).collect();
    assert_eq!(creates.len(), 1, "exactly one create succeeds: {writes:?}");
    let secret = c.env.apiserver.secret(NAMESPACE, SECRET).expect("Secret");
    let creator = secret["metadata"]["annotations"]["ha-metrics-server.io/created-by"].as_str().unwrap_or("");
    assert!(["replica-0", "replica-1", "replica-2"].contains(&creator), "creator {creator:?}");
    let said_created: Vec<usize> =
        (0..3).filter(|i| c.replicas[*i].log_text().contains("created the peer Secret")).collect();
    assert_eq!(said_created.len(), 1, "one replica says it created the Secret\n{}", logs(&c));
    assert_eq!(format!("replica-{}", said_created[0]), creator);
    println!(
        "creator {creator}; create requests answered 409 AlreadyExists: {}",
        c.env.apiserver.secret_create_conflicts()
    );
    for r in &c.replicas {
        assert!(!r.log_text().contains("PRIVATE KEY"), "a replica logged the CA key");
    }
    c.wait_for_metrics().await;

    // Rotation: a new CA in the Secret, as an operator would put it.
    let next = Ca::new("rotated peer CA").expect("new CA");
    let data = BTreeMap::from([
        ("ca.crt".to_string(), next.cert_pem().as_bytes().to_vec()),
        ("ca.key".to_string(), next.key_pem().into_bytes()),
    ]);
    c.env.apiserver.put_secret(NAMESPACE, SECRET, "Opaque", &data);
    let rotated_at = Instant::now();
    let switched = sim::wait::until(Duration::from_secs(60), async || one_cluster(&c, &next).await).await;
    assert!(switched.is_some(), "the replicas never presented certificates from the new CA\n{}", logs(&c));
    println!(
        "every replica presents a certificate from the new CA {:?} after the Secret changed",
        rotated_at.elapsed()
    );
    // After one more phase a client certificate from the old CA is refused
    // (the client trusts both CAs, so only the replica can be refusing).
    let retired = sim::wait::until(Duration::from_secs(60), async || {
        let mut refused = 0;
        for i in 0..3 {
            if view(&c, i, client_trusting(&[&ca, &next], &ca)).await.is_none() {
                refused += 1;
            }
        }
        refused == 3
    })
    .await;
    assert!(retired.is_some(), "the old CA stayed trusted\n{}", logs(&c));
    println!("the old CA is refused by every replica {:?} after the Secret changed", rotated_at.elapsed());
    assert!(
        view(&c, 0, client_trusting(&[&ca, &next], &next)).await.is_some(),
        "a certificate from the new CA still gets in"
    );
    assert!(one_cluster(&c, &next).await, "still one cluster after the old CA was dropped\n{}", logs(&c));
    for (i, r) in c.replicas.iter_mut().enumerate() {
        assert!(r.try_wait().is_none(), "replica {i} exited\n{}", r.log_text());
    }
    assert_eq!(c.replicas.iter().map(|r| r.pid()).collect::<Vec<_>>(), pids, "no replica was restarted");

    // A fourth replica started now reads the rotated CA and joins.
    let args = secret_args(&c, 3);
    c.spawn_replica_args(3, args);
    let joined = sim::wait::until(common::STARTUP, async || {
        view(&c, 3, client_of(&next)).await.is_some_and(|s| s.raft.count(MemberState::Active) == 4)
    })
    .await;
    assert!(joined.is_some(), "a replica started after the rotation did not join\n{}\n{}", logs(&c), c.log_tail(3));
    c.wait_for_metrics().await;
}

/// Writes `contents` to `path` atomically (as a kubelet's volume update or
/// cert-manager's renewal appears to the reader).
fn replace_file(path: &std::path::Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_files_replaced_on_disk_are_picked_up_without_a_restart() {
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    for i in 0..3 {
        let mut args = c.env.cluster_args(i, 3).expect("cluster flags");
        args.push(format!("--peer-reload-interval={RELOAD}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.spawn_replica(i, &refs);
    }
    c.env.set_replica_count(3);
    let pids: Vec<u32> = c.replicas.iter().map(|r| r.pid()).collect();
    // Before: one cluster, observed with the environment's CA and replica 0's files.
    let next = Ca::new("rotated file CA").expect("new CA");
    let old_ca = std::fs::read(c.env.work_dir.join("cluster-ca.crt")).expect("CA file");
    let dir = c.env.work_dir.join("replica-0");
    let ck = tls::CertKey::load(&dir.join("peer.crt"), &dir.join("peer.key")).expect("peer files");
    let before = tls::config::verifying_client_config(&old_ca, Some(ck), &tls::TlsPolicy::default()).expect("client");
    let formed = sim::wait::until(common::STARTUP, async || {
        let mut active = 0;
        for i in 0..3 {
            if view(&c, i, before.clone()).await.is_some_and(|s| s.raft.count(MemberState::Active) == 3) {
                active += 1;
            }
        }
        active == 3
    })
    .await;
    assert!(formed.is_some(), "no cluster over the files' CA\n{}", logs(&c));
    let rotated_at = Instant::now();
    replace_file(&c.env.work_dir.join("cluster-ca.crt"), next.cert_pem());
    for i in 0..3 {
        let dir = c.env.work_dir.join(format!("replica-{i}"));
        let sans = vec![c.env.block.replica(i).to_string(), format!("replica-{i}")];
        let spec = tls::pki::LeafSpec {
            common_name: &format!("replica-{i}"),
            organizations: &[],
            sans: &sans,
            usage: tls::pki::Usage::ServerAndClient,
        };
        let pair = next.issue(&spec).expect("leaf");
        replace_file(&dir.join("peer.key"), &pair.key_pem);
        replace_file(&dir.join("peer.crt"), &pair.cert_pem);
    }
    let switched = sim::wait::until(Duration::from_secs(60), async || one_cluster(&c, &next).await).await;
    assert!(switched.is_some(), "the replicas never presented the new files' certificates\n{}", logs(&c));
    println!("every replica presents the replaced files' certificate {:?} after they changed", rotated_at.elapsed());
    for (i, r) in c.replicas.iter_mut().enumerate() {
        assert!(r.try_wait().is_none(), "replica {i} exited\n{}", r.log_text());
    }
    assert_eq!(c.replicas.iter().map(|r| r.pid()).collect::<Vec<_>>(), pids, "no replica was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_a_usable_ca_stops_the_start_naming_the_secret_and_the_cause() {
    let mut c = Cluster::start_empty(1, 1, "2s").await;
    let data = BTreeMap::from([("ca.crt".to_string(), b"not a certificate".to_vec())]);
    c.env.apiserver.put_secret(NAMESPACE, SECRET, "Opaque", &data);
    let args = secret_args(&c, 0);
    c.spawn_replica_args(0, args);
    let exited = sim::wait::until(common::STARTUP, async || c.replicas[0].try_wait().is_some()).await;
    assert!(exited.is_some(), "the replica kept running with an unusable Secret\n{}", c.log_tail(0));
    let status = c.replicas[0].try_wait().expect("exited");
    assert!(!status.success(), "exit status {status}");
    let log = c.replicas[0].log_text();
    assert!(log.contains(&format!("{NAMESPACE}/{SECRET}")) && log.contains("\"ca.key\""), "{log}");
    assert_eq!(c.env.apiserver.secret_writes().iter().filter(|w| w.verb != "update").count(), 1, "not overwritten");
    assert_eq!(c.env.apiserver.secret_data(NAMESPACE, SECRET).unwrap()["ca.crt"], b"not a certificate");
}

/// The validity end (Unix seconds) of the certificate replica `i`'s peer
/// port presents, verified against `ca` alone.
async fn presented_not_after(c: &Cluster, i: usize, ca: &Ca) -> Option<i64> {
    let addr = c.env.peer_addr(i);
    let config = std::sync::Arc::new(client_of(ca));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_peer_certificates_are_renewed_before_they_expire() {
    let mut c = Cluster::start_empty(1, 1, "2s").await;
    // The shortest validity the flag allows: renewed at two thirds (40 s).
    let all: Vec<Vec<String>> = (0..3)
        .map(|i| {
            let mut args = secret_args(&c, i);
            args.push("--peer-cert-validity=1m".to_string());
            args
        })
        .collect();
    for (i, args) in all.into_iter().enumerate() {
        c.spawn_replica_args(i, args);
    }
    c.env.set_replica_count(3);
    let pids: Vec<u32> = c.replicas.iter().map(|r| r.pid()).collect();
    let found = sim::wait::until(common::STARTUP, async || secret_ca(&c).is_some()).await;
    assert!(found.is_some(), "no Secret\n{}", logs(&c));
    let ca = secret_ca(&c).expect("CA");
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &ca).await).await;
    assert!(formed.is_some(), "no cluster\n{}", logs(&c));
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(presented_not_after(&c, i, &ca).await.expect("a certificate from the Secret's CA"));
    }
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for (i, end) in first.iter().enumerate() {
        let left = end - now();
        assert!((0..=60).contains(&left), "replica {i}: valid for {left} s more, not within --peer-cert-validity");
    }
    let renewed = sim::wait::until(Duration::from_secs(90), async || {
        for (i, end) in first.iter().enumerate() {
            match presented_not_after(&c, i, &ca).await {
                Some(next) if next > *end => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    assert!(renewed.is_some(), "the peer certificates were not renewed\n{}", logs(&c));
    let earliest = *first.iter().min().unwrap();
    println!("every replica renewed its certificate {} s before the first one would have expired", earliest - now());
    assert!(now() < earliest, "renewed only after expiry");
    assert!(one_cluster(&c, &ca).await, "one cluster after the renewals\n{}", logs(&c));
    assert_eq!(c.replicas.iter().map(|r| r.pid()).collect::<Vec<_>>(), pids, "no replica was restarted");
}
