//! The server's peer routes, mounted on the peer port beside Raft's: each
//! opens the envelope with the Raft node (version, cluster, target, and the
//! sender's certificate), answers from this replica's points, and replies in
//! Raft's codec. No decisions: the asker merges.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use tokio::sync::watch;

use super::answer::Answerer;
use super::wire::{NodesQuery, NodesReply, PodsQuery, PodsReply, PointsQuery, PointsReply, Push, PushAck, path};
use crate::model::now_nanos;
use crate::ownership::Ownership;

/// What the handlers share.
#[derive(Clone)]
pub struct PeerState {
    /// The Raft node (envelopes).
    pub node: Arc<raft::Node>,
    /// The local answers.
    pub answerer: Answerer,
    /// The epoch this replica acts on.
    pub ownership: watch::Receiver<Arc<Ownership>>,
}

/// The routes, with the Raft codec's request body limit.
pub fn routes(state: PeerState) -> Router {
    Router::new()
        .route(path::NODES, post(nodes))
        .route(path::PODS, post(pods))
        .route(path::PUSH, post(push))
        .route(path::POINTS, post(points))
        .layer(DefaultBodyLimit::max(raft::codec::DECODE_LIMIT))
        .with_state(state)
}

type Certs = Option<Extension<tls::PeerCertificates>>;

fn reply<T: serde::Serialize>(value: &T) -> Response {
    match raft::codec::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding reply: {e}")).into_response(),
    }
}

async fn nodes(State(st): State<PeerState>, certs: Certs, body: Bytes) -> Response {
    let (_, q): (_, NodesQuery) = match st.node.open(&certs, &body) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let epoch = st.ownership.borrow().epoch;
    reply(&NodesReply { epoch, items: st.answerer.nodes(&q.names, q.source, now_nanos()) })
}

async fn pods(State(st): State<PeerState>, certs: Certs, body: Bytes) -> Response {
    let (_, q): (_, PodsQuery) = match st.node.open(&certs, &body) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let epoch = st.ownership.borrow().epoch;
    match st.answerer.pods(&q, now_nanos()) {
        Ok(items) => reply(&PodsReply { epoch, items }),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn push(State(st): State<PeerState>, certs: Certs, body: Bytes) -> Response {
    let (from, p): (_, Push) = match st.node.open(&certs, &body) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let (handover, batches) = (p.handover, p.points.len());
    let taken = st.answerer.take(p, now_nanos());
    if handover {
        tracing::debug!(from = %format_args!("{from:016x}"), batches, taken, "handover received");
    }
    reply(&PushAck { taken })
}

async fn points(State(st): State<PeerState>, certs: Certs, body: Bytes) -> Response {
    let (_, q): (_, PointsQuery) = match st.node.open(&certs, &body) {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    reply(&PointsReply { points: st.answerer.points(&q.names) })
}
