//! Auditing, as the generic apiserver does it for metrics-server: the
//! policy ([`policy`]) decides per request whether and how much is
//! recorded, events ([`event`]) go in `audit.k8s.io/v1` form to the log file
//! ([`logfile`], rotated) and/or the webhook ([`webhook`]), each delivered
//! in its mode ([`backend`]: blocking, blocking-strict or batched), by the
//! middleware in [`layer`]. Its flags and their checks are
//! `config::audit`'s. It must not change what a request is answered,
//! except that a blocking-strict failure refuses it, as kube-apiserver does.

pub mod backend;
pub mod event;
pub mod layer;
pub mod logfile;
pub mod policy;
pub mod webhook;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AuditSettings;
use backend::{Backend, Sink};
use event::Event;
use policy::Policy;

/// The event group and version.
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// Auditing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("--audit-policy-file {path}: {source}")]
    ReadPolicy {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("--audit-log-path {path}: {source}")]
    OpenLog {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
}

/// The policy and the backends; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    backends: Vec<Backend>,
}

impl Auditor {
    /// Loads the policy, opens the log file and reads the webhook's
    /// kubeconfig; batch writers run until `stop` (their handles are
    /// returned so shutdown can wait for the last events).
    pub async fn start(
        settings: &AuditSettings,
        stop: CancellationToken,
    ) -> Result<(Auditor, Vec<JoinHandle<()>>), AuditError> {
        let path = settings.policy_file.display().to_string();
        let text = tokio::fs::read_to_string(&settings.policy_file)
            .await
            .map_err(|source| AuditError::ReadPolicy { path: path.clone(), source })?;
        let policy = Policy::parse(&text, &path)?;
        let mut backends = Vec::new();
        let mut tasks = Vec::new();
        if let Some(log) = &settings.log {
            let sink = logfile::LogSink::new(log);
            sink.open().map_err(|source| AuditError::OpenLog { path: format!("{:?}", log.target), source })?;
            let (b, t) = Backend::start(Arc::new(sink), log.mode, log.batch.clone(), log.truncate, stop.clone());
            backends.push(b);
            tasks.extend(t);
        }
        if let Some(w) = &settings.webhook {
            let sink: Arc<dyn Sink> =
                Arc::new(webhook::WebhookSink::from_kubeconfig(&w.config_file, w.initial_backoff).await?);
            let (b, t) = Backend::start(sink, w.mode, w.batch.clone(), w.truncate, stop.clone());
            backends.push(b);
            tasks.extend(t);
        }
        tracing::info!(policy = %path, rules = policy.rules.len(), backends = backends.len(), "auditing requests");
        Ok((Auditor { inner: Arc::new(Inner { policy, backends }) }, tasks))
    }

    /// An auditor over given parts (tests).
    pub fn from_parts(policy: Policy, backends: Vec<Backend>) -> Auditor {
        Auditor { inner: Arc::new(Inner { policy, backends }) }
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Hands `event` to every backend; `Err` if a blocking-strict one failed.
    pub async fn emit(&self, event: Event) -> Result<(), String> {
        let mut result = Ok(());
        for b in &self.inner.backends {
            if let Err(e) = b.process(event.clone()).await {
                result = Err(e);
            }
        }
        result
    }
}
