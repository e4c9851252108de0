//! Parser throughput on kubelet-sized payloads (divan). Run with
//! `cargo bench --bench parse`; divan prints bytes/s per payload.

use divan::Bencher;
use divan::counter::BytesCount;
use ha_metrics_server::scrape::parse::parse;
use sim::kubelet::render::{render, synthetic};

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
