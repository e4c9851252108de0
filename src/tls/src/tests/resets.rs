//! Streams a client resets before the server took them up
//! ([`ServeOptions::http2_max_pending_resets`]): past h2's default of 20
//! pending at once, the whole connection is closed, and every stream on it
//! with it; raised, the connection goes on.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{BoxError, app, pki};
use crate::serve::{ServeOptions, serve_with};
use crate::{TlsPolicy, TlsSource, api_server_config, config};
use sim::addr::Block;

/// Streams reset in one burst, before the server reads any of them.
const BURST: usize = 64;

/// Opens one HTTP/2 connection to a server started with `pending_resets`,
/// sends [`BURST`] requests each reset at once (all in one write: the server
/// reads them before it takes any up), then asks `/whoami` on the same
/// connection; its status, or the error the connection ended with.
async fn after_a_burst_of_resets(ip: std::net::IpAddr, pending_resets: Option<usize>) -> Result<u16, BoxError> {
    let p = pki(ip);
    let policy = TlsPolicy::default();
    let server = api_server_config(p.server.chain.clone(), p.server.key.clone_key(), &policy).unwrap();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let options = ServeOptions { http2_max_pending_resets: pending_resets, ..ServeOptions::default() };
    tokio::spawn(serve_with(listener, TlsSource::new(server), app(), options, token));
    let mut client = config::verifying_client_config(p.ca.cert_pem().as_bytes(), None, &policy).unwrap();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await?;
    let (mut send, mut conn) = h2::client::handshake(tls).await?;
    // The connection is not driven while the burst is queued: it goes out
    // in one write once it is.
    for _ in 0..BURST {
        let req = http::Request::get(format!("https://{addr}/whoami")).body(())?;
        let (response, mut stream) = send.send_request(req, true)?;
        stream.send_reset(h2::Reason::CANCEL);
        drop(response);
    }
    let ask = async move {
        let mut send = send.ready().await?;
        let req = http::Request::get(format!("https://{addr}/whoami")).body(())?;
        let (response, _) = send.send_request(req, true)?;
        Ok::<u16, BoxError>(response.await?.status().as_u16())
    };
    tokio::select! {
        done = &mut conn => Err(match done {
            Ok(()) => "the connection closed".into(),
            Err(e) => e.into(),
        }),
        status = ask => status,
    }
}

#[tokio::test]
async fn a_burst_of_reset_streams_closes_the_connection_at_h2s_default() {
    let block = Block::acquire().unwrap();
    let got = after_a_burst_of_resets(block.aux(0).into(), None).await;
    assert!(got.is_err(), "the connection survived {BURST} pending resets at the default: {got:?}");
}

#[tokio::test]
async fn a_burst_of_reset_streams_within_the_raised_limit_leaves_the_connection_serving() {
    let block = Block::acquire().unwrap();
    let got = after_a_burst_of_resets(block.aux(0).into(), Some(1024)).await;
    assert_eq!(got.unwrap(), 200);
}
