//! The real Prometheus beside a simulated cluster, configured as the
//! Prometheus Operator configures it from `deploy/monitoring/`:
//!
//! - Prometheus' identity is the ServiceAccount `rbac.yaml` binds (a token
//!   the stand-in apiserver knows), allowed exactly what `rbac.yaml`'s
//!   ClusterRole allows;
//! - the scrape job is the ServiceMonitor's endpoint (scheme, path,
//!   interval, bearer token file, TLS settings) with the relabelling the
//!   operator generates for it, fed with the targets Kubernetes' endpoints
//!   discovery would give for the Services `kubectl kustomize deploy/`
//!   renders (every port of every Service, so the ServiceMonitor's selector
//!   and port filter are exercised too);
//! - the rules are the PrometheusRule's, time-scaled ([`super::scale`]).
//!
//! Prometheus listens on a loopback address of the cluster's block and
//! keeps its storage in the test's temp dir; it is killed by its pid on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chaos::observe_prometheus::PromClient;
use serde_json::{Value, json};
use sim::apiserver::{Policy, PolicyRule};

use super::scale::scale_duration;

/// How much faster than real time the live test runs the rules.
pub const SPEEDUP: u64 = 20;

/// Prometheus' defaults the operator leaves in place: evaluation interval
/// (the operator's `evaluationInterval`), scrape timeout and the query
/// lookback (`--query.lookback-delta`).
const EVALUATION_INTERVAL: &str = "30s";
const SCRAPE_TIMEOUT: &str = "10s";
const LOOKBACK_DELTA: &str = "5m";

/// Prometheus' token, as the stand-in apiserver knows it.
const TOKEN: &str = "prometheus-sa-token-for-the-monitoring-test";

/// The ServiceAccount `rbac.yaml` binds, and the non-resource rules of its ClusterRole.
pub fn prometheus_identity() -> (String, String, Vec<PolicyRule>) {
    let text = std::fs::read_to_string(format!("{}/rbac.yaml", super::DIR)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("rbac.yaml is YAML");
    let binding = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").expect("a ClusterRoleBinding");
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount", "rbac.yaml binds a ServiceAccount");
    let (ns, name) = (subject["namespace"].as_str().unwrap(), subject["name"].as_str().unwrap());
    let role_name = binding["roleRef"]["name"].as_str().unwrap();
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == role_name)
        .expect("the bound ClusterRole");
    let user = format!("system:serviceaccount:{ns}:{name}");
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let rules = role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let mut p = PolicyRule::for_user(&user);
            p.verbs = strs(&r["verbs"]);
            p.non_resource_urls = strs(&r["nonResourceURLs"]);
            p.api_groups = strs(&r["apiGroups"]);
            p.resources = strs(&r["resources"]);
            p
        })
        .collect();
    (user, ns.to_string(), rules)
}

/// Gives Prometheus its identity on the stand-in apiserver and writes its
/// token file; returns the file.
pub fn install_identity(apiserver: &sim::apiserver::StandInApiServer, dir: &Path) -> PathBuf {
    let (user, ns, rules) = prometheus_identity();
    let groups = ["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")];
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    apiserver.add_token(TOKEN, &user, &groups);
    let mut policy = Policy::standard();
    policy.rules.extend(rules);
    apiserver.set_policy(policy);
    let path = dir.join("prometheus.token");
    std::fs::write(&path, TOKEN).unwrap();
    path
}

/// A Service as endpoints discovery sees it: name, namespace, labels, ports (name, target port name or number).
struct ServiceInfo {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    ports: Vec<(String, Value)>,
}

fn rendered_deploy() -> Vec<Value> {
    let kubectl = sim::tools::kubectl("1.32", "the live monitoring test renders deploy/ with kubectl kustomize")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(kubectl)
        .args(["kustomize", &format!("{}/deploy", env!("CARGO_MANIFEST_DIR"))])
        .output()
        .expect("kubectl kustomize");
    assert!(out.status.success(), "kustomize deploy/: {}", String::from_utf8_lossy(&out.stderr));
    serde_saphyr::from_str_multiple(&String::from_utf8_lossy(&out.stdout)).expect("rendered YAML")
}

