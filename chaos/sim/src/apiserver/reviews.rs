//! TokenReview and SubjectAccessReview, as a delegating apiserver (the
//! metrics server) sends them: tokens are looked up in the token table,
//! access is decided by a small RBAC-like [`Policy`] (with `system:masters`
//! allowed everything). Reviews are counted so tests can check caching.
//! It answers questions only; it never guards the stand-in's own API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::router::AppState;
use apimachinery::status::Status;

/// Who a rule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

/// One rule: for these subjects, allow (or deny) these verbs on these
/// resources or non-resource URLs. `"*"` matches anything in a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    pub subjects: Vec<Subject>,
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, with `resource/subresource` for subresources (`nodes/metrics`).
    pub resources: Vec<String>,
    /// Namespaces the rule applies to; empty means every namespace and cluster scope.
    pub namespaces: Vec<String>,
    /// Non-resource paths; a trailing `*` matches any suffix.
    pub non_resource_urls: Vec<String>,
    /// A deny rule: matched before any allow rule, answers `denied: true`.
    pub deny: bool,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PolicyRule {
    /// A rule for one user.
    pub fn for_user(user: &str) -> PolicyRule {
        PolicyRule { subjects: vec![Subject::User(user.into())], ..PolicyRule::default() }
    }
    /// A rule for one group.
    pub fn for_group(group: &str) -> PolicyRule {
        PolicyRule { subjects: vec![Subject::Group(group.into())], ..PolicyRule::default() }
    }
    pub fn verbs(mut self, verbs: &[&str]) -> PolicyRule {
        self.verbs = strings(verbs);
        self
    }
    pub fn api_groups(mut self, groups: &[&str]) -> PolicyRule {
        self.api_groups = strings(groups);
        self
    }
    pub fn resources(mut self, resources: &[&str]) -> PolicyRule {
        self.resources = strings(resources);
        self
    }
    pub fn namespaces(mut self, namespaces: &[&str]) -> PolicyRule {
        self.namespaces = strings(namespaces);
        self
    }
    pub fn non_resource_urls(mut self, urls: &[&str]) -> PolicyRule {
        self.non_resource_urls = strings(urls);
        self
    }
    pub fn deny(mut self) -> PolicyRule {
        self.deny = true;
        self
    }

    fn applies_to(&self, user: &str, groups: &[String]) -> bool {
        self.subjects.iter().any(|s| match s {
            Subject::User(u) => u == user,
            Subject::Group(g) => groups.contains(g),
        })
    }

    fn covers(&self, a: &Attributes) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|x| x == "*" || x == value);
        if !any(&self.verbs, &a.verb) {
            return false;
        }
        match &a.path {
            Some(path) => self.non_resource_urls.iter().any(|u| match u.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => u == path,
            }),
            None => {
                let resource = if a.subresource.is_empty() {
                    a.resource.clone()
                } else {
                    format!("{}/{}", a.resource, a.subresource)
                };
                any(&self.api_groups, &a.api_group)
                    && any(&self.resources, &resource)
                    && (self.namespaces.is_empty() || any(&self.namespaces, &a.namespace))
            }
        }
    }
}

/// What a SubjectAccessReview asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Set for non-resource requests.
    pub path: Option<String>,
}

/// A review's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub denied: bool,
    pub reason: String,
}

/// The rules SubjectAccessReviews are answered from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
}

impl Policy {
    /// What a fresh stand-in uses: discovery paths for every authenticated
    /// user (RBAC's `system:discovery`), and read access to metrics, nodes
    /// and pods for group `dev-team` (the dev kubeconfig's user).
    pub fn standard() -> Policy {
        Policy {
            rules: vec![
                PolicyRule::for_group(super::authn::AUTHENTICATED).verbs(&["get"]).non_resource_urls(&[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/version",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/openapi",
                    "/openapi/*",
                ]),
                PolicyRule::for_group("dev-team")
                    .verbs(&["get", "list", "watch"])
                    .api_groups(&["", "metrics.k8s.io"])
                    .resources(&["nodes", "pods"]),
            ],
        }
    }

    /// Decides: `system:masters` first, then deny rules, then allow rules.
    pub fn decide(&self, a: &Attributes) -> Decision {
        if a.groups.iter().any(|g| g == "system:masters") {
            return Decision { allowed: true, denied: false, reason: "system:masters".into() };
        }
        let matching = |deny: bool| {
            self.rules.iter().position(|r| r.deny == deny && r.applies_to(&a.user, &a.groups) && r.covers(a))
        };
        if let Some(i) = matching(true) {
            return Decision { allowed: false, denied: true, reason: format!("denied by policy rule {i}") };
        }
        if let Some(i) = matching(false) {
            return Decision { allowed: true, denied: false, reason: format!("allowed by policy rule {i}") };
        }
        Decision { allowed: false, denied: false, reason: format!("no policy rule allows user {:?}", a.user) }
    }
}

/// The policy and what reviews were received.
#[derive(Debug, Default)]
pub struct Reviews {
    policy: RwLock<Policy>,
    token_reviews: AtomicU64,
    subject_access_reviews: AtomicU64,
    sar_log: Mutex<Vec<Value>>,
    /// How long TokenReviews and SubjectAccessReviews take to answer (a
    /// slow kube-apiserver), for tests of request timeouts and limits.
    delays: Mutex<(std::time::Duration, std::time::Duration)>,
}

