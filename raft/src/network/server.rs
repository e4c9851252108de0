//! The peer routes this crate serves (the server mounts them on its
//! mutual-TLS peer listener). Each handler opens the envelope — refusing a
//! wrong protocol version, cluster id or target id — and hands the body to
//! Raft or the membership manager. No listener here.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tls::PeerCertificates;
use tls::identity::Identity;

use super::wire::{
    ANY_NODE, Envelope, EnvelopeHead, Heartbeat, HeartbeatAck, HeartbeatV2, HelloReply, MIN_PROTOCOL_VERSION, Manage,
    PROTOCOL_HEADER, PROTOCOL_VERSION, path,
};
use crate::app::App;
use crate::codec;
use crate::manager::leader;
use crate::state::NodeId;
use crate::types::TypeConfig;

/// The routes, with a body limit equal to the decode limit.
pub(crate) fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route(path::APPEND, post(append))
        .route(path::VOTE, post(vote))
        .route(path::SNAPSHOT, post(snapshot))
        .route(path::HEARTBEAT, post(heartbeat))
        .route(path::HELLO, post(hello))
        .route(path::MANAGE, post(manage))
        .route(path::APPLIED, post(applied))
        .layer(DefaultBodyLimit::max(codec::DECODE_LIMIT))
        .with_state(app)
}

fn refuse(status: StatusCode, reason: String) -> Response {
    (status, reason).into_response()
}

fn reply<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding reply: {e}")),
    }
}

/// The certificates a request came with (absent on the plain-HTTP test transport).
pub(crate) type Certs = Option<Extension<PeerCertificates>>;

/// Decodes and checks an envelope (the refusal is the response to send):
/// protocol version, cluster id, target (`any_target` allows `to ==
/// ANY_NODE`) and, on the TLS transport, that the client certificate names
/// the member the sender claims to be. A sender this node does not know yet
/// (it is not initialized, or is a learner still catching up) has only its
/// cluster-CA certificate checked; a joiner's claim is checked by `manage`.
/// Records the highest protocol version the sender says it speaks.
#[allow(clippy::result_large_err)] // the refusal is returned as is
pub(crate) fn open<T: DeserializeOwned>(
    app: &App,
    certs: &Certs,
    headers: &HeaderMap,
    body: &[u8],
    any_target: bool,
) -> Result<(NodeId, T), Response> {
    open_with(app, certs, headers, body, any_target, |_, bytes| {
        codec::decode::<Envelope<T>>(bytes).map(|e| (e.from, e.body))
    })
}

/// [`open`] with the body decoded by `decode(protocol_version, bytes)`, for
/// messages whose shape differs between the protocol versions accepted.
#[allow(clippy::result_large_err)] // the refusal is returned as is
pub(crate) fn open_with<T>(
    app: &App,
    certs: &Certs,
    headers: &HeaderMap,
    body: &[u8],
    any_target: bool,
    decode: impl FnOnce(u32, &[u8]) -> std::io::Result<(NodeId, T)>,
) -> Result<(NodeId, T), Response> {
    if app.stop.is_cancelled() {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, format!("node {:016x} is stopping", app.id)));
    }
    let env: EnvelopeHead = codec::decode_prefix(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("undecodable peer request header: {e}")))?;
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&env.protocol_version) {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "protocol version {} not supported (this node speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})",
                env.protocol_version
            ),
        ));
    }
    if env.cluster_id != app.config.cluster_id {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!("request for cluster {:?} reached cluster {:?}", env.cluster_id, app.config.cluster_id),
        ));
    }
    if env.to != app.id && !(any_target && env.to == ANY_NODE) {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "request for node {:016x} reached node {:016x} ({}); that incarnation is gone",
                env.to, app.id, app.info.name
            ),
        ));
    }
    if let Some(Extension(certs)) = certs
        && let Some(info) = app.member_info(env.from)
        && !names(certs, &info)
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("the client certificate does not name member {info} that the request claims to come from"),
        ));
    }
    let (from, decoded) = decode(env.protocol_version, body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("undecodable peer request: {e}")))?;
    let spoken = headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
        .unwrap_or(env.protocol_version)
        .max(env.protocol_version);
    app.record_version(from, spoken);
    Ok((from, decoded))
}

/// Whether the leaf certificate names the member `info`.
pub(crate) fn names(certs: &PeerCertificates, info: &crate::state::MemberInfo) -> bool {
    certs.0.first().and_then(Identity::of).is_some_and(|id| id.names_member(&info.name, &info.peer_addr))
}

async fn append(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<AppendEntriesRequest<TypeConfig>>(&app, &certs, &headers, &body, false) {
        Ok((_, req)) => reply(&app.raft.append_entries(req).await),
        Err(r) => r,
    }
}

async fn vote(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<VoteRequest<NodeId>>(&app, &certs, &headers, &body, false) {
        Ok((_, req)) => reply(&app.raft.vote(req).await),
        Err(r) => r,
    }
}

async fn snapshot(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<InstallSnapshotRequest<TypeConfig>>(&app, &certs, &headers, &body, false) {
        Ok((_, req)) => reply(&app.raft.install_snapshot(req).await),
        Err(r) => r,
    }
}

async fn heartbeat(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    let decode = |version: u32, bytes: &[u8]| match version {
        2 => codec::decode::<Envelope<HeartbeatV2>>(bytes).map(|e| (e.from, Heartbeat::from(e.body))),
        _ => codec::decode::<Envelope<Heartbeat>>(bytes).map(|e| (e.from, e.body)),
    };
    match open_with(&app, &certs, &headers, &body, false, decode) {
        Ok((from, hb)) => {
            app.record_heartbeat(from, &hb);
            reply(&HeartbeatAck { leader: app.raft.metrics().borrow().current_leader })
        }
        Err(r) => r,
    }
}

async fn hello(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<()>(&app, &certs, &headers, &body, true) {
        Ok(_) => {
            let m = app.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let nodes: std::collections::BTreeMap<_, _> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
            let leader = m.current_leader.and_then(|l| nodes.get(&l).map(|n| (l, n.clone())));
            reply(&HelloReply {
                node_id: app.id,
                info: app.info.clone(),
                initialized: !nodes.is_empty(),
                voters: membership.voter_ids().collect(),
                nodes,
                leader,
            })
        }
        Err(r) => r,
    }
}

async fn manage(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<Manage>(&app, &certs, &headers, &body, true) {
        Ok((_, Manage::Join(info))) if certs.as_ref().is_some_and(|Extension(c)| !names(c, &info)) => {
            refuse(StatusCode::FORBIDDEN, format!("the client certificate does not name {info}, which asks to join"))
        }
        Ok((from, req)) => reply(&leader::handle_manage(&app, from, req).await),
        Err(r) => r,
    }
}

async fn applied(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<()>(&app, &certs, &headers, &body, false) {
        Ok(_) => reply(&app.raft.metrics().borrow().last_applied.map(|l| l.index)),
        Err(r) => r,
    }
}
