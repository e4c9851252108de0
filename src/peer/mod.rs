//! The peer port, as transport: the one mutual-TLS listener replicas talk
//! to each other on (Raft, liveness, the cluster view, and the server's own
//! routes), and the client side of it. Only certificates signed by the
//! cluster CA get in; where its certificates come from and how they rotate is
//! [`credentials`]'. [`wire`] holds the server's messages, [`routes`] opens
//! them and hands them to whoever answers ([`routes::Answers`],
//! [`routes::Intake`]), and [`call`] asks many members at once with one
//! deadline. What a message means, who is asked and what a missing part
//! means are `query`'s and `replica`'s: nothing here decides.

pub mod call;
pub mod credentials;
pub mod routes;
pub mod wire;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tls::{CertKey, TlsSource, mutual_tls_client_config};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterSettings;

/// The mutual-TLS client configuration for talking to peers.
pub fn client_config(ca_file: &Path, cert_file: &Path, key_file: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let ca = std::fs::read(ca_file).with_context(|| format!("--peer-ca-file {}", ca_file.display()))?;
    let ck = CertKey::load(cert_file, key_file)?;
    Ok(mutual_tls_client_config(&ca, ck.chain, ck.key)?)
}

/// Binds the peer port and serves `routes` on it with `tls` (see
/// [`credentials`]) until `shutdown`, its connections on `runtime` (the
/// control plane's: see `member::control`).
pub fn serve(
    settings: &ClusterSettings,
    tls: TlsSource,
    routes: axum::Router,
    runtime: &tokio::runtime::Handle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Registered with the reactor of the runtime that serves it.
    let listener = {
        let _on = runtime.enter();
        tls::serve::bind(settings.peer_listen, false)
    }
    .with_context(|| format!("binding the peer port {}", settings.peer_listen))?;
    tracing::info!(addr = %settings.peer_listen, name = %settings.name, "serving the peer port");
    // A member cancels the calls a hedge or the deadline made moot; on a
    // loaded replica many are reset before this side accepted them, and
    // h2's default (20 such a connection) then closed the connection with
    // every call on it (seen in the 10,000-node rolling restart). Members
    // are authenticated: the bound is the in-flight cap.
    let resets =
        settings.peer_limits.max_requests_in_flight.unwrap_or(crate::config::defaults::PEER_MAX_REQUESTS_INFLIGHT);
    let options = tls::ServeOptions {
        limits: settings.peer_limits,
        http2_max_pending_accept_reset_streams: Some(resets),
        ..tls::ServeOptions::default()
    };
    runtime.spawn(tls::serve_with(listener, tls, routes, options, shutdown));
    Ok(())
}

/// Most bytes read from a peer's answer to [`get_json`]: the cluster view of
/// a large cluster is a few hundred kilobytes.
pub const GET_LIMIT: usize = 4 << 20;

/// GETs `path` from a replica's peer port (`host:port`) and decodes its
/// JSON answer (at most [`GET_LIMIT`] bytes), as `ha-metrics-server cluster`
/// reads the cluster view.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    peer: &str,
    path: &str,
    client: rustls::ClientConfig,
) -> anyhow::Result<T> {
    use http_body_util::{BodyExt, Empty, Limited};
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let http: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let req = http::Request::get(format!("https://{peer}{path}")).body(Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), http.request(req))
        .await
        .with_context(|| format!("{peer}: no answer within 10s"))?
        .with_context(|| format!("{peer}: request failed"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), GET_LIMIT)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{peer}: reading the answer (at most {GET_LIMIT} bytes): {e}"))?
        .to_bytes();
    anyhow::ensure!(status.is_success(), "{peer}: {status}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).with_context(|| format!("{peer}: not the expected JSON"))
}
