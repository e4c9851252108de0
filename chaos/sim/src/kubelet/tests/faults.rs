//! Tests of the fault knobs: each fault does what it says on its node, and
//! the other nodes keep answering normally.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::testkit::{Fixture, TOKEN, client, get, parse_strict, single};
use crate::kubelet::Fault;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn down_refuses_connections_drops_open_ones_and_comes_back() {
    let fx = Fixture::start(2, None).await;
    let addr = fx.fleet.addr("node-0").unwrap();
    // An open TLS connection, made before the node goes down.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(fx.fleet.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let mut open = connector.connect(name, TcpStream::connect(addr).await.unwrap()).await.unwrap();

    fx.fleet.set_fault("node-0", Fault::Down).await.unwrap();
    assert_eq!(fx.fleet.fault("node-0").unwrap(), Fault::Down);
    let refused = TcpStream::connect(addr).await.expect_err("connection must be refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, open.read(&mut buf)).await.expect("open connection is dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    fx.scrape_ok("node-1").await;

    fx.fleet.set_fault("node-0", Fault::None).await.unwrap();
    let fresh = client(fx.fleet.ca_pem(), None);
    let (status, _) = get(&fresh, &fx.fleet.url("node-0").unwrap(), Some(TOKEN)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn slow_delays_only_its_node() {
    let fx = Arc::new(Fixture::start(2, None).await);
    let delay = Duration::from_secs(3);
    fx.fleet.set_fault("node-0", Fault::Slow(delay)).await.unwrap();
    let started = Instant::now();
    let slow = tokio::spawn({
        let fx = fx.clone();
        async move { fx.scrape("node-0").await }
    });
    fx.scrape_ok("node-1").await;
    assert!(!slow.is_finished() || started.elapsed() >= delay, "the slow node answered early");
    let (status, body) = slow.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    parse_strict(&body).unwrap();
    assert!(started.elapsed() >= delay, "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn http500_and_malformed_fail_only_their_node() {
    let fx = Fixture::start(3, None).await;
    fx.fleet.set_fault("node-0", Fault::Http500).await.unwrap();
    fx.fleet.set_fault("node-1", Fault::Malformed).await.unwrap();
    assert_eq!(fx.scrape("node-0").await.unwrap().0, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, body) = fx.scrape("node-1").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(parse_strict(&body).is_err(), "malformed body parsed: {body}");
    fx.scrape_ok("node-2").await;
    fx.fleet.set_fault("node-1", Fault::None).await.unwrap();
    fx.scrape_ok("node-1").await;
}

#[tokio::test]
async fn frozen_timestamps_repeat_the_sample_of_the_moment_they_were_set() {
    let fx = Fixture::start(2, None).await;
    fx.fleet.set_fault("node-0", Fault::FrozenTimestamps).await.unwrap();
    let (_, first) = fx.scrape("node-0").await.unwrap();
    let other = single(&fx.scrape_ok("node-1").await, "node_cpu_usage_seconds_total");
    // Wait until the clock has visibly moved on the healthy node.
    assert!(
        crate::wait::until(WAIT, async || {
            let now = single(&fx.scrape_ok("node-1").await, "node_cpu_usage_seconds_total");
            now.timestamp_ms > other.timestamp_ms && now.value > other.value
        })
        .await
        .is_some()
    );
    let (_, second) = fx.scrape("node-0").await.unwrap();
    assert_eq!(first, second);
    parse_strict(&first).unwrap();
    fx.fleet.set_fault("node-0", Fault::None).await.unwrap();
    let thawed = single(&fx.scrape_ok("node-0").await, "node_cpu_usage_seconds_total");
    let frozen = single(&parse_strict(&first).unwrap(), "node_cpu_usage_seconds_total");
    assert!(thawed.timestamp_ms > frozen.timestamp_ms);
}

#[tokio::test]
async fn counter_reset_restarts_counters_near_zero_on_its_node_only() {
    let fx = Fixture::start(2, None).await;
    let cpu = |f: &super::testkit::Families| single(f, "node_cpu_usage_seconds_total").value;
    let before0 = cpu(&fx.scrape_ok("node-0").await);
    let before1 = cpu(&fx.scrape_ok("node-1").await);
    let reset_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    fx.fleet.set_fault("node-0", Fault::CounterReset).await.unwrap();
    assert_eq!(fx.fleet.fault("node-0").unwrap(), Fault::None);
    let after = fx.scrape_ok("node-0").await;
    let rate = fx.fleet.true_node_usage("node-0").unwrap().cpu_nanocores as f64 / 1e9;
    assert!(cpu(&after) < before0 && cpu(&after) < rate * 10.0, "node cpu {} after reset", cpu(&after));
    for s in &after["container_start_time_seconds"].1 {
        assert!(s.value >= reset_at - 0.01, "container start {} before the reset {reset_at}", s.value);
    }
    for s in &after["container_cpu_usage_seconds_total"].1 {
        assert!(s.value < 10.0, "container counter {} after reset", s.value);
    }
    assert!(cpu(&fx.scrape_ok("node-1").await) >= before1);
}

#[tokio::test]
async fn hang_accepts_but_never_answers_on_its_node_only() {
    let fx = Fixture::start(2, None).await;
    fx.fleet.set_fault("node-0", Fault::Hang).await.unwrap();
    let hung = tokio::time::timeout(Duration::from_secs(1), fx.scrape("node-0")).await;
    assert!(hung.is_err(), "a hung kubelet answered: {hung:?}");
    assert_eq!(fx.fleet.scrape_count("node-0"), 1, "the request reached the kubelet");
    fx.scrape_ok("node-1").await;
    fx.fleet.set_fault("node-0", Fault::None).await.unwrap();
    let fresh = client(fx.fleet.ca_pem(), None);
    let (status, _) = get(&fresh, &fx.fleet.url("node-0").unwrap(), Some(TOKEN)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_clock_offset_moves_only_the_timestamps_of_its_node() {
    let fx = Fixture::start(2, None).await;
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let before = single(&fx.scrape_ok("node-0").await, "node_cpu_usage_seconds_total");
    fx.fleet.set_clock_offset("node-0", 3_600_000).unwrap();
    let (asked, ahead, answered) = (now_ms(), fx.scrape_ok("node-0").await, now_ms());
    let cpu = single(&ahead, "node_cpu_usage_seconds_total");
    let stamp = cpu.timestamp_ms.unwrap();
    assert!((asked + 3_600_000..=answered + 3_600_000).contains(&stamp), "stamped {stamp}, asked at {asked}");
    for s in &ahead["container_cpu_usage_seconds_total"].1 {
        assert_eq!(s.timestamp_ms, Some(stamp));
    }
    // The counter went on at the true rate: it did not jump by an hour of CPU.
    let rate = fx.fleet.true_node_usage("node-0").unwrap().cpu_nanocores as f64 / 1e9;
    let elapsed_s = (answered - before.timestamp_ms.unwrap()) as f64 / 1e3;
    assert!(cpu.value - before.value <= rate * (elapsed_s + 1.0), "{} then {}", before.value, cpu.value);
    // Container start times are the runtime's, not moved.
    for s in &ahead["container_start_time_seconds"].1 {
        assert!(s.value * 1e3 < asked as f64, "start {} moved with the clock", s.value);
    }
    let other = single(&fx.scrape_ok("node-1").await, "node_cpu_usage_seconds_total").timestamp_ms.unwrap();
    assert!(other <= now_ms(), "node-1 stamped {other} in the future");
    fx.fleet.set_clock_offset("node-0", 0).unwrap();
    let back = single(&fx.scrape_ok("node-0").await, "node_cpu_usage_seconds_total").timestamp_ms.unwrap();
    assert!(back <= now_ms() && back >= asked, "stamped {back} after the clock came back");
    assert!(fx.fleet.set_clock_offset("node-9", 1).is_err());
}
