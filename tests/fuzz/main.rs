//! The fuzz targets, built plain (no libFuzzer, no sanitizers) as part of
//! the workspace's tests: every committed corpus input, including each
//! crash that was found and fixed, runs through its target on every CI
//! run, and every target has its `cargo fuzz` binary and a corpus. The
//! fuzzing itself is `cargo fuzz run` in this folder (README.md).

mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| {
            let path = e.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_corpus_input_runs_through_its_target_without_a_crash() {
    for (target, run) in targets::TARGETS {
        let inputs = corpus(target);
        assert!(!inputs.is_empty(), "target {target} has an empty corpus");
        for (path, bytes) in inputs {
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "target {target} crashed on {}", path.display());
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary_a_corpus_and_a_replay() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("the fuzz crate's manifest");
    // The `name` of every `[[bin]]` section.
    let bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| section.lines().find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"')))
        .collect();
    let mut replayed: Vec<&str> = targets::TARGETS.iter().map(|(name, _)| *name).collect();
    let mut built = bins.clone();
    replayed.sort();
    built.sort();
    assert_eq!(built, replayed, "cargo fuzz binaries and replayed targets differ");
    for name in bins {
        let source = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz target {name}: {e}"));
        assert!(source.contains(&format!("ha_fuzz::{name}(data)")), "fuzz_targets/{name}.rs runs another target");
        assert!(fuzz_dir().join("corpus").join(name).is_dir(), "no corpus for {name}");
    }
}

#[test]
fn every_peer_message_type_is_reachable_from_the_fuzzer() {
    // The first byte picks the type: all of them are one byte away.
    assert!(targets::PEER_MESSAGES.len() <= 256);
    for (i, (name, _)) in targets::PEER_MESSAGES.iter().enumerate() {
        targets::peer_message(&[i as u8]);
        assert!(!name.is_empty());
    }
}

/// Writes one well-formed message of each main peer type into the
/// `peer_message` corpus (run by hand when the wire types change:
/// `cargo nextest run --test fuzz --run-ignored only`), so the fuzzer starts
/// from real envelopes instead of finding their structure by chance.
#[test]
#[ignore = "writes seed files into the source tree; run by hand"]
fn write_peer_message_seeds() {
    use ha_metrics_server::model::{ContainerPoint, NodeBatch, PodPoints, Point};
    use ha_metrics_server::peer::wire::{NodesQuery, PodsQuery, PointsQuery, PointsReply, Push, Source};
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use raft::network::wire::{Envelope, Heartbeat, Manage};
    use raft::{Command, MemberInfo};

    let info =
        MemberInfo { name: "replica-0".into(), api_addr: "10.0.0.1:10250".into(), peer_addr: "10.0.0.1:10251".into() };
    fn envelope<T>(body: T) -> Envelope<T> {
        Envelope { protocol_version: 2, cluster_id: "c".into(), from: 1, to: 2, body }
    }
    let point =
        Point { timestamp: 1_735_032_840_000_000_000, cpu_cumulative_ns: 5, memory_bytes: 7, start_time: Some(1) };
    let batch = NodeBatch {
        node: Some(point),
        pods: vec![PodPoints {
            namespace: "ns".into(),
            name: "p".into(),
            containers: vec![ContainerPoint { name: "c".into(), point }],
        }],
    };
    let log_id = LogId::new(CommittedLeaderId::new(3, 1), 7);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "raft append",
            raft::codec::encode(&envelope(AppendEntriesRequest::<raft::types::TypeConfig> {
                vote: Vote::new_committed(3, 1),
                prev_log_id: Some(log_id),
                entries: vec![
                    Entry { log_id, payload: EntryPayload::Blank },
                    Entry { log_id, payload: EntryPayload::Normal(Command::Join { id: 9, info: info.clone() }) },
                ],
                leader_commit: Some(log_id),
            }))
            .unwrap(),
        ),
        ("raft vote", raft::codec::encode(&envelope(VoteRequest::new(Vote::new(4, 2), Some(log_id)))).unwrap()),
        (
            "heartbeat",
            raft::codec::encode(&envelope(Heartbeat {
                name: "replica-1".into(),
                scrape_healthy: true,
                leaving: false,
                ready_to_own: Some(3),
                replication: Some(3),
                failing: vec!["node-2".into()],
            }))
            .unwrap(),
        ),
        ("manage", raft::codec::encode(&envelope(Manage::Join(info.clone()))).unwrap()),
        (
            "push",
            raft::codec::encode(&envelope(Push {
                epoch: 3,
                handover: true,
                points: vec![("n1".into(), batch.clone())],
            }))
            .unwrap(),
        ),
        (
            "pods query",
            raft::codec::encode(&envelope(PodsQuery {
                epoch: 3,
                source: Source::BackupOf(4),
                namespace: Some("ns".into()),
                labels: "app=web".into(),
                fields: "metadata.name!=x".into(),
                one: Some(("ns".into(), "p".into())),
            }))
            .unwrap(),
        ),
        (
            "nodes query",
            raft::codec::encode(&envelope(NodesQuery { epoch: 3, source: Source::Any, names: vec!["n1".into()] }))
                .unwrap(),
        ),
        ("points query", raft::codec::encode(&envelope(PointsQuery { epoch: 3, names: vec!["n1".into()] })).unwrap()),
        (
            "points reply",
            raft::codec::encode(&PointsReply { points: vec![("n1".into(), vec![batch.clone(), batch])] }).unwrap(),
        ),
    ];
    let dir = fuzz_dir().join("corpus/peer_message");
    for (name, body) in seeds {
        let index = targets::PEER_MESSAGES.iter().position(|(n, _)| *n == name).expect("a listed message");
        let mut input = vec![index as u8];
        input.extend(body);
        std::fs::write(dir.join(format!("seed-{}", name.replace(' ', "-"))), input).unwrap();
    }
}
