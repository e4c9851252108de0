//! `RotatingTls` through real sockets: a client config built once follows
//! every swap (certificate presented and CA trusted), and the server side
//! swaps for new connections.

use super::{fetch, start};
use crate::TlsPolicy;
use crate::config::{CertKey, verifying_client_config};
use crate::pki::{Ca, LeafSpec, Usage};
use crate::rotating::RotatingTls;
use sim::addr::Block;

fn member(ca: &Ca, ip: std::net::IpAddr) -> CertKey {
    let sans = [ip.to_string()];
    let spec = LeafSpec { common_name: "member", organizations: &[], sans: &sans, usage: Usage::ServerAndClient };
    CertKey::from_pair(&ca.issue(&spec).unwrap(), "member").unwrap()
}

#[tokio::test]
async fn a_client_config_built_once_follows_each_swap_and_the_server_drops_a_retired_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let block = Block::acquire().unwrap();
    let ip = block.aux(0).into();
    let policy = TlsPolicy::default();
    let (old, new) = (Ca::new("old").unwrap(), Ca::new("new").unwrap());
    let server = RotatingTls::new(old.cert_pem().as_bytes(), member(&old, ip), &policy).unwrap();
    let client = RotatingTls::new(old.cert_pem().as_bytes(), member(&old, ip), &policy).unwrap();
    let (addr, token) = start(ip, server.server()).await;
    let built_once = client.client_config().unwrap();
    assert_eq!(fetch(addr, built_once.clone(), true, "/whoami").await.unwrap().0, 200);

    // Both trust both; the client presents a certificate from the new CA.
    let both = format!("{}\n{}", old.cert_pem(), new.cert_pem());
    server.update(both.as_bytes(), member(&old, ip)).unwrap();
    client.update(both.as_bytes(), member(&new, ip)).unwrap();
    let (status, body) = fetch(addr, built_once.clone(), true, "/whoami").await.unwrap();
    assert_eq!((status, body.starts_with("certs=1")), (200, true), "{body}");
    assert_eq!(issuer_of(&client), "new", "presented() is the swapped certificate");

    // The server presents the new CA's certificate and trusts only it: a
    // client that trusts only the new CA gets in, one with an old-CA
    // certificate is refused, and the client built at the start follows.
    server.update(new.cert_pem().as_bytes(), member(&new, ip)).unwrap();
    let only_new = verifying_client_config(new.cert_pem().as_bytes(), Some(member(&new, ip)), &policy).unwrap();
    assert_eq!(fetch(addr, only_new, false, "/whoami").await.unwrap().0, 200);
    let old_cert = verifying_client_config(both.as_bytes(), Some(member(&old, ip)), &policy).unwrap();
    assert!(fetch(addr, old_cert, false, "/whoami").await.is_err(), "a retired CA's certificate gets in");
    assert_eq!(fetch(addr, built_once.clone(), true, "/whoami").await.unwrap().0, 200);
    client.update(old.cert_pem().as_bytes(), member(&old, ip)).unwrap();
    assert!(fetch(addr, built_once, true, "/whoami").await.is_err(), "the client no longer trusts the server");
    token.cancel();
}

/// The common name of the issuer of the certificate `tls` presents.
fn issuer_of(tls: &RotatingTls) -> String {
    let chain = tls.presented();
    let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    cert.issuer().iter_common_name().next().unwrap().as_str().unwrap().to_string()
}
