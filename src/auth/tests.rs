//! The layer behind the real TLS listener (`tls::serve`): the chain a
//! client presents in the handshake is what the chain checks see.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::auth::testkit::{Cas, FakeAccess, FakeTokens, state};
use crate::auth::{TrustStore, UserInfo, layer};
use sim::addr::Block;
use tls::config::{CertKey, api_server_config, verifying_client_config};
use tls::pki::Ca;
use tls::policy::TlsPolicy;
use tls::serve::{TlsSource, serve};

async fn whoami(user: axum::Extension<UserInfo>) -> String {
    format!("{}|{}", user.name, user.groups.join(","))
}

async fn get_over_tls(
    addr: std::net::SocketAddr,
    server_ca: &Ca,
    client: Option<CertKey>,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut cfg = verifying_client_config(server_ca.cert_pem().as_bytes(), client, &TlsPolicy::default()).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let mut req = Request::get("/apis/metrics.k8s.io/v1beta1/nodes").header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    let code = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn cert_key(ca: &Ca, cn: &str, orgs: &[&str]) -> CertKey {
    let pair = ca.issue_client(cn, orgs).unwrap();
    CertKey::from_pair(&pair, cn).unwrap()
}

#[tokio::test]
async fn front_proxy_and_client_certs_over_real_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cas = Cas::new();
    let serving_ca = Ca::new("serving").unwrap();
    let block = Block::acquire().unwrap();
    let server =
        CertKey::from_pair(&serving_ca.issue_server("localhost", &["localhost".into()]).unwrap(), "server").unwrap();
    let config = api_server_config(server.chain, server.key, &TlsPolicy::default()).unwrap();
    let access = FakeAccess::allowing(&["carol"]);
    let app = Router::new().route("/apis/metrics.k8s.io/v1beta1/nodes", get(whoami)).layer(layer(state(
        TrustStore::fixed(cas.trust()),
        Arc::new(FakeTokens::default()),
        access.clone(),
    )));
    let listener = tokio::net::TcpListener::bind((block.replica(0), 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(listener, TlsSource::new(config), app, cancel.clone()));

    let aggregator = [("X-Remote-User", "system:kube-aggregator"), ("X-Remote-Group", "system:masters")];
    let proxy = cert_key(&cas.proxy, "front-proxy-client", &[]);
    assert_eq!(
        get_over_tls(addr, &serving_ca, Some(proxy), &aggregator).await,
        (StatusCode::OK, "system:kube-aggregator|system:masters,system:authenticated".into())
    );
    assert_eq!(get_over_tls(addr, &serving_ca, None, &aggregator).await.0, StatusCode::UNAUTHORIZED);
    let forged = cert_key(&cas.rogue, "front-proxy-client", &[]);
    assert_eq!(get_over_tls(addr, &serving_ca, Some(forged), &aggregator).await.0, StatusCode::UNAUTHORIZED);
    let carol = cert_key(&cas.client, "carol", &["ops"]);
    assert_eq!(
        get_over_tls(addr, &serving_ca, Some(carol), &aggregator).await,
        (StatusCode::OK, "carol|ops,system:authenticated".into())
    );
    assert_eq!(access.calls(), 1, "only carol needed a SubjectAccessReview");

    cancel.cancel();
    task.await.unwrap().unwrap();
}
