//! Authorization, delegated like the generic apiserver's: members of
//! `system:masters` are allowed outright; always-allowed paths need nothing;
//! everything else is a SubjectAccessReview (through an [`AccessReviewer`])
//! whose allow and deny answers are cached briefly in a bounded cache. Also
//! the 403 Status wording. It must not authenticate anyone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

use super::UserInfo;
use super::cache::TtlCache;
use super::requestinfo::RequestInfo;
use super::token::{REVIEW_TIMEOUT, ReviewError};
use apimachinery::status::{Status, StatusDetails};

/// Groups allowed everything without a review.
pub const ALWAYS_ALLOW_GROUPS: &[&str] = &["system:masters"];

/// What is being asked, as a SubjectAccessReview spec carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Attributes {
    Resource {
        namespace: String,
        verb: String,
        group: String,
        version: String,
        resource: String,
        subresource: String,
        name: String,
    },
    NonResource {
        path: String,
        verb: String,
    },
}

impl Attributes {
    /// The attributes of a parsed request.
    pub fn of(info: &RequestInfo) -> Attributes {
        if info.is_resource_request {
            Attributes::Resource {
                namespace: info.namespace.clone(),
                verb: info.verb.clone(),
                group: info.api_group.clone(),
                version: info.api_version.clone(),
                resource: info.resource.clone(),
                subresource: info.subresource.clone(),
                name: info.name.clone(),
            }
        } else {
            Attributes::NonResource { path: info.path.clone(), verb: info.verb.clone() }
        }
    }
}

/// The answer of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why, as the reviewer said it (may be empty).
    pub reason: String,
}

/// Reviews access (kube-apiserver's SubjectAccessReview, or a test double).
/// A review with no opinion is a deny.
pub trait AccessReviewer: Send + Sync {
    fn review<'a>(
        &'a self,
        user: &'a UserInfo,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, ReviewError>>;
}

/// Decides, with a cache in front of the reviewer.
pub struct Authorizer {
    reviewer: Arc<dyn AccessReviewer>,
    cache: TtlCache<String, Decision>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    timeout: Duration,
}

impl Authorizer {
    pub fn new(
        reviewer: Arc<dyn AccessReviewer>,
        allowed_ttl: Duration,
        denied_ttl: Duration,
        capacity: usize,
    ) -> Self {
        Authorizer { reviewer, cache: TtlCache::new(capacity), allowed_ttl, denied_ttl, timeout: REVIEW_TIMEOUT }
    }

    /// Whether `user` may do what `info` asks.
    pub async fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Result<Decision, ReviewError> {
        if user.groups.iter().any(|g| ALWAYS_ALLOW_GROUPS.contains(&g.as_str())) {
            return Ok(Decision { allowed: true, reason: String::new() });
        }
        let attributes = Attributes::of(info);
        let key = cache_key(user, &attributes);
        if let Some(hit) = key.as_ref().and_then(|k| self.cache.get(k)) {
            return Ok(hit);
        }
        let decision = tokio::time::timeout(self.timeout, self.reviewer.review(user, &attributes))
            .await
            .map_err(|_| ReviewError::Timeout { review: "SubjectAccessReview", timeout: self.timeout })??;
        if let Some(k) = key {
            let ttl = if decision.allowed { self.allowed_ttl } else { self.denied_ttl };
            self.cache.insert(k, decision.clone(), ttl);
        }
        Ok(decision)
    }
}

fn cache_key(user: &UserInfo, attributes: &Attributes) -> Option<String> {
    #[derive(Serialize)]
    struct Key<'a> {
        user: &'a str,
        uid: &'a str,
        groups: &'a [String],
        extra: &'a BTreeMap<String, Vec<String>>,
        attributes: &'a Attributes,
    }
    serde_json::to_string(&Key {
        user: &user.name,
        uid: &user.uid,
        groups: &user.groups,
        extra: &user.extra,
        attributes,
    })
    .ok()
}

/// The generic apiserver's 403: `<resource>.<group> is forbidden: User "alice"
/// cannot list resource "pods" in API group "metrics.k8s.io" in the namespace
/// "default"[: <reason>]`, or `forbidden: User "x" cannot get path "/metrics"`.
pub fn forbidden(user: &UserInfo, info: &RequestInfo, reason: &str) -> Status {
    let mut msg = if !info.is_resource_request {
        format!("User {:?} cannot {} path {:?}", user.name, info.verb, info.path)
    } else {
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        if info.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                user.name, info.verb, resource, info.api_group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                user.name, info.verb, resource, info.api_group, info.namespace
            )
        }
    };
    msg = msg.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let (qualified, details) = if info.is_resource_request {
        let q = if info.api_group.is_empty() {
            info.resource.clone()
        } else {
            format!("{}.{}", info.resource, info.api_group)
        };
        let d = StatusDetails { name: info.name.clone(), group: info.api_group.clone(), kind: info.resource.clone() };
        (q, d)
    } else {
        (String::new(), StatusDetails::default())
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if info.name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {:?} is forbidden: {msg}", info.name)
    };
    Status::forbidden(message).with_details(details)
}

#[cfg(test)]
mod tests;
