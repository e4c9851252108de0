//! The fuzz targets' bodies, one function per target: what `cargo fuzz`
//! runs (`fuzz_targets/*.rs`, one line each) and what the workspace's `fuzz`
//! test replays over the committed corpora on every CI run, built plain
//! (no libFuzzer, no sanitizers). A target panics only on a bug: a crash in
//! the code under test, or a broken invariant of what it returned.
//!
//! Peer messages go through one generic decoder ([`PEER_MESSAGES`]): a new
//! message type on the peer port is one line there.

use std::collections::BTreeMap;

use apimachinery::selector::{Field, FieldSelector, LabelSelector};
use ha_metrics_server::api::negotiate::Endpoint;
use ha_metrics_server::api::request::{ListOptions, Req, decode_component};
use ha_metrics_server::api::table::IncludeObject;
use ha_metrics_server::peer::wire as server_wire;
use ha_metrics_server::scrape::parse::{parse_checked, parse_counted};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use raft::NodeId;
use raft::codec;
use raft::network::wire::{
    Envelope, EnvelopeHead, Heartbeat, HeartbeatAck, HeartbeatV2, HelloReply, Manage, ManageReply,
};
use raft::types::TypeConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A named input handler: a target, or the decoder of one peer message.
pub type Named = (&'static str, fn(&[u8]));

/// Every target, by the name of its `cargo fuzz` binary and corpus folder.
pub const TARGETS: &[Named] = &[
    ("kubelet_parser", kubelet_parser),
    ("peer_message", peer_message),
    ("label_selector", label_selector),
    ("field_selector", field_selector),
    ("query_string", query_string),
];

const REQUEST_TIME: i64 = 1_735_032_900_000_000_000;

/// A kubelet body: parsed without a panic, in work linear in its samples,
/// and what it yields obeys the parser's rules.
pub fn kubelet_parser(data: &[u8]) {
    let (result, work) = parse_counted(data, "fuzz-node", REQUEST_TIME);
    // Per sample: at most 4 probes for its pod, 3 guesses and a scan of at
    // most 8 names (or one index lookup) for its container, and the one-off
    // index build (9 names, paid for by 9 samples).
    assert!(work.probes <= 16 * work.samples, "{work:?} for {} bytes", data.len());
    let checked = parse_checked(data, "fuzz-node", REQUEST_TIME, REQUEST_TIME);
    let Ok(batch) = result else {
        assert!(checked.is_err(), "the checked parse took a body the parser refused");
        return;
    };
    if let Some(node) = batch.node {
        assert!(node.cpu_cumulative_ns != 0 && node.memory_bytes != 0 && node.timestamp != 0, "{node:?}");
    }
    for pod in &batch.pods {
        assert!(!pod.containers.is_empty(), "pod {}/{} without containers", pod.namespace, pod.name);
        assert!(pod.containers.windows(2).all(|w| w[0].name <= w[1].name), "containers not sorted");
        for c in &pod.containers {
            assert!(c.point.cpu_cumulative_ns != 0 && c.point.memory_bytes != 0, "{c:?}");
        }
    }
    // Refused by the clock check exactly when a sample is from the future.
    let future = ha_metrics_server::store::clock::future_samples(&batch, REQUEST_TIME);
    assert_eq!(checked.is_err(), future.samples > 0, "{future:?}");
}

/// Which codec limit the receiver decodes a message with.
#[derive(Clone, Copy)]
enum Limit {
    /// Requests, and replies read with `ReplySize::Small`.
    Small,
    /// Replies read with `ReplySize::Large` (fan-out answers, pulled points).
    Large,
}

/// Decodes `bytes` as a `T` the way the peer port does; when that works,
/// the value must encode, and decode again to the same encoding.
fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8], limit: Limit) {
    let decode = |b: &[u8]| match limit {
        Limit::Small => codec::decode::<T>(b),
        Limit::Large => codec::decode_large::<T>(b),
    };
    let Ok(value) = decode(bytes) else { return };
    let encoded = codec::encode(&value).expect("a decoded message encodes");
    let again = decode(&encoded).expect("an encoded message decodes");
    assert_eq!(codec::encode(&again).expect("encodes again"), encoded, "encoding is not stable");
}

/// A message the server decodes as `T` with `limit`.
macro_rules! message {
    ($name:literal, $ty:ty, $limit:ident) => {
        ($name, (|b: &[u8]| round_trip::<$ty>(b, Limit::$limit)) as fn(&[u8]))
    };
}

