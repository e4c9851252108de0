//! Discovery: which nodes and running pods the cluster has, from a kube-rs
//! reflector over Nodes and a metadata-only (`status.phase=Running`) watch
//! of Pods feeding the [`pods::PodIndex`], and how to reach each node's
//! kubelet. It answers the API's
//! [`Inventory`](crate::model::Inventory) and the scraper's target list; it
//! never talks to kubelets itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::config::{AddressType, KubeletSettings};
use crate::model::{Inventory, ObjectMeta, PodList};

pub mod pods;

use apimachinery::selector::LabelSelector;
use pods::PodIndex;

/// Node annotation that overrides the kubelet metrics path (as metrics-server).
pub const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";
/// The kubelet path scraped by default.
pub const DEFAULT_METRICS_PATH: &str = "/metrics/resource";

/// Whether a node's labels match `--node-selector`.
pub type NodeFilter = Arc<dyn Fn(&BTreeMap<String, String>) -> bool + Send + Sync>;

/// One kubelet to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub node: String,
    /// Host (IP or DNS name) and port, and the path, e.g. `/metrics/resource`.
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl ScrapeTarget {
    /// `scheme://host:port/path`, with IPv6 literals bracketed.
    pub fn url(&self, scheme: &str) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}{}", self.port, self.path)
    }
}

/// Why a node cannot be scraped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("node {node}: no address matched types {types}")]
    NoAddress { node: String, types: String },
}

/// The informer-backed view of Nodes and running Pods.
#[derive(Clone)]
pub struct Discovery {
    nodes: Store<Node>,
    pods: Arc<PodIndex>,
    node_filter: NodeFilter,
    /// Whether the node and the pod reflector completed their first list.
    /// Readiness is relayed through this channel because kube's
    /// `wait_until_ready` wakes only the last of several concurrent waiters
    /// (a oneshot inside).
    synced: tokio::sync::watch::Receiver<Synced>,
}

impl Discovery {
    /// Starts the reflectors; they run until `shutdown`.
    pub fn start(client: Client, node_filter: NodeFilter, shutdown: CancellationToken) -> Discovery {
        let (nodes, node_writer) = reflector::store::<Node>();
        let node_stream = reflector(
            node_writer,
            watcher(Api::<Node>::all(client.clone()), whole(watcher::Config::default().any_semantic()))
                .default_backoff()
                .modify(|n: &mut Node| {
                    n.managed_fields_mut().clear();
                    if let Some(status) = n.status.as_mut() {
                        status.images = None;
                    }
                }),
        );
        let pods = Arc::new(PodIndex::default());
        let pod_stream = watcher(
            Api::<PartialObjectMeta<Pod>>::all(client),
            whole(watcher::Config::default().any_semantic().fields("status.phase=Running")),
        )
        .default_backoff();
        let (synced_tx, synced) = tokio::sync::watch::channel(Synced::default());
        let synced_tx = Arc::new(synced_tx);
        spawn_reflector("nodes", node_stream, shutdown.clone());
        spawn_pod_watch(pod_stream, pods.clone(), synced_tx.clone(), shutdown.clone());
        spawn_ready_flag(nodes.clone(), synced_tx, |s| s.nodes = true, shutdown);
        Discovery { nodes, pods, node_filter, synced }
    }

    /// Waits until both reflectors have completed their first list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| s.nodes && s.pods).await;
    }

    /// Whether the pod metadata reflector completed its first list
    /// (metrics-server's `metadata-informer-sync`).
    pub fn pods_synced(&self) -> bool {
        self.synced.borrow().pods
    }

    /// Names of the nodes matching `--node-selector`.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.state().iter().filter(|n| (self.node_filter)(n.labels())).map(|n| n.name_any()).collect()
    }

    /// The kubelets to scrape: every node matching `--node-selector`, with
    /// its address resolved by the preferred types, or why it cannot be (in
    /// no particular order: the scheduler orders by offset).
    pub fn targets(&self, settings: &KubeletSettings) -> Vec<Result<ScrapeTarget, TargetError>> {
        self.nodes
            .state()
            .iter()
            .filter(|n| (self.node_filter)(n.labels()))
            .map(|n| resolve_target(n, settings))
            .collect()
    }
}

/// `config` listing whole, as client-go's reflector (metrics-server's
/// informers) lists: at resourceVersion "0", which kube-apiserver serves
/// from its watch cache in one answer. kube-rs pages by default, and to page
/// it drops resourceVersion "0", so each page is read from etcd: at 10,000
/// nodes × 30 pods, 600 round trips before the first scrape, 10 s after a
/// cold start and 25 s after a restart on a loaded machine.
fn whole(config: watcher::Config) -> watcher::Config {
    watcher::Config { page_size: None, ..config }
}

