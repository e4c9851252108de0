//! Who can reach the peer CA key, checked on the rendered objects. The
//! replicas' service account, whose token goes to every kubelet they
//! scrape, is granted nothing on Secrets by any rendered Role or
//! ClusterRole and is bound to no role that is neither rendered here nor a
//! known built-in without Secret access. Every StatefulSet takes its peer
//! CA from a required Secret volume at `--peer-ca-dir` (each replica issues
//! its own certificate from it: one certificate per replica), and that
//! Secret is made in the same rendering, by the certgen Job or by a
//! cert-manager CA Certificate. The certgen Job runs `certgen` for exactly
//! that Secret, hardened, as its own service account, which may create
//! Secrets in its namespace (a create cannot be limited by name in RBAC)
//! and nothing else, not even read them, so the node that runs the Job's
//! pod cannot learn the key; no Service, PDB or NetworkPolicy of the
//! replicas selects its pods.

use clap::Parser;
use ha_metrics_server::cli::{Cli, Command};
use ha_metrics_server::config::{PeerCredentials, SecretRef, parse_secret_ref};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

use super::{CertManagerObject, Object, Rendered, Workload, pod_spec, selects};

/// Built-in roles a metrics server's service account is bound to, none of
/// which grants anything on Secrets: delegated authentication and
/// authorization, and reading the authentication ConfigMap.
const BUILT_IN: [(&str, &str); 2] =
    [("ClusterRole", "system:auth-delegator"), ("Role", "extension-apiserver-authentication-reader")];

/// The namespace of workload `w` as rendered.
pub fn namespace_of(r: &Rendered, w: &Workload<'_>) -> String {
    r.objects
        .iter()
        .find_map(|o| match o {
            Object::StatefulSet(_) | Object::Deployment(_) if o.name() == w.name => o.meta().namespace.clone(),
            _ => None,
        })
        .unwrap_or_else(|| "default".into())
}

/// Every rule granted to service account `namespace/sa`, with the namespace
/// it applies in (`None`: every namespace); panics on a binding to a role
/// that is neither rendered nor in [`BUILT_IN`].
fn granted(r: &Rendered, sa: &str, namespace: &str) -> Vec<(Option<String>, PolicyRule)> {
    let binds = |subjects: &Option<Vec<Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref().unwrap_or(namespace) == namespace
        })
    };
    let role_rules = |kind: &str, name: &str, ns: Option<&String>| -> Option<Vec<PolicyRule>> {
        r.objects.iter().find_map(|o| match o {
            Object::Role(role) if kind == "Role" && o.name() == name && role.metadata.namespace.as_ref() == ns => {
                Some(role.rules.clone().unwrap_or_default())
            }
            Object::ClusterRole(role) if kind == "ClusterRole" && o.name() == name => {
                Some(role.rules.clone().unwrap_or_default())
            }
            _ => None,
        })
    };
    let mut found = Vec::new();
    for o in &r.objects {
        let (role_ref, scope) = match o {
            Object::RoleBinding(b) if binds(&b.subjects) => (&b.role_ref, b.metadata.namespace.clone()),
            Object::ClusterRoleBinding(b) if binds(&b.subjects) => (&b.role_ref, None),
            _ => continue,
        };
        match role_rules(&role_ref.kind, &role_ref.name, scope.as_ref()) {
            Some(rules) => found.extend(rules.into_iter().map(|rule| (scope.clone(), rule))),
            None => assert!(
                BUILT_IN.contains(&(role_ref.kind.as_str(), role_ref.name.as_str())),
                "{}: {namespace}/{sa} is bound ({}) to {} {}, which is not rendered here and not a known built-in \
                 role without Secret access",
                r.source,
                o.name(),
                role_ref.kind,
                role_ref.name
            ),
        }
    }
    found
}

fn on_secrets(rule: &PolicyRule) -> bool {
    rule.api_groups.iter().flatten().any(|g| g.is_empty() || g == "*")
        && rule.resources.iter().flatten().any(|res| res == "secrets" || res == "*")
}

