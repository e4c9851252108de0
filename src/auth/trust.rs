//! Who is trusted to vouch for users: the client CA, the front-proxy
//! (request-header) CA with its allowed names and header names. They come
//! from ConfigMap `kube-system/extension-apiserver-authentication` with flag
//! overrides, and are swapped atomically when either changes, so a rotated
//! CA is honoured without a restart. Building a config is pure
//! ([`build_config`]); [`run_reloader`] is the shell that watches and swaps.
//! This module must not authenticate anything itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::x509::{CaBundle, CaError};
use crate::config::TrustOverrides;

/// Namespace of the authentication ConfigMap.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of the authentication ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// Header names used when neither a flag nor the ConfigMap names any.
pub const DEFAULT_USERNAME_HEADERS: &[&str] = &["x-remote-user"];
pub const DEFAULT_GROUP_HEADERS: &[&str] = &["x-remote-group"];
pub const DEFAULT_EXTRA_PREFIXES: &[&str] = &["x-remote-extra-"];

/// The PEM text of the CA files named by flags, read by the shell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagFiles {
    pub client_ca: Option<String>,
    pub requestheader_client_ca: Option<String>,
}

/// Front-proxy trust: who may send identity headers, and which headers.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeaderConfig {
    /// CA that must sign the front proxy's client certificate.
    pub ca: CaBundle,
    /// Allowed front-proxy CNs; empty means any CN the CA signed.
    pub allowed_names: Vec<String>,
    /// Headers holding the user name; the first non-empty one wins.
    pub username_headers: Vec<String>,
    /// Headers holding the user's UID; the first non-empty one wins.
    pub uid_headers: Vec<String>,
    /// Headers holding groups: every value of every one.
    pub group_headers: Vec<String>,
    /// Prefixes of headers holding extra attributes (case-insensitive).
    pub extra_header_prefixes: Vec<String>,
}

/// Everything the authenticators trust, swapped as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustConfig {
    /// CA for ordinary client certificates; `None` disables them.
    pub client_ca: Option<CaBundle>,
    /// Front-proxy trust; `None` means identity headers are never trusted.
    pub request_header: Option<RequestHeaderConfig>,
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.pem() == other.pem()
    }
}