impl Reviews {
    pub fn new(policy: Policy) -> Reviews {
        Reviews { policy: RwLock::new(policy), ..Reviews::default() }
    }
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }
    pub fn token_reviews(&self) -> u64 {
        self.token_reviews.load(Ordering::Relaxed)
    }
    pub fn subject_access_reviews(&self) -> u64 {
        self.subject_access_reviews.load(Ordering::Relaxed)
    }
    /// The `spec` of every SubjectAccessReview received, oldest first.
    pub fn sar_log(&self) -> Vec<Value> {
        self.sar_log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Makes every TokenReview and SubjectAccessReview take this long.
    pub fn set_delays(&self, token_review: std::time::Duration, access_review: std::time::Duration) {
        *self.delays.lock().unwrap_or_else(|p| p.into_inner()) = (token_review, access_review);
    }
    fn delays(&self) -> (std::time::Duration, std::time::Duration) {
        *self.delays.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn decide(&self, a: &Attributes) -> Decision {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).decide(a)
    }
}

fn parse_review(body: &[u8], kind: &str) -> Result<Value, Status> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| Status::bad_request(format!("decoding {kind}: {e}")))?;
    if review.get("kind").and_then(Value::as_str).is_some_and(|k| k != kind) {
        return Err(Status::bad_request(format!("expected kind {kind}")));
    }
    review
        .get("spec")
        .filter(|s| s.is_object())
        .cloned()
        .ok_or_else(|| Status::bad_request(format!("{kind} without spec")))
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, [(http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub async fn token_review(State(state): State<AppState>, body: Bytes) -> Result<Response, Status> {
    let spec = parse_review(&body, "TokenReview")?;
    state.reviews.token_reviews.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(state.reviews.delays().0).await;
    let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
    let audiences = spec.get("audiences").cloned().unwrap_or_else(|| json!([]));
    let status = match state.authn.lookup_token(token) {
        Some(mut user) => {
            if !user.groups.iter().any(|g| g == super::authn::AUTHENTICATED) {
                user.groups.push(super::authn::AUTHENTICATED.into());
            }
            json!({"authenticated": true, "user": user, "audiences": audiences})
        }
        None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
    };
    Ok(created(json!({
        "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec, "status": status,
    })))
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`.
pub async fn subject_access_review(State(state): State<AppState>, body: Bytes) -> Result<Response, Status> {
    let spec = parse_review(&body, "SubjectAccessReview")?;
    state.reviews.subject_access_reviews.fetch_add(1, Ordering::Relaxed);
    state.reviews.sar_log.lock().unwrap_or_else(|p| p.into_inner()).push(spec.clone());
    tokio::time::sleep(state.reviews.delays().1).await;
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let mut a = Attributes {
        user: s(&spec, "/user"),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        ..Attributes::default()
    };
    if let Some(r) = spec.get("resourceAttributes") {
        a.verb = s(r, "/verb");
        a.api_group = s(r, "/group");
        a.resource = s(r, "/resource");
        a.subresource = s(r, "/subresource");
        a.namespace = s(r, "/namespace");
        a.name = s(r, "/name");
    } else if let Some(n) = spec.get("nonResourceAttributes") {
        a.verb = s(n, "/verb");
        a.path = Some(s(n, "/path"));
    } else {
        return Err(Status::bad_request("SubjectAccessReview needs resourceAttributes or nonResourceAttributes"));
    }
    let d = state.reviews.decide(&a);
    let mut status = json!({"allowed": d.allowed, "reason": d.reason});
    if d.denied {
        status["denied"] = Value::Bool(true);
    }
    Ok(created(json!({
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null}, "spec": spec, "status": status,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: &str, groups: &[&str], verb: &str, group: &str, resource: &str, ns: &str) -> Attributes {
        Attributes {
            user: user.into(),
            groups: strings(groups),
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn policy_allows_by_user_group_namespace_and_masters() {
        let p = Policy {
            rules: vec![
                PolicyRule::for_user("alice")
                    .verbs(&["list"])
                    .api_groups(&["metrics.k8s.io"])
                    .resources(&["pods"])
                    .namespaces(&["team-a"]),
                PolicyRule::for_group("ops").verbs(&["*"]).api_groups(&["*"]).resources(&["*"]),
                PolicyRule::for_user("mallory").verbs(&["*"]).api_groups(&["*"]).resources(&["*"]).deny(),
            ],
        };
        assert!(p.decide(&attrs("alice", &[], "list", "metrics.k8s.io", "pods", "team-a")).allowed);
        assert!(!p.decide(&attrs("alice", &[], "list", "metrics.k8s.io", "pods", "default")).allowed);
        assert!(!p.decide(&attrs("alice", &[], "get", "metrics.k8s.io", "pods", "team-a")).allowed);
        assert!(p.decide(&attrs("bob", &["ops"], "list", "", "nodes", "")).allowed);
        assert!(p.decide(&attrs("root", &["system:masters"], "delete", "x", "y", "")).allowed);
        let d = p.decide(&attrs("mallory", &["ops"], "list", "", "nodes", ""));
        assert!(!d.allowed && d.denied);
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let p = Policy::standard();
        let mut a = attrs("x", &["system:authenticated"], "get", "", "", "");
        a.path = Some("/apis/metrics.k8s.io/v1beta1".into());
        assert!(p.decide(&a).allowed);
        a.path = Some("/metrics".into());
        assert!(!p.decide(&a).allowed);
    }
}
