use std::time::Duration;

use super::*;
use crate::peer::credentials::authority::{CA_CERT, CA_KEY, PREVIOUS_CA_CERT, ROTATION, Schedule, unix};

fn settings(dir: &Path) -> ClusterSettings {
    let argv = [
        "x".to_string(),
        "--peers=replica-0=127.0.0.1:10251".into(),
        "--node-name=replica-0".into(),
        "--pod-namespace=kube-system".into(),
        format!("--peer-ca-dir={}", dir.display()),
    ];
    crate::config::Config::from_args(&crate::cli::parse_from(argv).expect("flags parse").serve)
        .unwrap()
        .cluster
        .unwrap()
}

fn write(dir: &Path, files: &[(&str, &[u8])]) {
    for key in [CA_CERT, CA_KEY, PREVIOUS_CA_CERT, ROTATION] {
        let _ = std::fs::remove_file(dir.join(key));
    }
    for (k, v) in files {
        std::fs::write(dir.join(k), v).unwrap();
    }
}

fn write_ca(dir: &Path, ca: &Ca) {
    write(dir, &[(CA_CERT, ca.cert_pem().as_bytes()), (CA_KEY, ca.key_pem().as_bytes())]);
}

/// The issuer of the presented certificate, and the trusted CAs' names.
fn state(l: &CaDirLoop) -> (String, Vec<String>) {
    let chain = l.tls.presented();
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let issuer = cert.issuer().to_string();
    let names = l.set.trusted_at(SystemTime::now());
    let trusted: Vec<String> = l
        .trusted
        .iter()
        .map(|id| names.iter().find(|c| c.id == *id).map_or("<retired>".to_string(), |c| c.name.clone()))
        .collect();
    (issuer, trusted)
}

fn start(dir: &Path) -> CaDirLoop {
    let Snapshot::Files(files) = mount::read(dir).unwrap() else { panic!("no files") };
    CaDirLoop::start(dir, files, &settings(dir), &TlsPolicy::default()).unwrap().0
}

#[test]
fn a_bad_set_is_refused_and_the_replica_keeps_its_ca_and_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = Ca::new("A").unwrap();
    write_ca(dir, &a);
    let mut l = start(dir);
    let before = l.tls.presented();
    assert_eq!(state(&l), ("CN=A".to_string(), vec!["CN=A".to_string()]));
    let b = Ca::new("B").unwrap();
    let leaf = a.issue_server("not-a-ca", &[]).unwrap();
    let bad: Vec<Vec<(&str, Vec<u8>)>> = vec![
        // A key that does not match the certificate.
        vec![(CA_CERT, b.cert_pem().into()), (CA_KEY, a.key_pem().into())],
        // A certificate that is not a CA.
        vec![(CA_CERT, leaf.cert_pem.clone().into()), (CA_KEY, leaf.key_pem.clone().into())],
        // A second root appended to the CA in use.
        vec![(CA_CERT, format!("{}{}", a.cert_pem(), b.cert_pem()).into()), (CA_KEY, a.key_pem().into())],
        // Another CA in place of the one in use, without a rotation.
        vec![(CA_CERT, b.cert_pem().into()), (CA_KEY, b.key_pem().into())],
    ];
    for files in bad {
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        write(dir, &refs);
        l.tick(SystemTime::now(), Instant::now());
        assert!(l.refused.is_some(), "refused: {:?}", refs.iter().map(|r| r.0).collect::<Vec<_>>());
        assert_eq!(state(&l), ("CN=A".to_string(), vec!["CN=A".to_string()]), "trust and certificate kept");
        assert_eq!(l.tls.presented(), before, "the same certificate");
    }
    // Files that go away are not a reason to drop the CA either.
    write(dir, &[]);
    l.tick(SystemTime::now(), Instant::now());
    assert_eq!(state(&l).1, ["CN=A"]);
}

#[test]
fn a_deliberate_rotation_is_trusted_at_once_presented_at_the_switch_and_the_old_ca_retired_on_schedule() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = Ca::new("A").unwrap();
    write_ca(dir, &a);
    let mut l = start(dir);
    let b = Ca::new("B").unwrap();
    let t0 = SystemTime::now();
    let schedule = Schedule { switch_at: unix(t0) + 100, retire_at: unix(t0) + 200 }.to_json();
    write(
        dir,
        &[
            (CA_CERT, b.cert_pem().as_bytes()),
            (CA_KEY, b.key_pem().as_bytes()),
            (PREVIOUS_CA_CERT, a.cert_pem().as_bytes()),
            (ROTATION, schedule.as_bytes()),
        ],
    );
    let at = |s: u64| (t0 + Duration::from_secs(s), Instant::now());
    let (now, i) = at(1);
    l.tick(now, i);
    assert!(l.refused.is_none());
    assert_eq!(l.trusted.len(), 2, "new and old trusted");
    assert_eq!(state(&l).0, "CN=A", "still presenting from the old CA before the switch");
    let (now, i) = at(150);
    l.tick(now, i);
    assert_eq!((state(&l).0, l.trusted.len()), ("CN=B".to_string(), 2), "switched, old still trusted");
    let (now, i) = at(250);
    l.tick(now, i);
    assert_eq!(l.trusted, [l.set.cert.id.clone()], "old CA retired");
    assert_eq!(l.signers.len(), 1, "the old key is dropped");
}

#[test]
fn the_certificate_is_renewed_when_due() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    write_ca(tmp.path(), &Ca::new("A").unwrap());
    let mut l = start(tmp.path());
    let before = l.tls.presented();
    l.tick(SystemTime::now(), Instant::now());
    assert_eq!(l.tls.presented(), before, "not due yet");
    l.tick(SystemTime::now(), l.renew_at + Duration::from_secs(1));
    assert_ne!(l.tls.presented(), before, "renewed");
}
