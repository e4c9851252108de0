//! The peer CA as `kubectl apply -k deploy/` makes it: the certgen Job
//! (`ha-metrics-server certgen`, its own service account) creates the
//! Secret on the stand-in apiserver, whose Secret access is the shipped
//! RBAC (the replicas' service account has none), and each replica reads
//! it from a directory written as the kubelet mounts a secret volume.
//! Replicas started before the Job wait for it and then form one ring, each
//! presenting its own certificate, without a single Secret request of
//! their own. A deliberate rotation (`certgen --rotate`, an operator's
//! rights) is taken without a restart and the old CA retired on schedule;
//! a bad Secret (a key that does not match, a certificate that is not a
//! CA, an appended root) is refused and the ring keeps its CA; a bad
//! Secret at start stops the replica naming the file and the cause.
//! Measured times are printed (`--nocapture`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use ha_metrics_server::member::status::fetch as fetch_view;
use raft::MemberState;
use sim::env::{NAMESPACE, PEER_CA_SECRET};
use tls::pki::Ca;

/// How often the replicas read the mounted CA again in these tests.
const RELOAD: &str = "--peer-reload-interval=1s";
const REPLICA_USER: &str = "system:serviceaccount:kube-system:metrics-server";
const CERTGEN_USER: &str = "system:serviceaccount:kube-system:metrics-server-certgen";