/// Service account `namespace/sa` may do nothing with Secrets.
pub fn assert_no_secret_access(r: &Rendered, sa: &str, namespace: &str) {
    let rules: Vec<_> = granted(r, sa, namespace).into_iter().filter(|(_, rule)| on_secrets(rule)).collect();
    assert!(rules.is_empty(), "{}: {namespace}/{sa} (the replicas') may touch Secrets: {rules:?}", r.source);
}

/// The Secret mounted at `dir` in `w`'s pods, with the volume required.
fn mounted_secret<'a>(r: &Rendered, w: &Workload<'a>, dir: &std::path::Path) -> &'a str {
    let pod = pod_spec(w);
    let mount = pod.containers[0].volume_mounts.iter().flatten().find(|m| dir == std::path::Path::new(&m.mount_path));
    let mount = mount.unwrap_or_else(|| panic!("{}: --peer-ca-dir {} is not a mount", r.source, dir.display()));
    assert_eq!(mount.read_only, Some(true), "{}: the peer CA is mounted writable", r.source);
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).expect("mounted volume");
    let secret = volume.secret.as_ref().unwrap_or_else(|| panic!("{}: the peer CA volume is not a Secret", r.source));
    assert_ne!(secret.optional, Some(true), "{}: an optional peer CA volume would start pods without it", r.source);
    if let Some(items) = &secret.items {
        let mut paths: Vec<&str> = items.iter().map(|i| i.path.as_str()).collect();
        paths.sort();
        assert_eq!(paths, ["ca.crt", "ca.key"], "{}: the mapped keys are not the CA's", r.source);
    }
    secret.secret_name.as_deref().unwrap_or_else(|| panic!("{}: no secretName", r.source))
}

/// The certgen Job's `--secret`, parsed as the binary parses it.
fn job_secret(r: &Rendered, job: &Job) -> SecretRef {
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("Job pod spec");
    assert_eq!(pod.containers.len(), 1, "{}: the certgen Job runs one container", r.source);
    let c = &pod.containers[0];
    assert!(c.command.is_none(), "{}: the certgen Job overrides the entrypoint", r.source);
    let mut argv = vec!["ha-metrics-server".to_string()];
    argv.extend(c.args.clone().unwrap_or_default());
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{}: certgen flags rejected: {e}", r.source));
    let Some(Command::Certgen(args)) = cli.command else {
        panic!("{}: the Job does not run certgen: {argv:?}", r.source)
    };
    assert!(!args.rotate, "{}: the install Job must never rotate the CA", r.source);
    let ns = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    parse_secret_ref("--secret", &args.secret, &ns).unwrap_or_else(|e| panic!("{}: {e}", r.source))
}

/// The certgen Job's pod is hardened as the replicas are, and nothing of
/// the replicas' selects it.
fn assert_job_pod(r: &Rendered, job: &Job, replica_labels: &std::collections::BTreeMap<String, String>) {
    let template = &job.spec.as_ref().expect("Job spec").template;
    let pod = template.spec.as_ref().expect("Job pod spec");
    let src = &r.source;
    let psc = pod.security_context.as_ref().unwrap_or_else(|| panic!("{src}: certgen pod securityContext"));
    assert_eq!(psc.run_as_non_root, Some(true), "{src}: certgen runAsNonRoot");
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{src}: certgen securityContext"));
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{src}: certgen allowPrivilegeEscalation");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{src}: certgen readOnlyRootFilesystem");
        let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
        assert!(drop.iter().any(|d| d == "ALL"), "{src}: certgen drops every capability");
        assert!(c.volume_mounts.iter().flatten().next().is_none(), "{src}: certgen mounts nothing");
    }
    assert!(!pod.host_network.unwrap_or(false), "{src}: certgen hostNetwork");
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    assert!(!selects(Some(replica_labels), &labels), "{src}: certgen pods carry the replicas' labels");
    for o in &r.objects {
        let selector = match o {
            Object::Service(s) => s.spec.as_ref().and_then(|s| s.selector.clone()),
            Object::PodDisruptionBudget(p) => {
                p.spec.as_ref().and_then(|s| s.selector.clone()).and_then(|s| s.match_labels)
            }
            Object::NetworkPolicy(n) => {
                n.spec.as_ref().and_then(|s| s.pod_selector.clone()).and_then(|s| s.match_labels)
            }
            _ => continue,
        };
        assert!(!selects(selector.as_ref(), &labels), "{src}: {} selects the certgen Job's pods", o.name());
    }
}

