//! Shape of the Chaos Mesh experiments in chaos/k8s/: they cannot be
//! applied here (no cluster, no Chaos Mesh), so this parses every YAML
//! document and checks what Chaos Mesh's webhook and the operator rely on —
//! apiVersion, known kinds, the spec fields each kind needs, no unknown
//! field (so a typo fails), and selectors that pick exactly the pods of
//! the StatefulSet in deploy/base/statefulset.yaml (its namespace, its pod
//! labels, its pod names).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{Value, json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/chaos/k8s");
const STATEFULSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/statefulset.yaml");
const API_VERSION: &str = "chaos-mesh.org/v1alpha1";
/// The label the StatefulSet controller puts on each pod: its name.
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// What the experiments must aim at, read from the StatefulSet.
struct Target {
    namespace: String,
    labels: BTreeMap<String, String>,
    pods: BTreeSet<String>,
}

fn statefulset() -> Target {
    let text = std::fs::read_to_string(STATEFULSET).expect("deploy/base/statefulset.yaml");
    let sts: Value = serde_saphyr::from_str(&text).expect("the StatefulSet is YAML");
    let name = sts["metadata"]["name"].as_str().expect("StatefulSet name");
    let replicas = sts["spec"]["replicas"].as_u64().expect("StatefulSet replicas");
    let labels = sts["spec"]["template"]["metadata"]["labels"].as_object().expect("pod template labels");
    Target {
        namespace: sts["metadata"]["namespace"].as_str().expect("StatefulSet namespace").to_string(),
        labels: labels.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect(),
        pods: (0..replicas).map(|i| format!("{name}-{i}")).collect(),
    }
}

/// Every document of every chaos/k8s/*.yaml, named `file#index`.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(DIR)
        .expect("chaos/k8s")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let parsed: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
        docs.extend(parsed.into_iter().enumerate().map(|(i, v)| (format!("{name}#{i}"), v)));
    }
    docs
}

/// Collects every problem of one document, each with its field path.
struct Check<'a> {
    target: &'a Target,
    problems: Vec<String>,
}

