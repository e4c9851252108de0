use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::auth::testkit::{Cas, FakeTokens, chain};
use crate::auth::token::TokenAuthenticator;

fn authenticator(cas: &Cas, tokens: Arc<FakeTokens>) -> Authenticator {
    Authenticator::new(TrustStore::fixed(cas.trust()), TokenAuthenticator::new(tokens, Duration::from_secs(10), 64))
}

fn remote_headers(user: &str, groups: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-remote-user", HeaderValue::from_str(user).unwrap());
    for g in groups {
        h.append("x-remote-group", HeaderValue::from_str(g).unwrap());
    }
    h
}

#[tokio::test]
async fn front_proxy_user_comes_from_headers_and_gains_authenticated_group() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let mut h = remote_headers("alice", &["devs"]);
    h.insert("x-remote-extra-scopes", HeaderValue::from_static("view"));
    let u = a.authenticate(&chain(&cas.proxy, "front-proxy-client", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "alice");
    assert_eq!(u.groups, vec!["devs", AUTHENTICATED_GROUP]);
    assert_eq!(u.extra["scopes"], vec!["view"]);
    assert!(h.is_empty(), "identity headers are removed after reading: {h:?}");
}

#[tokio::test]
async fn authenticated_group_is_not_added_twice() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let mut h = remote_headers("system:kube-aggregator", &["system:masters", AUTHENTICATED_GROUP]);
    let u = a.authenticate(&chain(&cas.proxy, "front-proxy-client", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.groups, vec!["system:masters", AUTHENTICATED_GROUP]);
}

#[tokio::test]
async fn front_proxy_cert_with_disallowed_cn_fails_even_with_a_valid_token() {
    let cas = Cas::new();
    let a = authenticator(&cas, FakeTokens::with("t", "bob", &[]));
    let mut h = remote_headers("alice", &[]);
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
    let r = a.authenticate(&chain(&cas.proxy, "someone-else", &[]), &mut h).await;
    assert!(matches!(r, Err(AuthnError::FrontProxy(_))), "{r:?}");
}

#[tokio::test]
async fn client_cert_user_is_cn_with_o_groups() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let mut h = HeaderMap::new();
    let u = a.authenticate(&chain(&cas.client, "carol", &["ops"]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "carol");
    assert_eq!(u.groups, vec!["ops", AUTHENTICATED_GROUP]);
}

#[tokio::test]
async fn forged_identity_headers_with_a_client_cert_are_ignored() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let mut h = remote_headers("admin", &["system:masters"]);
    let u = a.authenticate(&chain(&cas.client, "carol", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "carol");
    assert!(!u.groups.contains(&"system:masters".to_string()));
    assert!(h.get("x-remote-user").is_none());
}

#[tokio::test]
async fn forged_identity_headers_with_a_token_are_ignored_and_token_is_consumed() {
    let cas = Cas::new();
    let tokens = FakeTokens::with("secret", "dave", &["devs"]);
    let a = authenticator(&cas, tokens.clone());
    let mut h = remote_headers("admin", &["system:masters"]);
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
    let u = a.authenticate(&[], &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "dave");
    assert_eq!(u.groups, vec!["devs", AUTHENTICATED_GROUP]);
    assert!(h.is_empty(), "{h:?}");
}

#[tokio::test]
async fn front_proxy_cert_without_user_header_falls_through_to_token() {
    let cas = Cas::new();
    let a = authenticator(&cas, FakeTokens::with("secret", "dave", &[]));
    let mut h = HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
    let u = a.authenticate(&chain(&cas.proxy, "front-proxy-client", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "dave");
}

#[tokio::test]
async fn unknown_ca_or_bad_token_is_an_error_and_nothing_is_anonymous() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let r = a.authenticate(&chain(&cas.rogue, "eve", &["system:masters"]), &mut HeaderMap::new()).await;
    assert!(matches!(r, Err(AuthnError::ClientCert(_))), "{r:?}");
    let mut h = HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
    assert!(matches!(a.authenticate(&[], &mut h).await, Err(AuthnError::TokenRejected(_))));
    assert_eq!(a.authenticate(&[], &mut HeaderMap::new()).await.unwrap(), None);
}

#[tokio::test]
async fn rogue_cert_with_valid_token_authenticates_as_token_user() {
    let cas = Cas::new();
    let a = authenticator(&cas, FakeTokens::with("secret", "dave", &[]));
    let mut h = HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
    let u = a.authenticate(&chain(&cas.rogue, "eve", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "dave");
}

#[tokio::test]
async fn front_proxy_cert_signed_by_client_ca_is_a_plain_client_cert() {
    let cas = Cas::new();
    let a = authenticator(&cas, Arc::new(FakeTokens::default()));
    let mut h = remote_headers("admin", &["system:masters"]);
    let u = a.authenticate(&chain(&cas.client, "front-proxy-client", &[]), &mut h).await.unwrap().unwrap();
    assert_eq!(u.name, "front-proxy-client", "headers are not trusted from a client-CA certificate");
}
