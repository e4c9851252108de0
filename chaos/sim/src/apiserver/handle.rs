//! What tests and the dev mode do to a running stand-in: change the
//! cluster (nodes, pods, ConfigMaps: each change a watch event; Secrets),
//! manage its clients' credentials, the review policy and the metrics backends, and
//! write kubeconfigs. The serving side lives in the sibling modules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use super::store::Kind;
use super::{Error, KubeconfigUser, Policy, StandInApiServer, UserInfo, kubeconfig, objects};
use crate::cluster::{NodeSpec, PodPhase, PodSpec};

/// Reads Secrets' data straight from the stand-in's store.
#[derive(Clone)]
pub struct SecretReader(std::sync::Arc<super::router::Shared>);

impl SecretReader {
    /// The decoded `data` of Secret `namespace/name`, if it exists.
    pub fn data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let secret = self.0.secrets.get(namespace, name)?;
        let data = secret.get("data").and_then(Value::as_object)?;
        Some(data.iter().filter_map(|(k, v)| Some((k.clone(), tls::pki::base64_decode(v.as_str()?)?))).collect())
    }
}

impl StandInApiServer {
    pub(super) fn put_node(&self, spec: &NodeSpec, created: i64) {
        let uid = objects::uid(self.shared.store.next_serial());
        let key = (String::new(), spec.name.clone());
        self.shared.store.put(Kind::Node, key, objects::node(spec, &uid, created));
        for pod in &spec.pods {
            self.put_pod(&spec.name, pod, created);
        }
    }

    fn put_pod(&self, node: &str, spec: &PodSpec, created: i64) {
        let uid = objects::uid(self.shared.store.next_serial());
        let key = (spec.namespace.clone(), spec.name.clone());
        self.shared.store.put(Kind::Pod, key, objects::pod(node, spec, &uid, created));
    }

    /// Adds (or replaces) a node and the pods in its spec.
    pub fn add_node(&self, spec: NodeSpec) {
        self.put_node(&spec, objects::now_secs());
    }