/// Resolves a node's kubelet address: the first address of the first
/// preferred type the node has, the node-status port when asked for and
/// non-zero, and the path from the annotation.
pub fn resolve_target(node: &Node, settings: &KubeletSettings) -> Result<ScrapeTarget, TargetError> {
    let name = node.name_any();
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    let host = settings
        .address_types
        .iter()
        .find_map(|t| addresses?.iter().find(|a| a.type_ == t.as_str()).map(|a| a.address.clone()));
    let Some(host) = host else {
        let types: Vec<&str> = settings.address_types.iter().map(|t: &AddressType| t.as_str()).collect();
        return Err(TargetError::NoAddress { node: name, types: types.join(",") });
    };
    let status_port = node
        .status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0 && *p <= i32::from(u16::MAX));
    let port = match (settings.use_node_status_port, status_port) {
        (true, Some(p)) => p as u16,
        _ => settings.port,
    };
    let path = node
        .annotations()
        .get(RESOURCE_METRICS_PATH_ANNOTATION)
        .filter(|p| p.starts_with('/'))
        .cloned()
        .unwrap_or_else(|| DEFAULT_METRICS_PATH.to_string());
    Ok(ScrapeTarget { node: name, host, port, path })
}

/// Feeds the pod index from the watch; the first complete list marks the
/// pods synced (metrics-server's `metadata-informer-sync`).
fn spawn_pod_watch<S, E>(
    stream: S,
    index: Arc<PodIndex>,
    synced: Arc<tokio::sync::watch::Sender<Synced>>,
    shutdown: CancellationToken,
) where
    S: futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Pod>>, E>> + Send + 'static,
    E: std::fmt::Display + Send,
{
    tokio::spawn(async move {
        let run = stream.for_each(|event| {
            match event {
                Ok(watcher::Event::Apply(p)) => index.apply(meta_of(&p)),
                Ok(watcher::Event::Delete(p)) => {
                    index.delete(p.namespace().as_deref().unwrap_or_default(), &p.name_any())
                }
                Ok(watcher::Event::Init) => index.init(),
                Ok(watcher::Event::InitApply(p)) => index.init_apply(meta_of(&p)),
                Ok(watcher::Event::InitDone) => {
                    index.init_done();
                    synced.send_if_modified(|s| !std::mem::replace(&mut s.pods, true));
                }
                Err(e) => tracing::warn!(resource = "pods", error = %e, "watch failed; retrying with backoff"),
            }
            std::future::ready(())
        });
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = run => tracing::error!(resource = "pods", "watch stream ended"),
        }
    });
}

fn spawn_reflector<S, T, E>(what: &'static str, stream: S, shutdown: CancellationToken)
where
    S: futures::Stream<Item = Result<T, E>> + Send + 'static,
    T: Send,
    E: std::fmt::Display + Send,
{
    tokio::spawn(async move {
        let run = stream.for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(resource = what, error = %e, "watch failed; retrying with backoff");
            }
        });
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = run => tracing::error!(resource = what, "watch stream ended"),
        }
    });
}

/// Which reflectors completed their first list.
#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    nodes: bool,
    pods: bool,
}

fn spawn_ready_flag<K>(
    store: Store<K>,
    synced: Arc<tokio::sync::watch::Sender<Synced>>,
    mark: fn(&mut Synced),
    shutdown: CancellationToken,
) where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            r = store.wait_until_ready() => if r.is_ok() { synced.send_modify(mark) },
        }
    });
}

fn meta_of<K: kube::Resource>(obj: &K) -> ObjectMeta {
    ObjectMeta {
        name: obj.meta().name.clone().unwrap_or_default(),
        namespace: obj.meta().namespace.clone(),
        labels: obj.meta().labels.clone().unwrap_or_default(),
    }
}

impl Inventory for Discovery {
    fn nodes(&self) -> Vec<ObjectMeta> {
        self.nodes.state().iter().filter(|n| (self.node_filter)(n.labels())).map(|n| meta_of(n.as_ref())).collect()
    }

    fn node(&self, name: &str) -> Option<ObjectMeta> {
        self.nodes.get(&ObjectRef::new(name)).map(|n| meta_of(n.as_ref()))
    }

    fn pods(&self, namespace: Option<&str>, labels: &LabelSelector) -> Vec<Arc<ObjectMeta>> {
        self.pods.select(namespace, labels)
    }

