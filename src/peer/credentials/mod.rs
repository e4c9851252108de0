//! The peer port's credentials over time: where the cluster CA and this
//! replica's certificate come from at start, and their reload every
//! `--peer-reload-interval` without a restart. Either `--peer-ca-dir`, the
//! mounted peer CA Secret (made by the certgen Job, [`bootstrap`], or by
//! cert-manager), from which each replica issues its own certificate in
//! memory, checked by [`authority`] and read by [`mount`]; or the three
//! `--peer-*-file` files, whose changes go through [`rotation`]. A CA
//! certificate issued from the CA is renewed when two thirds of its validity
//! have passed. Every change is swapped into the one [`RotatingTls`] that
//! serves the peer port and backs the Raft peer client. The replica never
//! reads a Secret through the API: its service account may not.

pub mod authority;
pub mod bootstrap;
mod ca_dir;
mod files;
mod mount;
pub mod rotation;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tls::pki::{Ca, LeafSpec, PkiError, Usage};
use tls::rotating::RotatingTls;
use tls::{CertKey, TlsError, TlsPolicy};
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterSettings, PeerCredentials};
use authority::CaError;
pub use mount::MountError;

/// How far back an issued certificate's validity starts (clock skew between nodes).
const BACKDATE: Duration = Duration::from_secs(300);

/// The peer credentials could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{flag} {path}: {source}")]
    File { flag: &'static str, path: PathBuf, source: std::io::Error },
    #[error("peer TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("peer CA {ca:?}: issuing this replica's certificate: {source}")]
    Issue { ca: String, source: PkiError },
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
    let sans = leaf_names(settings);
    let spec = LeafSpec { common_name: &settings.name, organizations: &[], sans: &sans, usage: Usage::ServerAndClient };
    let now = SystemTime::now();
    let pair = ca
        .issue_valid(&spec, now - BACKDATE, now + validity)
        .map_err(|source| PeerTlsError::Issue { ca: ca.name().to_string(), source })?;
    Ok(CertKey::from_pair(&pair, "this replica's peer")?)
}

/// Sets up the peer credentials and starts reloading them until `shutdown`.
/// With `--peer-ca-dir` it first waits for the Secret to be mounted.
pub async fn start(
    settings: &ClusterSettings,
    policy: &TlsPolicy,
    shutdown: CancellationToken,
) -> Result<RotatingTls, PeerTlsError> {
    let interval = settings.tls.reload_interval;
    match &settings.tls.credentials {
        PeerCredentials::Files { ca_file, cert_file, key_file } => {
            let (watcher, tls) = files::FileLoop::start(ca_file, cert_file, key_file, interval, policy)?;
            spawn_reload(Reloader::Files(Box::new(watcher)), interval, shutdown);
            Ok(tls)
        }
        PeerCredentials::CaDir(dir) => {
            let loaded = mount::wait_for(dir).await?;
            let (watcher, tls) = ca_dir::CaDirLoop::start(dir, loaded, settings, policy)?;
            spawn_reload(Reloader::CaDir(Box::new(watcher)), interval, shutdown);
            Ok(tls)
        }
    }
}

/// What reloads the credentials: the files, or the mounted CA.
enum Reloader {
    Files(Box<files::FileLoop>),
    CaDir(Box<ca_dir::CaDirLoop>),
}

/// Ticks `reloader` every `interval` (first tick one interval from now) until `shutdown`.
fn spawn_reload(mut reloader: Reloader, interval: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut timer = timer(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = timer.tick() => match &mut reloader {
                    Reloader::Files(w) => w.tick(),
                    Reloader::CaDir(w) => w.tick(SystemTime::now(), Instant::now()),
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
