use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::auth::x509::{CaBundle, chain_from_pem};
use tls::pki::Ca;

fn config(ca: &Ca, allowed: &[&str]) -> RequestHeaderConfig {
    RequestHeaderConfig {
        ca: CaBundle::from_pem("requestheader-client-ca-file", ca.cert_pem()).unwrap(),
        allowed_names: allowed.iter().map(|s| s.to_string()).collect(),
        username_headers: vec!["X-Remote-User".into()],
        uid_headers: vec![],
        group_headers: vec!["X-Remote-Group".into()],
        extra_header_prefixes: vec!["X-Remote-Extra-".into()],
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn groups_are_one_per_header_line_and_never_split_on_commas() {
    let ca = Ca::new("front-proxy").unwrap();
    let cfg = config(&ca, &[]);
    let h = headers(&[
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "devs,ops"),
        ("X-Remote-Group", ""),
        ("x-remote-group", "system:authenticated"),
    ]);
    let u = user_from_headers(&cfg, &h).unwrap();
    assert_eq!(u.name, "alice");
    assert_eq!(u.groups, vec!["devs,ops", "system:authenticated"]);
}

#[test]
fn first_non_empty_username_header_wins() {
    let ca = Ca::new("front-proxy").unwrap();
    let mut cfg = config(&ca, &[]);
    cfg.username_headers = vec!["X-Primary".into(), "X-Secondary".into()];
    let h = headers(&[("X-Primary", ""), ("X-Secondary", "bob")]);
    assert_eq!(user_from_headers(&cfg, &h).unwrap().name, "bob");
    assert_eq!(user_from_headers(&cfg, &headers(&[("X-Primary", "")])), None);
}

#[test]
fn extra_keys_are_lower_cased_and_percent_decoded() {
    let ca = Ca::new("front-proxy").unwrap();
    let cfg = config(&ca, &[]);
    let h = headers(&[
        ("X-Remote-User", "alice"),
        ("X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id", "X509SHA256=ab"),
        ("x-remote-extra-scopes", "a"),
        ("X-REMOTE-EXTRA-Scopes", "b"),
        ("X-Remote-Extra-Bad%zz", "v"),
    ]);
    let u = user_from_headers(&cfg, &h).unwrap();
    assert_eq!(u.extra["authentication.kubernetes.io/credential-id"], vec!["X509SHA256=ab"]);
    assert_eq!(u.extra["scopes"], vec!["a", "b"]);
    assert_eq!(u.extra["bad%zz"], vec!["v"]);
}

#[test]
fn unescape_follows_go_path_unescape() {
    assert_eq!(unescape_extra_key("a%2fb"), "a/b");
    assert_eq!(unescape_extra_key("a%2"), "a%2");
    assert_eq!(unescape_extra_key("a%+1"), "a%+1");
    assert_eq!(unescape_extra_key("%c3%a9"), "é");
    assert_eq!(unescape_extra_key("plain"), "plain");
}

#[test]
fn front_proxy_cert_with_allowed_cn_yields_header_user() {
    let ca = Ca::new("front-proxy").unwrap();
    let cfg = config(&ca, &["front-proxy-client"]);
    let chain = chain_from_pem(&ca.issue_client("front-proxy-client", &[]).unwrap().cert_pem).unwrap();
    let h = headers(&[("X-Remote-User", "alice"), ("X-Remote-Group", "devs")]);
    match authenticate(Some(&cfg), &chain, &h) {
        FrontProxy::User(u) => {
            assert_eq!(u.name, "alice");
            assert_eq!(u.groups, vec!["devs"]);
        }
        other => panic!("expected a user, got {other:?}"),
    }
    assert_eq!(authenticate(Some(&cfg), &chain, &HeaderMap::new()), FrontProxy::NoUser);
}

#[test]
fn front_proxy_cert_with_disallowed_cn_is_rejected() {
    let ca = Ca::new("front-proxy").unwrap();
    let cfg = config(&ca, &["front-proxy-client"]);
    let chain = chain_from_pem(&ca.issue_client("intruder", &[]).unwrap().cert_pem).unwrap();
    let h = headers(&[("X-Remote-User", "alice")]);
    assert!(matches!(authenticate(Some(&cfg), &chain, &h), FrontProxy::Rejected(_)));
}

#[test]
fn headers_without_a_front_proxy_cert_are_not_read() {
    let ca = Ca::new("front-proxy").unwrap();
    let other = Ca::new("client").unwrap();
    let cfg = config(&ca, &[]);
    let h = headers(&[("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters")]);
    assert_eq!(authenticate(Some(&cfg), &[], &h), FrontProxy::NotApplicable);
    let foreign = chain_from_pem(&other.issue_client("bob", &[]).unwrap().cert_pem).unwrap();
    assert_eq!(authenticate(Some(&cfg), &foreign, &h), FrontProxy::NotApplicable);
    let own = chain_from_pem(&ca.issue_client("front-proxy-client", &[]).unwrap().cert_pem).unwrap();
    assert_eq!(authenticate(None, &own, &h), FrontProxy::NotApplicable);
}

#[test]
fn identity_headers_are_stripped_whether_trusted_or_not() {
    let ca = Ca::new("front-proxy").unwrap();
    let mut cfg = config(&ca, &[]);
    cfg.username_headers = vec!["X-Custom-User".into()];
    let mut h = headers(&[
        ("X-Remote-User", "a"),
        ("X-Remote-Group", "g"),
        ("X-Remote-Uid", "1"),
        ("X-Remote-Extra-Foo", "x"),
        ("X-Custom-User", "c"),
        ("Accept", "application/json"),
    ]);
    strip_identity_headers(Some(&cfg), &mut h);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("accept"));
    let mut h = headers(&[("X-Remote-User", "a"), ("x-remote-extra-k", "v")]);
    strip_identity_headers(None, &mut h);
    assert!(h.is_empty());
}
