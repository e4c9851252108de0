//! The aggregation proxy against a TLS backend that records what it got.

use std::net::SocketAddr;

use super::backend::Backend;
use super::{Harness, get_raw};
use crate::apiserver::{KubeconfigUser, UserInfo};

async fn send(client: &kube::Client, uri: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.send(req.body(Vec::new()).expect("request").map(kube::client::Body::from)).await.expect("sent");
    let (parts, body) = resp.into_parts();
    let body = http_body_util::BodyExt::collect(body).await.expect("body").to_bytes();
    (parts.status.as_u16(), parts.headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn proxy_presents_the_front_proxy_certificate_and_caller_identity() {
    let h = Harness::start().await;
    let backend = Backend::start(h.block.replica(0).into(), &h.server.front_proxy_ca_pem(), &h.spec).await;
    h.server.set_metrics_backends(vec![backend.addr]);
    let client = h
        .client(KubeconfigUser::Token {
            token: "alice-token".into(),
            user: "alice".into(),
            groups: vec!["devs".into(), "qa".into()],
        })
        .await;
    // The kubeconfig registered plain alice; give her an extra attribute too.
    let mut alice = UserInfo::new("alice", &["devs", "qa"]);
    alice.extra.insert("authentication.kubernetes.io/credential-id".into(), vec!["X509SHA256=ab".into()]);
    h.server.add_token_for("alice-token", alice);

    let uri =
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dx&fieldSelector=metadata.name%3Dy";
    let (code, headers, body) = send(
        &client,
        uri,
        &[
            ("x-remote-user", "system:admin"),
            ("x-remote-group", "system:masters"),
            ("x-remote-extra-scopes", "all"),
            ("impersonate-user", "root"),
        ],
    )
    .await;
    assert_eq!(code, 418, "{body}");
    assert_eq!(headers.get("warning").map(|v| v.to_str().unwrap_or("")), Some("299 - \"echo backend\""));
    let seen = backend.seen();
    let s = seen.last().expect("backend got the request");
    assert_eq!(s.peer_cn.as_deref(), Some("front-proxy-client"));
    assert_eq!(s.method, "GET");
    assert_eq!(s.path, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods");
    assert_eq!(s.query.as_deref(), Some("fieldSelector=metadata.name%3Dy&labelSelector=app%3Dx"));
    assert_eq!(s.header_values("x-remote-user"), ["alice"]);
    assert_eq!(s.header_values("x-remote-group"), ["devs", "qa", "system:authenticated"]);
    assert_eq!(s.header_values("x-remote-extra-authentication.kubernetes.io%2fcredential-id"), ["X509SHA256=ab"]);
    assert!(s.header_values("x-remote-extra-scopes").is_empty());
    assert!(s.header_values("authorization").is_empty());
    assert!(s.header_values("impersonate-user").is_empty());
    assert_eq!(s.version, http::Version::HTTP_2);

    // After a rotation the proxy presents a certificate from the new CA,
    // which this backend (trusting only the old one) refuses.
    h.server.rotate_front_proxy_ca().expect("rotate");
    let (code, _, body) = send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await;
    assert_eq!(code, 503, "{body}");
    let fresh = Backend::start(h.block.replica(1).into(), &h.server.front_proxy_ca_pem(), &h.spec).await;
    h.server.set_metrics_backends(vec![fresh.addr]);
    let (code, _, _) = send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await;
    assert_eq!(code, 200);
    assert_eq!(fresh.seen()[0].peer_cn.as_deref(), Some("front-proxy-client"));
}

#[tokio::test]
async fn proxy_skips_refusing_backends_and_answers_503_without_any() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let (code, headers, body) = send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await;
    assert_eq!((code, body.as_str()), (503, "service unavailable\n"));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");

    // A port nobody listens on refuses connections.
    let closed = tokio::net::TcpListener::bind(SocketAddr::new(h.block.replica(2).into(), 0)).await.expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    h.server.set_metrics_backends(vec![dead]);
    assert_eq!(send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await.0, 503);

    let backend = Backend::start(h.block.replica(3).into(), &h.server.front_proxy_ca_pem(), &h.spec).await;
    h.server.set_metrics_backends(vec![dead, backend.addr]);
    for _ in 0..4 {
        assert_eq!(send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await.0, 200);
    }
    assert_eq!(backend.seen().len(), 4);
    // The aggregator itself answers the group document; the proxy never sees it.
    let (code, body) = get_raw(&client, "/apis/metrics.k8s.io", None).await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""preferredVersion":{"groupVersion":"metrics.k8s.io/v1beta1""#), "{body}");
    assert_eq!(backend.seen().len(), 4);
    // Unauthenticated callers never reach the backend.
    let mut config = kube::Config::new(h.server.url().parse().expect("url"));
    config.default_retry = false;
    config.accept_invalid_certs = true;
    let anonymous = kube::Client::try_from(config).expect("client");
    assert_eq!(send(&anonymous, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await.0, 401);
    assert_eq!(backend.seen().len(), 4);
}

#[tokio::test]
async fn proxy_verifies_backends_against_a_ca_bundle_when_set() {
    let h = Harness::start().await;
    let client = h.admin().await;
    let backend = Backend::start(h.block.replica(4).into(), &h.server.front_proxy_ca_pem(), &h.spec).await;
    h.server.set_metrics_backends(vec![backend.addr]);
    h.server.set_metrics_ca_bundle(Some(backend.ca_pem.clone())).expect("bundle");
    assert_eq!(send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await.0, 200);
    let other = tls::pki::Ca::new("unrelated").expect("ca");
    h.server.set_metrics_ca_bundle(Some(other.cert_pem().to_string())).expect("bundle");
    assert_eq!(send(&client, "/apis/metrics.k8s.io/v1beta1/nodes", &[]).await.0, 503);
}
