//! The caps of [`ServeOptions`] (the peer port's `--peer-max-connections`
//! and `--peer-max-requests-inflight`, issue 18): connections past the cap
//! wait unaccepted, requests past it get 429, and both free up.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{fetch, pki};
use crate::serve::{ServeLimits, ServeOptions, serve_with};
use crate::{TlsPolicy, TlsSource, api_server_config, config};
use sim::addr::Block;

/// Serves `/slow` (waits for `gate`) and `/fast` with `limits`.
async fn start(
    ip: std::net::IpAddr,
    limits: ServeLimits,
    gate: std::sync::Arc<Semaphore>,
) -> (std::net::SocketAddr, CancellationToken, rustls::ClientConfig) {
    let p = pki(ip);
    let policy = TlsPolicy::default();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let g = gate.clone();
                async move {
                    let _ = g.acquire().await.map(|p| p.forget());
                    "slow"
                }
            }),
        )
        .route("/fast", get(|| async { "fast" }));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let options = ServeOptions { limits, ..ServeOptions::default() };
    tokio::spawn(serve_with(listener, TlsSource::new(server), app, options, token.clone()));
    let client = config::verifying_client_config(p.ca.cert_pem().as_bytes(), None, &policy).unwrap();
    (addr, token, client)
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_429_and_the_cap_frees_up() {
    let block = Block::acquire().unwrap();
    let gate = std::sync::Arc::new(Semaphore::new(0));
    let limits = ServeLimits { max_connections: None, max_requests_in_flight: Some(1) };
    let (addr, token, client) = start(block.aux(0).into(), limits, gate.clone()).await;
    let c = client.clone();
    let held = tokio::spawn(async move { fetch(addr, c, true, "/slow").await.unwrap() });
    let refused = sim::wait::until(Duration::from_secs(10), async || {
        fetch(addr, client.clone(), false, "/fast").await.is_ok_and(|(code, _)| code == 429)
    })
    .await;
    assert!(refused.is_some(), "a second request while the first holds the only slot");
    gate.add_permits(1);
    assert_eq!(held.await.unwrap().0, 200);
    assert_eq!(fetch(addr, client, false, "/fast").await.unwrap().0, 200);
    token.cancel();
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let block = Block::acquire().unwrap();
    let gate = std::sync::Arc::new(Semaphore::new(0));
    let limits = ServeLimits { max_connections: Some(1), max_requests_in_flight: None };
    let (addr, token, client) = start(block.aux(0).into(), limits, gate.clone()).await;
    let c = client.clone();
    let held = tokio::spawn(async move { fetch(addr, c, true, "/slow").await.unwrap() });
    // The second connection is not accepted (no TLS handshake) while the
    // first is open.
    let c = client.clone();
    let second = tokio::spawn(async move { fetch(addr, c, false, "/fast").await.unwrap() });
    let waited = tokio::time::timeout(Duration::from_millis(500), async {
        while !second.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "the second connection was served beside the first");
    gate.add_permits(1);
    assert_eq!(held.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200, "served once the first closed");
    token.cancel();
}
