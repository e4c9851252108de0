//! The audit middleware. [`unauthenticated`] sits outside authentication:
//! it gives every request its audit ID (the caller's `Audit-ID` header, as
//! kube-apiserver forwards it, or a new one; echoed as `Audit-Id`) and, when
//! authentication refuses a request, records that. [`record`] sits inside
//! it: it decides the level from the policy and the user, records
//! `RequestReceived` before the request runs (a failure there fails the
//! request in blocking-strict mode) and `ResponseComplete` after, with the
//! status, the authorization decision and, by level, the bodies.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use apimachinery::status::Status;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;

use super::Auditor;
use super::event::{Event, EventUser, ObjectReference, ResponseStatus};
use super::policy::{Level, Stage};
use crate::auth::requestinfo::{self, RequestInfo};
use crate::auth::{DecisionRecord, UserInfo, UserRecord};
use tls::serve::RemoteAddr;

/// Bodies larger than this are not recorded (the event keeps its metadata).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// What [`unauthenticated`] hands to [`record`].
#[derive(Clone)]
struct Context {
    audit_id: String,
    received: crate::model::UnixNanos,
    audited: Arc<AtomicBool>,
}

/// A new random audit ID (a version 4 UUID).
fn new_audit_id() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `X-Forwarded-For`, then `X-Real-Ip`, then the peer's address (unique).
fn source_ips(headers: &HeaderMap, remote: Option<IpAddr>) -> Vec<String> {
    let mut ips: Vec<String> = Vec::new();
    let mut push = |ip: String| {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    };
    if let Some(xff) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        for ip in xff.split(',').map(str::trim).filter(|s| s.parse::<IpAddr>().is_ok()) {
            push(ip.to_string());
        }
    }
    if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()).map(str::trim)
        && ip.parse::<IpAddr>().is_ok()
    {
        push(ip.to_string());
    }
    if let Some(ip) = remote {
        push(ip.to_string());
    }
    ips
}

fn object_ref(info: &RequestInfo) -> Option<ObjectReference> {
    info.is_resource_request.then(|| ObjectReference {
        resource: info.resource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        api_group: info.api_group.clone(),
        api_version: info.api_version.clone(),
        subresource: info.subresource.clone(),
    })
}

/// Everything an event of this request carries before its response.
fn base_event(
    ctx: &Context,
    level: Level,
    stage: Stage,
    parts: &http::request::Parts,
    info: &RequestInfo,
    user: EventUser,
) -> Event {
    let uri = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string());
    let ua = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let remote = parts.extensions.get::<RemoteAddr>().map(|r| r.0.ip());
    Event::new(
        level,
        stage,
        &ctx.audit_id,
        &uri,
        &info.verb,
        user,
        source_ips(&parts.headers, remote),
        ua,
        object_ref(info),
        ctx.received,
        crate::model::now_nanos(),
    )
}

/// Collects a body up to [`MAX_BODY`]; the bytes, and whether all fit.
async fn collect(body: Body) -> Result<bytes::Bytes, String> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string())
}

/// The `responseStatus` of an answer: its code, plus the Status fields
/// when the body is a Status.
fn response_status(code: StatusCode, body: Option<&serde_json::Value>) -> ResponseStatus {
    let mut s = ResponseStatus { code: code.as_u16(), ..ResponseStatus::default() };
    if let Some(v) = body.filter(|v| v["kind"] == "Status") {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        s.status = text("status");
        s.message = text("message");
        s.reason = text("reason");
        s.details = v.get("details").cloned();
    }
    s
}

/// Outermost audit layer: the audit ID, and the event of a request that
/// authentication refused.
pub async fn unauthenticated(State(auditor): State<Auditor>, mut request: Request, next: Next) -> Response {
    let audit_id = request
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(new_audit_id, str::to_string);
    let ctx = Context { audit_id, received: crate::model::now_nanos(), audited: Arc::new(AtomicBool::new(false)) };
    request.extensions_mut().insert(ctx.clone());
    request.extensions_mut().insert(UserRecord::default());
    request.extensions_mut().insert(DecisionRecord::default());
    let (parts, body) = request.into_parts();
    let kept = clone_parts(&parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Ok(v) = HeaderValue::from_str(&ctx.audit_id) {
        response.headers_mut().insert("audit-id", v);
    }
    if ctx.audited.load(Ordering::Acquire) || response.status() != StatusCode::UNAUTHORIZED {
        return response;
    }
    let info = requestinfo::parse(&kept.method, kept.uri.path(), kept.uri.query());
    let decision = auditor.policy().decide(None, &info);
    if decision.level == Level::None {
        return response;
    }
    let mut status = ResponseStatus { code: 401, ..ResponseStatus::default() };
    status.message = auth_methods(&kept);
    for stage in [Stage::ResponseStarted, Stage::ResponseComplete] {
        if decision.omit_stages.contains(&stage) {
            continue;
        }
        let mut e = base_event(&ctx, decision.level, stage, &kept, &info, EventUser::default());
        e.response_status = Some(status.clone());
        let _ = auditor.emit(e).await;
    }
    response
}

/// What credentials a refused request tried, in kube-apiserver's words.
fn auth_methods(parts: &http::request::Parts) -> String {
    let mut tried = Vec::new();
    let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().trim();
    let mut words = auth.split(' ');
    match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("basic") => tried.push("basic"),
        Some("bearer") if words.next().is_some() => tried.push("bearer"),
        _ => {}
    }
    if parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token=") && kv.len() > 13)) {
        tried.push("access_token");
    }
    if parts.extensions.get::<tls::serve::PeerCertificates>().is_some() {
        tried.push("x509");
    }
    if tried.is_empty() {
        "Authentication failed, no credentials provided".to_string()
    } else {
        format!("Authentication failed, attempted: {}", tried.join(", "))
    }
}

fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut p, _) = http::Request::new(()).into_parts();
    p.method = parts.method.clone();
    p.uri = parts.uri.clone();
    p.version = parts.version;
    p.headers = parts.headers.clone();
    if let Some(r) = parts.extensions.get::<RemoteAddr>() {
        p.extensions.insert(*r);
    }
    if let Some(c) = parts.extensions.get::<tls::serve::PeerCertificates>() {
        p.extensions.insert(c.clone());
    }
    p
}

/// The audit layer proper, inside authentication.
pub async fn record(State(auditor): State<Auditor>, request: Request, next: Next) -> Response {
    let Some(ctx) = request.extensions().get::<Context>().cloned() else {
        return next.run(request).await;
    };
    let user: UserInfo = request.extensions().get::<UserInfo>().cloned().unwrap_or_else(|| UserInfo {
        // Always-allowed paths skip authentication: kube-apiserver's
        // anonymous user is who asks them.
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
        ..UserInfo::default()
    });
    let info = requestinfo::parse(request.method(), request.uri().path(), request.uri().query());
    let decision = auditor.policy().decide(Some(&user), &info);
    ctx.audited.store(true, Ordering::Release);
    if decision.level == Level::None {
        return next.run(request).await;
    }
    let decisions = request.extensions().get::<DecisionRecord>().cloned();
    let (parts, body) = request.into_parts();
    // The request body, for Request and RequestResponse.
    let mut request_object = None;
    let body = if decision.level >= Level::Request && info.is_resource_request {
        match collect(body).await {
            Ok(bytes) => {
                request_object = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
                Body::from(bytes)
            }
            Err(e) => return Status::bad_request(format!("reading the request body: {e}")).into_response(),
        }
    } else {
        body
    };
    let event_user = EventUser::from(&user);
    if !decision.omit_stages.contains(&Stage::RequestReceived) {
        let mut e = base_event(&ctx, decision.level, Stage::RequestReceived, &parts, &info, event_user.clone());
        e.request_object = request_object.clone();
        if let Err(error) = auditor.emit(e).await {
            tracing::warn!(%error, "audit event could not be stored; refusing the request (blocking-strict)");
            return Status::internal("failed to store audit event").into_response();
        }
    }
    let kept = clone_parts(&parts);
    let response = next.run(Request::from_parts(parts, body)).await;
    if decision.omit_stages.contains(&Stage::ResponseComplete) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let want_body = is_json
        && (!response.status().is_success() || (decision.level == Level::RequestResponse && info.is_resource_request));
    let (response, body_json) = if want_body {
        let (p, b) = response.into_parts();
        match collect(b).await {
            Ok(bytes) => {
                let v = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
                (Response::from_parts(p, Body::from(bytes)), v)
            }
            Err(_) => (Response::from_parts(p, Body::empty()), None),
        }
    } else {
        (response, None)
    };
    let mut e = base_event(&ctx, decision.level, Stage::ResponseComplete, &kept, &info, event_user);
    e.response_status = Some(response_status(response.status(), body_json.as_ref()));
    e.request_object = request_object;
    if decision.level == Level::RequestResponse && info.is_resource_request {
        e.response_object = body_json;
    }
    if let Some(d) = decisions.and_then(|d| d.get()) {
        e.annotations.insert("authorization.k8s.io/decision".into(), if d.allowed { "allow" } else { "forbid" }.into());
        e.annotations.insert("authorization.k8s.io/reason".into(), d.reason);
    }
    if let Err(error) = auditor.emit(e).await {
        tracing::warn!(%error, "audit event could not be stored");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_ids_are_v4_uuids_and_source_ips_are_unique() {
        let id = new_audit_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1, 10.0.0.2, junk"));
        h.insert("x-real-ip", HeaderValue::from_static("10.0.0.2"));
        let ips = source_ips(&h, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2", "127.0.0.1"]);
    }
}
