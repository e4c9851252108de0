//! The whole chain over test routes: what a client sees of the limits,
//! the deadline, the shutdown gate, CORS, HSTS and the audit log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::*;
use crate::audit::backend::{Backend, Sink};
use crate::audit::event::Event;
use crate::audit::policy::Policy;
use crate::auth::testkit::{Cas, FakeAccess, chain};
use crate::auth::token::{ReviewError, TokenOutcome, TokenReviewer};
use crate::auth::{AuthSettings, AuthState, PeerCertificates, TrustStore};
use crate::config::audit::{BatchSettings, Mode};

const NODES: &str = "/apis/metrics.k8s.io/v1beta1/nodes";

/// TokenReviews that wait until released (kube-apiserver being slow, or a
/// flood of made-up tokens).
struct SlowTokens {
    calls: AtomicUsize,
    release: Semaphore,
}

impl TokenReviewer for SlowTokens {
    fn review<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Result<TokenOutcome, ReviewError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _ = self.release.acquire().await.map(|p| p.forget());
            Ok(TokenOutcome::Rejected("invalid".into()))
        })
    }
}

/// Records every audit event.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Sink for Events {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), String>> {
        self.0.lock().unwrap().extend(events.iter().cloned());
        Box::pin(async { Ok(()) })
    }
    fn name(&self) -> &'static str {
        "test"
    }
}

struct Fixture {
    cas: Cas,
    tokens: Arc<SlowTokens>,
    gate: ShutdownGate,
    events: Arc<Events>,
    /// Released to let `/apis/.../nodes/slow` answer.
    slow: Arc<Semaphore>,
}

fn requests(max_inflight: Option<usize>) -> RequestSettings {
    RequestSettings {
        max_requests_inflight: max_inflight,
        max_mutating_requests_inflight: None,
        request_timeout: Duration::from_secs(60),
        goaway_chance: 0.0,
        cors_allowed_origins: Vec::new(),
        hsts: None,
        livez_grace_period: Duration::ZERO,
    }
}

const POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    nonResourceURLs: ['/livez']\n  - level: RequestResponse\n    users: ['alice']\n  - level: Metadata\n";

fn fixture(settings: RequestSettings) -> (Router, Fixture) {
    let cas = Cas::new();
    let tokens = Arc::new(SlowTokens { calls: AtomicUsize::new(0), release: Semaphore::new(0) });
    let auth = AuthState::new(
        TrustStore::fixed(cas.trust()),
        tokens.clone(),
        FakeAccess::allowing(&["alice"]),
        &AuthSettings::default(),
    );
    let events = Arc::new(Events::default());
    let (backend, _) = Backend::start(
        events.clone(),
        Mode::Blocking,
        BatchSettings { buffer_size: 1, max_batch_size: 1, max_wait: Duration::ZERO, throttle: None },
        None,
        tokio_util::sync::CancellationToken::new(),
    );
    let auditor = crate::audit::Auditor::from_parts(Policy::parse(POLICY, "policy").unwrap(), vec![backend]);
    let gate = ShutdownGate::default();
    let slow = Arc::new(Semaphore::new(0));
    let s = slow.clone();
    let routes = Router::new()
        .route(
            NODES,
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], r#"{"kind":"NodeMetricsList","items":[]}"#)
            }),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/slow",
            get(move || {
                let s = s.clone();
                async move {
                    let _ = s.acquire().await.map(|p| p.forget());
                    "done"
                }
            }),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    let chain = Chain {
        requests: settings,
        auth,
        audit: Some(auditor),
        gate: gate.clone(),
        metrics: Arc::new(SelfMetrics::new(15.0)),
    };
    (guard(routes, chain), Fixture { cas, tokens, gate, events, slow })
}

impl Fixture {
    /// A GET as alice (client certificate).
    fn alice(&self, path: &str) -> Request<Body> {
        let mut r = Request::get(path).body(Body::empty()).unwrap();
        r.extensions_mut().insert(PeerCertificates(Arc::new(chain(&self.cas.client, "alice", &[]))));
        r
    }
}

fn bearer(path: &str, token: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    sim::wait::expect(what, Duration::from_secs(10), async || cond()).await;
}

