//! The client's two planes: the control plane's calls (Raft, liveness,
//! membership) never share a connection with the server's own calls, and
//! run on the control runtime whichever runtime calls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::post;
use raft::PeerClient;
use raft::network::client::ReplySize;
use raft::network::wire::{ANY_NODE, Envelope, PROTOCOL_VERSION};
use sim::addr::Block;

type Seen = Arc<Mutex<Vec<(String, SocketAddr)>>>;

/// A server that answers `()` on every path and records who asked.
async fn recording_server(addr: SocketAddr) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        post(move |ConnectInfo(from): ConnectInfo<SocketAddr>, uri: axum::http::Uri| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((uri.path().to_string(), from));
                raft::codec::encode(&()).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    seen
}

fn envelope() -> Envelope<()> {
    Envelope { protocol_version: PROTOCOL_VERSION, cluster_id: "c".into(), from: 1, to: ANY_NODE, body: () }
}

#[tokio::test]
async fn control_calls_run_on_the_control_runtime_over_connections_of_their_own() {
    let block = Block::acquire().expect("a free loopback address block");
    let addr = SocketAddr::new(block.replica(0).into(), 10251);
    let seen = recording_server(addr).await;
    let control = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = control.handle().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || control.block_on(stopped.cancelled()));
    let client = PeerClient::plain().on_control_runtime(handle.clone());
    let (a, t) = (addr.to_string(), Duration::from_secs(10));
    for _ in 0..3 {
        let () = client.call(&a, "/control", &envelope(), t).await.expect("control call");
        let () = client.call_with(&a, "/server", &envelope(), t, ReplySize::Large).await.expect("server call");
    }
    let seen = seen.lock().unwrap().clone();
    let from = |path: &str| -> Vec<SocketAddr> { seen.iter().filter(|(p, _)| p == path).map(|(_, a)| *a).collect() };
    let (control_from, server_from) = (from("/control"), from("/server"));
    assert_eq!((control_from.len(), server_from.len()), (3, 3), "{seen:?}");
    assert!(control_from.iter().all(|c| !server_from.contains(c)), "a connection carried both planes: {seen:?}");
    assert!(control_from.windows(2).all(|w| w[0] == w[1]), "control calls are pooled: {seen:?}");
    // With the control runtime gone, a control call says so; the server's
    // own calls still go.
    stop.cancel();
    thread.join().unwrap();
    let r: Result<(), _> = client.call(&a, "/control", &envelope(), t).await;
    assert!(r.as_ref().is_err_and(|e| e.to_string().contains("control runtime")), "{r:?}");
    let () = client.call_with(&a, "/server", &envelope(), t, ReplySize::Large).await.expect("server call");
}
