//! Where a rendered StatefulSet's peer credentials come from, checked
//! against the objects beside it: with `--peer-secret`, RBAC lets the
//! replicas' service account read that one Secret (resourceNames) and
//! create Secrets in its namespace (which RBAC cannot narrow by name), and
//! grants nothing else on Secrets; with the file flags, the files come from
//! a mounted Secret and no Secret RBAC is granted at all.

use ha_metrics_server::config::PeerCredentials;
use k8s_openapi::api::rbac::v1::PolicyRule;

use super::{Object, Rendered, Workload, pod_spec};

/// Rules on core Secrets granted to `sa` (by RoleBindings in its namespace
/// and by ClusterRoleBindings), with the namespace each applies in
/// (`None`: every namespace).
fn secret_rules(r: &Rendered, sa: &str, sa_namespace: &str) -> Vec<(Option<String>, PolicyRule)> {
    let binds_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref().unwrap_or(sa_namespace) == sa_namespace
        })
    };
    let on_secrets = |rule: &PolicyRule| {
        rule.api_groups.iter().flatten().any(|g| g.is_empty() || g == "*")
            && rule.resources.iter().flatten().any(|res| res == "secrets" || res == "*")
    };
    let mut found = Vec::new();
    for o in &r.objects {
        match o {
            Object::RoleBinding(b) if binds_sa(&b.subjects) => {
                let ns = b.metadata.namespace.clone();
                let rules: Vec<PolicyRule> = r
                    .objects
                    .iter()
                    .filter_map(|o| match o {
                        Object::Role(role)
                            if b.role_ref.kind == "Role"
                                && role.metadata.name.as_deref() == Some(&b.role_ref.name)
                                && role.metadata.namespace == ns =>
                        {
                            role.rules.clone()
                        }
                        Object::ClusterRole(role)
                            if b.role_ref.kind == "ClusterRole"
                                && role.metadata.name.as_deref() == Some(&b.role_ref.name) =>
                        {
                            role.rules.clone()
                        }
                        _ => None,
                    })
                    .flatten()
                    .collect();
                found.extend(rules.into_iter().filter(on_secrets).map(|rule| (ns.clone(), rule)));
            }
            Object::ClusterRoleBinding(b) if binds_sa(&b.subjects) => {
                for o in &r.objects {
                    if let Object::ClusterRole(role) = o
                        && role.metadata.name.as_deref() == Some(&b.role_ref.name)
                    {
                        found.extend(
                            role.rules.iter().flatten().filter(|r| on_secrets(r)).map(|rule| (None, rule.clone())),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// See the module comment.
pub fn assert_peer_credentials(r: &Rendered, w: &Workload<'_>, sa: &str, credentials: &PeerCredentials) {
    let src = &r.source;
    let sa_namespace = r
        .objects
        .iter()
        .find_map(|o| match o {
            Object::StatefulSet(s) if s.metadata.name.as_deref() == Some(w.name) => s.metadata.namespace.clone(),
            _ => None,
        })
        .unwrap_or_else(|| "default".into());
    let rules = secret_rules(r, sa, &sa_namespace);
    match credentials {
        PeerCredentials::Secret(secret) => {
            assert_eq!(secret.namespace, sa_namespace, "{src}: the peer Secret lives beside the replicas");
            let mut can_get = false;
            let mut can_create = false;
            for (ns, rule) in &rules {
                assert_eq!(
                    ns.as_deref(),
                    Some(secret.namespace.as_str()),
                    "{src}: Secret access outside {}: {rule:?}",
                    secret.namespace
                );
                let verbs: Vec<&str> = rule.verbs.iter().map(String::as_str).collect();
                match rule.resource_names.as_deref() {
                    Some(names) if !names.is_empty() => {
                        assert_eq!(
                            names,
                            std::slice::from_ref(&secret.name),
                            "{src}: Secret rule names other Secrets: {rule:?}"
                        );
                        assert!(verbs.iter().all(|v| ["get", "watch"].contains(v)), "{src}: {rule:?}");
                        can_get |= verbs.contains(&"get");
                    }
                    _ => {
                        assert_eq!(
                            verbs,
                            ["create"],
                            "{src}: a Secret rule without resourceNames may only create: {rule:?}"
                        );
                        can_create = true;
                    }
                }
            }
            assert!(can_get && can_create, "{src}: {sa} cannot get {secret} and create it: {rules:?}");
        }
        PeerCredentials::Files { ca_file, .. } => {
            assert!(rules.is_empty(), "{src}: file flags, yet {sa} may touch Secrets: {rules:?}");
            let pod = pod_spec(w);
            let mounted = pod.containers[0].volume_mounts.iter().flatten().any(|m| {
                ca_file.starts_with(&m.mount_path)
                    && pod.volumes.iter().flatten().any(|v| v.name == m.name && v.secret.is_some())
            });
            assert!(mounted, "{src}: {} is not on a mounted Secret", ca_file.display());
        }
    }
}