/// Endpoints-discovery target groups (file_sd format) for `pods`
/// (`(pod name, address)`) behind every Service of `deploy/`, with the
/// `__meta_kubernetes_*` labels Prometheus' `role: endpoints` discovery sets.
pub fn endpoint_targets(pods: &[(String, std::net::IpAddr)]) -> Value {
    let docs = rendered_deploy();
    let workload = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("the StatefulSet");
    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let container_name = container["name"].as_str().unwrap();
    let container_port = |target: &Value| -> i64 {
        match target {
            Value::String(name) => container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *name)
                .and_then(|p| p["containerPort"].as_i64())
                .unwrap_or_else(|| panic!("no container port named {name}")),
            other => other.as_i64().expect("a numeric targetPort"),
        }
    };
    let services: Vec<ServiceInfo> = docs
        .iter()
        .filter(|d| d["kind"] == "Service")
        .map(|s| ServiceInfo {
            name: s["metadata"]["name"].as_str().unwrap().to_string(),
            namespace: s["metadata"]["namespace"].as_str().unwrap_or("default").to_string(),
            labels: serde_json::from_value(s["metadata"]["labels"].clone()).unwrap_or_default(),
            ports: s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let target = if p["targetPort"].is_null() { p["port"].clone() } else { p["targetPort"].clone() };
                    (p["name"].as_str().unwrap_or_default().to_string(), target)
                })
                .collect(),
        })
        .collect();
    assert!(services.len() >= 2, "deploy/ renders its Services");
    let mut groups = Vec::new();
    for svc in &services {
        for (port_name, target) in &svc.ports {
            let port = container_port(target);
            for (pod, ip) in pods {
                let mut labels: BTreeMap<String, String> = BTreeMap::new();
                labels.insert("__meta_kubernetes_namespace".into(), svc.namespace.clone());
                labels.insert("__meta_kubernetes_service_name".into(), svc.name.clone());
                for (k, v) in &svc.labels {
                    let k = sanitize(k);
                    labels.insert(format!("__meta_kubernetes_service_label_{k}"), v.clone());
                    labels.insert(format!("__meta_kubernetes_service_labelpresent_{k}"), "true".into());
                }
                labels.insert("__meta_kubernetes_endpoint_port_name".into(), port_name.clone());
                labels.insert("__meta_kubernetes_endpoint_ready".into(), "true".into());
                labels.insert("__meta_kubernetes_endpoint_address_target_kind".into(), "Pod".into());
                labels.insert("__meta_kubernetes_endpoint_address_target_name".into(), pod.clone());
                labels.insert("__meta_kubernetes_pod_name".into(), pod.clone());
                labels.insert("__meta_kubernetes_pod_container_name".into(), container_name.into());
                labels.insert("__meta_kubernetes_pod_phase".into(), "Running".into());
                groups.push(json!({"targets": [format!("{ip}:{port}")], "labels": labels}));
            }
        }
    }
    Value::Array(groups)
}

