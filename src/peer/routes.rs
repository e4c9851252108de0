//! The server's peer routes, mounted on the peer port beside Raft's: each
//! opens the envelope with the Raft node (version, cluster, target, and the
//! sender bound to its certificate: a sender the certificate does not name,
//! or an id no member has, is refused with a 403 and counted before any
//! handler runs), hands the message to whoever answers it, and
//! replies in Raft's codec. What an answer holds is [`Answers`]' business
//! (the query side), what to do with pushed points [`Intake`]'s (the
//! replica side); this module only carries them.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use raft::NodeId;

use super::wire::{NodesQuery, NodesReply, PodsQuery, PodsReply, PointsQuery, PointsReply, Push, PushAck, path};

/// What this replica answers from the points it holds, when a peer asks
/// (`from`: the member the request's certificate names).
pub trait Answers: Send + Sync + 'static {
    /// Usage of the named nodes it can serve.
    fn nodes(&self, from: NodeId, query: NodesQuery) -> NodesReply;
    /// Usage of the pods the query selects; an error when the query's
    /// selectors do not parse (said to the asker as a 400).
    fn pods(&self, from: NodeId, query: PodsQuery) -> Result<PodsReply, String>;
}

/// What this replica does with points other members send or ask for
/// (`from`: the member the request's certificate names).
pub trait Intake: Send + Sync + 'static {
    /// Takes pushed points (copies or a handover) from member `from`.
    fn push(&self, from: NodeId, push: Push) -> PushAck;
    /// The last points of the named nodes, for a member about to hold them.
    fn points(&self, from: NodeId, query: PointsQuery) -> PointsReply;
}

/// What the handlers share.
#[derive(Clone)]
pub struct PeerState {
    /// The Raft node (envelopes).
    pub node: Arc<raft::Node>,
    /// The query side.
    pub answers: Arc<dyn Answers>,
    /// The replica side.
    pub intake: Arc<dyn Intake>,
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

/// [`reply`] for an answer that can be large (a pods list, the points of
/// many nodes): encoded on the blocking pool, off the runtime threads.
async fn reply_large<T: serde::Serialize + Send + 'static>(value: T) -> Response {
    match raft::codec::encode_off_runtime(value).await {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding reply: {e}")).into_response(),
    }
}

async fn nodes(State(st): State<PeerState>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match st.node.open::<NodesQuery>(&certs, &headers, &body) {
        Ok((from, q)) => reply(&st.answers.nodes(from, q)),
        Err(refused) => refused,
    }
}

async fn pods(State(st): State<PeerState>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match st.node.open::<PodsQuery>(&certs, &headers, &body) {
        Ok((from, q)) => match st.answers.pods(from, q) {
            Ok(r) => reply_large(r).await,
            Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
        },
        Err(refused) => refused,
    }
}

async fn push(State(st): State<PeerState>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match st.node.open::<Push>(&certs, &headers, &body) {
        Ok((from, p)) => reply(&st.intake.push(from, p)),
        Err(refused) => refused,
    }
}

async fn points(State(st): State<PeerState>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match st.node.open::<PointsQuery>(&certs, &headers, &body) {
        Ok((from, q)) => reply_large(st.intake.points(from, q)).await,
        Err(refused) => refused,
    }
}
