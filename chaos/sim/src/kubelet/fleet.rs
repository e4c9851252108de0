//! [`KubeletFleet`]: starts one simulated kubelet per node of a cluster spec
//! and is the handle tests and the dev mode turn the knobs with (faults,
//! pods, usage, tokens, certificates) and read the truth and the scrape
//! counters from. Request handling is `node`'s, sockets are `serve`'s.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::StoresServerSessions;
use rustls::server::danger::ClientCertVerifier;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::model::NodeModel;
use super::node::{NodeInner, NodeState, Shared, now_nanos};
use super::serve::{client_verifier, run_node, server_config, shared_sessions};
use super::{Fault, FleetError, FleetOptions};
use crate::cluster::{ClusterSpec, NodeSpec};
use tls::pki::Ca;

/// How long [`KubeletFleet::set_fault`] waits for a listener to close or reopen.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running set of simulated kubelets. Dropping it stops them.
pub struct KubeletFleet {
    nodes: Vec<Arc<NodeState>>,
    index: HashMap<String, usize>,
    pub(super) shared: Arc<Shared>,
    ca_pem: String,
    untrusted_ca: Ca,
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
    stop: CancellationToken,
    tracker: TaskTracker,
    /// Serialises certificate swaps per fleet (issuing is not on a hot path).
    swap_lock: Mutex<()>,
}

/// Kubelet-like serving certificates for `nodes`: SANs are the node's IP and
/// name; issued on all cores, since a fleet can have thousands of nodes.
fn issue_configs(
    ca: &Ca,
    nodes: &[NodeSpec],
    provider: &Arc<CryptoProvider>,
    verifier: &Arc<dyn ClientCertVerifier>,
    sessions: &Arc<dyn StoresServerSessions>,
) -> Result<Vec<Arc<ServerConfig>>, FleetError> {
    let issue = |node: &NodeSpec| -> Result<Arc<ServerConfig>, FleetError> {
        let sans = [node.ip.to_string(), node.name.clone()];
        let pair = ca
            .issue_server(&format!("system:node:{}", node.name), &sans)
            .map_err(|source| FleetError::Certificate { node: node.name.clone(), source })?;
        server_config(&node.name, provider, verifier, &pair, Some(sessions))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = nodes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(issue).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut all = Vec::with_capacity(nodes.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => all.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(all)
    })
}

