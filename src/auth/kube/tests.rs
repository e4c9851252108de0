//! The Kubernetes implementations through a real `kube::Client`, against a
//! tiny mock apiserver (plain HTTP on a loopback address of our block).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, response::IntoResponse};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo as KubeUser};
use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
use serde_json::json;
use tokio::sync::broadcast;
use tower::ServiceExt;

use super::*;
use crate::auth::testkit::chain;
use crate::auth::{PeerCertificates, layer};
use sim::addr::Block;
use tls::pki::Ca;

#[derive(Clone)]
struct Mock {
    /// The ConfigMap's data and its resourceVersion.
    cm: Arc<Mutex<(serde_json::Value, u64)>>,
    events: broadcast::Sender<String>,
    sars: Arc<Mutex<Vec<serde_json::Value>>>,
    token_reviews: Arc<Mutex<usize>>,
}

impl Mock {
    fn cm_object(&self) -> serde_json::Value {
        let (data, rv) = self.cm.lock().unwrap().clone();
        json!({"apiVersion":"v1","kind":"ConfigMap",
               "metadata":{"name":CONFIGMAP_NAME,"namespace":CONFIGMAP_NAMESPACE,"resourceVersion":rv.to_string()},
               "data":data})
    }

    /// Replaces the ConfigMap and tells every open watch.
    fn rotate(&self, data: serde_json::Value) {
        {
            let mut cm = self.cm.lock().unwrap();
            cm.0 = data;
            cm.1 += 1;
        }
        let _ = self.events.send(json!({"type":"MODIFIED","object":self.cm_object()}).to_string() + "\n");
    }
}

async fn token_review(State(m): State<Mock>, Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    *m.token_reviews.lock().unwrap() += 1;
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let status = if token == "good-token" {
        TokenReviewStatus {
            authenticated: Some(true),
            user: Some(KubeUser {
                username: Some("alice".into()),
                uid: Some("u-1".into()),
                groups: Some(vec!["devs".into()]),
                extra: None,
            }),
            ..TokenReviewStatus::default()
        }
    } else {
        TokenReviewStatus { authenticated: Some(false), error: Some("invalid token".into()), ..Default::default() }
    };
    let review = TokenReview { status: Some(status), ..TokenReview::default() };
    Json(review)
}

async fn mock_access_review(State(m): State<Mock>, Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    m.sars.lock().unwrap().push(body.clone());
    let spec = &body["spec"];
    let allowed = spec["user"] == "alice" && spec["resourceAttributes"]["resource"] == "nodes";
    let status = SubjectAccessReviewStatus {
        allowed,
        reason: (!allowed).then(|| "no RBAC policy matched".to_string()),
        ..SubjectAccessReviewStatus::default()
    };
    Json(SubjectAccessReview { status: Some(status), ..SubjectAccessReview::default() })
}

