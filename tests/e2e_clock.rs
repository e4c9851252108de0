//! A kubelet whose wall clock jumps an hour ahead (issue 18, finding 4), end
//! to end: three replica processes over six simulated nodes at a 2 s
//! resolution, every replica's node and pod lists read every 250 ms while
//! node-0's kubelet stamps its samples an hour in the future and after its
//! clock comes back. Before the fix every replica served node-0 up to 3,599 s
//! in the future and, across the jump back, a wrong CPU rate.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::raft_cluster::RaftCluster;
use serde_json::Value;

const NODES: usize = 6;
const RESOLUTION: Duration = Duration::from_secs(2);
/// The server's allowance for clock skew (`store::clock`).
const ALLOWANCE_NS: i64 = 2_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// What one replica serves for node-0: its timestamp (ns) and CPU (nanocores).
type Served = Option<(i64, f64)>;

/// Reads replica `i`'s node list and pod list; fails the test on any item
/// from the future; returns node-0 as served, if it is.
async fn read(r: &RaftCluster, i: usize, admin: &tls::pki::CertPair) -> Served {
    let mut node0 = None;
    for path in ["/apis/metrics.k8s.io/v1beta1/nodes", "/apis/metrics.k8s.io/v1beta1/pods"] {
        let Ok(reply) = sim::client::fetch(r.c.env.replica_addr(i), path, Some(admin), &[]).await else { continue };
        let now = now_ns();
        let v: Value = serde_json::from_str(&reply.body).unwrap_or_default();
        for item in v["items"].as_array().into_iter().flatten() {
            let ts = apimachinery::format::parse_time(item["timestamp"].as_str().unwrap_or_default())
                .unwrap_or_else(|| panic!("replica-{i} served an item without a timestamp: {item}"));
            assert!(
                ts <= now + ALLOWANCE_NS,
                "replica-{i} served {} from the future: {item}",
                item["metadata"]["name"]
            );
            if path.ends_with("/nodes") && item["metadata"]["name"] == "node-0" {
                node0 = Some((ts, common::cpu_nanos(item["usage"]["cpu"].as_str().unwrap_or_default())));
            }
        }
    }
    node0
}

/// Checks a served CPU rate against the truth (the simulated rates are
/// constant, so any honest window gives them within rounding).
fn assert_true_rate(i: usize, served: Served, truth: f64, when: &str) {
    if let Some((_, cpu)) = served {
        assert!(
            (cpu - truth).abs() <= truth * 0.02 + 1e6,
            "replica-{i} served node-0 at {cpu} nanocores {when}, truth {truth}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_an_hour_ahead_is_refused_by_every_replica_and_served_truly_once_it_is_back() {
    let r = RaftCluster::start_on(3, NODES, 2, "2s", &[]).await;
    r.settled(&[0, 1, 2], 3).await.expect("one cluster with a committed ring");
    let admin = r.c.env.apiserver.issue_client_cert("admin", &["system:masters"]).unwrap();
    sim::wait::expect("every replica to serve node-0", Duration::from_secs(90), async || {
        let mut ok = 0;
        for i in 0..3 {
            ok += usize::from(read(&r, i, &admin).await.is_some());
        }
        ok == 3
    })
    .await;
    let truth = r.c.env.fleet.true_node_usage("node-0").unwrap().cpu_nanocores as f64;

    // An hour ahead for five resolutions: never served from the future, never
    // a made-up rate; the last true points age out.
    r.c.env.fleet.set_clock_offset("node-0", 3_600_000).unwrap();
    let mut seen_gone = false;
    sim::wait::until(RESOLUTION * 5, async || {
        for i in 0..3 {
            let served = read(&r, i, &admin).await;
            assert_true_rate(i, served, truth, "during the jump");
            seen_gone |= served.is_none();
        }
        false // observe the whole window
    })
    .await;
    assert!(seen_gone, "node-0 was served throughout an hour-ahead jump longer than its staleness bound");
    let mut refused = 0.0;
    for i in 0..3 {
        let (_, text) = sim::client::direct_get(r.c.env.replica_addr(i), "/metrics", Some(&admin), &[]).await;
        let counted = text
            .lines()
            .find_map(|l| l.strip_prefix("ha_metrics_server_future_samples_total{node=\"node-0\"} "))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(n) = counted {
            refused += n;
            let errors = "ha_metrics_server_scrape_errors_total{node=\"node-0\",reason=\"future_timestamp\"}";
            assert!(text.contains(errors), "replica-{i} counted future samples but no scrape error");
        }
    }
    assert!(refused >= 3.0, "the owner counted {refused} future samples of node-0");

    // Back to the true time: every replica serves node-0 again, from true
    // points only, with the true rate, within a few resolutions.
    r.c.env.fleet.set_clock_offset("node-0", 0).unwrap();
    let back = Instant::now();
    let mut recovered = [None; 3];
    let all_back = sim::wait::until(RESOLUTION * 15, async || {
        for (i, when) in recovered.iter_mut().enumerate() {
            let served = read(&r, i, &admin).await;
            assert_true_rate(i, served, truth, "after the jump");
            if served.is_some() && when.is_none() {
                *when = Some(back.elapsed());
            }
        }
        recovered.iter().all(Option::is_some)
    })
    .await;
    let took = all_back.unwrap_or_else(|| panic!("node-0 not served by every replica again: {recovered:?}"));
    println!("node-0 served again after {recovered:?} by replicas 0..3, all by {took:?} (resolution {RESOLUTION:?})");
    // And it stays true for a while.
    sim::wait::until(RESOLUTION * 3, async || {
        for i in 0..3 {
            assert_true_rate(i, read(&r, i, &admin).await, truth, "once back");
        }
        false
    })
    .await;
}