impl Check<'_> {
    fn bad(&mut self, path: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {what}"));
    }

    /// `v` is an object with only `allowed` keys and every `required` one.
    fn keys(&mut self, path: &str, v: &Value, allowed: &[&str], required: &[&str]) {
        let Some(obj) = v.as_object() else { return self.bad(path, "not a mapping") };
        for k in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.bad(path, format!("unknown field `{k}` (known: {allowed:?})"));
        }
        for k in required.iter().filter(|k| !obj.contains_key(**k)) {
            self.bad(path, format!("missing `{k}`"));
        }
    }

    fn one_of(&mut self, path: &str, v: &Value, choices: &[&str]) {
        if !v.as_str().is_some_and(|s| choices.contains(&s)) {
            self.bad(path, format!("{v} is not one of {choices:?}"));
        }
    }

    fn duration(&mut self, path: &str, v: &Value) {
        match v.as_str().map(apimachinery::parse_go_duration) {
            Some(Ok(d)) if !d.is_zero() => {}
            _ => self.bad(path, format!("{v} is not a positive Go duration (e.g. 60s)")),
        }
    }

    fn pod_names(&mut self, path: &str, v: &Value) {
        let names = v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>()).unwrap_or_default();
        if names.is_empty() || names.iter().any(|n| !self.target.pods.contains(*n)) {
            self.bad(path, format!("{v} are not pods of the StatefulSet ({:?})", self.target.pods));
        }
    }

    /// A pod selector that picks pods of the StatefulSet only.
    fn selector(&mut self, path: &str, v: &Value) {
        self.keys(path, v, &["namespaces", "labelSelectors", "expressionSelectors"], &["namespaces", "labelSelectors"]);
        if v["namespaces"] != json!([self.target.namespace]) {
            self.bad(&format!("{path}.namespaces"), format!("must be [{}]", self.target.namespace));
        }
        let labels = v["labelSelectors"].as_object().cloned().unwrap_or_default();
        for (k, want) in &self.target.labels {
            if labels.get(k).and_then(Value::as_str) != Some(want) {
                self.bad(&format!("{path}.labelSelectors"), format!("must select the pod label {k}: {want}"));
            }
        }
        for (k, val) in labels.iter().filter(|(k, _)| !self.target.labels.contains_key(*k)) {
            if k == POD_NAME_LABEL {
                self.pod_names(&format!("{path}.labelSelectors.{k}"), &json!([val]));
            } else {
                self.bad(&format!("{path}.labelSelectors"), format!("`{k}` is not a label of the StatefulSet's pods"));
            }
        }
        for (i, e) in v["expressionSelectors"].as_array().into_iter().flatten().enumerate() {
            let p = format!("{path}.expressionSelectors[{i}]");
            self.keys(&p, e, &["key", "operator", "values"], &["key", "operator", "values"]);
            self.one_of(&format!("{p}.key"), &e["key"], &[POD_NAME_LABEL]);
            self.one_of(&format!("{p}.operator"), &e["operator"], &["In", "NotIn"]);
            self.pod_names(&format!("{p}.values"), &e["values"]);
        }
    }

    fn mode(&mut self, path: &str, spec: &Value) {
        self.one_of(
            &format!("{path}.mode"),
            &spec["mode"],
            &["one", "all", "fixed", "fixed-percent", "random-max-percent"],
        );
        let needs_value = spec["mode"].as_str().is_some_and(|m| m.starts_with("fixed") || m.starts_with("random"));
        if needs_value && spec["value"].as_str().is_none_or(|v| v.parse::<u32>().is_err()) {
            self.bad(&format!("{path}.value"), "mode needs a numeric `value` string");
        }
    }

    /// The spec of a PodChaos, NetworkChaos or StressChaos; `embedded`: in
    /// a Workflow step, whose `deadline` replaces `duration`.
    fn chaos(&mut self, path: &str, kind: &str, spec: &Value, embedded: bool) {
        let common = ["mode", "value", "selector", "duration"];
        let (extra, required): (&[&str], &[&str]) = match kind {
            "PodChaos" => (&["action", "gracePeriod", "containerNames"], &["action", "mode", "selector"]),
            "NetworkChaos" => (
                &["action", "direction", "target", "externalTargets", "device", "targetDevice"],
                &["action", "mode", "selector", "direction"],
            ),
            "StressChaos" => (&["stressors", "containerNames"], &["mode", "selector", "stressors"]),
            other => return self.bad(path, format!("`{other}` is not a chaos kind these experiments use")),
        };
        let allowed: Vec<&str> = common.iter().chain(extra).copied().collect();
        self.keys(path, spec, &allowed, required);
        self.mode(path, spec);
        self.selector(&format!("{path}.selector"), &spec["selector"]);
        let instant = kind == "PodChaos" && (spec["action"] == "pod-kill" || spec["action"] == "container-kill");
        match (&spec["duration"], embedded || instant) {
            (Value::Null, true) => {}
            (Value::Null, false) => self.bad(path, "missing `duration`"),
            (d, false) => self.duration(&format!("{path}.duration"), d),
            (_, true) => self.bad(
                &format!("{path}.duration"),
                if embedded {
                    "a Workflow step lasts its `deadline`"
                } else {
                    "pod-kill and container-kill are instantaneous"
                },
            ),
        }
        match kind {
            "PodChaos" => {
                self.one_of(&format!("{path}.action"), &spec["action"], &["pod-kill", "pod-failure", "container-kill"]);
                if !spec["gracePeriod"].is_null() && !spec["gracePeriod"].is_u64() {
                    self.bad(&format!("{path}.gracePeriod"), "not a whole number of seconds");
                }
            }
            "NetworkChaos" => self.network(path, spec),
            _ => self.stressors(&format!("{path}.stressors"), &spec["stressors"]),
        }
    }

    fn network(&mut self, path: &str, spec: &Value) {
        self.one_of(&format!("{path}.action"), &spec["action"], &["partition"]);
        self.one_of(&format!("{path}.direction"), &spec["direction"], &["to", "from", "both"]);
        if spec["target"].is_null() && spec["externalTargets"].is_null() {
            self.bad(path, "a partition needs `target` or `externalTargets`");
        }
        if !spec["target"].is_null() {
            let p = format!("{path}.target");
            self.keys(&p, &spec["target"], &["mode", "value", "selector"], &["mode", "selector"]);
            self.mode(&p, &spec["target"]);
            self.selector(&format!("{p}.selector"), &spec["target"]["selector"]);
        }
        if let Some(ext) = spec.get("externalTargets") {
            if spec["direction"] != "to" {
                self.bad(&format!("{path}.direction"), "externalTargets only work with direction `to`");
            }
            let list = ext.as_array().cloned().unwrap_or_default();
            if list.is_empty() || !list.iter().all(|t| t.as_str().is_some_and(is_address_or_cidr)) {
                self.bad(&format!("{path}.externalTargets"), format!("{ext} is not a list of IPs or CIDRs"));
            }
        }
    }

    fn stressors(&mut self, path: &str, v: &Value) {
        self.keys(path, v, &["cpu", "memory"], &[]);
        if v.as_object().is_none_or(|o| o.is_empty()) {
            self.bad(path, "needs a cpu or memory stressor");
        }
        if !v["cpu"].is_null() {
            self.keys(&format!("{path}.cpu"), &v["cpu"], &["workers", "load", "options"], &["workers"]);
            if v["cpu"]["workers"].as_u64().is_none_or(|w| w < 1) {
                self.bad(&format!("{path}.cpu.workers"), "at least 1");
            }
            if !v["cpu"]["load"].is_null() && v["cpu"]["load"].as_u64().is_none_or(|l| l > 100) {
                self.bad(&format!("{path}.cpu.load"), "a percentage, 0 to 100");
            }
        }
        if !v["memory"].is_null() {
            self.keys(&format!("{path}.memory"), &v["memory"], &["workers", "size", "options"], &["workers"]);
        }
    }

    fn workflow(&mut self, spec: &Value) {
        self.keys("spec", spec, &["entry", "templates"], &["entry", "templates"]);
        let templates = spec["templates"].as_array().cloned().unwrap_or_default();
        let by_name: BTreeMap<&str, &Value> = templates.iter().filter_map(|t| Some((t["name"].as_str()?, t))).collect();
        if by_name.len() != templates.len() {
            self.bad("spec.templates", "every template needs a unique name");
        }
        let entry = spec["entry"].as_str().unwrap_or_default();
        if !by_name.contains_key(entry) {
            self.bad("spec.entry", format!("`{entry}` is not a template"));
        }
        let embedded = [("PodChaos", "podChaos"), ("NetworkChaos", "networkChaos"), ("StressChaos", "stressChaos")];
        let mut reached = BTreeSet::from([entry]);
        for (name, t) in &by_name {
            let p = format!("spec.templates[{name}]");
            let ty = t["templateType"].as_str().unwrap_or_default();
            let field = embedded.iter().find(|(k, _)| *k == ty).map(|(_, f)| *f);
            let mut allowed = vec!["name", "templateType", "deadline"];
            match (ty, field) {
                ("Serial" | "Parallel", _) => {
                    allowed.push("children");
                    let children: Vec<&str> =
                        t["children"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    if children.is_empty() {
                        self.bad(&p, "needs `children`");
                    }
                    for c in &children {
                        if !by_name.contains_key(c) {
                            self.bad(&format!("{p}.children"), format!("`{c}` is not a template"));
                        }
                    }
                    reached.extend(children.iter().copied());
                    let sum: std::time::Duration = children
                        .iter()
                        .filter_map(|c| apimachinery::parse_go_duration(by_name.get(c)?["deadline"].as_str()?).ok())
                        .sum();
                    let own = t["deadline"].as_str().and_then(|d| apimachinery::parse_go_duration(d).ok());
                    if ty == "Serial" && own.is_some_and(|own| own < sum) {
                        self.bad(
                            &format!("{p}.deadline"),
                            format!("shorter than its children's {sum:?}: it cuts them off"),
                        );
                    }
                }
                ("Suspend", _) => {}
                (_, Some(field)) => {
                    allowed.push(field);
                    self.chaos(&format!("{p}.{field}"), ty, &t[field], true);
                }
                _ => self.bad(
                    &format!("{p}.templateType"),
                    format!("`{ty}` is not Serial, Parallel, Suspend or a chaos kind used here"),
                ),
            }
            self.keys(&p, t, &allowed, &["name", "templateType", "deadline"]);
            if !t["deadline"].is_null() {
                self.duration(&format!("{p}.deadline"), &t["deadline"]);
            }
        }
        for name in by_name.keys().filter(|n| !reached.contains(*n)) {
            self.bad("spec.templates", format!("`{name}` is never run from the entry"));
        }
    }
}

