//! `--peer-ca-file`, `--peer-cert-file`, `--peer-key-file`: certificates
//! made outside (by hand, by another PKI), re-read every reload interval;
//! a changed set goes through [`Rotation`], so old and new are both
//! trusted while the replicas switch. Each replica must be given its own
//! certificate naming it (`tls::identity`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tls::rotating::RotatingTls;
use tls::{CertKey, TlsError, TlsPolicy};

use super::PeerTlsError;
use super::rotation::{Change, Rotation};

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

pub(super) struct FileLoop {
    paths: (PathBuf, PathBuf, PathBuf),
    rotation: Rotation<FileSet>,
    tls: RotatingTls,
}

impl FileLoop {
    /// Reads the files and builds the TLS they make.
    pub(super) fn start(
        ca_file: &Path,
        cert_file: &Path,
        key_file: &Path,
        interval: Duration,
        policy: &TlsPolicy,
    ) -> Result<(FileLoop, RotatingTls), PeerTlsError> {
        let files = FileSet::read(ca_file, cert_file, key_file)?;
        let tls = RotatingTls::new(&files.ca, files.cert_key()?, policy)?;
        let watcher = FileLoop {
            paths: (ca_file.to_path_buf(), cert_file.to_path_buf(), key_file.to_path_buf()),
            rotation: Rotation::new(files, interval * 2),
            tls: tls.clone(),
        };
        Ok((watcher, tls))
    }

    pub(super) fn tick(&mut self) {
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
