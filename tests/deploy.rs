//! The shipped kustomizations: `deploy/` and every overlay render with the
//! real kubectl, every object is valid for the Kubernetes API (k8s-openapi
//! types, unknown fields rejected), metrics-server's names are kept, the HA
//! settings and hardening are present, and the binary's own flag
//! validation accepts every container's args.

mod common;
mod manifests;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use manifests::{
    Object, Rendered, assert_ha_settings, assert_hardened, kustomize, parse, pod_labels, pod_spec, port, selects,
};

/// Every kustomization an operator can apply.
const KUSTOMIZATIONS: [&str; 5] = [
    "deploy",
    "deploy/overlays/single-replica",
    "deploy/overlays/large-cluster",
    "deploy/overlays/metrics-v1",
    "deploy/overlays/cert-manager",
];

fn rendered(dir: &str) -> Rendered {
    parse(dir, &kustomize(dir))
}

/// The objects every kustomization shares with metrics-server's
/// components.yaml, by name, and the APIService pointing at its Service.
fn assert_metrics_server_names(r: &Rendered) {
    let names = r.names();
    for name in [
        "metrics-server",
        "system:aggregated-metrics-reader",
        "system:metrics-server",
        "metrics-server-auth-reader",
        "metrics-server:system:auth-delegator",
        "v1beta1.metrics.k8s.io",
    ] {
        assert!(names.iter().any(|n| n == name), "{}: no object named {name}: {names:?}", r.source);
    }
    let w = r.workload();
    assert_eq!(w.name, "metrics-server", "{}", r.source);
    let labels = pod_labels(&w);
    for api in r.api_services() {
        let svc_ref = api.spec.service.as_ref().unwrap();
        let svc = r
            .services()
            .into_iter()
            .find(|s| s.metadata.name == svc_ref.name && s.metadata.namespace == svc_ref.namespace)
            .unwrap_or_else(|| panic!("{}: APIService {:?} points at no Service", r.source, api.metadata.name));
        let spec = svc.spec.as_ref().unwrap();
        let port = spec.ports.as_ref().unwrap().iter().find(|p| p.port == svc_ref.port.unwrap_or(443));
        let port = port.unwrap_or_else(|| panic!("{}: Service has no port {:?}", r.source, svc_ref.port));
        assert_eq!(port.target_port, Some(IntOrString::String("https".into())), "{}", r.source);
        assert!(selects(spec.selector.as_ref(), &labels), "{}: the APIService's Service selects no replica", r.source);
    }
    let sa = pod_spec(&w).service_account_name.as_deref().unwrap_or("default");
    assert!(
        r.objects.iter().any(|o| matches!(o, Object::ServiceAccount(s) if s.metadata.name.as_deref() == Some(sa))),
        "{}: service account {sa} is not created",
        r.source
    );
}

#[test]
fn every_kustomization_renders_schema_valid_objects_with_metrics_server_names() {
    for dir in KUSTOMIZATIONS {
        let r = rendered(dir);
        assert_metrics_server_names(&r);
        assert_hardened(dir, &r.workload());
    }
    let v1 = rendered("deploy/overlays/metrics-v1");
    let mut versions: Vec<_> = v1.api_services().iter().map(|a| a.spec.version.clone().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, ["v1", "v1beta1"], "metrics-v1 registers both versions");
}

#[test]
fn ha_kustomizations_carry_handover_grace_spread_pdb_emptydir_and_network_policy() {
    for dir in ["deploy", "deploy/overlays/large-cluster", "deploy/overlays/metrics-v1", "deploy/overlays/cert-manager"]
    {
        assert_ha_settings(&rendered(dir));
    }
}

#[test]
fn every_containers_flags_pass_the_servers_own_validation() {
    for dir in KUSTOMIZATIONS {
        manifests::assert_flags_valid(&rendered(dir));
    }
}

#[test]
fn single_replica_overlay_is_metrics_servers_shape_without_peers() {
    let r = rendered("deploy/overlays/single-replica");
    let w = r.workload();
    assert_eq!((w.kind, w.replicas), ("Deployment", 1));
    let Some(Object::Deployment(d)) = r.objects.iter().find(|o| matches!(o, Object::Deployment(_))) else {
        unreachable!()
    };
    let strategy = d.spec.as_ref().unwrap().strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    assert_eq!(strategy.and_then(|s| s.max_unavailable.clone()), Some(IntOrString::Int(0)), "surge, never a gap");
    let pod = pod_spec(&w);
    assert_eq!(pod.containers.len(), 1);
    // Exactly the args of metrics-server's components.yaml.
    assert_eq!(
        pod.containers[0].args.clone().unwrap_or_default(),
        [
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s"
        ]
    );
    assert!(pod.volumes.iter().flatten().all(|v| v.secret.is_none()), "no peer Secret volume");
    assert!(port(&pod.containers[0], "peer").is_none(), "no peer port");
    assert!(r.pdbs().is_empty(), "no PDB on one replica");
    assert!(r.services().iter().all(|s| s.spec.as_ref().unwrap().cluster_ip.as_deref() != Some("None")));
    assert!(r.objects.iter().all(|o| !matches!(o, Object::StatefulSet(_))));
    assert!(!r.names().iter().any(|n| n.contains("statefulset-reader")), "{:?}", r.names());
    assert!(r.jobs().is_empty() && !r.names().iter().any(|n| n.contains("certgen")), "no peer CA Job: {:?}", r.names());
    let np = r.network_policies()[0].spec.clone().unwrap();
    let ports: Vec<_> =
        np.ingress.unwrap().iter().flat_map(|rule| rule.ports.clone().unwrap_or_default()).map(|p| p.port).collect();
    assert_eq!(ports, [Some(IntOrString::Int(10250))]);
}

