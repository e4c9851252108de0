//! The peer port's credentials over time: where the cluster CA and this
//! replica's certificate come from at start (the `--peer-*-file` files, or
//! the `--peer-secret` Secret, made when absent: [`bootstrap`]), and their
//! reload every `--peer-reload-interval` without a restart. A changed CA
//! (or changed files) goes through [`rotation`], so old and new are both
//! trusted while the replicas switch; a certificate issued from the Secret's
//! CA is renewed when two thirds of its validity have passed. Every change
//! is swapped into the one [`RotatingTls`] that serves the peer port and
//! backs the Raft peer client.

pub mod bootstrap;
pub mod rotation;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tls::pki::{Ca, LeafSpec, PkiError, Usage};
use tls::rotating::RotatingTls;
use tls::{CertKey, TlsError, TlsPolicy};
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterSettings, PeerCredentials, SecretRef};
use bootstrap::{Answer, BootstrapError};
use rotation::{Change, Rotation};

/// How far back an issued certificate's validity starts (clock skew between nodes).
const BACKDATE: Duration = Duration::from_secs(300);

/// The peer credentials could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("{flag} {path}: {source}")]
    File { flag: &'static str, path: PathBuf, source: std::io::Error },
    #[error("peer TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("peer Secret {secret}: issuing this replica's certificate: {source}")]
    Issue { secret: String, source: PkiError },
}

/// This replica's certificate names: the common name is its member name,
/// the SANs the hosts peers reach it at (see `tls::identity`).
pub fn leaf_names(settings: &ClusterSettings) -> Vec<String> {
    let host = |addr: &str| {
        let h = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        h.trim_start_matches('[').trim_end_matches(']').to_string()
    };
    let mut sans = vec![host(&settings.peer_advertise)];
    sans.extend(settings.peers.iter().filter(|(n, _)| *n == settings.name).map(|(_, a)| host(a)));
    let listen: IpAddr = settings.peer_listen.ip();
    if !listen.is_unspecified() {
        sans.push(listen.to_string());
    }
    sans.sort();
    sans.dedup();
    sans
}

/// Issues this replica's peer certificate from `ca`, valid for `validity`.
fn issue(ca: &Ca, settings: &ClusterSettings, validity: Duration) -> Result<CertKey, PeerTlsError> {
    let secret = || match &settings.tls.credentials {
        PeerCredentials::Secret(s) => s.to_string(),
        PeerCredentials::Files { .. } => String::new(),
    };
    let sans = leaf_names(settings);
    let spec = LeafSpec { common_name: &settings.name, organizations: &[], sans: &sans, usage: Usage::ServerAndClient };
    let now = SystemTime::now();
    let pair = ca
        .issue_valid(&spec, now - BACKDATE, now + validity)
        .map_err(|source| PeerTlsError::Issue { secret: secret(), source })?;
    Ok(CertKey::from_pair(&pair, "this replica's peer")?)
}

/// Sets up the peer credentials and starts reloading them until `shutdown`.
pub async fn start(
    settings: &ClusterSettings,
    policy: &TlsPolicy,
    client: &kube::Client,
    shutdown: CancellationToken,
) -> Result<RotatingTls, PeerTlsError> {
    let interval = settings.tls.reload_interval;
    match &settings.tls.credentials {
        PeerCredentials::Files { ca_file, cert_file, key_file } => {
            let files = FileSet::read(ca_file, cert_file, key_file)?;
            let tls = RotatingTls::new(&files.ca, files.cert_key()?, policy)?;
            let watcher = FileLoop {
                paths: (ca_file.clone(), cert_file.clone(), key_file.clone()),
                rotation: Rotation::new(files, interval * 2),
                tls: tls.clone(),
            };
            spawn_reload(Reloader::Files(watcher), interval, shutdown);
            Ok(tls)
        }
        PeerCredentials::Secret(secret) => {
            let (pem, ca, _) = bootstrap::bootstrap(client.clone(), secret, &settings.name).await?;
            let validity = settings.tls.cert_validity;
            let leaf = issue(&ca, settings, validity)?;
            let tls = RotatingTls::new(pem.cert.as_bytes(), leaf.clone(), policy)?;
            let watcher = SecretLoop {
                api: Api::namespaced(client.clone(), &secret.namespace),
                secret: secret.clone(),
                settings: settings.clone(),
                rotation: Rotation::new(pem.cert.clone(), interval * 2),
                leaf,
                leaf_from: pem.cert.clone(),
                renew_at: Instant::now() + validity * 2 / 3,
                signers: HashMap::from([(pem.cert, ca)]),
                tls: tls.clone(),
            };
            spawn_reload(Reloader::Secret(Box::new(watcher)), interval, shutdown);
            Ok(tls)
        }
    }
}

/// What reloads the credentials: the files, or the Secret.
enum Reloader {
    Files(FileLoop),
    Secret(Box<SecretLoop>),
}

