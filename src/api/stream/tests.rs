use std::sync::Arc;

use http_body_util::BodyExt;
use proptest::prelude::*;

use super::*;
use crate::api::encode::{Style, to_go_json};
use crate::api::negotiate::{Negotiated, Target};
use crate::api::render::{Served, render_off_runtime};
use crate::api::request::Req;
use crate::api::tests::testkit::pod_items;
use crate::api::types::{node_list, pod_list};
use crate::model::{ContainerUsage, NodeUsage, PodUsage};

/// Strings full of what needs escaping: quotes, backslashes, control
/// characters, Go's HTML characters, U+2028/U+2029 and their near misses.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => "[a-z0-9.-]{1,6}",
            1 => Just("\"".to_string()),
            1 => Just("\\".to_string()),
            1 => (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            1 => Just("\u{7f}".to_string()),
            1 => prop::sample::select(vec!["<", ">", "&", "\u{2028}", "\u{2029}", "\u{2027}", "\u{202a}", "€", "µ", "日本"])
                .prop_map(str::to_string),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn meta(namespaced: bool) -> impl Strategy<Value = ObjectMeta> {
    (text(), prop::option::of(text()), prop::collection::btree_map(text(), text(), 0..4))
        .prop_map(move |(name, ns, labels)| ObjectMeta { name, namespace: if namespaced { ns } else { None }, labels })
}

fn usage() -> impl Strategy<Value = Usage> {
    (any::<u64>(), any::<u64>(), 0u32..64)
        .prop_map(|(cpu, mem, shift)| Usage { cpu_nanocores: cpu >> shift, memory_bytes: mem >> shift << (shift / 2) })
}

fn pod_item() -> impl Strategy<Value = PodItem> {
    (meta(true), any::<i64>(), any::<i64>(), prop::collection::vec((text(), usage()), 0..3)).prop_map(
        |(meta, timestamp, window_ns, containers)| PodItem {
            meta: Arc::new(meta),
            usage: PodUsage {
                timestamp,
                window_ns: window_ns >> (window_ns & 63),
                containers: containers.into_iter().map(|(name, usage)| ContainerUsage { name, usage }).collect(),
            },
        },
    )
}

fn node_item() -> impl Strategy<Value = NodeItem> {
    (meta(false), any::<i64>(), 0i64..100_000_000_000, usage()).prop_map(|(meta, timestamp, window_ns, usage)| {
        NodeItem { meta, usage: NodeUsage { timestamp, window_ns, usage } }
    })
}

proptest! {
    #[test]
    fn pod_lists_have_the_bytes_of_the_serde_encoder(items in prop::collection::vec(pod_item(), 0..6), now in any::<i64>(), v1 in any::<bool>()) {
        let version = if v1 { Version::V1 } else { Version::V1beta1 };
        let want = to_go_json(&pod_list(&items, version, now), Style::Compact);
        let got = to_bytes(&List::Pods(items), version, now);
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    #[test]
    fn node_lists_have_the_bytes_of_the_serde_encoder(items in prop::collection::vec(node_item(), 0..6), now in any::<i64>()) {
        let want = to_go_json(&node_list(&items, Version::V1beta1, now), Style::Compact);
        let got = to_bytes(&List::Nodes(items), Version::V1beta1, now);
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    #[test]
    fn chunks_join_to_the_whole_body(items in prop::collection::vec(pod_item(), 0..20), chunk in 1usize..2_000) {
        let list = List::Pods(items);
        let mut parts = Vec::new();
        list.write(Version::V1, 0, chunk, |p| {
            parts.push(p);
            true
        });
        // Every chunk but the last is full.
        for p in &parts[..parts.len() - 1] {
            prop_assert!(p.len() >= chunk);
        }
        prop_assert_eq!(parts.concat(), to_bytes(&list, Version::V1, 0));
    }
}

#[test]
fn a_writer_whose_reader_went_away_stops() {
    let list = List::Pods(pod_items(10_000));
    let mut calls = 0;
    list.write(Version::V1, 0, 4_096, |_| {
        calls += 1;
        calls < 3
    });
    assert_eq!(calls, 3, "the writer went on after its chunk was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_has_the_bytes_of_the_whole_one_and_comes_in_chunks() {
    let items = pod_items(20_000);
    let want = to_go_json(&pod_list(&items, Version::V1beta1, 7), Style::Compact);
    assert!(want.len() > 3 * CHUNK, "the test list is too small to be chunked");
    let resp = respond(List::Pods(items), Version::V1beta1, 7);
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(resp.headers()[http::header::CONTENT_TYPE], JSON);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        assert!(data.len() <= CHUNK + 4_096, "a chunk of {} bytes", data.len());
        got.extend_from_slice(&data);
        frames += 1;
    }
    assert!(frames > 3, "{frames} frames");
    assert!(got == want, "the streamed body differs");
}

#[tokio::test]
async fn a_small_list_is_written_whole_with_its_length() {
    let want = to_go_json(&pod_list(&pod_items(3), Version::V1, 7), Style::Compact);
    let req = Req { headers: http::HeaderMap::new(), query: None };
    let neg = Negotiated { target: Target::Object, style: Style::Compact };
    let resp = render_off_runtime(req, Version::V1, neg, Served::Pods(pod_items(3)), 7).await;
    assert_eq!(axum::body::HttpBody::size_hint(resp.body()).exact(), Some(want.len() as u64));
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.as_ref(), want.as_slice());
}
