use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;

use super::*;
use tls::pki::Ca;

fn cm(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn configmap_keys_are_parsed_like_kube_apiserver_writes_them() {
    let client = Ca::new("client").unwrap();
    let proxy = Ca::new("front-proxy").unwrap();
    let data = cm(&[
        ("client-ca-file", client.cert_pem()),
        ("requestheader-client-ca-file", proxy.cert_pem()),
        ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
        ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
        ("requestheader-extra-headers-prefix", r#"["X-Remote-Extra-"]"#),
        ("requestheader-uid-headers", "[]"),
    ]);
    let c = build_config(Some(&data), &TrustOverrides::default(), &FlagFiles::default()).unwrap();
    assert_eq!(c.client_ca.as_ref().unwrap().pem(), client.cert_pem());
    let rh = c.request_header.unwrap();
    assert_eq!(rh.ca.pem(), proxy.cert_pem());
    assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
    assert_eq!(rh.username_headers, vec!["X-Remote-User"]);
    assert_eq!(rh.group_headers, vec!["X-Remote-Group"]);
    assert_eq!(rh.extra_header_prefixes, vec!["X-Remote-Extra-"]);
    assert!(rh.uid_headers.is_empty());
}

#[test]
fn flags_win_over_configmap_keys() {
    let cm_ca = Ca::new("cm").unwrap();
    let flag_ca = Ca::new("flag").unwrap();
    let data = cm(&[
        ("client-ca-file", cm_ca.cert_pem()),
        ("requestheader-client-ca-file", cm_ca.cert_pem()),
        ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
    ]);
    let flags = TrustOverrides {
        requestheader_allowed_names: Some(vec!["aggregator".into()]),
        requestheader_username_headers: Some(vec!["X-User".into()]),
        ..TrustOverrides::default()
    };
    let files = FlagFiles { client_ca: Some(flag_ca.cert_pem().into()), requestheader_client_ca: None };
    let c = build_config(Some(&data), &flags, &files).unwrap();
    assert_eq!(c.client_ca.unwrap().pem(), flag_ca.cert_pem());
    let rh = c.request_header.unwrap();
    assert_eq!(rh.ca.pem(), cm_ca.cert_pem());
    assert_eq!(rh.allowed_names, vec!["aggregator"]);
    assert_eq!(rh.username_headers, vec!["X-User"]);
    assert_eq!(rh.group_headers, vec!["x-remote-group"], "default when neither flag nor key");
}

#[test]
fn without_requestheader_ca_identity_headers_are_never_trusted() {
    let client = Ca::new("client").unwrap();
    let data = cm(&[("client-ca-file", client.cert_pem()), ("requestheader-username-headers", r#"["X-Remote-User"]"#)]);
    let c = build_config(Some(&data), &TrustOverrides::default(), &FlagFiles::default()).unwrap();
    assert!(c.client_ca.is_some());
    assert!(c.request_header.is_none());
    let c = build_config(None, &TrustOverrides::default(), &FlagFiles::default()).unwrap();
    assert_eq!(c, TrustConfig::default());
}

#[test]
fn bad_pem_or_bad_list_is_an_error() {
    let proxy = Ca::new("front-proxy").unwrap();
    let bad_pem = cm(&[("client-ca-file", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")]);
    assert!(build_config(Some(&bad_pem), &TrustOverrides::default(), &FlagFiles::default()).is_err());
    let bad_list = cm(&[
        ("requestheader-client-ca-file", proxy.cert_pem()),
        ("requestheader-allowed-names", "front-proxy-client"),
    ]);
    let err = build_config(Some(&bad_list), &TrustOverrides::default(), &FlagFiles::default()).unwrap_err();
    assert!(err.to_string().contains("requestheader-allowed-names"), "{err}");
}

/// A source fed by a channel.
struct ChannelSource(mpsc::Receiver<SourceUpdate>);

impl TrustSource for ChannelSource {
    fn next_update(&mut self) -> BoxFuture<'_, Option<SourceUpdate>> {
        self.0.recv().boxed()
    }
}

async fn wait_gen(store: &TrustStore, g: u64) {
    tokio::time::timeout(Duration::from_secs(10), store.wait_for_generation(g))
        .await
        .expect("trust store did not reach the expected generation");
}

#[tokio::test]
async fn reloader_swaps_rotated_ca_and_keeps_old_config_on_bad_pem() {
    let old = Ca::new("old").unwrap();
    let new = Ca::new("new").unwrap();
    let (tx, rx) = mpsc::channel(4);
    let store = TrustStore::new(TrustConfig::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_reloader(
        store.clone(),
        Some(Box::new(ChannelSource(rx))),
        TrustOverrides::default(),
        Duration::from_secs(3600),
        cancel.clone(),
    ));
    assert_eq!(store.generation(), 0);
    tx.send(SourceUpdate::Data(cm(&[("client-ca-file", old.cert_pem())]))).await.unwrap();
    wait_gen(&store, 1).await;
    assert_eq!(store.load().client_ca.as_ref().unwrap().pem(), old.cert_pem());

    // A broken update is ignored; the next good one is applied.
    tx.send(SourceUpdate::Data(cm(&[("client-ca-file", "garbage")]))).await.unwrap();
    tx.send(SourceUpdate::Data(cm(&[("client-ca-file", new.cert_pem())]))).await.unwrap();
    wait_gen(&store, 2).await;
    assert_eq!(store.load().client_ca.as_ref().unwrap().pem(), new.cert_pem());

    // Deletion keeps what was last read: had it swapped in an empty config,
    // the next update would be the fourth load, not the third.
    tx.send(SourceUpdate::Absent).await.unwrap();
    tx.send(SourceUpdate::Data(cm(&[("client-ca-file", old.cert_pem())]))).await.unwrap();
    wait_gen(&store, 3).await;
    assert_eq!(store.generation(), 3);
    assert_eq!(store.load().client_ca.as_ref().unwrap().pem(), old.cert_pem());
    // The source ends; the loop keeps running until cancelled.
    drop(tx);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn flag_files_alone_configure_trust_without_a_configmap() {
    let ca = Ca::new("flag").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.cert_pem()).unwrap();
    let flags = TrustOverrides {
        client_ca_file: Some(path.clone()),
        requestheader_client_ca_file: Some(path.clone()),
        ..TrustOverrides::default()
    };
    assert!(flags.skips_lookup());
    let store = TrustStore::new(TrustConfig::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_reloader(store.clone(), None, flags, Duration::from_millis(20), cancel.clone()));
    wait_gen(&store, 1).await;
    assert!(store.load().request_header.is_some());
    // Rotate the file: the poll picks it up.
    let rotated = Ca::new("rotated").unwrap();
    std::fs::write(&path, rotated.cert_pem()).unwrap();
    wait_gen(&store, 2).await;
    assert_eq!(store.load().client_ca.as_ref().unwrap().pem(), rotated.cert_pem());
    cancel.cancel();
    task.await.unwrap();
}
