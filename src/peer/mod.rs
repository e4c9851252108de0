//! The peer port: the one mutual-TLS listener replicas talk to each other
//! on (Raft, liveness, the cluster view, and the server's own query routes),
//! and the client side of it. Only certificates signed by the cluster CA
//! get in; where its certificates come from and how they rotate is
//! [`credentials`]'. [`wire`] holds the server's messages, [`answer`] what this
//! replica answers from its own points, [`routes`] the handlers; the
//! fan-out that asks the others is `query`'s.

pub mod answer;
pub mod credentials;
pub mod push;
pub mod routes;
pub mod wire;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tls::{CertKey, TlsSource, mutual_tls_client_config};
use tokio_util::sync::CancellationToken;

use crate::config::ClusterSettings;

/// The peer route that serves the cluster view as JSON.
pub const VIEW_PATH: &str = "/cluster/view";

/// The mutual-TLS client configuration for talking to peers.
pub fn client_config(ca_file: &Path, cert_file: &Path, key_file: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let ca = std::fs::read(ca_file).with_context(|| format!("--peer-ca-file {}", ca_file.display()))?;
    let ck = CertKey::load(cert_file, key_file)?;
    Ok(mutual_tls_client_config(&ca, ck.chain, ck.key)?)
}

/// Binds the peer port and serves `routes` on it with `tls` (see
/// [`credentials`]) until `shutdown`.
pub async fn serve(
    settings: &ClusterSettings,
    tls: TlsSource,
    routes: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.peer_listen)
        .await
        .with_context(|| format!("binding the peer port {}", settings.peer_listen))?;
    tracing::info!(addr = %settings.peer_listen, name = %settings.name, "serving the peer port");
    let options = tls::ServeOptions { limits: settings.peer_limits, ..tls::ServeOptions::default() };
    tokio::spawn(tls::serve_with(listener, tls, routes, options, shutdown));
    Ok(())
}

/// Fetches a replica's [`crate::member::ClusterStatus`] from its peer port
/// (`host:port`), as `ha-metrics-server cluster` does.
pub async fn fetch_view(peer: &str, client: rustls::ClientConfig) -> anyhow::Result<crate::member::ClusterStatus> {
    use http_body_util::{BodyExt, Empty};
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let http: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let req = http::Request::get(format!("https://{peer}{VIEW_PATH}")).body(Empty::new())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), http.request(req))
        .await
        .with_context(|| format!("{peer}: no answer within 10s"))?
        .with_context(|| format!("{peer}: request failed"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.with_context(|| format!("{peer}: reading the answer"))?.to_bytes();
    anyhow::ensure!(status.is_success(), "{peer}: {status}: {}", String::from_utf8_lossy(&body));
    let status: Option<crate::member::ClusterStatus> =
        serde_json::from_slice(&body).with_context(|| format!("{peer}: not a cluster status"))?;
    status.with_context(|| format!("{peer}: could not compute its status"))
}
