use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use rustls::pki_types::CertificateDer;
use tower::ServiceExt;

use crate::auth::testkit::{Cas, FakeAccess, FakeTokens, chain, state, trust_over};
use crate::auth::{Attributes, AuthState, PeerCertificates, TrustStore, UserInfo, layer};
use tls::pki::Ca;

/// Echoes who the layer said the caller is, and whether identity headers survived.
async fn whoami(user: Option<axum::Extension<UserInfo>>, headers: HeaderMap) -> String {
    let name = user.map(|u| format!("{}|{}", u.name, u.groups.join(","))).unwrap_or_else(|| "-".into());
    let leaked = headers.keys().any(|k| k.as_str().starts_with("x-remote-"));
    format!("{name}|leaked={leaked}")
}

fn app(state: AuthState) -> Router {
    Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(whoami))
        .route("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", get(whoami))
        .route("/metrics", get(whoami))
        .route("/healthz", get(whoami))
        .route("/readyz", get(whoami))
        .route("/livez", get(whoami))
        .layer(layer(state))
}

struct Call<'a> {
    path: &'a str,
    chain: Option<Vec<CertificateDer<'static>>>,
    headers: Vec<(&'a str, &'a str)>,
}

fn call(path: &str) -> Call<'_> {
    Call { path, chain: None, headers: vec![] }
}

impl<'a> Call<'a> {
    fn cert(mut self, chain: Vec<CertificateDer<'static>>) -> Self {
        self.chain = Some(chain);
        self
    }
    fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }
    async fn send(self, app: &Router) -> (StatusCode, String) {
        let mut req = Request::get(self.path);
        for (k, v) in &self.headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::empty()).unwrap();
        if let Some(c) = self.chain {
            req.extensions_mut().insert(PeerCertificates(Arc::new(c)));
        }
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn status_message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status: {e}: {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    v["message"].as_str().unwrap_or_default().to_string()
}

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";
const PODS: &str = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods";

#[tokio::test]
async fn no_credentials_is_401_unauthorized_status() {
    let cas = Cas::new();
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), FakeAccess::allowing(&[])));
    let (code, body) = call(NODES).send(&app).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(status_message(&body), "Unauthorized");
    assert!(body.contains(r#""reason":"Unauthorized""#) && body.contains(r#""code":401"#), "{body}");
}

#[tokio::test]
async fn client_cert_from_unknown_ca_is_401() {
    let cas = Cas::new();
    let app =
        app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), FakeAccess::allowing(&["eve"])));
    let (code, _) = call(NODES).cert(chain(&cas.rogue, "eve", &["system:masters"])).send(&app).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn front_proxy_cert_with_disallowed_cn_is_401() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&["alice"]);
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), access.clone()));
    let (code, _) =
        call(NODES).cert(chain(&cas.proxy, "not-the-proxy", &[])).header("X-Remote-User", "alice").send(&app).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(access.calls(), 0);
}

#[tokio::test]
async fn forged_remote_user_without_front_proxy_cert_is_never_trusted() {
    let cas = Cas::new();
    let tokens = FakeTokens::with("tok", "dave", &[]);
    let app = app(state(TrustStore::fixed(cas.trust()), tokens, FakeAccess::allowing(&["admin", "dave", "carol"])));
    // Headers alone: anonymous, refused.
    let (code, _) =
        call(NODES).header("X-Remote-User", "admin").header("X-Remote-Group", "system:masters").send(&app).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // With a token: the token's user, and the headers are gone.
    let (code, body) =
        call(NODES).header("X-Remote-User", "admin").header("Authorization", "Bearer tok").send(&app).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "dave|system:authenticated|leaked=false"));
    // With a client certificate: the certificate's user.
    let (code, body) =
        call(NODES).cert(chain(&cas.client, "carol", &[])).header("X-Remote-User", "admin").send(&app).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "carol|system:authenticated|leaked=false"));
}

