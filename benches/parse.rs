//! Parser throughput on kubelet-sized payloads (divan). Run with
//! `cargo bench --bench parse`; divan prints bytes/s per payload. The
//! one-pod cases (10,000 and 100,000 containers) show the parse is linear:
//! the same bytes/s at both sizes (a scan per sample made the larger one
//! about ten times slower per byte).

use divan::Bencher;
use divan::counter::BytesCount;
use ha_metrics_server::scrape::parse::parse;
use sim::kubelet::render::{ContainerSample, KubeletSample, PodSample, render, synthetic};

fn main() {
    for (pods, containers) in [(30, 2), (110, 2)] {
        let body = render(&synthetic(pods, containers, 1_735_032_840_000, 1));
        println!("payload {pods} pods x {containers} containers: {} bytes, {} lines", body.len(), body.lines().count());
    }
    divan::main();
}

#[divan::bench(args = [30, 110])]
fn kubelet_payload(bencher: Bencher, pods: usize) {
    let body = render(&synthetic(pods, 2, 1_735_032_840_000, 1)).into_bytes();
    bencher.counter(BytesCount::of_slice(&body)).bench(|| {
        let batch = parse(divan::black_box(&body), "bench-node", 1_735_032_840_000_000_000);
        divan::black_box(batch)
    });
}

/// One pod with `containers` containers, as a kubelet lists them.
fn one_pod(containers: usize) -> Vec<u8> {
    let sample = KubeletSample {
        node: Some((10.0, 1e9, 1_735_032_840_000)),
        pods: vec![PodSample {
            namespace: "ns".into(),
            name: "big".into(),
            containers: (0..containers)
                .map(|i| ContainerSample {
                    name: format!("c{i:06}"),
                    cpu_seconds: 1.5,
                    memory_bytes: 1e6,
                    start_time_seconds: 1_735_000_000.0,
                    timestamp_ms: 1_735_032_840_000,
                })
                .collect(),
        }],
    };
    render(&sample).into_bytes()
}

#[divan::bench(args = [10_000, 100_000], sample_count = 10, sample_size = 1)]
fn one_pod_many_containers(bencher: Bencher, containers: usize) {
    let body = one_pod(containers);
    bencher.counter(BytesCount::of_slice(&body)).bench(|| {
        let batch = parse(divan::black_box(&body), "bench-node", 1_735_032_840_000_000_000);
        divan::black_box(batch)
    });
}
