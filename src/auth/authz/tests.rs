use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Method;

use super::*;
use crate::auth::requestinfo;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..UserInfo::default() }
}

/// Allows `alice` only; records what it was asked.
struct OnlyAlice {
    calls: AtomicUsize,
    seen: Mutex<Vec<Attributes>>,
}

impl AccessReviewer for OnlyAlice {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, ReviewError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(attributes.clone());
        let allowed = user.name == "alice";
        Box::pin(
            async move { Ok(Decision { allowed, reason: if allowed { String::new() } else { "no RBAC".into() } }) },
        )
    }
}

fn reviewer() -> Arc<OnlyAlice> {
    Arc::new(OnlyAlice { calls: AtomicUsize::new(0), seen: Mutex::new(Vec::new()) })
}

#[tokio::test]
async fn masters_skip_the_review_and_decisions_are_cached() {
    let r = reviewer();
    let a = Authorizer::new(
        r.clone(),
        crate::config::defaults::AUTHORIZED_TTL,
        crate::config::defaults::UNAUTHORIZED_TTL,
        64,
    );
    let info = requestinfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes", None);
    let admin = user("system:kube-aggregator", &["system:masters", "system:authenticated"]);
    for _ in 0..3 {
        assert!(a.authorize(&admin, &info).await.unwrap().allowed);
    }
    assert_eq!(r.calls.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        assert!(a.authorize(&user("alice", &[]), &info).await.unwrap().allowed);
        assert!(!a.authorize(&user("bob", &[]), &info).await.unwrap().allowed);
    }
    assert_eq!(r.calls.load(Ordering::SeqCst), 2, "one review per (user, request) within the TTL");
    // A different group set is a different question.
    assert!(!a.authorize(&user("bob", &["devs"]), &info).await.unwrap().allowed);
    assert_eq!(r.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn review_carries_resource_or_non_resource_attributes() {
    let r = reviewer();
    let a = Authorizer::new(
        r.clone(),
        crate::config::defaults::AUTHORIZED_TTL,
        crate::config::defaults::UNAUTHORIZED_TTL,
        64,
    );
    let u = user("alice", &[]);
    let pods = requestinfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web", None);
    a.authorize(&u, &pods).await.unwrap();
    let metrics = requestinfo::parse(&Method::GET, "/metrics", None);
    a.authorize(&u, &metrics).await.unwrap();
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            Attributes::Resource {
                namespace: "default".into(),
                verb: "get".into(),
                group: "metrics.k8s.io".into(),
                version: "v1beta1".into(),
                resource: "pods".into(),
                subresource: String::new(),
                name: "web".into(),
            },
            Attributes::NonResource { path: "/metrics".into(), verb: "get".into() },
        ]
    );
}

#[test]
fn forbidden_messages_use_the_generic_apiserver_wording() {
    let alice = user("alice", &[]);
    let list = requestinfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", None);
    let s = forbidden(&alice, &list, "");
    assert_eq!(s.code, 403);
    assert_eq!(s.reason, "Forbidden");
    assert_eq!(
        s.message,
        r#"pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "default""#
    );
    assert!(s.to_json().contains(r#""details":{"group":"metrics.k8s.io","kind":"pods"}"#), "{}", s.to_json());

    let node = requestinfo::parse(&Method::GET, "/apis/metrics.k8s.io/v1beta1/nodes/node-a", None);
    assert_eq!(
        forbidden(&alice, &node, "RBAC: no").message,
        r#"nodes.metrics.k8s.io "node-a" is forbidden: User "alice" cannot get resource "nodes" in API group "metrics.k8s.io" at the cluster scope: RBAC: no"#
    );
    let path = requestinfo::parse(&Method::GET, "/metrics", None);
    let s = forbidden(&user("x", &[]), &path, "");
    assert_eq!(s.message, r#"forbidden: User "x" cannot get path "/metrics""#);
    assert!(s.to_json().contains(r#""details":{}"#));
}
