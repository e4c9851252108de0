//! Tests of the serving-certificate source: reload by polling, bad files,
//! the self-signed pair in `--cert-dir`.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::source::{CertFiles, CertSource, ReloadStatus, SELF_SIGNED_CERT, SELF_SIGNED_KEY};

const DEADLINE: Duration = Duration::from_secs(20);

/// Publishes a pair the way the kubelet updates a mounted Secret: a new
/// timestamped directory, then an atomic swap of the `..data` symlink.
fn publish(dir: &Path, generation: u32, pair: &crate::pki::CertPair) {
    let version = dir.join(format!("..v{generation}"));
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("tls.crt"), &pair.cert_pem).unwrap();
    std::fs::write(version.join("tls.key"), &pair.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    symlink(format!("..v{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        if !dir.join(name).exists() {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
}

async fn wait_status(rx: &mut watch::Receiver<ReloadStatus>, what: &str, cond: impl Fn(&ReloadStatus) -> bool) {
    let waited = tokio::time::timeout(DEADLINE, rx.wait_for(|s| cond(s))).await.is_ok();
    assert!(waited, "reloader never reached: {what}; status {:?}", *rx.borrow());
}

async fn eventually_served(addr: SocketAddr, client: ClientConfig) {
    sim::wait::expect("the new certificate to be served", DEADLINE, async || {
        matches!(fetch(addr, client.clone(), true, "/whoami").await, Ok((200, _)))
    })
    .await;
}

fn server_pair(ca: &Ca, ip: std::net::IpAddr) -> crate::pki::CertPair {
    ca.issue_server("server", &[ip.to_string()]).unwrap()
}

#[tokio::test]
async fn rotated_secret_files_are_served_without_restart_and_bad_ones_ignored() {
    let block = Block::acquire().unwrap();
    let ip: std::net::IpAddr = block.aux(1).into();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (ca_a, ca_b) = (Ca::new("a").unwrap(), Ca::new("b").unwrap());
    publish(dir.path(), 1, &server_pair(&ca_a, ip));

    let files = CertFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key") };
    let source = CertSource::new(Some((files.cert.clone(), files.key.clone())), "unused".into(), ip);
    let token = CancellationToken::new();
    let policy = TlsPolicy::default();
    let build = move |ck: CertKey| api_server_config(ck.chain, ck.key, &policy);
    let (tls, reloader) = source.start(build, Duration::from_millis(50), token.clone()).unwrap();
    let mut status = reloader.unwrap().status;
    let (addr, serving) = start(ip, tls).await;
    let policy = TlsPolicy::default();
    let trust_a = config::verifying_client_config(ca_a.cert_pem().as_bytes(), None, &policy).unwrap();
    let trust_b = config::verifying_client_config(ca_b.cert_pem().as_bytes(), None, &policy).unwrap();
    wait_status(&mut status, "first apply", |s| s.applied >= 1).await;
    assert_eq!(fetch(addr, trust_a.clone(), true, "/whoami").await.unwrap().0, 200);

    // A broken certificate: rejected, the old one still served.
    std::fs::write(dir.path().join("garbage.crt"), "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    std::fs::write(dir.path().join("garbage.key"), "").unwrap();
    let garbage = crate::pki::CertPair {
        cert_pem: std::fs::read_to_string(dir.path().join("garbage.crt")).unwrap(),
        key_pem: server_pair(&ca_a, ip).key_pem,
    };
    publish(dir.path(), 2, &garbage);
    wait_status(&mut status, "rejection of a broken pair", |s| s.rejected >= 1).await;
    assert!(status.borrow().last_error.as_deref().unwrap_or("").contains("tls.crt"), "{:?}", *status.borrow());
    assert_eq!(fetch(addr, trust_a.clone(), true, "/whoami").await.unwrap().0, 200);
    assert!(fetch(addr, trust_b.clone(), true, "/whoami").await.is_err());

    // A good new pair from another CA: served to new connections.
    publish(dir.path(), 3, &server_pair(&ca_b, ip));
    wait_status(&mut status, "second apply", |s| s.applied >= 2 && s.last_error.is_none()).await;
    eventually_served(addr, trust_b).await;
    assert!(fetch(addr, trust_a, true, "/whoami").await.is_err());
    token.cancel();
    serving.cancel();
}

#[test]
fn no_cert_files_means_a_self_signed_pair() {
    // That both files or neither are given is checked with the other flags
    // (config::tests::conflicting_kubelet_flags_fail_with_the_flag_named).
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    assert!(matches!(CertSource::new(None, "/d".into(), ip), CertSource::SelfSigned { .. }));
}

#[test]
fn missing_cert_file_error_names_the_file() {
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    let source = CertSource::new(Some(("/nonexistent/tls.crt".into(), "/nonexistent/tls.key".into())), "/d".into(), ip);
    let e = source.load().unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tls.crt"), "{e}");
}

#[test]
fn self_signed_pair_is_written_reused_and_replaced_when_broken() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("certs");
    let bind: std::net::IpAddr = "127.0.3.7".parse().unwrap();
    let source = CertSource::SelfSigned { cert_dir: cert_dir.clone(), bind };

    let first = source.load().unwrap();
    let cert_file = cert_dir.join(SELF_SIGNED_CERT);
    let written = std::fs::read(&cert_file).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&first.chain[0]).unwrap();
    let sans = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for want in [
        "DNSName(localhost)",
        "IPAddress(7f:00:03:07)",
        "DNSName(metrics-server.kube-system.svc)",
        "DNSName(metrics-server)",
    ] {
        assert!(sans.contains(want), "SAN {want} missing from {sans}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cert_dir.join(SELF_SIGNED_KEY)).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");

    let again = source.load().unwrap();
    assert_eq!(again.chain, first.chain, "valid pair in --cert-dir was not reused");
    assert_eq!(std::fs::read(&cert_file).unwrap(), written);

    std::fs::write(&cert_file, "garbage").unwrap();
    let replaced = source.load().unwrap();
    assert_ne!(replaced.chain, first.chain);
    assert_ne!(std::fs::read(&cert_file).unwrap(), b"garbage");
}

/// Two replicas started at once with one --cert-dir (metrics-server's HA
/// manifests' `--cert-dir=/tmp`, on one host) both get a certificate.
#[test]
fn processes_sharing_a_cert_dir_at_once_each_get_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let bind: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || crate::source::self_signed_in_dir(&d, bind).map(|_| ()))
        })
        .collect();
    for s in starts {
        s.join().unwrap().expect("a certificate");
    }
    assert!(crate::source::self_signed_in_dir(dir.path(), bind).is_ok());
}
