//! The Helm chart (`deploy/helm/ha-metrics-server`): rendered with the real
//! helm, 3 and 4 (installed on first use by `sim::tools::helm`), with its defaults and the values files in its `ci/`
//! folder; both give the same objects, and they pass the kustomize
//! manifests' checks: Kubernetes API schema with unknown fields rejected,
//! hardening, HA settings, flags the binary accepts, and metrics-server's
//! chart's object names and selector labels, so `helm upgrade` of a
//! metrics-server release replaces it in place.

mod manifests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use manifests::{Object, Rendered, assert_flags_valid, assert_ha_settings, assert_hardened, flag, parse, pod_spec};

/// The helm versions the chart is rendered with.
const HELMS: [&str; 2] = ["3.17.2", "4.1.4"];
const CHART: &str = "deploy/helm/ha-metrics-server";

fn helm(version: &str) -> PathBuf {
    sim::tools::helm(version, "the chart test renders deploy/helm with the real helm 3 and 4")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `helm template <release> <chart> -n <namespace> [-f ci/<values>]` with
/// every helm version; asserts they agree and returns the typed objects.
fn render(release: &str, namespace: &str, values: Option<&str>) -> Rendered {
    let chart = format!("{}/{CHART}", env!("CARGO_MANIFEST_DIR"));
    let values: Vec<String> = values.map(|v| format!("{chart}/ci/{v}")).into_iter().collect();
    let text = render_text(release, namespace, &values, &[], true);
    parse(&format!("helm template {release} -n {namespace} {values:?}"), &text)
}

/// The rendered text, with `values` files and `extra` arguments; with
/// `same`, every helm version must render the same text (not so when the
/// chart generates certificates).
fn render_text(release: &str, namespace: &str, values: &[String], extra: &[&str], same: bool) -> String {
    let chart = format!("{}/{CHART}", env!("CARGO_MANIFEST_DIR"));
    let mut outputs = Vec::new();
    for version in HELMS {
        let mut cmd = std::process::Command::new(helm(version));
        cmd.args(["template", release, &chart, "--namespace", namespace]);
        for v in values {
            cmd.args(["--values", v]);
        }
        cmd.args(extra);
        // No kube-apiserver here: keep helm from looking for one.
        cmd.env("HOME", std::env::temp_dir()).env_remove("KUBECONFIG");
        let out = cmd.output().unwrap_or_else(|e| panic!("running helm {version}: {e}"));
        let what = format!("helm {version} template {release} -n {namespace} {values:?} {extra:?}");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((what, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    if same {
        for (what, text) in &outputs[1..] {
            assert_eq!(text, &outputs[0].1, "{what} differs from {}", outputs[0].0);
        }
    }
    outputs.swap_remove(0).1
}

/// The names metrics-server's chart gives its objects for `fullname`.
fn assert_metrics_server_chart_names(r: &Rendered, fullname: &str) {
    let names = r.names();
    for want in [
        fullname.to_string(),
        format!("system:{fullname}"),
        format!("system:{fullname}-aggregated-reader"),
        format!("{fullname}:system:auth-delegator"),
        format!("{fullname}-auth-reader"),
        "v1beta1.metrics.k8s.io".to_string(),
    ] {
        assert!(names.contains(&want), "{}: no object named {want}: {names:?}", r.source);
    }
    let w = r.workload();
    assert_eq!(w.name, fullname, "{}", r.source);
    let labels = manifests::pod_labels(&w);
    assert_eq!(labels.get("app.kubernetes.io/name").map(String::as_str), Some("metrics-server"), "{}", r.source);
    for svc in r.services() {
        let sel = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
        assert!(manifests::selects(sel, &labels), "{}: Service {:?} selects no replica", r.source, svc.metadata.name);
    }
}

fn args(r: &Rendered) -> Vec<String> {
    pod_spec(&r.workload()).containers[0].args.clone().unwrap_or_default()
}

#[test]
fn default_chart_is_the_three_replica_cluster_with_metrics_servers_chart_names() {
    let r = render("metrics-server", "kube-system", None);
    assert_metrics_server_chart_names(&r, "metrics-server");
    let w = r.workload();
    assert_eq!((w.kind, w.replicas), ("StatefulSet", 3));
    assert_hardened(&r.source, &w);
    assert_ha_settings(&r);
    assert_flags_valid(&r);
    // The peer CA is mounted from the Secret deploy/ uses (see peer_ca_* below).
    assert_eq!(flag(&args(&r), "peer-ca-dir"), Some("/etc/ha-metrics-server/peer-ca"));
}

#[test]
fn another_release_name_and_namespace_rename_every_object_consistently() {
    let r = render("ms", "monitoring", None);
    assert_metrics_server_chart_names(&r, "ms-metrics-server");
    assert_ha_settings(&r);
    assert_flags_valid(&r);
    let a = args(&r);
    assert!(flag(&a, "peers").unwrap().contains("ms-metrics-server-0.ms-metrics-server-peers.monitoring.svc:10251"));
    assert_eq!(r.jobs().len(), 1, "the certgen Job");
    assert_eq!(flag(&a, "statefulset"), Some("ms-metrics-server"));
    let api = &r.api_services()[0];
    let svc = api.spec.service.as_ref().unwrap();
    assert_eq!((svc.name.as_deref(), svc.namespace.as_deref()), (Some("ms-metrics-server"), Some("monitoring")));
}

#[test]
fn single_replica_values_give_metrics_servers_shape_without_peers() {
    let r = render("metrics-server", "kube-system", Some("single-replica-values.yaml"));
    assert_metrics_server_chart_names(&r, "metrics-server");
    let w = r.workload();
    assert_eq!((w.kind, w.replicas), ("Deployment", 1));
    assert_hardened(&r.source, &w);
    assert_flags_valid(&r);
    assert!(args(&r).iter().all(|a| !a.starts_with("--peer") && !a.starts_with("--data-dir")), "{:?}", args(&r));
    assert!(r.pdbs().is_empty());
    assert!(!r.names().iter().any(|n| n.ends_with("-peers")
        || n.contains("statefulset-reader")
        || n.contains("peer-ca")
        || n.contains("certgen")));
}

#[test]
fn large_cluster_values_run_five_voters_and_register_v1() {
    let r = render("metrics-server", "kube-system", Some("large-cluster-values.yaml"));
    let w = r.workload();
    assert_eq!(w.replicas, 5);
    assert_ha_settings(&r);
    assert_flags_valid(&r);
    assert_eq!(flag(&args(&r), "voters"), Some("5"));
    let mut versions: Vec<_> = r.api_services().iter().map(|a| a.spec.version.clone().unwrap()).collect();
    versions.sort();
    assert_eq!(versions, ["v1", "v1beta1"]);
}

#[test]
fn a_values_file_written_for_metrics_servers_chart_carries_over() {
    let r = render("metrics-server", "kube-system", Some("metrics-server-values.yaml"));
    assert_metrics_server_chart_names(&r, "metrics-server");
    let w = r.workload();
    assert_hardened(&r.source, &w);
    assert_ha_settings(&r);
    assert_flags_valid(&r);
    let a = args(&r);
    // args come last: the binary takes the last --metric-resolution, as
    // metrics-server does.
    assert_eq!(
        a.iter().filter(|f| f.starts_with("--metric-resolution=")).collect::<Vec<_>>(),
        ["--metric-resolution=15s", "--metric-resolution=30s"]
    );
    let config = manifests::validated_config(&r.source, &pod_spec(&w).containers[0], "metrics-server-0");
    assert_eq!(config.resolution, std::time::Duration::from_secs(30));
    assert!(a.contains(&"--kubelet-insecure-tls".to_string()));
    // metrics.enabled keeps the probes unauthenticated (metrics-server's
    // chart replaces them with /metrics alone).
    assert_eq!(flag(&a, "authorization-always-allow-paths"), Some("/healthz,/readyz,/livez,/metrics"));
    assert_eq!(flag(&a, "tls-cert-file"), Some("/tmp/tls-certs/tls.crt"));
    let pod = pod_spec(&w);
    let certs = pod.volumes.iter().flatten().find(|v| v.name == "certs").and_then(|v| v.secret.clone());
    assert_eq!(certs.and_then(|s| s.secret_name).as_deref(), Some("metrics-server-serving-tls"));
    let api = &r.api_services()[0];
    assert_eq!(api.spec.insecure_skip_tls_verify, None, "false is not rendered, as in metrics-server's chart");
    assert!(api.spec.ca_bundle.is_some());
    let labels = manifests::pod_labels(&w);
    assert_eq!(labels.get("tier").map(String::as_str), Some("control-plane"));
    for o in &r.objects {
        let l: BTreeMap<String, String> = o.meta().labels.clone().unwrap_or_default();
        assert_eq!(l.get("team").map(String::as_str), Some("platform"), "{} lacks commonLabels", o.name());
    }
    assert!(pod.tolerations.as_ref().is_some_and(|t| t[0].key.as_deref() == Some("CriticalAddonsOnly")));
    let Some(Object::StatefulSet(s)) = r.objects.iter().find(|o| matches!(o, Object::StatefulSet(_))) else {
        unreachable!()
    };
    assert_eq!(s.spec.as_ref().unwrap().revision_history_limit, Some(5));
}

/// The chart's peer CA, in every mode and under another release name and
/// namespace: the replicas' service account may not touch Secrets, each
/// replica issues its own certificate from the mounted CA Secret, and the
/// Secret is made by the certgen Job (its own service account, which may
/// only create Secrets; a pre-install/pre-upgrade hook) or by a
/// cert-manager CA Certificate. The checks are tests/manifests/peer_rbac.rs.
#[test]
fn peer_ca_comes_from_the_certgen_job_or_cert_manager_and_the_replicas_cannot_touch_secrets() {
    for (release, namespace, values) in [
        ("metrics-server", "kube-system", None),
        ("ms", "monitoring", None),
        ("metrics-server", "kube-system", Some("large-cluster-values.yaml")),
        ("metrics-server", "kube-system", Some("cert-manager-values.yaml")),
    ] {
        let r = render(release, namespace, values);
        assert_flags_valid(&r);
        let w = r.workload();
        let volume = pod_spec(&w).volumes.iter().flatten().find(|v| v.name == "peer-ca").cloned().expect("peer-ca");
        let secret = volume.secret.and_then(|s| s.secret_name).unwrap_or_default();
        if values == Some("cert-manager-values.yaml") {
            assert!(r.jobs().is_empty(), "{}: no certgen Job with cert-manager", r.source);
            assert_eq!(secret, format!("{}-peer-ca", w.name));
        } else {
            let job = r.jobs()[0];
            let hooks = job.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(hooks.get("helm.sh/hook").map(String::as_str), Some("pre-install,pre-upgrade"), "{}", r.source);
            assert_eq!(secret, format!("{}-peer-cluster-ca", w.name));
        }
    }
}

#[test]
fn peer_certificates_shared_by_every_replica_are_refused_with_a_reason() {
    let chart = format!("{}/{CHART}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(helm(HELMS[0]))
        .args(["template", "x", &chart, "--set", "peers.certificates=files"])
        .env("HOME", std::env::temp_dir())
        .env_remove("KUBECONFIG")
        .output()
        .expect("helm");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("each replica must present its own certificate"), "{err}");
}
