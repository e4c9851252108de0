//! Secrets through a real kube-rs client: create, the AlreadyExists and
//! Conflict answers as kube-rs decodes them, get, update, and the handle's
//! view of who wrote what.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::Harness;

fn secret(name: &str, value: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("ca.crt".to_string(), ByteString(value.to_vec()))])),
        ..Secret::default()
    }
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn secrets_are_created_once_read_and_updated_with_kube_apiserver_answers() {
    let h = Harness::start().await;
    let api: Api<Secret> = Api::namespaced(h.admin().await, "kube-system");
    let missing = api_error(api.get("peer").await.unwrap_err());
    assert_eq!((missing.0, missing.1.as_str()), (404, "NotFound"));
    assert_eq!(missing.2, "secrets \"peer\" not found");
    let created = api.create(&PostParams::default(), &secret("peer", b"one")).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let taken = api_error(api.create(&PostParams::default(), &secret("peer", b"two")).await.unwrap_err());
    assert_eq!((taken.0, taken.1.as_str()), (409, "AlreadyExists"));
    let got = api.get("peer").await.unwrap();
    assert_eq!(got.data.unwrap()["ca.crt"].0, b"one");
    let mut stale = secret("peer", b"two");
    stale.metadata.resource_version = Some("1".into());
    let conflict = api_error(api.replace("peer", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((conflict.0, conflict.1.as_str()), (409, "Conflict"));
    let mut fresh = secret("peer", b"two");
    fresh.metadata.resource_version = created.metadata.resource_version.clone();
    let replaced = api.replace("peer", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(h.server.secret_data("kube-system", "peer").unwrap()["ca.crt"], b"two");
    let writes: Vec<(&str, String)> = h.server.secret_writes().iter().map(|w| (w.verb, w.user.clone())).collect();
    assert_eq!(writes, [("create", "admin".to_string()), ("update", "admin".to_string())]);
    assert_eq!(h.server.secret_create_conflicts(), 1);
}

#[tokio::test]
async fn the_handle_replaces_a_secret_as_an_operator_would() {
    let h = Harness::start().await;
    let api: Api<Secret> = Api::namespaced(h.admin().await, "ns");
    h.server.put_secret("ns", "s", "Opaque", &BTreeMap::from([("k".to_string(), b"v1".to_vec())]));
    let before = api.get("s").await.unwrap();
    h.server.put_secret("ns", "s", "Opaque", &BTreeMap::from([("k".to_string(), b"v2".to_vec())]));
    let after = api.get("s").await.unwrap();
    assert_eq!(after.data.unwrap()["k"].0, b"v2");
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_ne!(after.metadata.resource_version, before.metadata.resource_version);
}

#[tokio::test]
async fn secrets_need_an_authenticated_user() {
    let h = Harness::start().await;
    let anonymous = unauthenticated_get(&h).await;
    assert_eq!(anonymous, 401);
}

/// A GET without credentials, over TLS verified against the stand-in's CA.
async fn unauthenticated_get(h: &Harness) -> u16 {
    let cfg =
        tls::config::verifying_client_config(h.server.ca_pem().as_bytes(), None, &tls::TlsPolicy::default()).unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(cfg).https_only().enable_http1().build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let uri = format!("{}/api/v1/namespaces/ns/secrets/s", h.server.url());
    client.get(uri.parse().unwrap()).await.unwrap().status().as_u16()
}