    fn pod_list(&self, namespace: Option<&str>, labels: &LabelSelector) -> PodList {
        self.pods.list(namespace, labels)
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        self.pods.get(namespace, name)
    }

    fn synced(&self) -> bool {
        let s = *self.synced.borrow();
        s.nodes && s.pods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::api::core::v1::{DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus};
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_lists_come_whole_one_request_each() {
        use sim::apiserver::{ApiServerOptions, KubeconfigUser, StandInApiServer};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let block = sim::addr::Block::acquire().expect("a free loopback block");
        // More pods than a page of kube-rs's default 500.
        let options = sim::cluster::GenerateOptions { nodes: 3, pods_per_node: 250, ..Default::default() };
        let spec = sim::cluster::generate(&block, &options);
        let opts = ApiServerOptions::new(std::net::SocketAddr::new(block.apiserver().into(), 6443));
        let stop = CancellationToken::new();
        let server = StandInApiServer::start(opts, &spec, stop.clone()).await.expect("stand-in starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        let admin = KubeconfigUser::ClientCert { user: "admin".into(), groups: vec!["system:masters".into()] };
        server.write_kubeconfig(&path, admin).expect("kubeconfig");
        let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
        let discovery =
            Discovery::start(Client::try_from(config).expect("client"), Arc::new(|_| true), stop.child_token());
        tokio::time::timeout(Duration::from_secs(60), discovery.wait_synced()).await.expect("synced");
        assert_eq!(server.node_and_pod_lists(), 2, "one list of nodes, one of pods");
        let running = spec.nodes.iter().flat_map(|n| &n.pods).filter(|p| p.phase == sim::cluster::PodPhase::Running);
        assert!(running.clone().count() > 500);
        assert_eq!(discovery.pods.len(), running.count());
        assert_eq!(discovery.node_names().len(), 3);
        stop.cancel();
    }

    fn settings(types: Vec<AddressType>, use_status_port: bool) -> KubeletSettings {
        KubeletSettings {
            port: 10250,
            use_node_status_port: use_status_port,
            address_types: types,
            insecure_tls: false,
            certificate_authority: None,
            client_cert: None,
            request_timeout: Duration::from_secs(10),
            completely_insecure: false,
            token_file: None,
            concurrency: 1,
        }
    }

    fn node(addrs: &[(&str, &str)], port: i32) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.status = Some(NodeStatus {
            addresses: Some(
                addrs.iter().map(|(t, a)| NodeAddress { type_: t.to_string(), address: a.to_string() }).collect(),
            ),
            daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port }) }),
            ..Default::default()
        });
        n
    }

    #[test]
    fn preferred_address_type_order_wins_and_first_address_of_a_type_is_used() {
        let n = node(&[("Hostname", "n1"), ("InternalIP", "10.0.0.1"), ("InternalIP", "10.0.0.2")], 0);
        let t = resolve_target(&n, &settings(vec![AddressType::InternalIp, AddressType::Hostname], false)).unwrap();
        assert_eq!(t.host, "10.0.0.1");
        assert_eq!(t.url("https"), "https://10.0.0.1:10250/metrics/resource");
    }

    #[test]
    fn node_status_port_is_used_only_when_asked_and_non_zero() {
        let n = node(&[("InternalIP", "10.0.0.1")], 10255);
        assert_eq!(resolve_target(&n, &settings(vec![AddressType::InternalIp], true)).unwrap().port, 10255);
        assert_eq!(resolve_target(&n, &settings(vec![AddressType::InternalIp], false)).unwrap().port, 10250);
        let zero = node(&[("InternalIP", "10.0.0.1")], 0);
        assert_eq!(resolve_target(&zero, &settings(vec![AddressType::InternalIp], true)).unwrap().port, 10250);
    }

    #[test]
    fn node_without_a_matching_address_is_an_error_naming_it() {
        let n = node(&[("Hostname", "n1")], 0);
        let e = resolve_target(&n, &settings(vec![AddressType::InternalIp], false)).unwrap_err();
        assert_eq!(e.to_string(), "node n1: no address matched types InternalIP");
    }

    #[test]
    fn annotation_overrides_the_metrics_path_and_ipv6_is_bracketed() {
        let mut n = node(&[("InternalIP", "fd00::1")], 0);
        n.metadata.annotations = Some([(RESOURCE_METRICS_PATH_ANNOTATION.to_string(), "/custom".to_string())].into());
        let t = resolve_target(&n, &settings(vec![AddressType::InternalIp], false)).unwrap();
        assert_eq!(t.url("https"), "https://[fd00::1]:10250/custom");
    }
}