/// The peer CA of every kustomization: the replicas' service account may
/// not touch Secrets (its token goes to every kubelet), every replica
/// issues its own certificate from a mounted CA Secret, and that Secret is
/// made by the certgen Job (its own service account, which may only create
/// Secrets) or, with the cert-manager component, by a
/// cert-manager CA Certificate, with no shared certificate. These checks
/// run inside `assert_flags_valid` (tests/manifests/peer_rbac.rs).
#[test]
fn the_replicas_cannot_touch_secrets_and_mount_a_ca_the_certgen_job_or_cert_manager_makes() {
    for dir in KUSTOMIZATIONS {
        manifests::assert_flags_valid(&rendered(dir));
    }
    for dir in ["deploy", "deploy/overlays/large-cluster", "deploy/overlays/metrics-v1"] {
        let r = rendered(dir);
        assert_eq!(r.jobs().len(), 1, "{dir}: the certgen Job is part of the install");
        assert!(!r.objects.iter().any(|o| matches!(o, Object::CertManager(_))), "{dir}: needs no cert-manager");
    }
    let cm = rendered("deploy/overlays/cert-manager");
    assert!(cm.jobs().is_empty() && !cm.names().iter().any(|n| n.contains("certgen")), "{:?}", cm.names());
    let certificates: Vec<_> = cm
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::CertManager(c) if c.kind == "Certificate" => Some(c.metadata.name.clone().unwrap_or_default()),
            _ => None,
        })
        .collect();
    assert_eq!(certificates, ["metrics-server-peer-ca"], "cert-manager makes the CA only, no shared leaf");
}

#[test]
fn large_cluster_overlay_runs_five_voters_with_larger_requests() {
    let base = rendered("deploy");
    let large = rendered("deploy/overlays/large-cluster");
    let w = large.workload();
    assert_eq!(w.replicas, 5);
    let c = &pod_spec(&w).containers[0];
    let config = manifests::validated_config("large-cluster", c, "metrics-server-4");
    assert_eq!(config.cluster.as_ref().map(|c| (c.raft.voters, c.peers.len())), Some((5, 5)));
    let requests = |r: &Rendered| {
        let w = r.workload();
        let req = pod_spec(&w).containers[0].resources.clone().unwrap().requests.unwrap();
        (req["cpu"].0.clone(), req["memory"].0.clone())
    };
    assert_eq!(requests(&base), ("50m".to_string(), "200Mi".to_string()));
    assert_eq!(requests(&large), ("200m".to_string(), "1Gi".to_string()));
    // Everything but the replica count, args and requests is the base's.
    let strip = |r: &Rendered| {
        let w = r.workload();
        let mut pod = pod_spec(&w).clone();
        pod.containers[0].args = None;
        pod.containers[0].resources = None;
        pod
    };
    assert_eq!(strip(&base), strip(&large));
}

#[test]
fn every_kubectl_renders_the_same_manifests() {
    let want: Vec<String> = KUSTOMIZATIONS.iter().map(|d| kustomize(d)).collect();
    for version in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"] {
        let kubectl = common::kubectl_version(version).unwrap_or_else(|e| panic!("{e}"));
        for (dir, want) in KUSTOMIZATIONS.iter().zip(&want) {
            assert_eq!(&manifests::kustomize_with(&kubectl, dir), want, "kubectl {version} kustomize {dir}");
        }
    }
}

/// The panic message of `parse(source, text)`; fails if it parsed.
fn rejection(source: &str, text: &str) -> String {
    match std::panic::catch_unwind(|| parse(source, text)) {
        Ok(_) => panic!("{source}: accepted"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    }
}

#[test]
fn a_misspelled_field_is_rejected_naming_the_object_and_the_path() {
    let good = kustomize("deploy");
    let msg = rejection("deploy (misspelled)", &good.replacen("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1));
    assert!(msg.contains("StatefulSet metrics-server"), "{msg}");
    assert!(msg.contains("spec.template.spec.containers.0.securityContext.readOnlyRootFileSystem"), "{msg}");
    // A field of a type of our own (APIService), and an unknown kind.
    let msg = rejection("deploy (misspelled)", &good.replacen("insecureSkipTLSVerify", "insecureSkipTlsVerify", 1));
    assert!(msg.contains("APIService v1beta1.metrics.k8s.io") && msg.contains("spec.insecureSkipTlsVerify"), "{msg}");
    let msg = rejection("deploy (bad kind)", &good.replacen("kind: NetworkPolicy", "kind: NetworkPolicies", 1));
    assert!(msg.contains("no schema for apiVersion \"networking.k8s.io/v1\" kind \"NetworkPolicies\""), "{msg}");
}
