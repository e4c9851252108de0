//! The real transport: HTTP/2 over mutual TLS with a cluster CA. A caller
//! without a client certificate from the CA gets nothing.

mod support;

use std::time::Duration;

use raft::network::wire::{ANY_NODE, Envelope, HelloReply, PROTOCOL_VERSION, path};
use raft::{CallError, PeerClient};
use support::{Cluster, settled, slack, tls::Pki, wait_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forms_over_mutual_tls_and_refuses_callers_without_a_ca_client_cert() {
    let mut c = Cluster::new(3, 3, 3);
    c.pki = Some(Pki::new());
    c.start_all(&[0, 1, 2]).await;
    let took =
        wait_cluster(&c, "3 Active over mTLS", slack(Duration::from_secs(10)), |c| settled(c, &["r0", "r1", "r2"]))
            .await;
    println!("bootstrap over mTLS: {took:?}");

    let pki = c.pki.as_ref().expect("pki");
    let addr = c.replicas[0].addr.to_string();
    let env = Envelope {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "test-cluster".to_string(),
        from: 7,
        to: ANY_NODE,
        body: (),
    };
    let t = Duration::from_secs(5);
    let leaf = pki.leaf("r0", c.replicas[0].addr.ip());
    let ok: HelloReply =
        PeerClient::tls(pki.client_config(Some(&leaf))).call(&addr, path::HELLO, &env, t).await.expect("hello");
    assert!(ok.initialized);

    let anonymous: Result<HelloReply, CallError> =
        PeerClient::tls(pki.client_config(None)).call(&addr, path::HELLO, &env, t).await;
    assert!(matches!(anonymous, Err(CallError::Unreachable { .. })), "{anonymous:?}");

    let other = Pki::new();
    let foreign_leaf = other.leaf("r0", c.replicas[0].addr.ip());
    // Trust our CA for the server, but present a certificate from another CA.
    let foreign_cfg = {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca()).expect("root");
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(foreign_leaf.chain.clone(), foreign_leaf.key.clone_key())
            .expect("client cert")
    };
    let foreign: Result<HelloReply, CallError> = PeerClient::tls(foreign_cfg).call(&addr, path::HELLO, &env, t).await;
    assert!(matches!(foreign, Err(CallError::Unreachable { .. })), "{foreign:?}");
}