fn args(c: &Cluster, i: usize, extra: &[&str]) -> Vec<String> {
    let mut args = c.env.replica_args(i, &c.resolution);
    args.extend(c.env.cluster_args(i, 3).expect("cluster flags"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn spawn_three(c: &mut Cluster, extra: &[&str]) {
    let all: Vec<Vec<String>> = (0..3).map(|i| args(c, i, extra)).collect();
    for (i, a) in all.into_iter().enumerate() {
        c.spawn_replica_args(i, a);
    }
    c.env.route_metrics_to(&[0, 1, 2]);
    c.env.set_replica_count(3);
}

/// A client of the peer port that trusts `roots` and presents a
/// certificate from `signer`.
fn client_trusting(roots: &[&Ca], signer: &Ca) -> rustls::ClientConfig {
    let pair = signer.issue_client("e2e-observer", &[]).expect("client certificate");
    let ck = tls::CertKey::from_pair(&pair, "observer").expect("parsed");
    let bundle: String = roots.iter().map(|ca| ca.cert_pem()).collect::<Vec<_>>().join("\n");
    tls::config::verifying_client_config(bundle.as_bytes(), Some(ck), &tls::TlsPolicy::default())
        .expect("client config")
}

fn client_of(ca: &Ca) -> rustls::ClientConfig {
    client_trusting(&[ca], ca)
}

/// The Secret's CA, read through the stand-in's handle (an admin's view).
fn secret_ca(c: &Cluster) -> Option<Ca> {
    let data = c.env.apiserver.secret_data(NAMESPACE, PEER_CA_SECRET)?;
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
    leaders.iter().all(|l| l.is_some() && *l == leaders[0])
}

/// The certificate replica `i`'s peer port presents, verified against `ca` alone.
async fn presented(c: &Cluster, i: usize, ca: &Ca) -> Option<Vec<u8>> {
    let addr = c.env.peer_addr(i);
    let config = std::sync::Arc::new(client_of(ca));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.ok()?;
    Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
}

fn logs(c: &Cluster) -> String {
    (0..c.replicas.len()).map(|i| format!("--- replica {i}\n{}", c.log_tail(i))).collect::<Vec<_>>().join("\n")
}

fn pids(c: &Cluster) -> Vec<u32> {
    c.replicas.iter().map(|r| r.pid()).collect()
}

/// Secret requests made with the replicas' service account.
fn replica_secret_requests(c: &Cluster) -> Vec<sim::apiserver::secrets::SecretRequest> {
    c.env.apiserver.secret_requests().into_iter().filter(|r| r.user == REPLICA_USER).collect()
}

/// `certgen` as the Job runs it (its own service account).
async fn certgen(c: &Cluster, extra: &[&str]) -> std::process::Output {
    c.env.run_certgen(&common::binary(), extra).await.expect("certgen ran")
}

/// `certgen` as a cluster admin runs it (`system:masters`).
async fn certgen_as_admin(c: &Cluster, extra: &[&str]) -> std::process::Output {
    let admin = c.env.work_dir.join("admin.kubeconfig");
    let user =
        sim::apiserver::KubeconfigUser::ClientCert { user: "admin".into(), groups: vec!["system:masters".into()] };
    c.env.apiserver.write_kubeconfig(&admin, user).unwrap();
    tokio::process::Command::new(common::binary())
        .args(["certgen", &format!("--secret={NAMESPACE}/{PEER_CA_SECRET}")])
        .arg(format!("--kubeconfig={}", admin.display()))
        .args(extra)
        .output()
        .await
        .expect("certgen ran")
}

/// Three replicas with a formed ring over the Job-made CA, reloading every second.
async fn ring_with_reload() -> (Cluster, Ca) {
    let mut c = Cluster::start_empty(2, 2, "2s").await;
    spawn_three(&mut c, &[RELOAD]);
    let ca = secret_ca(&c).expect("the certgen Job made the Secret");
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &ca).await).await;
    assert!(formed.is_some(), "no ring over the Job's CA\n{}", logs(&c));
    (c, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_before_the_job_wait_for_its_secret_then_form_one_cluster_without_any_secret_access() {
    let mut c = Cluster::start_empty_with(2, 2, "2s", false).await;
    assert!(c.env.apiserver.secret(NAMESPACE, PEER_CA_SECRET).is_none(), "no Secret before the Job");
    spawn_three(&mut c, &[]);
    // The pods are up before the Secret exists: each says what it waits for.
    let waiting = sim::wait::until(common::STARTUP, async || {
        c.replicas.iter().all(|r| r.log_text().contains("waiting for the peer CA"))
    })
    .await;
    assert!(waiting.is_some(), "the replicas do not say they wait for the mounted CA\n{}", logs(&c));
    let before = pids(&c);

    let job_started = Instant::now();
    let out = certgen(&c, &[]).await;
    assert!(out.status.success(), "certgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let job_took = job_started.elapsed();
    assert!(String::from_utf8_lossy(&out.stderr).contains("created the peer CA Secret"));
    let ca = secret_ca(&c).expect("a usable CA in the Secret");
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &ca).await).await;
    assert!(formed.is_some(), "the replicas never formed one ring over the Job's CA\n{}", logs(&c));
    println!(
        "certgen Job took {job_took:?}; one ring over its CA {:?} after the Job started (volume sync 1 s)",
        job_started.elapsed()
    );

    // Exactly one write, by the Job's service account; none by the replicas'.
    let writes: Vec<(&str, String)> =
        c.env.apiserver.secret_writes().iter().map(|w| (w.verb, w.user.clone())).collect();
    assert_eq!(writes, [("create", CERTGEN_USER.to_string())]);
    assert_eq!(replica_secret_requests(&c), [], "the replicas made Secret requests");
    // And the stand-in refuses them, as the shipped RBAC does.
    let kubeconfig = kube::config::Kubeconfig::read_from(&c.env.files.server_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(kube::Client::try_from(config).unwrap(), NAMESPACE);
    match api.get(PEER_CA_SECRET).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{}", s.message),
        other => panic!("the replicas' service account read the peer CA Secret: {other:?}"),
    }

    // One certificate per replica, each naming its member.
    for i in 0..3 {
        let der = presented(&c, i, &ca).await.expect("a certificate from the Job's CA");
        let id = tls::identity::Identity::of(&der.into()).expect("parses");
        assert_eq!(id.common_name.as_deref(), Some(format!("replica-{i}").as_str()), "replica {i}'s certificate");
    }
    for r in &c.replicas {
        assert!(!r.log_text().contains("PRIVATE KEY"), "a replica logged the CA key");
    }
    // The Job run again (a re-apply) finds the Secret, may not read it, and changes nothing.
    let again = certgen(&c, &[]).await;
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(c.env.apiserver.secret_writes().len(), 1, "a second run wrote the Secret");
    let job_requests: Vec<(&str, u16)> =
        c.env.apiserver.secret_requests().iter().filter(|r| r.user == CERTGEN_USER).map(|r| (r.verb, r.code)).collect();
    assert_eq!(job_requests, [("create", 201), ("create", 409), ("get", 403)], "the Job never reads the key");
    c.wait_for_metrics().await;
    assert_eq!(pids(&c), before, "no replica was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliberate_rotation_is_taken_without_a_restart_and_the_old_ca_retired_on_schedule() {
    let (mut c, old) = ring_with_reload().await;
    let before = pids(&c);
    // The Job's own service account cannot rotate: that takes an operator.
    let refused = certgen(&c, &["--rotate", "--overlap=4s"]).await;
    assert!(!refused.status.success(), "the Job's service account rotated the CA");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"), "{}", String::from_utf8_lossy(&refused.stderr));
    let admin = c.env.work_dir.join("admin.kubeconfig");
    let user =
        sim::apiserver::KubeconfigUser::ClientCert { user: "admin".into(), groups: vec!["system:masters".into()] };
    c.env.apiserver.write_kubeconfig(&admin, user).unwrap();
    let rotated_at = Instant::now();
    let out = tokio::process::Command::new(common::binary())
        .args(["certgen", &format!("--secret={NAMESPACE}/{PEER_CA_SECRET}"), "--rotate", "--overlap=4s"])
        .arg(format!("--kubeconfig={}", admin.display()))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "rotation failed: {}", String::from_utf8_lossy(&out.stderr));
    let next = secret_ca(&c).expect("the new CA");
    assert_ne!(next.cert_pem(), old.cert_pem());
    let data = c.env.apiserver.secret_data(NAMESPACE, PEER_CA_SECRET).unwrap();
    assert_eq!(data["previous-ca.crt"], old.cert_pem().as_bytes(), "the old CA kept for the overlap");

    let switched = sim::wait::until(Duration::from_secs(60), async || one_cluster(&c, &next).await).await;
    assert!(switched.is_some(), "the replicas never presented certificates from the new CA\n{}", logs(&c));
    let switch_took = rotated_at.elapsed();
    // The old CA is refused once retired (the client trusts both CAs, so only
    // the replica can be refusing).
    let retired = sim::wait::until(Duration::from_secs(60), async || {
        let mut refused = 0;
        for i in 0..3 {
            if view(&c, i, client_trusting(&[&old, &next], &old)).await.is_none() {
                refused += 1;
            }
        }
        refused == 3
    })
    .await;
    assert!(retired.is_some(), "the old CA stayed trusted\n{}", logs(&c));
    println!(
        "rotation with --overlap=4s: every replica presents the new CA {switch_took:?} and refuses the old one {:?} \
         after certgen --rotate",
        rotated_at.elapsed()
    );
    assert!(one_cluster(&c, &next).await, "still one ring after the old CA was dropped\n{}", logs(&c));
    for (i, r) in c.replicas.iter_mut().enumerate() {
        assert!(r.try_wait().is_none(), "replica {i} exited\n{}", r.log_text());
    }
    assert_eq!(pids(&c), before, "no replica was restarted");

    // A fourth replica started now reads the rotated CA and joins.
    let a = args(&c, 3, &[RELOAD]);
    c.spawn_replica_args(3, a);
    let joined = sim::wait::until(common::STARTUP, async || {
        view(&c, 3, client_of(&next)).await.is_some_and(|s| s.raft.count(MemberState::Active) == 4)
    })
    .await;
    assert!(joined.is_some(), "a replica started after the rotation did not join\n{}", logs(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secret_is_refused_naming_the_file_and_the_cause_and_the_ring_keeps_its_ca() {
    let (mut c, ca) = ring_with_reload().await;
    let before = pids(&c);
    let other = Ca::new("unannounced").unwrap();
    let leaf = ca.issue_server("not-a-ca", &[]).unwrap();
    // What is wrong, the cause the replicas must name, the Secret's data.
    type Case<'a> = (&'a str, &'a str, BTreeMap<String, Vec<u8>>);
    let bad: [Case; 4] = [
        (
            "a key that does not match",
            "ca.key: is not the key of ca.crt",
            BTreeMap::from([
                ("ca.crt".to_string(), ca.cert_pem().as_bytes().to_vec()),
                ("ca.key".to_string(), other.key_pem().into_bytes()),
            ]),
        ),
        (
            "a certificate that is not a CA",
            "ca.crt: certificate \"CN=not-a-ca\" is not a CA",
            BTreeMap::from([
                ("ca.crt".to_string(), leaf.cert_pem.clone().into_bytes()),
                ("ca.key".to_string(), leaf.key_pem.clone().into_bytes()),
            ]),
        ),
        (
            "an appended root",
            "ca.crt: holds 2 certificates",
            BTreeMap::from([
                ("ca.crt".to_string(), format!("{}{}", ca.cert_pem(), other.cert_pem()).into_bytes()),
                ("ca.key".to_string(), ca.key_pem().into_bytes()),
            ]),
        ),
        (
            "another CA without a rotation",
            "without previous-ca.crt",
            BTreeMap::from([
                ("ca.crt".to_string(), other.cert_pem().as_bytes().to_vec()),
                ("ca.key".to_string(), other.key_pem().into_bytes()),
            ]),
        ),
    ];
    for (what, cause, data) in bad {
        c.env.apiserver.put_secret(NAMESPACE, PEER_CA_SECRET, "Opaque", &data);
        let said = sim::wait::until(Duration::from_secs(30), async || {
            c.replicas
                .iter()
                .all(|r| r.log_text().lines().any(|l| l.contains("refused the changed peer CA") && l.contains(cause)))
        })
        .await;
        assert!(said.is_some(), "{what}: not refused with {cause:?}\n{}", logs(&c));
        for (i, r) in c.replicas.iter().enumerate() {
            let line = r.log_text().lines().find(|l| l.contains(cause)).unwrap_or_default().to_string();
            let dir = c.env.peer_ca_dir(i).display().to_string();
            assert!(line.contains(&dir), "{what}: replica {i}'s error does not name {dir}: {line}");
        }
        assert!(one_cluster(&c, &ca).await, "{what}: the ring lost its CA\n{}", logs(&c));
        println!("{what}: refused by every replica, the ring kept its CA");
    }
    // Still the old CA after several reloads, and still serving.
    assert!(one_cluster(&c, &ca).await, "the ring lost its CA\n{}", logs(&c));
    assert!(view(&c, 0, client_of(&other)).await.is_none(), "the unannounced CA got in");
    c.wait_for_metrics().await;
    for (i, r) in c.replicas.iter_mut().enumerate() {
        assert!(r.try_wait().is_none(), "replica {i} exited\n{}", r.log_text());
    }
    assert_eq!(pids(&c), before, "no replica was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_a_usable_ca_stops_the_start_and_the_job_naming_it_and_the_cause() {
    let mut c = Cluster::start_empty_with(1, 1, "2s", false).await;
    let other = Ca::new("other").unwrap();
    let ca = Ca::new("peer").unwrap();
    let data = BTreeMap::from([
        ("ca.crt".to_string(), ca.cert_pem().as_bytes().to_vec()),
        ("ca.key".to_string(), other.key_pem().into_bytes()),
    ]);
    c.env.apiserver.put_secret(NAMESPACE, PEER_CA_SECRET, "Opaque", &data);
    // certgen run with an operator's rights (the Job's may not read it) checks it.
    let out = certgen_as_admin(&c, &[]).await;
    assert!(!out.status.success(), "certgen accepted a key that does not match");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{NAMESPACE}/{PEER_CA_SECRET}")) && err.contains("ca.key"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "certgen printed the key");
    let a = args(&c, 0, &[]);
    c.spawn_replica_args(0, a);
    let exited = sim::wait::until(common::STARTUP, async || c.replicas[0].try_wait().is_some()).await;
    assert!(exited.is_some(), "the replica kept running with an unusable CA\n{}", c.log_tail(0));
    let status = c.replicas[0].try_wait().expect("exited");
    assert!(!status.success(), "exit status {status}");
    let log = c.replicas[0].log_text();
    let dir = c.env.peer_ca_dir(0).display().to_string();
    assert!(log.contains(&dir) && log.contains("ca.key: is not the key of ca.crt"), "{log}");
    let writes = c.env.apiserver.secret_writes();
    assert!(writes.iter().all(|w| w.user == "test-operator"), "not overwritten: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_peer_certificates_are_renewed_before_they_expire() {
    let mut c = Cluster::start_empty(1, 1, "2s").await;
    // The shortest validity the flag allows: renewed at two thirds (40 s).
    spawn_three(&mut c, &["--peer-cert-validity=1m", RELOAD]);
    let before = pids(&c);
    let ca = secret_ca(&c).expect("CA");
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &ca).await).await;
    assert!(formed.is_some(), "no ring\n{}", logs(&c));
    let not_after = async |i| {
        let der = presented(&c, i, &ca).await?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        Some(cert.validity().not_after.timestamp())
    };
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(not_after(i).await.expect("a certificate from the Secret's CA"));
    }
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for (i, end) in first.iter().enumerate() {
        let left = end - now();
        assert!((0..=60).contains(&left), "replica {i}: valid for {left} s more, not within --peer-cert-validity");
    }
    let renewed = sim::wait::until(Duration::from_secs(90), async || {
        for (i, end) in first.iter().enumerate() {
            match not_after(i).await {
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
    assert!(one_cluster(&c, &ca).await, "one ring after the renewals\n{}", logs(&c));
    assert_eq!(pids(&c), before, "no replica was restarted");
}

/// Writes `contents` to `path` atomically (as a renewal by another PKI
/// appears to the reader).
fn replace_file(path: &std::path::Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Writes replica `i`'s own certificate from `ca` into its directory.
fn write_files(c: &Cluster, ca: &Ca, i: usize) -> [std::path::PathBuf; 3] {
    let dir = c.env.work_dir.join(format!("files-{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sans = vec![c.env.block.replica(i).to_string()];
    let name = format!("replica-{i}");
    let spec = tls::pki::LeafSpec {
        common_name: &name,
        organizations: &[],
        sans: &sans,
        usage: tls::pki::Usage::ServerAndClient,
    };
    let pair = ca.issue(&spec).expect("leaf");
    let paths = [dir.join("ca.crt"), dir.join("peer.crt"), dir.join("peer.key")];
    replace_file(&paths[0], ca.cert_pem());
    replace_file(&paths[2], &pair.key_pem);
    replace_file(&paths[1], &pair.cert_pem);
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_files_made_elsewhere_and_replaced_on_disk_are_picked_up_without_a_restart() {
    let mut c = Cluster::start_empty_with(2, 2, "2s", false).await;
    let first = Ca::new("file CA").unwrap();
    for i in 0..3 {
        let [ca, cert, key] = write_files(&c, &first, i);
        let mut a = c.env.replica_args(i, &c.resolution);
        a.extend(c.env.cluster_args(i, 3).unwrap().into_iter().filter(|f| !f.starts_with("--peer-ca-dir")));
        a.extend([
            format!("--peer-ca-file={}", ca.display()),
            format!("--peer-cert-file={}", cert.display()),
            format!("--peer-key-file={}", key.display()),
            RELOAD.to_string(),
        ]);
        c.spawn_replica_args(i, a);
    }
    c.env.set_replica_count(3);
    let before = pids(&c);
    let formed = sim::wait::until(common::STARTUP, async || one_cluster(&c, &first).await).await;
    assert!(formed.is_some(), "no ring over the files' CA\n{}", logs(&c));
    let next = Ca::new("rotated file CA").unwrap();
    let rotated_at = Instant::now();
    for i in 0..3 {
        write_files(&c, &next, i);
    }
    let switched = sim::wait::until(Duration::from_secs(60), async || one_cluster(&c, &next).await).await;
    assert!(switched.is_some(), "the replicas never presented the new files' certificates\n{}", logs(&c));
    println!("every replica presents the replaced files' certificate {:?} after they changed", rotated_at.elapsed());
    for (i, r) in c.replicas.iter_mut().enumerate() {
        assert!(r.try_wait().is_none(), "replica {i} exited\n{}", r.log_text());
    }
    assert_eq!(pids(&c), before, "no replica was restarted");
}
