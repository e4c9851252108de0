//! Checks shared by the manifest tests (kustomize and Helm): render with the
//! real tool, split the YAML documents, and turn each document into the
//! k8s-openapi type of its kind, with every field the type does not know
//! reported as an error that names the object and the field's path (what
//! kube-apiserver's strict field validation rejects). Then the properties
//! the operators rely on: hardening, HA settings, and flags the binary
//! accepts.

#![allow(dead_code)]

pub mod peer_rbac;

use std::collections::BTreeMap;
use std::path::Path;

use clap::Parser;
use ha_metrics_server::cli::Cli;
use ha_metrics_server::config::Config;
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// `kubectl.1.32 kustomize deploy/<dir>`, as operators' `kubectl apply -k` renders it.
pub fn kustomize(dir: &str) -> String {
    let kubectl = sim::env::kubectl_132().expect("kubectl.1.32 beside the kubectl dispatcher");
    kustomize_with(&kubectl, dir)
}

/// `<kubectl> kustomize <repo>/<dir>`; panics with kubectl's stderr on failure.
pub fn kustomize_with(kubectl: &Path, dir: &str) -> String {
    let out = std::process::Command::new(kubectl)
        .args(["kustomize", &format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"))])
        .output()
        .unwrap_or_else(|e| panic!("running {} kustomize: {e}", kubectl.display()));
    assert!(out.status.success(), "kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `apiregistration.k8s.io/v1` APIService, which k8s-openapi does not carry
/// (it is kube-aggregator's type): every field of its OpenAPI schema that a
/// manifest may set, with its JSON name.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiService {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ApiServiceSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServiceSpec {
    pub service: Option<ApiServiceReference>,
    pub group: Option<String>,
    pub version: Option<String>,
    #[serde(rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
    pub ca_bundle: Option<String>,
    pub group_priority_minimum: i32,
    pub version_priority: i32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiServiceReference {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub port: Option<i32>,
}

/// One rendered object as its typed Kubernetes value.
#[derive(Debug, Clone)]
pub enum Object {
    StatefulSet(Box<StatefulSet>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    NetworkPolicy(Box<NetworkPolicy>),
    /// The certgen Job (and nothing else is a Job).
    Job(Box<Job>),
    ApiService(Box<ApiService>),
    /// A cert-manager Issuer or Certificate (components/cert-manager). No
    /// schema ships with k8s-openapi: only its kind and metadata are typed.
    CertManager(Box<CertManagerObject>),
    /// The chart's serving certificate (tls.type helm).
    Secret(Box<Secret>),
    /// The chart's addon-resizer configuration.
    ConfigMap(Box<ConfigMap>),
    /// A Prometheus-Operator ServiceMonitor (no k8s-openapi schema either).
    ServiceMonitor(Box<CertManagerObject>),
}

/// The parts of a cert-manager object the tests read.
#[derive(Debug, Clone, Deserialize)]
pub struct CertManagerObject {
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: serde_json::Value,
}

/// The rendered objects of one source (a kustomization, a chart and values).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub source: String,
    pub objects: Vec<Object>,
}

/// Deserializes `value` into `T`; every field `T` does not know is an error
/// with its path (`spec.template.spec.containers.0.securityContex`).
pub fn strict<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let typed: T = serde_ignored::deserialize(value.clone(), |path| {
        // Drop the `?` segments that stand for Option wrappers.
        let path = path.to_string();
        unknown.push(path.split('.').filter(|s| *s != "?").collect::<Vec<_>>().join("."));
    })
    .map_err(|e| match unknown.is_empty() {
        true => e.to_string(),
        false => format!("{e}; unknown field(s): {}", unknown.join(", ")),
    })?;
    if unknown.is_empty() { Ok(typed) } else { Err(format!("unknown field(s): {}", unknown.join(", "))) }
}

fn typed<T: DeserializeOwned + Resource>(value: &serde_json::Value) -> Result<T, String> {
    strict::<T>(value)
}

/// The typed object for one document; `Err` names what is wrong.
pub fn object(value: &serde_json::Value) -> Result<Object, String> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let is = |api: &str, k: &str| api_version == api && kind == k;
    macro_rules! k8s {
        ($t:ty, $variant:ident) => {
            if is(<$t>::API_VERSION, <$t>::KIND) {
                return typed::<$t>(value).map(|o| Object::$variant(Box::new(o)));
            }
        };
    }
    k8s!(StatefulSet, StatefulSet);
    k8s!(Deployment, Deployment);
    k8s!(Service, Service);
    k8s!(ServiceAccount, ServiceAccount);
    k8s!(ClusterRole, ClusterRole);
    k8s!(ClusterRoleBinding, ClusterRoleBinding);
    k8s!(Role, Role);
    k8s!(RoleBinding, RoleBinding);
    k8s!(PodDisruptionBudget, PodDisruptionBudget);
    k8s!(NetworkPolicy, NetworkPolicy);
    k8s!(Job, Job);
    k8s!(Secret, Secret);
    k8s!(ConfigMap, ConfigMap);
    if is("monitoring.coreos.com/v1", "ServiceMonitor") {
        return serde_json::from_value(value.clone())
            .map(|o| Object::ServiceMonitor(Box::new(o)))
            .map_err(|e| format!("not a ServiceMonitor: {e}"));
    }
    if is("cert-manager.io/v1", "Issuer") || is("cert-manager.io/v1", "Certificate") {
        return serde_json::from_value(value.clone())
            .map(|o| Object::CertManager(Box::new(o)))
            .map_err(|e| format!("not a cert-manager object: {e}"));
    }
    if is("apiregistration.k8s.io/v1", "APIService") {
        let api: ApiService = strict(value)?;
        let spec = &api.spec;
        if !(1..=20000).contains(&spec.group_priority_minimum) || spec.version_priority < 1 {
            return Err(format!("priorities out of range: {spec:?}"));
        }
        if spec.group.as_deref() != Some("metrics.k8s.io") || spec.version.is_none() || spec.service.is_none() {
            return Err(format!("group, version and service are required: {spec:?}"));
        }
        return Ok(Object::ApiService(Box::new(api)));
    }
    Err(format!("no schema for apiVersion {api_version:?} kind {kind:?} (a typo, or a kind the test must learn)"))
}

/// Splits `text` into documents and types each one; panics with every
/// problem, each naming its source, kind and name.
pub fn parse(source: &str, text: &str) -> Rendered {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(text).unwrap_or_else(|e| panic!("{source}: not YAML: {e}"));
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let what = format!(
            "{source}: {} {}",
            doc["kind"].as_str().unwrap_or("<no kind>"),
            doc["metadata"]["name"].as_str().unwrap_or("<no name>")
        );
        match object(&doc) {
            Ok(o) => objects.push(o),
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    assert!(problems.is_empty(), "objects that kube-apiserver would reject:\n{}", problems.join("\n"));
    assert!(!objects.is_empty(), "{source} rendered no objects");
    Rendered { source: source.to_string(), objects }
}

impl Object {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::StatefulSet(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
            Object::ApiService(o) => &o.metadata,
            Object::CertManager(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::ServiceMonitor(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }
}

/// A workload's name, replica count and pod template.
pub struct Workload<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub replicas: i32,
    pub template: &'a PodTemplateSpec,
}

impl Rendered {
    pub fn workloads(&self) -> Vec<Workload<'_>> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::StatefulSet(s) => {
                    let spec = s.spec.as_ref()?;
                    Some(Workload {
                        kind: "StatefulSet",
                        name: s.metadata.name.as_deref()?,
                        replicas: spec.replicas.unwrap_or(1),
                        template: &spec.template,
                    })
                }
                Object::Deployment(d) => {
                    let spec = d.spec.as_ref()?;
                    Some(Workload {
                        kind: "Deployment",
                        name: d.metadata.name.as_deref()?,
                        replicas: spec.replicas.unwrap_or(1),
                        template: &spec.template,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// The one workload; panics unless there is exactly one.
    pub fn workload(&self) -> Workload<'_> {
        let mut w = self.workloads();
        assert_eq!(w.len(), 1, "{}: expected one workload", self.source);
        w.remove(0)
    }

    pub fn services(&self) -> Vec<&Service> {
        self.objects.iter().filter_map(|o| if let Object::Service(s) = o { Some(&**s) } else { None }).collect()
    }

    pub fn api_services(&self) -> Vec<&ApiService> {
        self.objects.iter().filter_map(|o| if let Object::ApiService(s) = o { Some(&**s) } else { None }).collect()
    }

    pub fn pdbs(&self) -> Vec<&PodDisruptionBudget> {
        self.objects
            .iter()
            .filter_map(|o| if let Object::PodDisruptionBudget(p) = o { Some(&**p) } else { None })
            .collect()
    }

    pub fn network_policies(&self) -> Vec<&NetworkPolicy> {
        self.objects.iter().filter_map(|o| if let Object::NetworkPolicy(p) = o { Some(&**p) } else { None }).collect()
    }

    pub fn jobs(&self) -> Vec<&Job> {
        self.objects.iter().filter_map(|o| if let Object::Job(j) = o { Some(&**j) } else { None }).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.objects.iter().map(|o| o.name().to_string()).collect()
    }
}

/// Whether `selector` (matchLabels only) selects pods labelled `labels`.
pub fn selects(selector: Option<&BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

pub fn pod_labels(w: &Workload<'_>) -> BTreeMap<String, String> {
    w.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

pub fn pod_spec<'a>(w: &Workload<'a>) -> &'a PodSpec {
    w.template.spec.as_ref().expect("pod template has a spec")
}

/// The container port named `name`.
pub fn port(c: &Container, name: &str) -> Option<i32> {
    c.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port)
}

/// The value of `--flag=value` in `args`: the last one, which wins, as in
/// metrics-server (pflag).
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    args.iter().rev().find_map(|a| a.strip_prefix(&prefix))
}

/// Asserts metrics-server's hardening on every container and its pod: not
/// root, read-only root filesystem, no privilege escalation, seccomp
/// RuntimeDefault, every capability dropped; requests set; metrics-server's
/// probes.
pub fn assert_hardened(source: &str, w: &Workload<'_>) {
    let pod = pod_spec(w);
    let psc = pod.security_context.as_ref();
    assert_eq!(psc.and_then(|s| s.run_as_non_root), Some(true), "{source}: pod runAsNonRoot");
    assert_eq!(
        psc.and_then(|s| s.seccomp_profile.as_ref()).map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "{source}: pod seccompProfile"
    );
    assert!(psc.and_then(|s| s.run_as_user).is_some_and(|u| u != 0), "{source}: pod runAsUser is not root");
    for c in pod.containers.iter().chain(pod.init_containers.iter().flatten()) {
        let what = format!("{source}: {} {} container {}", w.kind, w.name, c.name);
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{what}: no securityContext"));
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}: allowPrivilegeEscalation");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}: readOnlyRootFilesystem");
        assert_eq!(sc.run_as_non_root, Some(true), "{what}: runAsNonRoot");
        assert!(sc.run_as_user.is_some_and(|u| u != 0), "{what}: runAsUser");
        assert!(!sc.privileged.unwrap_or(false), "{what}: privileged");
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault"),
            "{what}: seccompProfile"
        );
        let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
        assert!(drop.iter().any(|d| d == "ALL"), "{what}: capabilities.drop has ALL: {drop:?}");
        let add = sc.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default();
        assert!(add.is_empty(), "{what}: adds capabilities {add:?}");
        let requests = c.resources.as_ref().and_then(|r| r.requests.clone()).unwrap_or_default();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{what}: requests {requests:?}");
        let probed = if c.name == "metrics-server" {
            &[(&c.readiness_probe, "/readyz"), (&c.liveness_probe, "/livez")][..]
        } else {
            &[]
        };
        for (probe, path) in probed.iter().copied() {
            let get =
                probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("{what}: {path} probe"));
            assert_eq!(get.path.as_deref(), Some(path), "{what}: probe path");
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{what}: probe scheme");
        }
    }
    assert!(!pod.host_network.unwrap_or(false), "{source}: hostNetwork");
}