/// A trust configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} key {key}: not a JSON array of strings: {reason}")]
    BadList { key: &'static str, reason: String },
    #[error("reading {flag} {path}: {source}")]
    ReadFile {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Builds the trust config from the ConfigMap's data (if any), the flags and
/// the flag files' contents. Pure.
pub fn build_config(
    data: Option<&BTreeMap<String, String>>,
    flags: &TrustOverrides,
    files: &FlagFiles,
) -> Result<TrustConfig, TrustError> {
    let key = |k: &str| data.and_then(|d| d.get(k)).filter(|v| !v.trim().is_empty());

    let client_ca = match (&files.client_ca, key("client-ca-file")) {
        (Some(pem), _) => Some(CaBundle::from_pem("--client-ca-file", pem)?),
        (None, Some(pem)) => Some(CaBundle::from_pem(&cm_key("client-ca-file"), pem)?),
        (None, None) => None,
    };
    let rh_ca = match (&files.requestheader_client_ca, key("requestheader-client-ca-file")) {
        (Some(pem), _) => Some(CaBundle::from_pem("--requestheader-client-ca-file", pem)?),
        (None, Some(pem)) => Some(CaBundle::from_pem(&cm_key("requestheader-client-ca-file"), pem)?),
        (None, None) => None,
    };
    let request_header = match rh_ca {
        None => None,
        Some(ca) => {
            let list = |flag: &Option<Vec<String>>, k: &'static str, default: &[&str]| {
                list_setting(flag, key(k).map(String::as_str), k, default)
            };
            Some(RequestHeaderConfig {
                ca,
                allowed_names: list(&flags.requestheader_allowed_names, "requestheader-allowed-names", &[])?,
                username_headers: list(
                    &flags.requestheader_username_headers,
                    "requestheader-username-headers",
                    DEFAULT_USERNAME_HEADERS,
                )?,
                uid_headers: list(&flags.requestheader_uid_headers, "requestheader-uid-headers", &[])?,
                group_headers: list(
                    &flags.requestheader_group_headers,
                    "requestheader-group-headers",
                    DEFAULT_GROUP_HEADERS,
                )?,
                extra_header_prefixes: list(
                    &flags.requestheader_extra_headers_prefix,
                    "requestheader-extra-headers-prefix",
                    DEFAULT_EXTRA_PREFIXES,
                )?,
            })
        }
    };
    Ok(TrustConfig { client_ca, request_header })
}

fn cm_key(key: &str) -> String {
    format!("configmap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} key {key}")
}

/// A list setting: the flag if set, else the ConfigMap's JSON array, else
/// the default. Empty strings are dropped.
fn list_setting(
    flag: &Option<Vec<String>>,
    json: Option<&str>,
    key: &'static str,
    default: &[&str],
) -> Result<Vec<String>, TrustError> {
    let raw: Vec<String> = match (flag, json) {
        (Some(v), _) => v.clone(),
        (None, Some(text)) => serde_json::from_str::<Option<Vec<String>>>(text)
            .map_err(|e| TrustError::BadList { key, reason: e.to_string() })?
            .unwrap_or_default(),
        (None, None) => default.iter().map(|s| s.to_string()).collect(),
    };
    Ok(raw.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// The current trust config, readable without locks from every request.
pub struct TrustStore {
    current: ArcSwap<TrustConfig>,
    loaded: tokio::sync::watch::Sender<u64>,
}

impl TrustStore {
    /// A store holding `initial`; not yet marked loaded.
    pub fn new(initial: TrustConfig) -> Arc<TrustStore> {
        Arc::new(TrustStore { current: ArcSwap::from_pointee(initial), loaded: tokio::sync::watch::channel(0).0 })
    }

    /// A store already loaded with `config` (fixed trust: tests, flags only).
    pub fn fixed(config: TrustConfig) -> Arc<TrustStore> {
        let store = TrustStore::new(TrustConfig::default());
        store.replace(config);
        store
    }

    /// The config in force.
    pub fn load(&self) -> Arc<TrustConfig> {
        self.current.load_full()
    }

    /// Swaps in `config` and counts a load.
    pub fn replace(&self, config: TrustConfig) {
        self.current.store(Arc::new(config));
        self.loaded.send_modify(|g| *g += 1);
    }

    /// How many configs have been loaded so far.
    pub fn generation(&self) -> u64 {
        *self.loaded.borrow()
    }

    /// Waits until at least `generation` configs have been loaded.
    pub async fn wait_for_generation(&self, generation: u64) {
        let mut rx = self.loaded.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = rx.wait_for(|g| *g >= generation).await;
    }
}

/// One observation of the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceUpdate {
    /// The ConfigMap's `data`.
    Data(BTreeMap<String, String>),
    /// The ConfigMap does not exist (or was deleted).
    Absent,
}

/// Where ConfigMap updates come from (kube watch, or a test double).
pub trait TrustSource: Send {
    /// The next observation; `None` when the source has ended for good.
    fn next_update(&mut self) -> BoxFuture<'_, Option<SourceUpdate>>;
}

/// How often CA files named by flags are re-read.
pub const FLAG_FILE_POLL: Duration = Duration::from_secs(60);

/// Keeps `store` current: applies every update from `source` (if any) and
/// re-reads flag files every `poll`, until `cancel`. A config that fails to
/// build is logged and the old one kept.
pub async fn run_reloader(
    store: Arc<TrustStore>,
    mut source: Option<Box<dyn TrustSource>>,
    flags: TrustOverrides,
    poll: Duration,
    cancel: CancellationToken,
) {
    let mut last: Option<BTreeMap<String, String>> = None;
    let mut seen_source = source.is_none();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            update = next_or_pending(&mut source) => match update {
                Some(SourceUpdate::Data(data)) => {
                    last = Some(data);
                    seen_source = true;
                }
                Some(SourceUpdate::Absent) => {
                    if last.is_some() {
                        tracing::warn!(configmap = CONFIGMAP_NAME, "authentication ConfigMap is gone; keeping the trust last read from it");
                        continue;
                    }
                    tracing::warn!(configmap = CONFIGMAP_NAME, namespace = CONFIGMAP_NAMESPACE, "authentication ConfigMap not found; only flags configure trust");
                    seen_source = true;
                }
                None => {
                    tracing::warn!("authentication ConfigMap source ended; trust will only follow flag files");
                    source = None;
                    continue;
                }
            },
            _ = ticker.tick() => {
                if !seen_source {
                    continue;
                }
            }
        }
        apply(&store, last.as_ref(), &flags).await;
    }
}

async fn next_or_pending(source: &mut Option<Box<dyn TrustSource>>) -> Option<SourceUpdate> {
    match source {
        Some(s) => s.next_update().await,
        None => std::future::pending().await,
    }
}

/// Rebuilds and swaps the config if it changed (always on the first load).
async fn apply(store: &TrustStore, data: Option<&BTreeMap<String, String>>, flags: &TrustOverrides) {
    let built = match read_flag_files(flags).await {
        Ok(files) => build_config(data, flags, &files),
        Err(e) => Err(e),
    };
    match built {
        Ok(config) => {
            if store.generation() > 0 && *store.load() == config {
                return;
            }
            tracing::info!(
                client_ca = config.client_ca.as_ref().map(|c| c.name()),
                requestheader_ca = config.request_header.as_ref().map(|r| r.ca.name()),
                allowed_names = ?config.request_header.as_ref().map(|r| &r.allowed_names),
                "authentication trust loaded"
            );
            store.replace(config);
        }
        Err(error) => {
            tracing::error!(%error, "authentication trust not updated; keeping the previous one");
        }
    }
}

async fn read_flag_files(flags: &TrustOverrides) -> Result<FlagFiles, TrustError> {
    async fn read(flag: &'static str, path: &Option<PathBuf>) -> Result<Option<String>, TrustError> {
        match path {
            None => Ok(None),
            Some(p) => tokio::fs::read_to_string(p).await.map(Some).map_err(|source| TrustError::ReadFile {
                flag,
                path: p.clone(),
                source,
            }),
        }
    }
    Ok(FlagFiles {
        client_ca: read("--client-ca-file", &flags.client_ca_file).await?,
        requestheader_client_ca: read("--requestheader-client-ca-file", &flags.requestheader_client_ca_file).await?,
    })
}

#[cfg(test)]
mod tests;