fn is_address_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
}

/// Every problem of one document (empty: well formed).
fn problems(doc: &Value, target: &Target) -> Vec<String> {
    let mut c = Check { target, problems: Vec::new() };
    c.keys("", doc, &["apiVersion", "kind", "metadata", "spec"], &["apiVersion", "kind", "metadata", "spec"]);
    if doc["apiVersion"] != API_VERSION {
        c.bad("apiVersion", format!("{} is not {API_VERSION}", doc["apiVersion"]));
    }
    c.keys("metadata", &doc["metadata"], &["name", "namespace", "labels", "annotations"], &["name", "namespace"]);
    if doc["metadata"]["namespace"] != target.namespace.as_str() {
        c.bad("metadata.namespace", format!("must be {} (beside the StatefulSet)", target.namespace));
    }
    match doc["kind"].as_str().unwrap_or_default() {
        "Workflow" => c.workflow(&doc["spec"]),
        kind => c.chaos("spec", kind, &doc["spec"], false),
    }
    c.problems
}

#[test]
fn every_experiment_is_a_chaos_mesh_object_aimed_at_the_statefulsets_pods_only() {
    let target = statefulset();
    let docs = documents();
    assert!(docs.len() >= 5, "expected the five experiments and the workflow, found {}", docs.len());
    let mut all = Vec::new();
    for (name, doc) in &docs {
        all.extend(problems(doc, &target).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(all.is_empty(), "malformed experiments:\n{}", all.join("\n"));
}

/// (kind, action, what it cuts) of a chaos spec.
fn fault_of(kind: &str, spec: &Value) -> String {
    let how = if !spec["externalTargets"].is_null() {
        "external"
    } else if !spec["target"].is_null() {
        "replicas"
    } else if !spec["stressors"]["cpu"].is_null() {
        "cpu"
    } else {
        ""
    };
    format!("{kind}/{}/{how}", spec["action"].as_str().unwrap_or(""))
}

#[test]
fn the_experiments_and_the_workflow_each_cover_kill_failure_both_partitions_and_cpu_stress() {
    let want: BTreeSet<String> = [
        "PodChaos/pod-kill/",
        "PodChaos/pod-failure/",
        "NetworkChaos/partition/replicas",
        "NetworkChaos/partition/external",
        "StressChaos//cpu",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let docs = documents();
    let standalone: BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"] != "Workflow")
        .map(|(_, d)| fault_of(d["kind"].as_str().unwrap_or(""), &d["spec"]))
        .collect();
    assert_eq!(standalone, want, "the standalone experiments");
    let (_, wf) = docs.iter().find(|(_, d)| d["kind"] == "Workflow").expect("a Workflow running them in turn");
    let steps: BTreeSet<String> = wf["spec"]["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let kind = t["templateType"].as_str()?;
            let field = format!("{}{}", kind[..1].to_lowercase(), &kind[1..]);
            t.get(&field).map(|spec| fault_of(kind, spec))
        })
        .collect();
    assert_eq!(steps, want, "the workflow's steps");
}

#[test]
fn a_typo_a_wrong_selector_or_a_missing_field_is_caught() {
    let target = statefulset();
    let docs: BTreeMap<String, Value> = documents().into_iter().collect();
    let doc = |name: &str| docs.get(&format!("{name}#0")).cloned().unwrap_or_else(|| panic!("{name}"));
    type Break = fn(&mut Value);
    let breaks: Vec<(&str, &str, Break)> = vec![
        ("pod-failure.yaml", "labelSelector typo", |d| {
            let s = d["spec"]["selector"].as_object_mut().unwrap();
            let v = s.remove("labelSelectors").unwrap();
            s.insert("labelSelector".into(), v);
        }),
        ("pod-failure.yaml", "other namespace", |d| d["spec"]["selector"]["namespaces"] = json!(["default"])),
        ("pod-failure.yaml", "wrong label value", |d| {
            d["spec"]["selector"]["labelSelectors"]["k8s-app"] = json!("metrics-server-x")
        }),
        ("pod-failure.yaml", "unknown action", |d| d["spec"]["action"] = json!("pod-fail")),
        ("pod-failure.yaml", "no duration", |d| _ = d["spec"].as_object_mut().unwrap().remove("duration")),
        ("pod-failure.yaml", "unitless duration", |d| d["spec"]["duration"] = json!("60")),
        ("pod-kill.yaml", "unknown mode", |d| d["spec"]["mode"] = json!("single")),
        ("pod-kill.yaml", "other apiVersion", |d| d["apiVersion"] = json!("chaos-mesh.org/v1alpha2")),
        ("pod-kill.yaml", "unknown kind", |d| d["kind"] = json!("PodChoas")),
        ("partition-peers.yaml", "no such pod", |d| {
            d["spec"]["selector"]["labelSelectors"][POD_NAME_LABEL] = json!("metrics-server-7")
        }),
        ("partition-peers.yaml", "no direction", |d| _ = d["spec"].as_object_mut().unwrap().remove("direction")),
        ("partition-kubelets.yaml", "external targets both ways", |d| d["spec"]["direction"] = json!("both")),
        ("partition-kubelets.yaml", "not a CIDR", |d| d["spec"]["externalTargets"] = json!(["10.0.0.0/40"])),
        ("stress-cpu.yaml", "no workers", |d| d["spec"]["stressors"]["cpu"]["workers"] = json!(0)),
        ("stress-cpu.yaml", "stressor typo", |d| d["spec"]["stressors"] = json!({"cpus": {"workers": 1}})),
        ("workflow.yaml", "missing child", |d| d["spec"]["templates"][0]["children"][1] = json!("recover")),
        ("workflow.yaml", "duration in a step", |d| d["spec"]["templates"][3]["podChaos"]["duration"] = json!("60s")),
        ("workflow.yaml", "suite deadline too short", |d| d["spec"]["templates"][0]["deadline"] = json!("5m")),
    ];
    for (file, what, break_it) in breaks {
        let mut d = doc(file);
        assert!(problems(&d, &target).is_empty(), "{file} is not well formed to begin with");
        break_it(&mut d);
        assert!(!problems(&d, &target).is_empty(), "{file} with {what} passed the check");
    }
}