/// Ticks `reloader` every `interval` (first tick one interval from now) until `shutdown`.
fn spawn_reload(mut reloader: Reloader, interval: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut timer = timer(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = timer.tick() => match &mut reloader {
                    Reloader::Files(w) => w.tick().await,
                    Reloader::Secret(w) => w.tick().await,
                },
            }
        }
    });
}

/// A reload timer whose first tick is one `interval` from now.
fn timer(interval: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// The three files' contents.
#[derive(Clone, PartialEq, Eq)]
struct FileSet {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl FileSet {
    fn read(ca: &Path, cert: &Path, key: &Path) -> Result<FileSet, PeerTlsError> {
        let read = |flag, path: &Path| {
            std::fs::read(path).map_err(|source| PeerTlsError::File { flag, path: path.to_path_buf(), source })
        };
        Ok(FileSet {
            ca: read("--peer-ca-file", ca)?,
            cert: read("--peer-cert-file", cert)?,
            key: read("--peer-key-file", key)?,
        })
    }

    fn cert_key(&self) -> Result<CertKey, TlsError> {
        CertKey::from_pem(&self.cert, &self.key, "--peer-cert-file/--peer-key-file")
    }
}

struct FileLoop {
    paths: (PathBuf, PathBuf, PathBuf),
    rotation: Rotation<FileSet>,
    tls: RotatingTls,
}

impl FileLoop {
    async fn tick(&mut self) {
        let (ca, cert, key) = &self.paths;
        match FileSet::read(ca, cert, key) {
            // Only complete, parseable sets are taken: a half-written renewal is read again next time.
            Ok(files) if files.cert_key().is_ok() && tls::pem::roots_from_pem(&files.ca, "--peer-ca-file").is_ok() => {
                self.rotation.observe(files, Instant::now())
            }
            Ok(_) => tracing::warn!("peer certificate files do not parse (yet); keeping the current ones"),
            Err(e) => tracing::warn!(error = %e, "reading the peer certificate files; keeping the current ones"),
        }
        let change = self.rotation.tick(Instant::now());
        if change == Change::None {
            return;
        }
        let bundle: Vec<u8> =
            self.rotation.trusted().iter().flat_map(|f| f.ca.iter().copied().chain([b'\n'])).collect();
        let applied = self.rotation.active().cert_key().and_then(|ck| self.tls.update(&bundle, ck));
        match applied {
            Ok(()) => tracing::info!(?change, "peer certificate files reloaded"),
            Err(e) => tracing::warn!(error = %e, ?change, "peer certificate files: could not apply the change"),
        }
    }
}

struct SecretLoop {
    api: Api<Secret>,
    secret: SecretRef,
    settings: ClusterSettings,
    /// Keyed by the Secret's `ca.crt` text.
    rotation: Rotation<String>,
    /// The presented certificate, and the `ca.crt` it was issued from.
    leaf: CertKey,
    leaf_from: String,
    renew_at: Instant,
    signers: HashMap<String, Ca>,
    tls: RotatingTls,
}

impl SecretLoop {
    async fn tick(&mut self) {
        let secret = self.secret.to_string();
        match bootstrap::read(&self.api, &self.secret.name).await {
            (Answer::Found(pem), Some(ca)) => {
                self.signers.entry(pem.cert.clone()).or_insert(ca);
                self.rotation.observe(pem.cert, Instant::now());
            }
            (Answer::NotFound, _) => tracing::warn!(%secret, "the peer Secret is gone; keeping the current CA"),
            (Answer::Unusable(why), _) => tracing::warn!(%secret, %why, "peer Secret unusable; keeping the current CA"),
            (other, _) => {
                tracing::warn!(%secret, answer = ?other, "reading the peer Secret failed; keeping the current CA")
            }
        }
        let now = Instant::now();
        let change = self.rotation.tick(now);
        let renew = now >= self.renew_at || self.leaf_from != *self.rotation.active();
        if change == Change::None && !renew {
            return;
        }
        let trusted: Vec<String> = self.rotation.trusted().into_iter().cloned().collect();
        self.signers.retain(|cert, _| trusted.contains(cert));
        let active = self.rotation.active().clone();
        let leaf = if renew {
            match self.signers.get(&active).map(|ca| issue(ca, &self.settings, self.settings.tls.cert_validity)) {
                Some(Ok(leaf)) => leaf,
                Some(Err(e)) => return tracing::warn!(%secret, error = %e, "could not issue a peer certificate"),
                None => return tracing::warn!(%secret, "no signer for the active peer CA"),
            }
        } else {
            self.leaf.clone()
        };
        let bundle = trusted.join("\n");
        match self.tls.update(bundle.as_bytes(), leaf.clone()) {
            Ok(()) => {
                if renew {
                    self.leaf = leaf;
                    self.leaf_from = active;
                    self.renew_at = now + self.settings.tls.cert_validity * 2 / 3;
                }
                tracing::info!(%secret, ?change, renewed = renew, trusted = trusted.len(), "peer TLS updated");
            }
            Err(e) => tracing::warn!(%secret, error = %e, "peer TLS: could not apply the new CA"),
        }
    }
}
