//! Where the serving certificate comes from and how it stays current:
//! `--tls-cert-file`/`--tls-private-key-file` (re-read by polling their
//! contents, because Kubernetes Secret updates swap symlinks and file
//! notifications miss them), or a self-signed `apiserver.crt`/`apiserver.key`
//! in `--cert-dir` (metrics-server's names), reused while valid. A bad new
//! pair is logged and the old one kept. Building configs is `config`'s job;
//! serving them is `serve`'s.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::CertKey;
use super::pem::read_file;
use super::{TlsError, TlsSource};

/// How often certificate files are re-read by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// File names metrics-server uses in `--cert-dir`.
pub const SELF_SIGNED_CERT: &str = "apiserver.crt";
pub const SELF_SIGNED_KEY: &str = "apiserver.key";
/// DNS names of the in-cluster Service, as clients address it.
pub const SERVICE_NAMES: [&str; 3] = ["metrics-server", "metrics-server.kube-system", "metrics-server.kube-system.svc"];

/// A certificate file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Both files' bytes.
    pub fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        Ok((read_file(&self.cert)?, read_file(&self.key)?))
    }

    /// Parses what [`CertFiles::read`] returned.
    pub fn parse(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertKey, TlsError> {
        Ok(CertKey {
            chain: super::pem::certs_from_pem(cert_pem, &self.cert.display().to_string())?,
            key: super::pem::key_from_pem(key_pem, &self.key.display().to_string())?,
        })
    }
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `--tls-cert-file` and `--tls-private-key-file`, reloaded on change.
    Files(CertFiles),
    /// A self-signed certificate kept in `--cert-dir`, for `bind`.
    SelfSigned { cert_dir: PathBuf, bind: IpAddr },
}

impl CertSource {
    /// From the validated `--tls-cert-file`/`--tls-private-key-file` pair
    /// (the config checks that both or neither are given), else a
    /// self-signed pair in `cert_dir`.
    pub fn new(cert_files: Option<(PathBuf, PathBuf)>, cert_dir: PathBuf, bind: IpAddr) -> CertSource {
        match cert_files {
            Some((cert, key)) => CertSource::Files(CertFiles { cert, key }),
            None => CertSource::SelfSigned { cert_dir, bind },
        }
    }

    /// The current certificate and key (making the self-signed pair if
    /// needed).
    pub fn load(&self) -> Result<CertKey, TlsError> {
        match self {
            CertSource::Files(files) => {
                let (cert, key) = files.read()?;
                files.parse(&cert, &key)
            }
            CertSource::SelfSigned { cert_dir, bind } => self_signed_in_dir(cert_dir, *bind),
        }
    }

    /// Loads the pair, builds the first config and, for files, spawns the
    /// reloader. The returned source is what `serve` takes.
    pub fn start<F>(
        &self,
        build: F,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<(TlsSource, Option<Reloader>), TlsError>
    where
        F: Fn(CertKey) -> Result<ServerConfig, TlsError> + Send + Sync + 'static,
    {
        let tls = TlsSource::new(build(self.load()?)?);
        let reloader = match self {
            CertSource::Files(files) => Some(spawn_reloader(files.clone(), tls.clone(), build, interval, shutdown)),
            CertSource::SelfSigned { .. } => None,
        };
        Ok((tls, reloader))
    }
}

/// The SANs of the self-signed certificate for a server bound to `bind`.
pub fn self_signed_sans(bind: IpAddr) -> Vec<String> {
    let mut sans = vec!["localhost".to_string(), Ipv4Addr::LOCALHOST.to_string()];
    if !bind.is_unspecified() && bind != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        sans.push(bind.to_string());
    }
    sans.extend(SERVICE_NAMES.iter().map(|s| s.to_string()));
    sans
}