/// Label names as Prometheus' Kubernetes discovery writes them.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// The scrape job the Prometheus Operator generates for the
/// ServiceMonitor's first endpoint (its `relabel_configs` for
/// `role: endpoints`), with `durations` scaled and the targets read from
/// `sd_file`, the token from `token_file`.
pub fn scrape_job(sm: &Value, sd_file: &Path, token_file: &Path, speedup: u64) -> Value {
    let ns = sm["metadata"]["namespace"].as_str().unwrap();
    let name = sm["metadata"]["name"].as_str().unwrap();
    let ep = &sm["spec"]["endpoints"][0];
    let port = ep["port"].as_str().expect("the endpoint names its port");
    let mut relabel = vec![json!({"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"})];
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
        let k = sanitize(k);
        relabel.push(json!({"action": "keep",
            "source_labels": [format!("__meta_kubernetes_service_label_{k}"), format!("__meta_kubernetes_service_labelpresent_{k}")],
            "regex": format!("({});true", v.as_str().unwrap())}));
    }
    // The operator restricts discovery to these namespaces; file discovery has them as a label.
    let namespaces: Vec<&str> = sm["spec"]["namespaceSelector"]["matchNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !namespaces.is_empty() {
        relabel.push(json!({"action": "keep", "source_labels": ["__meta_kubernetes_namespace"], "regex": format!("({})", namespaces.join("|"))}));
    }
    relabel.extend([
        json!({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": port}),
        json!({"source_labels": ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"],
               "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"}),
        json!({"source_labels": ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"],
               "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"}),
        json!({"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"}),
        json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}),
        json!({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}),
        json!({"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"}),
        json!({"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}),
        json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"}),
        json!({"target_label": "endpoint", "replacement": port}),
    ]);
    assert!(
        ep["relabelings"].is_null() && ep["metricRelabelings"].is_null(),
        "teach the test the endpoint's relabelings"
    );
    let interval = ep["interval"].as_str().unwrap_or("30s");
    let timeout = ep["scrapeTimeout"].as_str().unwrap_or(SCRAPE_TIMEOUT);
    let tls = &ep["tlsConfig"];
    assert!(ep["bearerTokenFile"].is_string(), "the ServiceMonitor sends Prometheus' own token");
    json!({
        "job_name": format!("serviceMonitor/{ns}/{name}/0"),
        "honor_labels": false,
        "scrape_interval": scale_duration(interval, speedup),
        "scrape_timeout": scale_duration(timeout, speedup),
        "metrics_path": ep["path"].as_str().unwrap_or("/metrics"),
        "scheme": ep["scheme"].as_str().unwrap_or("http"),
        "bearer_token_file": token_file,
        "tls_config": {"insecure_skip_verify": tls["insecureSkipVerify"].as_bool().unwrap_or(false)},
        "file_sd_configs": [{"files": [sd_file], "refresh_interval": "1s"}],
        "relabel_configs": relabel,
    })
}

/// The scrape interval the live Prometheus uses (the ServiceMonitor's, scaled).
pub fn scrape_interval(sm: &Value, speedup: u64) -> Duration {
    let d = scale_duration(sm["spec"]["endpoints"][0]["interval"].as_str().unwrap_or("30s"), speedup);
    Duration::from_millis(super::scale::parse_duration(&d).unwrap())
}

/// The evaluation interval of groups without their own (scaled).
pub fn evaluation_interval(speedup: u64) -> Duration {
    Duration::from_millis(super::scale::parse_duration(&scale_duration(EVALUATION_INTERVAL, speedup)).unwrap())
}

/// A running Prometheus, killed (by its pid) on drop.
pub struct Prometheus {
    child: Child,
    pub client: PromClient,
    pub log: PathBuf,
}

impl Prometheus {
    /// Writes the configuration and starts `prometheus` on `listen`, storage under `dir`.
    pub fn start(dir: &Path, listen: SocketAddr, scrape_job: Value, rules: &Path, speedup: u64) -> Prometheus {
        let binary = sim::tools::prometheus("the live monitoring test runs the real Prometheus against the replicas")
            .unwrap_or_else(|e| panic!("{e}"));
        let config = json!({
            "global": {
                "scrape_interval": scrape_job["scrape_interval"],
                "scrape_timeout": scrape_job["scrape_timeout"],
                "evaluation_interval": scale_duration(EVALUATION_INTERVAL, speedup),
            },
            "rule_files": [rules],
            "scrape_configs": [scrape_job],
        });
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .arg(format!("--query.lookback-delta={}", scale_duration(LOOKBACK_DELTA, speedup)))
            .arg("--storage.tsdb.retention.time=1d")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting prometheus");
        let client = PromClient::new(&format!("http://{listen}")).unwrap();
        Prometheus { child, client, log }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