/// Every message a peer can make this replica decode: requests in Raft's
/// envelope and the replies to its own calls. One line per type.
pub const PEER_MESSAGES: &[Named] = &[
    ("envelope head", |b| {
        // The header is read first, from the front of any request.
        if let Ok(head) = codec::decode_prefix::<EnvelopeHead>(b) {
            let encoded = codec::encode(&head).expect("a decoded header encodes");
            codec::decode_prefix::<EnvelopeHead>(&encoded).expect("an encoded header decodes");
        }
    }),
    message!("raft append", Envelope<AppendEntriesRequest<TypeConfig>>, Small),
    message!("raft vote", Envelope<VoteRequest<NodeId>>, Small),
    message!("raft snapshot", Envelope<InstallSnapshotRequest<TypeConfig>>, Small),
    message!("heartbeat", Envelope<Heartbeat>, Small),
    message!("heartbeat v2", Envelope<HeartbeatV2>, Small),
    message!("hello / applied", Envelope<()>, Small),
    message!("manage", Envelope<Manage>, Small),
    message!("append reply", Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>, Small),
    message!("vote reply", Result<VoteResponse<NodeId>, RaftError<NodeId>>, Small),
    message!("snapshot reply", Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>, Small),
    message!("heartbeat reply", HeartbeatAck, Small),
    message!("hello reply", HelloReply, Small),
    message!("manage reply", ManageReply, Small),
    message!("applied reply", Option<u64>, Small),
    message!("nodes query", Envelope<server_wire::NodesQuery>, Small),
    message!("pods query", Envelope<server_wire::PodsQuery>, Small),
    message!("push", Envelope<server_wire::Push>, Small),
    message!("points query", Envelope<server_wire::PointsQuery>, Small),
    message!("nodes reply", server_wire::NodesReply, Large),
    message!("pods reply", server_wire::PodsReply, Large),
    message!("push reply", server_wire::PushAck, Small),
    message!("points reply", server_wire::PointsReply, Large),
];

/// A peer message: the first byte picks the type, the rest is its body.
pub fn peer_message(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else { return };
    let (_, decode) = PEER_MESSAGES[usize::from(pick) % PEER_MESSAGES.len()];
    decode(body);
}

/// Labels to match selectors against, made from the selector text itself so
/// that matches and misses both happen.
fn labels_from(text: &str) -> BTreeMap<String, String> {
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphanumeric() && !"-_./".contains(c)).collect();
    words.windows(2).map(|w| (w[0].to_string(), w[1].to_string())).collect()
}

/// A `labelSelector`: parsed without a panic; a parsed selector prints as
/// text that parses back to the same selector.
pub fn label_selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(selector) = LabelSelector::parse(text) else { return };
    let printed = selector.to_string();
    match LabelSelector::parse(&printed) {
        Ok(again) => assert_eq!(again, selector, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let labels = labels_from(text);
    let _ = selector.matches(&labels);
    let _ = selector.clone().and(&selector).matches(&labels);
}

/// A `fieldSelector`: parsed without a panic, and matched.
pub fn field_selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(selector) = FieldSelector::parse(text) else { return };
    let _ = selector.matches("name", None);
    // One term matches the object it names, unless it is negated.
    if let [term] = selector.terms() {
        let (name, namespace) = match term.field {
            Field::Name => (term.value.as_str(), ""),
            Field::Namespace => ("", term.value.as_str()),
        };
        assert_eq!(selector.matches(name, Some(namespace)), !term.negated, "{text:?}");
    }
}

/// A request's parameters: the first line is an `Accept` header, the rest
/// the raw query string (`labelSelector`, `fieldSelector`, `watch`,
/// `includeObject`, `pretty`, ...), read as the API reads them.
pub fn query_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (accept, query) = text.split_once('\n').unwrap_or(("", &text));
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(accept) {
        headers.insert(http::header::ACCEPT, v);
    }
    let req = Req { headers, query: Some(query.to_string()) };
    if let Ok(opts) = ListOptions::parse(&req) {
        // What the API sends peers must parse the same way there.
        if !opts.label_raw.is_empty() {
            assert_eq!(LabelSelector::parse(&opts.label_raw).ok(), Some(opts.label));
        }
    }
    for endpoint in [Endpoint::Resource, Endpoint::Plain, Endpoint::RootDiscovery] {
        let _ = req.negotiate(endpoint);
    }
    let _ = IncludeObject::parse(req.param("includeObject").as_deref());
    let _ = req.fail(apimachinery::status::Status::bad_request(query.to_string()));
    let _ = decode_component(query);
}