/// The certgen service account's rules: `create` on Secrets in its
/// namespace, and nothing else.
fn assert_certgen_rbac(r: &Rendered, sa: &str, secret: &SecretRef) {
    let src = &r.source;
    let rules = granted(r, sa, &secret.namespace);
    assert!(!rules.is_empty(), "{src}: certgen cannot create {secret}");
    for (scope, rule) in &rules {
        assert_eq!(scope.as_deref(), Some(secret.namespace.as_str()), "{src}: certgen access outside its namespace");
        assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]), "{src}: {rule:?}");
        assert_eq!(rule.resources.as_deref(), Some(&["secrets".to_string()][..]), "{src}: {rule:?}");
        assert_eq!(rule.verbs, ["create"], "{src}: certgen may do more than create Secrets: {rule:?}");
    }
}

/// See the module comment: `w` is a StatefulSet run as service account
/// `sa` with the validated peer `credentials`.
pub fn assert_peer_credentials(r: &Rendered, w: &Workload<'_>, sa: &str, credentials: &PeerCredentials) {
    let src = &r.source;
    let namespace = namespace_of(r, w);
    assert_no_secret_access(r, sa, &namespace);
    let PeerCredentials::CaDir(dir) = credentials else {
        panic!(
            "{src}: the replicas share certificate files ({credentials:?}); each must issue its own from --peer-ca-dir"
        )
    };
    let name = mounted_secret(r, w, dir);
    let secret = SecretRef { namespace: namespace.clone(), name: name.to_string() };
    let jobs: Vec<&Job> = r.jobs().into_iter().filter(|j| job_secret(r, j) == secret).collect();
    let ca_certificates: Vec<&CertManagerObject> = r
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::CertManager(c) if c.kind == "Certificate" && c.spec["secretName"] == name => Some(&**c),
            _ => None,
        })
        .collect();
    match (jobs.as_slice(), ca_certificates.as_slice()) {
        ([job], []) => {
            let job_sa = job
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.service_account_name.clone())
                .unwrap_or_else(|| "default".into());
            assert_ne!(job_sa, sa, "{src}: the certgen Job runs as the replicas' service account");
            assert_ne!(job_sa, "default", "{src}: the certgen Job runs as the namespace's default service account");
            assert_eq!(job.metadata.namespace.as_deref(), Some(namespace.as_str()), "{src}: Job namespace");
            assert_certgen_rbac(r, &job_sa, &secret);
            assert_job_pod(r, job, &super::pod_labels(w));
        }
        ([], [certificate]) => {
            assert_eq!(certificate.spec["isCA"], true, "{src}: cert-manager's {name} is not a CA");
            let key = &certificate.spec["privateKey"];
            assert_eq!(key["encoding"], "PKCS8", "{src}: the replicas read PKCS#8 keys only");
            assert_eq!(key["rotationPolicy"], "Never", "{src}: a renewal must keep the CA's key");
        }
        (jobs, certs) => panic!(
            "{src}: the mounted peer CA Secret {secret} must be made by one certgen Job or one cert-manager CA \
             Certificate in the same install: {} Jobs, {} Certificates",
            jobs.len(),
            certs.len()
        ),
    }
    // No peer certificate is shared by the replicas: the credentials above
    // are a CA directory, from which each replica issues its own leaf (a
    // Certificate for the API's serving certificate, as metrics-server's
    // chart makes with tls.type=cert-manager, is not a peer credential).
}