#[tokio::test]
async fn sar_deny_is_403_with_generic_wording_and_reason() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&[]);
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), access.clone()));
    let (code, body) =
        call(PODS).cert(chain(&cas.proxy, "front-proxy-client", &[])).header("X-Remote-User", "alice").send(&app).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        status_message(&body),
        r#"pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "default": RBAC: access denied"#
    );
    let (code, body) = call("/metrics").cert(chain(&cas.client, "x", &[])).send(&app).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(status_message(&body).starts_with(r#"forbidden: User "x" cannot get path "/metrics""#), "{body}");
}

#[tokio::test]
async fn allowed_request_reaches_handler_with_user_info_and_sar_attributes() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&["alice"]);
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), access.clone()));
    let (code, body) = call(PODS)
        .cert(chain(&cas.proxy, "front-proxy-client", &[]))
        .header("X-Remote-User", "alice")
        .header("X-Remote-Group", "devs")
        .header("X-Remote-Group", "qa")
        .send(&app)
        .await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "alice|devs,qa,system:authenticated|leaked=false"));
    let asked = access.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0.name, "alice");
    assert!(matches!(&asked[0].1, Attributes::Resource { verb, resource, namespace, group, .. }
        if verb == "list" && resource == "pods" && namespace == "default" && group == "metrics.k8s.io"));
}

#[tokio::test]
async fn probes_pass_without_credentials() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&[]);
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), access.clone()));
    for p in ["/healthz", "/readyz", "/livez"] {
        let (code, body) = call(p).header("X-Remote-User", "x").send(&app).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "-|leaked=false"), "{p}");
    }
    assert_eq!(access.calls(), 0);
}

#[tokio::test]
async fn system_masters_skip_sar_and_decisions_are_cached() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&["alice"]);
    let tokens = FakeTokens::with("tok", "alice", &[]);
    let app = app(state(TrustStore::fixed(cas.trust()), tokens.clone(), access.clone()));
    let proxy = chain(&cas.proxy, "front-proxy-client", &[]);
    for _ in 0..5 {
        let (code, _) = call(NODES)
            .cert(proxy.clone())
            .header("X-Remote-User", "system:kube-aggregator")
            .header("X-Remote-Group", "system:masters")
            .send(&app)
            .await;
        assert_eq!(code, StatusCode::OK);
    }
    assert_eq!(access.calls(), 0, "system:masters never needs a SubjectAccessReview");
    for _ in 0..5 {
        assert_eq!(call(NODES).header("Authorization", "Bearer tok").send(&app).await.0, StatusCode::OK);
        assert_eq!(call(NODES).header("Authorization", "Bearer wrong").send(&app).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(access.calls(), 1, "one SubjectAccessReview within the TTL");
    assert_eq!(tokens.calls(), 2, "one TokenReview per token within the TTL");
}

#[tokio::test]
async fn sar_failure_is_500_internal_error() {
    let cas = Cas::new();
    let access = FakeAccess::allowing(&["alice"]);
    access.fail.store(true, Ordering::SeqCst);
    let app = app(state(TrustStore::fixed(cas.trust()), Arc::new(FakeTokens::default()), access));
    let (code, body) = call(NODES).cert(chain(&cas.client, "alice", &[])).send(&app).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(r#""reason":"InternalError""#), "{body}");
    assert!(
        status_message(&body).starts_with("Internal Server Error: \"/apis/metrics.k8s.io/v1beta1/nodes\""),
        "{body}"
    );
}

#[tokio::test]
async fn rotated_trust_is_honoured_without_restart() {
    let cas = Cas::new();
    let store = TrustStore::fixed(cas.trust());
    let app = app(state(store.clone(), Arc::new(FakeTokens::default()), FakeAccess::allowing(&["alice", "carol"])));
    let old_proxy = chain(&cas.proxy, "front-proxy-client", &[]);
    let ok = |c: Vec<CertificateDer<'static>>| call(NODES).cert(c).header("X-Remote-User", "alice");
    assert_eq!(ok(old_proxy.clone()).send(&app).await.0, StatusCode::OK);

    let new_client = Ca::new("client-ca-2").unwrap();
    let new_proxy = Ca::new("front-proxy-ca-2").unwrap();
    store.replace(trust_over(&new_client, &new_proxy));
    assert_eq!(ok(old_proxy).send(&app).await.0, StatusCode::UNAUTHORIZED, "old front-proxy CA no longer trusted");
    assert_eq!(
        ok(chain(&new_proxy, "front-proxy-client", &[])).send(&app).await,
        (StatusCode::OK, "alice|system:authenticated|leaked=false".into())
    );
    assert_eq!(call(NODES).cert(chain(&cas.client, "carol", &[])).send(&app).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(NODES).cert(chain(&new_client, "carol", &[])).send(&app).await.0, StatusCode::OK);
}