impl KubeletFleet {
    /// Starts a kubelet for every node of `spec` on `node.ip:node.kubelet_port`.
    /// They run until `shutdown` is cancelled or the fleet is dropped.
    pub async fn start(
        spec: &ClusterSpec,
        opts: FleetOptions,
        shutdown: CancellationToken,
    ) -> Result<KubeletFleet, FleetError> {
        let mut index = HashMap::with_capacity(spec.nodes.len());
        for (i, node) in spec.nodes.iter().enumerate() {
            if index.insert(node.name.clone(), i).is_some() {
                return Err(FleetError::DuplicateNode { node: node.name.clone() });
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = client_verifier(&provider, opts.client_ca_pem.as_deref())?;
        let cert_err = |source| FleetError::Certificate { node: "(fleet CA)".to_string(), source };
        let ca = Ca::new("simulated-kubelet-ca").map_err(cert_err)?;
        let untrusted_ca = Ca::new("untrusted-kubelet-ca").map_err(cert_err)?;
        let nodes_spec = spec.nodes.clone();
        let (ca, configs) = {
            let (provider, verifier) = (provider.clone(), verifier.clone());
            tokio::task::spawn_blocking(move || {
                let configs = issue_configs(&ca, &nodes_spec, &provider, &verifier, &shared_sessions());
                (ca, configs)
            })
            .await
            .map_err(|e| FleetError::Tls {
                node: "(all)".to_string(),
                reason: format!("certificate task failed: {e}"),
            })?
        };
        let configs = configs?;

        let shared = Arc::new(Shared {
            anonymous: opts.anonymous,
            tokens: ArcSwap::from_pointee(opts.accepted_tokens.iter().cloned().collect::<HashSet<_>>()),
            total_scrapes: AtomicU64::new(0),
            sample_lag: opts.sample_lag.as_nanos() as u64,
            log: Default::default(),
            blocks: Default::default(),
        });
        let now = now_nanos();
        let age = opts.container_age.as_nanos() as u64;
        let stop = shutdown.child_token();
        let tracker = TaskTracker::new();
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        let mut listeners = Vec::with_capacity(spec.nodes.len());
        for (node, config) in spec.nodes.iter().zip(configs) {
            let addr = SocketAddr::from((node.ip, node.kubelet_port));
            let listener = TcpListener::bind(addr).await.map_err(|source| FleetError::Bind {
                node: node.name.clone(),
                addr,
                source,
            })?;
            listeners.push(listener);
            nodes.push(Arc::new(NodeState {
                name: node.name.clone(),
                log_name: Arc::from(node.name.as_str()),
                fault_gen: AtomicU64::new(0),
                addr,
                shared: shared.clone(),
                inner: Mutex::new(NodeInner::new(NodeModel::from_spec(node, now, age))),
                scrapes: AtomicU64::new(0),
                last_scrape_ms: AtomicU64::new(0),
                tls: ArcSwap::new(config.clone()),
                trusted_tls: config,
                want_up: watch::Sender::new(true),
                listening: watch::Sender::new(true),
            }));
        }
        for (node, listener) in nodes.iter().zip(listeners) {
            tracker.spawn(run_node(node.clone(), Some(listener), stop.clone(), tracker.clone()));
        }
        let fleet = KubeletFleet {
            nodes,
            index,
            shared,
            ca_pem: ca.cert_pem().to_string(),
            untrusted_ca,
            provider,
            verifier,
            stop,
            tracker,
            swap_lock: Mutex::new(()),
        };
        for name in &opts.untrusted_cert_nodes {
            fleet.set_untrusted_cert(name, true)?;
        }
        tracing::info!(nodes = fleet.nodes.len(), "simulated kubelets started");
        Ok(fleet)
    }

    pub(super) fn node(&self, name: &str) -> Result<&Arc<NodeState>, FleetError> {
        self.index
            .get(name)
            .and_then(|&i| self.nodes.get(i))
            .ok_or_else(|| FleetError::UnknownNode { node: name.to_string() })
    }

    /// The CA (PEM) that signed every kubelet's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA (PEM) of the certificates served by untrusted nodes.
    pub fn untrusted_ca_pem(&self) -> &str {
        self.untrusted_ca.cert_pem()
    }

    /// Node names, in the order of the spec.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// The address node `node`'s kubelet serves on.
    pub fn addr(&self, node: &str) -> Result<SocketAddr, FleetError> {
        Ok(self.node(node)?.addr)
    }

    /// `https://<ip>:<port>/metrics/resource` of node `node`.
    pub fn url(&self, node: &str) -> Result<String, FleetError> {
        Ok(format!("https://{}{}", self.node(node)?.addr, super::node::METRICS_PATH))
    }

    /// Replaces the set of accepted bearer tokens (a token rotation).
    pub fn set_accepted_tokens(&self, tokens: Vec<String>) {
        self.shared.tokens.store(Arc::new(tokens.into_iter().collect()));
    }

    /// Sets node `node`'s fault. Returns once the listener state matches:
    /// closed after [`Fault::Down`], listening after any other fault
    /// ([`Fault::Flapping`] returns at once; its task keeps toggling).
    pub async fn set_fault(&self, node: &str, fault: Fault) -> Result<(), FleetError> {
        let n = self.node(node)?;
        let generation = n.fault_gen.fetch_add(1, Ordering::SeqCst) + 1;
        if let Fault::Flapping { down, up } = fault {
            n.lock().fault = fault;
            self.tracker.spawn(super::flap::flap(n.clone(), generation, down, up, self.stop.clone()));
            return Ok(());
        }
        {
            let now = now_nanos();
            let mut inner = n.lock();
            inner.fault = fault;
            match fault {
                Fault::CounterReset => {
                    inner.model.counter_reset(now);
                    inner.fault = Fault::None;
                }
                Fault::FrozenTimestamps => inner.frozen_ms = n.sample_ms(now),
                _ => {}
            }
        }
        let up = fault != Fault::Down;
        n.want_up.send_replace(up);
        let mut listening = n.listening.subscribe();
        tokio::select! {
            _ = self.stop.cancelled() => Ok(()),
            applied = tokio::time::timeout(APPLY_TIMEOUT, listening.wait_for(|l| *l == up)) => match applied {
                Ok(Ok(_)) => Ok(()),
                _ => Err(FleetError::NotApplied {
                    node: node.to_string(),
                    action: if up { "listen again" } else { "close its listener" },
                    timeout: APPLY_TIMEOUT,
                }),
            },
        }
    }

    /// Node `node`'s current fault.
    pub fn fault(&self, node: &str) -> Result<Fault, FleetError> {
        Ok(self.node(node)?.lock().fault)
    }

    /// Makes node `node` serve new connections a certificate from a CA that
    /// nobody trusts (`true`) or its normal one again (`false`).
    pub fn set_untrusted_cert(&self, node: &str, untrusted: bool) -> Result<(), FleetError> {
        let n = self.node(node)?;
        let _guard = self.swap_lock.lock().unwrap_or_else(|p| p.into_inner());
        if !untrusted {
            n.tls.store(n.trusted_tls.clone());
            return Ok(());
        }
        let sans = [n.addr.ip().to_string(), n.name.clone()];
        let pair = self
            .untrusted_ca
            .issue_server(&format!("system:node:{}", n.name), &sans)
            .map_err(|source| FleetError::Certificate { node: n.name.clone(), source })?;
        n.tls.store(server_config(&n.name, &self.provider, &self.verifier, &pair, None)?);
        Ok(())
    }

    /// Requests for `/metrics/resource` node `node` received (whatever the
    /// answer); 0 for an unknown node.
    pub fn scrape_count(&self, node: &str) -> u64 {
        self.node(node).map_or(0, |n| n.scrapes.load(Ordering::Relaxed))
    }

    /// Requests for `/metrics/resource` over all nodes.
    pub fn total_scrapes(&self) -> u64 {
        self.shared.total_scrapes.load(Ordering::Relaxed)
    }

    /// When node `node` was last asked for `/metrics/resource` (ms precision).
    pub fn last_scrape(&self, node: &str) -> Option<SystemTime> {
        let ms = self.node(node).ok()?.last_scrape_ms.load(Ordering::Relaxed);
        (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Sets every scrape counter back to 0.
    pub fn reset_scrape_counts(&self) {
        for n in &self.nodes {
            n.scrapes.store(0, Ordering::Relaxed);
        }
        self.shared.total_scrapes.store(0, Ordering::Relaxed);
    }

    /// Stops every kubelet and waits until their tasks have ended.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for KubeletFleet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
