//! The peer routes this crate serves (the server mounts them on its
//! mutual-TLS peer listener). Each handler opens the envelope — refusing a
//! wrong protocol version, cluster id or target id, and a sender its client
//! certificate does not name (`bind`) — and hands the body to Raft or the
//! membership manager. No listener here.

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

use super::bind::{self, Admit, Denied, Presented, Refusal};
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
/// the member the sender claims to be (`bind`). The routes addressed to
/// whoever listens (`any_target`: hello, manage) also admit a sender this
/// node does not know (a joiner; `manage` binds a join by its body); every
/// other route refuses it. Records the highest protocol version the sender
/// says it speaks.
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
    let admit = if any_target { Admit::Strangers } else { Admit::Members };
    bind::sender(presented(app, certs), env.from, app.sender_info(env.from).as_ref(), admit)
        .map_err(|d| deny(app, env.from, d))?;
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

/// What the transport says of the request's client certificate: none is
/// expected only when this node itself talks plain HTTP (crate tests).
fn presented<'a>(app: &App, certs: &'a Certs) -> Presented<'a> {
    match certs {
        Some(Extension(c)) => Presented::Tls(Some(c)),
        None if app.client.is_tls() => Presented::Tls(None),
        None => Presented::PlainTransport,
    }
}

/// Counts and logs a refusal (at most one line per reason every
/// [`bind::LOG_EVERY`]) and makes its response. A sender this node does not
/// know may be a member it has not heard of yet: members are asked whom
/// they know, so its next request can be bound.
fn deny(app: &App, from: NodeId, d: Denied) -> Response {
    if d.reason == Refusal::UnknownSender {
        app.introductions.want();
    }
    let (logged, from, label) = (app.refusals.count(d.reason), format_args!("{from:016x}"), d.reason.label());
    if logged && d.reason == Refusal::UnknownSender {
        // Expected for a moment while replicas bootstrap or join (counted all the same).
        tracing::debug!(member = app.id, %from, reason = label, message = %d.message, "peer request refused");
    } else if logged {
        tracing::warn!(member = app.id, %from, reason = label, message = %d.message, "peer request refused");
    }
    refuse(StatusCode::FORBIDDEN, d.message)
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

/// A join must name the joiner itself (its certificate names the name and
/// the peer address it joins under); drain and retire come from members only.
async fn manage(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    let (from, req) = match open::<Manage>(&app, &certs, &headers, &body, true) {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let bound = match &req {
        Manage::Join(info) => bind::joiner(presented(&app, &certs), from, info),
        Manage::Drain | Manage::Retire => {
            bind::sender(presented(&app, &certs), from, app.sender_info(from).as_ref(), Admit::Members)
        }
    };
    match bound {
        Ok(()) => reply(&leader::handle_manage(&app, from, req).await),
        Err(d) => deny(&app, from, d),
    }
}

async fn applied(State(app): State<Arc<App>>, certs: Certs, headers: HeaderMap, body: Bytes) -> Response {
    match open::<()>(&app, &certs, &headers, &body, false) {
        Ok(_) => reply(&app.raft.metrics().borrow().last_applied.map(|l| l.index)),
        Err(r) => r,
    }
}
