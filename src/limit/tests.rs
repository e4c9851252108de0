use super::*;
use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::ServiceExt;

/// A router whose `/slow` (GET and POST) waits for `release`, telling
/// `entered` when it has started.
fn app(limits: Limits) -> (Router, Arc<Notify>, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let (r, e) = (release.clone(), entered.clone());
    let slow = move || {
        let (r, e) = (r.clone(), e.clone());
        async move {
            e.notify_one();
            r.notified().await;
            "done"
        }
    };
    let router = Router::new()
        .route("/slow", get(slow.clone()).post(slow))
        .route("/fast", get(|| async { "fast" }).post(|| async { "posted" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz/{*check}", get(|| async { "ok" }));
    (limited(router, limits), release, entered)
}

fn req(method: Method, path: &str) -> http::Request<Body> {
    http::Request::builder().method(method).uri(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn requests_past_the_limit_get_429_with_retry_after_and_a_status_and_the_limit_frees_up() {
    let (app, release, entered) = app(Limits { read_only: Some(1), mutating: None });
    let held = tokio::spawn(app.clone().oneshot(req(Method::GET, "/slow")));
    entered.notified().await;
    let refused = app.clone().oneshot(req(Method::GET, "/fast")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(app.oneshot(req(Method::GET, "/fast")).await.unwrap().status(), StatusCode::OK);
}

/// Issue 18: with every slot taken, the kubelet's probes still answer.
#[tokio::test]
async fn probes_answer_while_every_slot_is_taken() {
    let (app, release, entered) = app(Limits { read_only: Some(1), mutating: Some(1) });
    let held = tokio::spawn(app.clone().oneshot(req(Method::GET, "/slow")));
    entered.notified().await;
    assert_eq!(app.clone().oneshot(req(Method::GET, "/fast")).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    for probe in ["/livez", "/readyz/ping"] {
        assert_eq!(app.clone().oneshot(req(Method::GET, probe)).await.unwrap().status(), StatusCode::OK, "{probe}");
    }
    release.notify_one();
    held.await.unwrap().unwrap();
}

#[tokio::test]
async fn mutating_requests_have_their_own_limit() {
    let (app, release, entered) = app(Limits { read_only: Some(5), mutating: Some(1) });
    let held = tokio::spawn(app.clone().oneshot(req(Method::POST, "/slow")));
    entered.notified().await;
    assert_eq!(app.clone().oneshot(req(Method::POST, "/fast")).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.clone().oneshot(req(Method::GET, "/fast")).await.unwrap().status(), StatusCode::OK);
    release.notify_one();
    held.await.unwrap().unwrap();
    assert_eq!(app.oneshot(req(Method::POST, "/fast")).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn zero_means_no_limit() {
    let (app, release, entered) = app(Limits::default());
    let held = tokio::spawn(app.clone().oneshot(req(Method::GET, "/slow")));
    entered.notified().await;
    assert_eq!(app.clone().oneshot(req(Method::GET, "/fast")).await.unwrap().status(), StatusCode::OK);
    release.notify_one();
    held.await.unwrap().unwrap();
}

#[test]
fn probe_paths() {
    for p in ["/livez", "/readyz", "/healthz", "/livez/ping", "/readyz/shutdown"] {
        assert!(is_probe(p), "{p}");
    }
    for p in ["/livezz", "/metrics", "/apis/metrics.k8s.io/v1beta1", "/readyzx/a"] {
        assert!(!is_probe(p), "{p}");
    }
}
