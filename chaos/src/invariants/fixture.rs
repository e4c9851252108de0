//! Hand-made recordings for the invariants' unit tests: a healthy run of
//! two nodes (one pod each) at R = 2 s that each test then breaks.

use crate::record::{Answer, Item, Kind, Recording, Scrape, Source, Truth, View};

pub const R: u64 = 2_000;

/// 40 s of a healthy two-replica run: replica 0 scrapes node-0, replica 1
/// node-1, every R; both answer every 500 ms with fresh, true values; the
/// fault is between 16 s and 20 s.
pub fn healthy() -> Recording {
    let mut rec = Recording {
        resolution_ms: R,
        start_ms: 0,
        fault_start_ms: 16_000,
        heal_ms: 20_000,
        end_ms: 40_000,
        nodes: vec!["node-0".into(), "node-1".into()],
        pods: vec!["ns/p0".into(), "ns/p1".into()],
        ..Recording::default()
    };
    for k in ["node-0", "node-1"] {
        rec.truth.insert(k.into(), Truth { cpu_nanocores: 100e6, memory_bytes: 50e6 });
    }
    for k in ["ns/p0", "ns/p1"] {
        rec.truth.insert(k.into(), Truth { cpu_nanocores: 10e6, memory_bytes: 5e6 });
    }
    for t in (0..40_000).step_by(R as usize) {
        rec.scrapes.push(Scrape { at_ms: t + 100, node: "node-0".into(), replica: Some(0), reached: true });
        rec.scrapes.push(Scrape { at_ms: t + 900, node: "node-1".into(), replica: Some(1), reached: true });
    }
    for t in (500..40_000).step_by(500) {
        let ts = (t / R) * R;
        for i in 0..2 {
            let item = |k: &str, cpu, mem| Item { key: k.into(), ts_ms: ts, cpu_nanocores: cpu, memory_bytes: mem };
            rec.answers.push(Answer {
                at_ms: t + i as u64,
                source: Source::Replica(i),
                kind: Kind::Nodes,
                status: Some(200),
                warnings: vec![],
                epoch: Some(3),
                items: vec![item("node-0", 100e6, 50e6), item("node-1", 100e6, 50e6)],
            });
            if t % 2_000 == 0 {
                rec.answers.push(Answer {
                    at_ms: t + i as u64,
                    source: Source::Replica(i),
                    kind: Kind::Pods,
                    status: Some(200),
                    warnings: vec![],
                    epoch: Some(3),
                    items: vec![item("ns/p0", 10e6, 5e6), item("ns/p1", 10e6, 5e6)],
                });
            }
            rec.views.push(View {
                at_ms: t,
                replica: i,
                role: if i == 0 { "Leader".into() } else { "Follower".into() },
                term: 1,
                leader: Some("replica-0".into()),
                epoch: 3,
                last_applied: Some(5),
                ring_epoch: 3,
                members: vec!["replica-0=Active".into(), "replica-1=Active".into()],
            });
        }
    }
    rec
}
