//! This replica as a member of the replica cluster: starts its Raft node
//! from the validated [`ClusterSettings`], mounts the node's routes (and the
//! cluster view) on the peer port, mirrors the node's view into the Raft
//! gauges, and says how to leave on SIGTERM ([`leave`]). Who owns which
//! kubelet is not decided here: that is `ownership`'s job, built on
//! [`raft::Node::state`].

pub mod gauges;
pub mod leave;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::routing::get;
use raft::PeerClient;
use tls::TlsPolicy;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterSettings;
use gauges::RaftMetrics;

/// A running member: its Raft node, with the peer port serving.
pub struct Member {
    /// The Raft node.
    pub node: Arc<raft::Node>,
}

/// Starts the node and the peer listener, and refreshes `gauges` every second.
pub async fn start(
    settings: &ClusterSettings,
    policy: &TlsPolicy,
    gauges: RaftMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<Member> {
    let local = Some(settings.peer_listen.ip()).filter(|ip| !ip.is_unspecified());
    let client = PeerClient::tls_from(
        crate::peer::client_config(&settings.ca_file, &settings.cert_file, &settings.key_file)?,
        local,
    );
    let node = Arc::new(
        raft::Node::start(settings.raft.clone(), client, shutdown.clone()).await.context("starting the Raft node")?,
    );
    let view_node = node.clone();
    let routes = node.routes().route(
        crate::peer::VIEW_PATH,
        get(move || {
            let n = view_node.clone();
            async move { Json(n.view()) }
        }),
    );
    crate::peer::serve(settings, policy, routes, shutdown.clone()).await?;
    let n = node.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => gauges.update(&n.view()),
            }
        }
    });
    Ok(Member { node })
}