/// Runs the binary's own flag parsing and validation on `c`'s args, as pod
/// `pod_name` would (its POD_NAME), and returns the validated settings.
pub fn validated_config(source: &str, c: &Container, pod_name: &str) -> Config {
    assert!(c.command.is_none(), "{source}: container {} overrides the entrypoint", c.name);
    let mut argv = vec!["ha-metrics-server".to_string()];
    argv.extend(c.args.clone().unwrap_or_default());
    let cli = Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{source}: container {} flags rejected: {e}\n{argv:?}", c.name));
    assert!(cli.command.is_none(), "{source}: args select a subcommand");
    let mut serve = cli.serve;
    serve.cluster.node_name = Some(pod_name.to_string());
    Config::from_args(&serve).unwrap_or_else(|e| panic!("{source}: container {} flags invalid: {e}", c.name))
}

/// The HA settings of a StatefulSet rendering: a grace period that covers
/// the handover, soft spread over zones and hosts, a PDB of one, the data
/// dir on an emptyDir, and the NetworkPolicy.
pub fn assert_ha_settings(r: &Rendered) {
    let w = r.workload();
    assert_eq!(w.kind, "StatefulSet", "{}", r.source);
    let pod = pod_spec(&w);
    let labels = pod_labels(&w);
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap_or_default();

    // The grace period covers the handover: the Draining commit, the new
    // owners' first scrape (one resolution) and a margin.
    let resolution =
        flag(&args, "metric-resolution").and_then(|r| r.strip_suffix('s')).unwrap().parse::<i64>().unwrap();
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    assert!(grace >= resolution + 30, "{}: terminationGracePeriodSeconds {grace} < {resolution} s + 30 s", r.source);
    // The replica's handover timeouts derive from the same number.
    assert!(
        args.iter().any(|a| *a == format!("--shutdown-grace-period={grace}s")),
        "{}: --shutdown-grace-period does not match terminationGracePeriodSeconds {grace}: {args:?}",
        r.source
    );

    // Soft spreading over zones and hosts.
    let spread = pod.topology_spread_constraints.clone().unwrap_or_default();
    for key in ["topology.kubernetes.io/zone", "kubernetes.io/hostname"] {
        let t =
            spread.iter().find(|t| t.topology_key == key).unwrap_or_else(|| panic!("{}: no spread on {key}", r.source));
        assert_eq!(t.when_unsatisfiable, "ScheduleAnyway", "{}: {key}", r.source);
        assert_eq!(t.max_skew, 1, "{}: {key}", r.source);
        assert!(selects(t.label_selector.as_ref().and_then(|s| s.match_labels.as_ref()), &labels), "{}", r.source);
    }

    // At most one replica down for voluntary disruptions.
    let pdbs = r.pdbs();
    assert_eq!(pdbs.len(), 1, "{}", r.source);
    let pdb = pdbs[0].spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)), "{}", r.source);
    assert!(pdb.min_available.is_none(), "{}", r.source);
    assert!(selects(pdb.selector.as_ref().and_then(|s| s.match_labels.as_ref()), &labels), "{}", r.source);

    // The data dir is an emptyDir mounted where --data-dir points.
    let data_dir = flag(&args, "data-dir").unwrap_or_else(|| panic!("{}: no --data-dir", r.source));
    let mount = c.volume_mounts.iter().flatten().find(|m| m.mount_path == data_dir).expect("data dir mounted");
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).unwrap();
    assert!(volume.empty_dir.is_some(), "{}: data dir volume {volume:?}", r.source);

    // The peer port only from the replicas, the API port from anywhere.
    let (api_port, peer_port) = (port(c, "https").unwrap(), port(c, "peer").unwrap());
    assert_eq!(flag(&args, "peer-port"), Some(peer_port.to_string().as_str()), "{}", r.source);
    let policies = r.network_policies();
    assert_eq!(policies.len(), 1, "{}", r.source);
    let np = policies[0].spec.as_ref().unwrap();
    assert!(selects(np.pod_selector.as_ref().and_then(|s| s.match_labels.as_ref()), &labels), "{}", r.source);
    assert_eq!(np.policy_types.as_deref(), Some(&["Ingress".to_string()][..]), "{}", r.source);
    let rules = np.ingress.clone().unwrap_or_default();
    let opens = |port: i32| {
        rules
            .iter()
            .filter(|rule| {
                rule.ports.as_ref().is_none_or(|ps| ps.iter().any(|p| p.port == Some(IntOrString::Int(port))))
            })
            .collect::<Vec<_>>()
    };
    assert!(opens(api_port).iter().any(|rule| rule.from.is_none()), "{}: API port not open to all", r.source);
    let peer_rules = opens(peer_port);
    assert!(!peer_rules.is_empty(), "{}: peer port not open to the replicas", r.source);
    for rule in peer_rules {
        let from = rule.from.as_ref().unwrap_or_else(|| panic!("{}: peer port open to every source", r.source));
        for peer in from {
            assert!(peer.ip_block.is_none() && peer.namespace_selector.is_none(), "{}: {peer:?}", r.source);
            let sel = peer.pod_selector.as_ref().and_then(|s| s.match_labels.as_ref());
            assert!(selects(sel, &labels), "{}: peer port open to pods other than the replicas: {peer:?}", r.source);
        }
    }
}