    /// Removes a node and every pod bound to it (as pod GC would).
    pub fn remove_node(&self, name: &str) -> Result<(), Error> {
        let key = (String::new(), name.to_string());
        self.shared
            .store
            .delete(Kind::Node, &key)
            .ok_or_else(|| Error::NotFound { kind: "node", name: name.into() })?;
        let (pods, _) = self.shared.store.list(Kind::Pod, None);
        for pod in pods.iter().filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name)) {
            let s = |p| pod.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            self.shared.store.delete(Kind::Pod, &(s("/metadata/namespace"), s("/metadata/name")));
        }
        Ok(())
    }

    /// Replaces a node's labels (a MODIFIED event).
    pub fn set_node_labels(&self, name: &str, labels: BTreeMap<String, String>) -> Result<(), Error> {
        let key = (String::new(), name.to_string());
        let labels = Value::Object(labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
        self.shared
            .store
            .update(Kind::Node, &key, |n| n["metadata"]["labels"] = labels)
            .map(|_| ())
            .ok_or_else(|| Error::NotFound { kind: "node", name: name.into() })
    }

    /// Adds (or replaces) a pod bound to `node`.
    pub fn add_pod(&self, node: &str, spec: PodSpec) {
        self.put_pod(node, &spec, objects::now_secs());
    }

    /// Removes a pod.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let key = (namespace.to_string(), name.to_string());
        self.shared
            .store
            .delete(Kind::Pod, &key)
            .map(|_| ())
            .ok_or_else(|| Error::NotFound { kind: "pod", name: format!("{namespace}/{name}") })
    }

    /// Changes a pod's phase (a MODIFIED event).
    pub fn set_pod_phase(&self, namespace: &str, name: &str, phase: PodPhase) -> Result<(), Error> {
        let key = (namespace.to_string(), name.to_string());
        self.shared
            .store
            .update(Kind::Pod, &key, |p| objects::set_pod_phase(p, phase))
            .map(|_| ())
            .ok_or_else(|| Error::NotFound { kind: "pod", name: format!("{namespace}/{name}") })
    }

    /// Creates or replaces a ConfigMap's data.
    pub fn set_configmap(&self, namespace: &str, name: &str, data: BTreeMap<String, String>) {
        let key = (namespace.to_string(), name.to_string());
        let store = &self.shared.store;
        let updated = store.update(Kind::ConfigMap, &key, |cm| {
            cm["data"] = Value::Object(data.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
        });
        if updated.is_none() {
            let uid = objects::uid(store.next_serial());
            store.put(Kind::ConfigMap, key, objects::configmap(namespace, name, &data, &uid, objects::now_secs()));
        }
    }

    /// Secret `namespace/name` as stored (`data` base64-encoded), if any.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.secrets.get(namespace, name)
    }

    /// The decoded `data` of Secret `namespace/name`, if it exists.
    pub fn secret_data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secret_reader().data(namespace, name)
    }

    /// Creates or replaces Secret `namespace/name` (type `ty`) with `data`,
    /// as an operator would (recorded as user `test-operator`); returns the
    /// stored object.
    pub fn put_secret(&self, namespace: &str, name: &str, ty: &str, data: &BTreeMap<String, Vec<u8>>) -> Value {
        let rv = self.shared.store.bump();
        self.shared.secrets.put(namespace, name, ty, data, "test-operator", rv)
    }

    /// Every successful create and update of a Secret, oldest first, with
    /// the user that made it.
    pub fn secret_writes(&self) -> Vec<super::secrets::SecretWrite> {
        self.shared.secrets.writes()
    }

    /// How many Secret creates were answered 409 AlreadyExists.
    pub fn secret_create_conflicts(&self) -> u64 {
        self.shared.secrets.create_conflicts()
    }

    /// Every Secret request (get, create, update), oldest first, with its
    /// user and the answer's status code.
    pub fn secret_requests(&self) -> Vec<super::secrets::SecretRequest> {
        self.shared.secrets.requests()
    }

    /// Who may do what to Secrets, as the installed RBAC says (`None`:
    /// every authenticated user anything).
    pub fn set_secret_access(&self, access: Option<super::secrets::Access>) {
        self.shared.secrets.set_access(access);
    }

    /// A reader of Secrets' data that outlives borrows of this handle (what
    /// the kubelet's volume manager reads).
    pub fn secret_reader(&self) -> SecretReader {
        SecretReader(self.shared.clone())
    }

    /// Creates or rescales StatefulSet `namespace/name` to `replicas`.
    pub fn set_statefulset_replicas(&self, namespace: &str, name: &str, replicas: i32) {
        self.shared
            .statefulsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_string(), name.to_string()), replicas);
    }

    /// Forgets the watch event log: watches from any earlier
    /// resourceVersion get 410 Expired, as after an etcd compaction.
    pub fn compact_event_log(&self) {
        self.shared.store.compact();
    }

    /// Adds (or replaces) a bearer token for `user` in `groups`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.shared.authn.add_token(token, UserInfo::new(user, groups));
    }

    /// Adds a token for an identity with a uid and extra attributes.
    pub fn add_token_for(&self, token: &str, user: UserInfo) {
        self.shared.authn.add_token(token, user);
    }

    /// Replaces the SubjectAccessReview policy.
    pub fn set_policy(&self, policy: Policy) {
        self.shared.reviews.set_policy(policy);
    }

    /// Makes every TokenReview and SubjectAccessReview answer only after
    /// these delays (zero: at once).
    pub fn set_review_delays(&self, token_review: std::time::Duration, access_review: std::time::Duration) {
        self.shared.reviews.set_delays(token_review, access_review);
    }

    /// TokenReviews received so far.
    pub fn token_reviews(&self) -> u64 {
        self.shared.reviews.token_reviews()
    }

    /// SubjectAccessReviews received so far.
    pub fn subject_access_reviews(&self) -> u64 {
        self.shared.reviews.subject_access_reviews()
    }

    /// The `spec` of every SubjectAccessReview received, oldest first.
    pub fn subject_access_review_specs(&self) -> Vec<Value> {
        self.shared.reviews.sar_log()
    }

    /// The metrics.k8s.io backends (Service endpoints), tried round-robin.
    pub fn set_metrics_backends(&self, backends: Vec<SocketAddr>) {
        self.shared.proxy.set_backends(backends);
    }

    /// Verify backends against this CA bundle (APIService `caBundle`) as
    /// [`ApiServerOptions::metrics_server_name`]; `None` skips verification.
    pub fn set_metrics_ca_bundle(&self, ca_bundle: Option<String>) -> Result<(), Error> {
        Ok(self.shared.proxy.set_ca_bundle(ca_bundle)?)
    }

    /// Writes a kubeconfig for kubectl or a kube client.
    pub fn write_kubeconfig(&self, path: &Path, user: KubeconfigUser) -> Result<(), Error> {
        let (name, creds) = match user {
            KubeconfigUser::ClientCert { user, groups } => {
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                let pair = self.issue_client_cert(&user, &groups)?;
                (user, kubeconfig::Credentials::ClientCert { cert_pem: pair.cert_pem, key_pem: pair.key_pem })
            }
            KubeconfigUser::Token { token, user, groups } => {
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                self.add_token(&token, &user, &groups);
                (user, kubeconfig::Credentials::Token(token))
            }
        };
        kubeconfig::write(path, &self.url(), self.serving_ca.cert_pem(), &name, &creds)
            .map_err(|source| Error::Kubeconfig { path: path.to_path_buf(), source })
    }

    /// Writes a kubeconfig for service account `namespace/name` with a fresh
    /// token (user `system:serviceaccount:<ns>:<name>`, groups
    /// `system:serviceaccounts`, `system:serviceaccounts:<ns>`); returns the token.
    pub fn write_service_account_kubeconfig(&self, path: &Path, namespace: &str, name: &str) -> Result<String, Error> {
        let token = format!("sa-{namespace}-{name}-{}", objects::uid(self.shared.store.next_serial()));
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let groups = vec!["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{namespace}")];
        self.write_kubeconfig(path, KubeconfigUser::Token { token: token.clone(), user, groups })?;
        Ok(token)
    }
}
