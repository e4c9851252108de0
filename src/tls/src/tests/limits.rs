//! The caps of [`ServeOptions`] (the peer port's `--peer-max-connections`
//! and `--peer-max-requests-inflight`, issue 18): connections past the cap
//! wait unaccepted, requests past it get 429, and both free up; streams a
//! client resets before they were accepted close the connection past
//! their bound.

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

/// Serves `/slow` (waits for `gate`) and `/fast` with `options`.
async fn start(
    ip: std::net::IpAddr,
    options: ServeOptions,
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
    tokio::spawn(serve_with(listener, TlsSource::new(server), app, options, token.clone()));
    let client = config::verifying_client_config(p.ca.cert_pem().as_bytes(), None, &policy).unwrap();
    (addr, token, client)
}

/// [`start`] with only `limits` set.
async fn start_limited(
    ip: std::net::IpAddr,
    limits: ServeLimits,
    gate: std::sync::Arc<Semaphore>,
) -> (std::net::SocketAddr, CancellationToken, rustls::ClientConfig) {
    start(ip, ServeOptions { limits, ..ServeOptions::default() }, gate).await
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_429_and_the_cap_frees_up() {
    let block = Block::acquire().unwrap();
    let gate = std::sync::Arc::new(Semaphore::new(0));
    let limits = ServeLimits { max_connections: None, max_requests_in_flight: Some(1) };
    let (addr, token, client) = start_limited(block.aux(0).into(), limits, gate.clone()).await;
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
    let (addr, token, client) = start_limited(block.aux(0).into(), limits, gate.clone()).await;
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

/// An HTTP/2 connection (ALPN h2) to `addr` and its driver task.
async fn h2_connect(
    addr: std::net::SocketAddr,
    mut config: rustls::ClientConfig,
) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<()>) {
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    let (send, conn) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
    (send, tokio::spawn(async move { conn.await.unwrap_or_default() }))
}

/// Sends `n` requests of `/slow` and resets each at once, all before the
/// connection is flushed, then asks `/fast` on the same connection.
async fn resets_then_a_request(
    addr: std::net::SocketAddr,
    client: rustls::ClientConfig,
    n: usize,
) -> Result<u16, h2::Error> {
    let (send, _driver) = h2_connect(addr, client).await;
    let mut ready = send.ready().await?;
    for _ in 0..n {
        let req = http::Request::get(format!("https://{addr}/slow")).body(()).unwrap();
        let (_resp, mut stream) = ready.send_request(req, false)?;
        stream.send_reset(h2::Reason::CANCEL);
    }
    let req = http::Request::get(format!("https://{addr}/fast")).body(()).unwrap();
    let (resp, _) = ready.send_request(req, true)?;
    Ok(resp.await?.status().as_u16())
}

#[tokio::test]
async fn streams_reset_before_they_were_accepted_close_the_connection_only_past_their_bound() {
    let block = Block::acquire().unwrap();
    let gate = std::sync::Arc::new(Semaphore::new(0));
    let serve = |ip: std::net::IpAddr, resets: Option<usize>| {
        let options = ServeOptions { http2_max_pending_accept_reset_streams: resets, ..ServeOptions::default() };
        start(ip, options, gate.clone())
    };
    // 150 streams reset in one burst (within the 200 concurrent streams
    // hyper allows): past h2's default of 20 the connection is closed (the
    // peer port's calls on it would all fail) ...
    let (addr, token, client) = serve(block.aux(0).into(), None).await;
    let got = resets_then_a_request(addr, client, 150).await;
    assert!(got.is_err(), "the connection survived 150 resets at h2's default bound: {got:?}");
    token.cancel();
    // ... and within a bound set above them it serves on.
    let (addr, token, client) = serve(block.aux(1).into(), Some(512)).await;
    assert_eq!(resets_then_a_request(addr, client, 150).await.unwrap(), 200);
    token.cancel();
}