/// Validates every container's args with the binary's own flag parsing, as
/// its pod would run them, and checks the cluster flags against the
/// workload: --peers lists the voters (the first ordinals), the advertised
/// peer address is the pod's name in the headless Service, the StatefulSet
/// is the workload itself, and a Deployment runs without peers.
pub fn assert_flags_valid(r: &Rendered) {
    let src = &r.source;
    for w in r.workloads() {
        // The server's container (a sidecar such as the addon-resizer has its own flags).
        for c in pod_spec(&w).containers.iter().filter(|c| c.name == "metrics-server") {
            let pod = if w.kind == "StatefulSet" { format!("{}-1", w.name) } else { w.name.to_string() };
            let config = validated_config(src, c, &pod);
            match (w.kind, config.cluster) {
                ("StatefulSet", Some(cluster)) => {
                    assert!([3, 5].contains(&cluster.raft.voters), "{src}: {} voters", cluster.raft.voters);
                    assert!(cluster.raft.voters <= w.replicas as usize, "{src}: more voters than replicas");
                    let names: Vec<_> = cluster.peers.iter().map(|(n, _)| n.clone()).collect();
                    let want: Vec<_> = (0..cluster.raft.voters).map(|i| format!("{}-{i}", w.name)).collect();
                    assert_eq!(names, want, "{src}: --peers lists the voters");
                    let headless = |s: &&Service| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
                    let svc = r.services().into_iter().find(headless);
                    let svc = svc.unwrap_or_else(|| panic!("{src}: no headless peer Service"));
                    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
                    let peer_port = port(c, "peer").unwrap_or_else(|| panic!("{src}: no peer port"));
                    let advertise = format!("{pod}.{}.{ns}.svc:{peer_port}", svc.metadata.name.as_deref().unwrap());
                    assert_eq!(cluster.peer_advertise, advertise, "{src}");
                    let sa = pod_spec(&w).service_account_name.as_deref().unwrap_or("default");
                    peer_rbac::assert_peer_credentials(r, &w, sa, &cluster.tls.credentials);
                    assert_eq!(cluster.statefulset.map(|s| s.1), Some(w.name.to_string()), "{src}");
                }
                ("Deployment", None) => {
                    let sa = pod_spec(&w).service_account_name.as_deref().unwrap_or("default");
                    peer_rbac::assert_no_secret_access(r, sa, &peer_rbac::namespace_of(r, &w));
                }
                (kind, cluster) => panic!("{src}: {kind} with cluster settings {cluster:?}"),
            }
        }
    }
}