/// Issue 18: requests whose TokenReview hangs (a flood of made-up tokens)
/// hold no in-flight slot, so an authenticated client is still served.
#[tokio::test]
async fn requests_stuck_in_authentication_never_hold_an_in_flight_slot() {
    let (app, f) = fixture(requests(Some(1)));
    let stuck: Vec<_> =
        (0..5).map(|i| tokio::spawn(app.clone().oneshot(bearer(NODES, &format!("made-up-{i}"))))).collect();
    wait_for("the TokenReviews to start", || f.tokens.calls.load(Ordering::SeqCst) == 5).await;
    let r = app.clone().oneshot(f.alice(NODES)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the only slot is free for alice");
    f.tokens.release.add_permits(100);
    for s in stuck {
        assert_eq!(s.await.unwrap().unwrap().status(), StatusCode::UNAUTHORIZED);
    }
}

/// Issue 18: with every slot held by slow authenticated requests, probes
/// still answer.
#[tokio::test]
async fn probes_answer_with_every_slot_taken() {
    let (app, f) = fixture(requests(Some(1)));
    let held = tokio::spawn(app.clone().oneshot(f.alice("/apis/metrics.k8s.io/v1beta1/nodes/slow")));
    wait_for("the slow request to take the slot", || f.gate.in_flight() == 1).await;
    // The slot is taken once the request passed authorization.
    sim::wait::expect("the limit to refuse", Duration::from_secs(10), async || {
        app.clone().oneshot(f.alice(NODES)).await.unwrap().status() == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
    assert_eq!(app.clone().oneshot(Request::get("/livez").body(Body::empty()).unwrap()).await.unwrap().status(), 200);
    f.slow.add_permits(1);
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_504_timeout() {
    let mut settings = requests(None);
    settings.request_timeout = Duration::from_millis(200);
    let (app, f) = fixture(settings);
    let r = app.clone().oneshot(f.alice("/apis/metrics.k8s.io/v1beta1/nodes/slow")).await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: serde_json::Value = serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["reason"], "Timeout");
    assert_eq!(body["message"], "Timeout: request did not complete within the allotted timeout");
    let bad = app.oneshot(f.alice(&format!("{NODES}?timeout=soon"))).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_closed_gate_answers_429_retry_after_except_probes_and_drains_what_is_in_flight() {
    let (app, f) = fixture(requests(None));
    let held = tokio::spawn(app.clone().oneshot(f.alice("/apis/metrics.k8s.io/v1beta1/nodes/slow")));
    wait_for("the slow request to be in flight", || f.gate.in_flight() == 1).await;
    f.gate.close();
    let r = app.clone().oneshot(f.alice(NODES)).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    assert_eq!(r.headers()[header::CONNECTION], "close");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, shutdown::RETRY_AFTER_BODY.as_bytes());
    let probe = app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    let mut apiserver = f.alice(NODES);
    apiserver.headers_mut().insert(header::USER_AGENT, "kube-apiserver/v1.33.0".parse().unwrap());
    assert_eq!(app.clone().oneshot(apiserver).await.unwrap().status(), StatusCode::OK);
    assert!(!f.gate.drained(Duration::from_millis(50)).await, "the slow request is still in flight");
    f.slow.add_permits(1);
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
    assert!(f.gate.drained(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn cors_and_hsts_headers_follow_the_flags() {
    let mut settings = requests(None);
    settings.cors_allowed_origins = crate::config::serving::cors_origins(&["//good\\.io(:|$)".into()]).unwrap();
    settings.hsts = Some("max-age=31536000; includeSubDomains".into());
    let (app, f) = fixture(settings);
    let mut r = f.alice(NODES);
    r.headers_mut().insert(header::ORIGIN, "https://good.io".parse().unwrap());
    let resp = app.clone().oneshot(r).await.unwrap();
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://good.io");
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(resp.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000; includeSubDomains");
    let mut r = f.alice(NODES);
    r.headers_mut().insert(header::ORIGIN, "https://evil.io".parse().unwrap());
    let resp = app.clone().oneshot(r).await.unwrap();
    assert!(resp.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(NODES)
        .header(header::ORIGIN, "https://good.io")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(preflight).await.unwrap().status(),
        StatusCode::NO_CONTENT,
        "preflight needs no credentials"
    );
}

#[tokio::test]
async fn the_audit_log_records_each_request_at_the_policys_level() {
    let (app, f) = fixture(requests(None));
    let mut r = f.alice(NODES);
    r.headers_mut().insert("audit-id", "0a1b".parse().unwrap());
    let resp = app.clone().oneshot(r).await.unwrap();
    assert_eq!(resp.headers()["audit-id"], "0a1b");
    let unauthenticated = app.clone().oneshot(bearer(NODES, "x")).await;
    f.tokens.release.add_permits(10);
    assert_eq!(unauthenticated.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.clone().oneshot(Request::get("/livez").body(Body::empty()).unwrap()).await.unwrap();
    let events = f.events.0.lock().unwrap().clone();
    let stages: Vec<(&str, &str, &str)> = events.iter().map(|e| (e.audit_id.as_str(), e.stage, e.level)).collect();
    assert_eq!(
        stages[..2],
        [("0a1b", "RequestReceived", "RequestResponse"), ("0a1b", "ResponseComplete", "RequestResponse")]
    );
    let done = &events[1];
    assert_eq!(done.user.username, "alice");
    assert_eq!(done.verb, "list");
    assert_eq!(done.response_status.as_ref().unwrap().code, 200);
    assert_eq!(done.response_object.as_ref().unwrap()["kind"], "NodeMetricsList");
    assert_eq!(done.annotations["authorization.k8s.io/decision"], "allow");
    let refused: Vec<_> =
        events[2..].iter().map(|e| (e.stage, e.level, e.response_status.as_ref().unwrap().code)).collect();
    assert_eq!(refused, [("ResponseStarted", "Metadata", 401), ("ResponseComplete", "Metadata", 401)]);
    assert_eq!(events[2].response_status.as_ref().unwrap().message, "Authentication failed, attempted: bearer");
    assert_eq!(events.len(), 4, "/livez is at level None");
}
