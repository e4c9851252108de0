//! Simulated kubelets: one HTTPS `/metrics/resource` endpoint per node of a
//! [`ClusterSpec`](crate::cluster::ClusterSpec), each on the node's own
//! loopback address, serving the text a 1.32 kubelet serves, with counters
//! that rise at exactly the spec's rates, kubelet-like authentication, fault
//! knobs and scrape counters. Used by the dev mode, the tests, chaos and the
//! benchmarks; never by a server in production.
//!
//! Layout: `model` (the truth, pure arithmetic), [`render`] (the exact text,
//! from a node's model or, for the server's parser tests, from plain
//! [`render::KubeletSample`] values), `node` (one node's state and its
//! request handler), `serve` (TLS and the accept loop), `fleet` and `knobs`
//! (the public handle). This module does not talk to the apiserver stand-in
//! and does not decide what a scraper should do with what it gets.

mod flap;
mod fleet;
mod knobs;
mod model;
mod node;
mod partition;
pub mod render;
mod scrape_log;
mod serve;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use fleet::KubeletFleet;
pub use partition::BlockMode;
pub use scrape_log::{SCRAPE_LOG_CAPACITY, ScrapeOutcome, ScrapeRecord};

/// How a fleet is started.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Serve every request without credentials (a kubelet with anonymous
    /// auth allowed). Otherwise a request needs an accepted bearer token or a
    /// client certificate signed by `client_ca_pem`, or gets 401.
    pub anonymous: bool,
    /// Bearer tokens accepted from the start (see
    /// [`KubeletFleet::set_accepted_tokens`]).
    pub accepted_tokens: Vec<String>,
    /// A CA (PEM) whose client certificates are accepted, like the
    /// kubelet's `--client-ca-file`.
    pub client_ca_pem: Option<String>,
    /// Nodes that serve a certificate from a CA nobody trusts from the start
    /// (see [`KubeletFleet::set_untrusted_cert`]).
    pub untrusted_cert_nodes: Vec<String>,
    /// How long containers have been running when the fleet starts; the
    /// default of an hour keeps metrics-server's fresh-container rule out.
    pub container_age: Duration,
    /// How far the sample timestamps trail the scrape, like cAdvisor's
    /// housekeeping (0 by default).
    pub sample_lag: Duration,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            anonymous: false,
            accepted_tokens: Vec::new(),
            client_ca_pem: None,
            untrusted_cert_nodes: Vec::new(),
            container_age: Duration::from_secs(3600),
            sample_lag: Duration::ZERO,
        }
    }
}

impl FleetOptions {
    /// Options with authentication switched off.
    pub fn anonymous() -> Self {
        FleetOptions { anonymous: true, ..FleetOptions::default() }
    }

    /// Options that accept exactly these bearer tokens.
    pub fn with_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        FleetOptions { accepted_tokens: tokens.into_iter().map(Into::into).collect(), ..FleetOptions::default() }
    }
}

/// A fault injected into one node, set at runtime with
/// [`KubeletFleet::set_fault`]. Every fault affects only its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Healthy.
    None,
    /// The listener is closed and open connections are dropped, so new
    /// connections are refused; any other fault brings the node back.
    Down,
    /// Every answer is delayed by this long.
    Slow(Duration),
    /// `500 Internal Server Error`.
    Http500,
    /// `200 OK` with a truncated body that is not valid Prometheus text.
    Malformed,
    /// Every answer is the sample of the moment the fault was set.
    FrozenTimestamps,
    /// A one-off event, like a kubelet or node restart: every counter starts
    /// again near 0 and every container's start time becomes now. The node
    /// is then healthy ([`Fault::None`]).
    CounterReset,
    /// Connections are accepted and requests read, but never answered.
    Hang,
    /// The kubelet goes down for `down`, comes back for `up`, and so on
    /// (first down), until another fault is set; healthy while up.
    Flapping { down: Duration, up: Duration },
}

/// True usage of a container, pod or node, for comparing with what a
/// scraper reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrueUsage {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// Why a fleet could not start or a knob could not be turned.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("issuing the serving certificate of kubelet {node}: {source}")]
    Certificate {
        node: String,
        #[source]
        source: tls::pki::PkiError,
    },
    #[error("building the TLS configuration of kubelet {node}: {reason}")]
    Tls { node: String, reason: String },
    #[error("the kubelet client CA is not usable: {reason}")]
    ClientCa { reason: String },
    #[error("kubelet {node} cannot listen on {addr}: {source}")]
    Bind {
        node: String,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("kubelet {node} did not {action} within {timeout:?}")]
    NotApplied { node: String, action: &'static str, timeout: Duration },
    #[error("node {node} appears twice in the cluster spec")]
    DuplicateNode { node: String },
    #[error("no simulated kubelet for node {node}")]
    UnknownNode { node: String },
    #[error("node {node} runs no pod {namespace}/{pod}")]
    UnknownPod { node: String, namespace: String, pod: String },
    #[error("pod {namespace}/{pod} on node {node} has no container {container}")]
    UnknownContainer { node: String, namespace: String, pod: String, container: String },
    #[error("node {node} already runs pod {namespace}/{pod}")]
    DuplicatePod { node: String, namespace: String, pod: String },
}