async fn configmaps(State(m): State<Mock>, Query(q): Query<BTreeMap<String, String>>) -> impl IntoResponse {
    assert_eq!(q.get("fieldSelector").map(String::as_str), Some("metadata.name=extension-apiserver-authentication"));
    if q.get("watch").map(String::as_str) != Some("true") {
        let rv = m.cm.lock().unwrap().1;
        let list = json!({"apiVersion":"v1","kind":"ConfigMapList","metadata":{"resourceVersion":rv.to_string()},
                          "items":[m.cm_object()]});
        return Json(list).into_response();
    }
    let rx = m.events.subscribe();
    let asked: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let current = m.cm.lock().unwrap().1;
    let first = (current > asked).then(|| json!({"type":"MODIFIED","object":m.cm_object()}).to_string() + "\n");
    let stream = futures::stream::unfold((first, rx), |(first, mut rx)| async move {
        if let Some(line) = first {
            return Some((Ok::<_, Infallible>(line), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(line) => return Some((Ok(line), (None, rx))),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Body::from_stream(stream).into_response()
}

async fn start_mock(data: serde_json::Value, cancel: CancellationToken) -> (Mock, String, Block) {
    let block = Block::acquire().unwrap();
    let mock = Mock {
        cm: Arc::new(Mutex::new((data, 1))),
        events: broadcast::channel(16).0,
        sars: Arc::default(),
        token_reviews: Arc::default(),
    };
    let app = Router::new()
        .route(TOKEN_REVIEW_PATH, post(token_review))
        .route(ACCESS_REVIEW_PATH, post(mock_access_review))
        .route("/api/v1/namespaces/kube-system/configmaps", get(configmaps))
        .route(
            "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
            get(|State(m): State<Mock>| async move { Json(m.cm_object()) }),
        )
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind((block.apiserver(), 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
    });
    (mock, url, block)
}

fn cm_data(client: &Ca, proxy: &Ca) -> serde_json::Value {
    json!({
        "client-ca-file": client.cert_pem(),
        "requestheader-client-ca-file": proxy.cert_pem(),
        "requestheader-allowed-names": "[\"front-proxy-client\"]",
        "requestheader-username-headers": "[\"X-Remote-User\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
    })
}

async fn get_status(
    app: &Router,
    path: &str,
    token: Option<&str>,
    certs: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(c) = certs {
        req.extensions_mut().insert(PeerCertificates(Arc::new(c)));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let code = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn kube_client_reviews_and_configmap_watch_drive_the_chain() {
    let cancel = CancellationToken::new();
    let client_ca = Ca::new("client-ca").unwrap();
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let (mock, url, _block) = start_mock(cm_data(&client_ca, &proxy_ca), cancel.clone()).await;
    let config = kube::Config::new(url.parse().unwrap());
    let client = Client::try_from(config).unwrap();

    let (state, task) = start(&crate::config::AuthSettings::default(), client, cancel.clone()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), state.trust().wait_for_generation(1))
        .await
        .expect("first trust load");
    assert_eq!(state.trust().load().client_ca.as_ref().unwrap().pem(), client_ca.cert_pem());

    let app = Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/nodes", get(|| async { "nodes" }))
        .route("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", get(|| async { "pods" }))
        .layer(layer(state.clone()));

    assert_eq!(
        get_status(&app, "/apis/metrics.k8s.io/v1beta1/nodes", Some("good-token"), None).await,
        (StatusCode::OK, "nodes".into())
    );
    let (code, body) =
        get_status(&app, "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods", Some("good-token"), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body.contains(r#"cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"kube-system\": no RBAC policy matched"#), "{body}");
    assert_eq!(
        get_status(&app, "/apis/metrics.k8s.io/v1beta1/nodes", Some("bad-token"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(*mock.token_reviews.lock().unwrap(), 2, "good-token reviewed once, then cached");

    let sars = mock.sars.lock().unwrap().clone();
    assert_eq!(sars.len(), 2);
    assert_eq!(sars[0]["kind"], "SubjectAccessReview");
    assert_eq!(sars[0]["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(sars[0]["spec"]["user"], "alice");
    assert_eq!(sars[0]["spec"]["uid"], "u-1");
    assert_eq!(sars[0]["spec"]["groups"], json!(["devs", "system:authenticated"]));
    assert_eq!(
        sars[0]["spec"]["resourceAttributes"],
        json!({"verb":"list","group":"metrics.k8s.io","version":"v1beta1","resource":"nodes"})
    );
    assert_eq!(sars[1]["spec"]["resourceAttributes"]["namespace"], "kube-system");

    // Rotate the client CA through the watch: honoured without restart.
    let rotated = Ca::new("client-ca-2").unwrap();
    mock.rotate(cm_data(&rotated, &proxy_ca));
    tokio::time::timeout(Duration::from_secs(20), state.trust().wait_for_generation(2)).await.expect("rotation seen");
    assert_eq!(state.trust().load().client_ca.as_ref().unwrap().pem(), rotated.cert_pem());
    let (code, _) =
        get_status(&app, "/apis/metrics.k8s.io/v1beta1/nodes", None, Some(chain(&client_ca, "alice", &[]))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "the old client CA is no longer trusted");
    let (code, _) =
        get_status(&app, "/apis/metrics.k8s.io/v1beta1/nodes", None, Some(chain(&rotated, "alice", &[]))).await;
    assert_eq!(code, StatusCode::OK);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("reloader stops on cancel").unwrap();
}

#[test]
fn non_resource_review_body_has_path_and_verb_only() {
    let user = UserInfo {
        name: "system:kube-aggregator".into(),
        groups: vec!["system:authenticated".into()],
        ..Default::default()
    };
    let sar = access_review(
        &user,
        &Attributes::NonResource { path: "/apis/metrics.k8s.io/v1beta1".into(), verb: "get".into() },
    );
    let v = serde_json::to_value(&sar).unwrap();
    assert_eq!(v["spec"]["nonResourceAttributes"], json!({"path":"/apis/metrics.k8s.io/v1beta1","verb":"get"}));
    assert!(v["spec"].get("resourceAttributes").is_none());
    assert_eq!(v["spec"]["extra"], json!({}));
}

/// A client for an apiserver address where nothing listens.
fn unreachable_client(block: &Block) -> Client {
    let listener = std::net::TcpListener::bind((block.apiserver(), 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

#[tokio::test]
async fn a_configmap_that_cannot_be_read_stops_the_start_unless_tolerated_or_skipped() {
    let cancel = CancellationToken::new();
    let block = Block::acquire().unwrap();
    let settings = crate::config::AuthSettings::default();
    let e = match start(&settings, unreachable_client(&block), cancel.clone()).await {
        Ok(_) => panic!("started without reading the authentication ConfigMap"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("kube-system/extension-apiserver-authentication"), "{e}");
    assert!(e.contains("extension-apiserver-authentication-reader"), "{e}");
    let tolerant = crate::config::AuthSettings { tolerate_lookup_failure: true, ..settings.clone() };
    assert!(start(&tolerant, unreachable_client(&block), cancel.clone()).await.is_ok());
    let skipping = crate::config::AuthSettings { skip_lookup: true, ..settings };
    let (state, _task) = start(&skipping, unreachable_client(&block), cancel.clone()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), state.trust().wait_for_generation(1))
        .await
        .expect("trust from flags");
    assert!(state.trust().load().client_ca.is_none() && state.trust().load().request_header.is_none());
    cancel.cancel();
}
