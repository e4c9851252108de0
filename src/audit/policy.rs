//! The audit policy (`audit.k8s.io/v1` `Policy`, YAML or JSON) and which
//! level and stages a request is recorded at: the first rule that matches
//! the user, groups, verb, resource or non-resource path decides, exactly
//! as the generic apiserver's policy checker does; no match is `None`.
//! Pure: parsing and matching, no I/O beyond what the caller reads.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::auth::UserInfo;
use crate::auth::requestinfo::RequestInfo;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// When an event is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// A group and its resources in a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// The policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("--audit-policy-file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    /// Stages not recorded.
    pub omit_stages: BTreeSet<Stage>,
}

impl Policy {
    /// Parses and checks a policy (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let invalid = |reason: String| PolicyError::Invalid { path: path.to_string(), reason };
        let policy: Policy = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        if policy.kind != "Policy" {
            return Err(invalid(format!("kind is {:?}, not Policy", policy.kind)));
        }
        if policy.api_version != "audit.k8s.io/v1" {
            return Err(invalid(format!("apiVersion is {:?}, not audit.k8s.io/v1", policy.api_version)));
        }
        if policy.rules.is_empty() {
            return Err(invalid("the policy has no rules".to_string()));
        }
        for (i, r) in policy.rules.iter().enumerate() {
            if !r.non_resource_urls.is_empty() && (!r.resources.is_empty() || !r.namespaces.is_empty()) {
                return Err(invalid(format!(
                    "rules[{i}]: nonResourceURLs cannot be combined with resources or namespaces"
                )));
            }
            for url in &r.non_resource_urls {
                if url.is_empty() || url[..url.len() - 1].contains('*') {
                    return Err(invalid(format!("rules[{i}]: nonResourceURL {url:?} may only end with '*'")));
                }
            }
        }
        Ok(policy)
    }

    /// The level and omitted stages for a request by `user` (none when it
    /// failed authentication).
    pub fn decide(&self, user: Option<&UserInfo>, request: &RequestInfo) -> Decision {
        for rule in &self.rules {
            if matches(rule, user, request) {
                let omit = self.omit_stages.iter().chain(&rule.omit_stages).copied().collect();
                return Decision { level: rule.level, omit_stages: omit };
            }
        }
        Decision { level: Level::None, omit_stages: self.omit_stages.iter().copied().collect() }
    }
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn matches(r: &PolicyRule, user: Option<&UserInfo>, req: &RequestInfo) -> bool {
    if !r.users.is_empty() && !user.is_some_and(|u| has(&r.users, &u.name)) {
        return false;
    }
    if !r.user_groups.is_empty() && !user.is_some_and(|u| u.groups.iter().any(|g| has(&r.user_groups, g))) {
        return false;
    }
    if !r.verbs.is_empty() && !has(&r.verbs, &req.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return matches_resource(r, req);
    }
    if !r.non_resource_urls.is_empty() {
        return !req.is_resource_request && r.non_resource_urls.iter().any(|spec| path_matches(&req.path, spec));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*" || spec == path || spec.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}

fn matches_resource(r: &PolicyRule, req: &RequestInfo) -> bool {
    if !req.is_resource_request {
        return false;
    }
    if !r.namespaces.is_empty() && !has(&r.namespaces, &req.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined =
        if req.subresource.is_empty() { req.resource.clone() } else { format!("{}/{}", req.resource, req.subresource) };
    for gr in r.resources.iter().filter(|gr| gr.group == req.api_group) {
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !has(&gr.resource_names, &req.name) {
            continue;
        }
        for res in &gr.resources {
            if *res == combined || res == "*" {
                return true;
            }
            if !req.subresource.is_empty() && res.strip_prefix("*/") == Some(req.subresource.as_str()) {
                return true;
            }
            if res.strip_suffix("/*") == Some(req.resource.as_str()) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez", "/readyz"]
  - level: RequestResponse
    users: ["alice"]
    resources:
      - group: metrics.k8s.io
        resources: ["pods"]
  - level: Request
    userGroups: ["ops"]
    verbs: ["get"]
    namespaces: ["kube-system"]
  - level: Metadata
"#;

    fn req(path: &str) -> RequestInfo {
        crate::auth::requestinfo::parse(&Method::GET, path, None)
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..UserInfo::default() }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = Policy::parse(POLICY, "policy.yaml").unwrap();
        let alice = user("alice", &[]);
        let bob = user("bob", &["ops"]);
        assert_eq!(p.decide(Some(&alice), &req("/healthz/ping")).level, Level::None);
        assert_eq!(p.decide(Some(&alice), &req("/apis/metrics.k8s.io/v1beta1/pods")).level, Level::RequestResponse);
        assert_eq!(p.decide(Some(&alice), &req("/apis/metrics.k8s.io/v1beta1/nodes")).level, Level::Metadata);
        let kube_system = req("/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods/x");
        assert_eq!(p.decide(Some(&bob), &kube_system).level, Level::Request);
        assert_eq!(p.decide(None, &kube_system).level, Level::Metadata);
        let d = p.decide(Some(&bob), &req("/metrics"));
        assert_eq!(d.level, Level::Metadata);
        assert!(d.omit_stages.contains(&Stage::RequestReceived));
    }

    #[test]
    fn resource_forms_star_subresource_and_names() {
        let rule = |resources: &str| {
            let text = format!(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    resources:\n      - {resources}\n"
            );
            Policy::parse(&text, "p").unwrap()
        };
        let pod = req("/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/p1");
        for (spec, want) in [
            ("{group: metrics.k8s.io}", true),
            ("{group: metrics.k8s.io, resources: ['*']}", true),
            ("{group: metrics.k8s.io, resources: ['pods'], resourceNames: ['p1']}", true),
            ("{group: metrics.k8s.io, resources: ['pods'], resourceNames: ['p2']}", false),
            ("{group: '', resources: ['pods']}", false),
            ("{group: metrics.k8s.io, resources: ['pods/*']}", true),
            ("{group: metrics.k8s.io, resources: ['nodes']}", false),
        ] {
            let p = rule(spec);
            assert_eq!(p.decide(None, &pod).level == Level::Metadata, want, "{spec}");
        }
    }

    #[test]
    fn bad_policies_are_refused_naming_the_file() {
        for text in [
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n  - level: None\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Loud\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    nonResourceURLs: ['/a*b']\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    userz: [a]\n",
        ] {
            let e = Policy::parse(text, "/etc/audit.yaml").unwrap_err().to_string();
            assert!(e.contains("/etc/audit.yaml"), "{e}");
        }
        let json = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata"}]}"#;
        assert!(Policy::parse(json, "p.json").is_ok());
    }
}