/// Reuses `apiserver.crt`/`apiserver.key` in `cert_dir` when they parse,
/// match and have not expired; otherwise makes and writes a new pair.
pub fn self_signed_in_dir(cert_dir: &Path, bind: IpAddr) -> Result<CertKey, TlsError> {
    let files = CertFiles { cert: cert_dir.join(SELF_SIGNED_CERT), key: cert_dir.join(SELF_SIGNED_KEY) };
    if files.cert.exists() && files.key.exists() {
        match files.read().and_then(|(c, k)| files.parse(&c, &k)).and_then(|ck| usable(&ck).map(|()| ck)) {
            Ok(ck) => return Ok(ck),
            Err(error) => {
                tracing::warn!(dir = %cert_dir.display(), %error, "replacing self-signed certificate")
            }
        }
    }
    let pair = crate::pki::self_signed_server("metrics-server", &self_signed_sans(bind))?;
    std::fs::create_dir_all(cert_dir).map_err(|source| TlsError::Write { path: cert_dir.to_path_buf(), source })?;
    write_atomically(&files.key, pair.key_pem.as_bytes(), 0o600)?;
    write_atomically(&files.cert, pair.cert_pem.as_bytes(), 0o644)?;
    tracing::info!(dir = %cert_dir.display(), "generated self-signed serving certificate");
    CertKey::from_pair(&pair, "the self-signed serving certificate")
}

/// The key belongs to the leaf and the leaf is within its validity period.
fn usable(ck: &CertKey) -> Result<(), TlsError> {
    let invalid = |message: String| TlsError::Invalid { what: "self-signed certificate".into(), message };
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(ck.chain.clone(), ck.key.clone_key(), &provider)
        .map_err(|e| invalid(format!("key does not match: {e}")))?;
    let leaf = ck.chain.first().ok_or_else(|| invalid("no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| invalid(format!("unparsable: {e}")))?;
    if !cert.validity().is_valid() {
        return Err(invalid("expired or not yet valid".into()));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write { path: path.to_path_buf(), source };
    // A name of its own, so processes sharing a --cert-dir (two replicas
    // started at once with --cert-dir=/tmp) never rename each other's file.
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), fastrand::u64(..)));
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(err)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// What the reloader has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Pairs built and swapped in (the first poll counts).
    pub applied: u64,
    /// New contents that did not build; the old config stayed.
    pub rejected: u64,
    /// The last rejection's cause, cleared by the next success.
    pub last_error: Option<String>,
}

/// A running reloader.
#[derive(Debug)]
pub struct Reloader {
    pub handle: JoinHandle<()>,
    pub status: watch::Receiver<ReloadStatus>,
}

/// Polls `files` every `interval`; when their bytes change and the new pair
/// builds, swaps it into `tls`. A pair that does not build is logged and the
/// old config kept (retried when the bytes change again). The first poll
/// happens at once and applies whatever is on disk then.
pub fn spawn_reloader<F>(
    files: CertFiles,
    tls: TlsSource,
    build: F,
    interval: Duration,
    shutdown: CancellationToken,
) -> Reloader
where
    F: Fn(CertKey) -> Result<ServerConfig, TlsError> + Send + Sync + 'static,
{
    let (report, status) = watch::channel(ReloadStatus::default());
    let handle = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen: Option<(Vec<u8>, Vec<u8>)> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let read = {
                let files = files.clone();
                tokio::task::spawn_blocking(move || files.read()).await
            };
            let bytes = match read {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(error)) => {
                    tracing::warn!(cert = %files.cert.display(), %error, "cannot read serving certificate; keeping the current one");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "certificate reader task failed");
                    continue;
                }
            };
            if seen.as_ref() == Some(&bytes) {
                continue;
            }
            match files.parse(&bytes.0, &bytes.1).and_then(&build) {
                Ok(config) => {
                    tls.replace(config);
                    if seen.is_some() {
                        tracing::info!(cert = %files.cert.display(), "serving certificate reloaded");
                    }
                    report.send_modify(|s| {
                        s.applied += 1;
                        s.last_error = None;
                    });
                }
                Err(error) => {
                    tracing::warn!(cert = %files.cert.display(), %error, "new serving certificate rejected; keeping the current one");
                    report.send_modify(|s| {
                        s.rejected += 1;
                        s.last_error = Some(error.to_string());
                    });
                }
            }
            seen = Some(bytes);
        }
    });
    Reloader { handle, status }
}
