//! `--peer-ca-dir`: the replica's trust and certificate from the mounted
//! peer CA Secret, over time. At start the files must hold a usable CA
//! ([`authority::check`]) and the replica issues its own certificate from
//! it. Every reload a changed set is checked again and, if it is, whether a
//! running replica may take it ([`authority::classify`]); a refused set is
//! logged once (naming the directory, the file and the cause) and the
//! replica keeps the trust it has. A rotation's schedule, carried in the
//! Secret, says when to present certificates from the new CA and when to
//! stop trusting the old one, so every replica switches at the same time
//! whatever moment its kubelet updated the volume. The certificate is
//! renewed at two thirds of its validity.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tls::CertKey;
use tls::TlsPolicy;
use tls::pki::Ca;
use tls::rotating::RotatingTls;

use super::authority::{self, CaFiles, CaId, CaSet, InUse};
use super::mount::{self, Snapshot};
use super::{PeerTlsError, issue};
use crate::config::ClusterSettings;

pub(super) struct CaDirLoop {
    dir: PathBuf,
    /// `peer CA directory <dir>`, for messages.
    origin: String,
    settings: ClusterSettings,
    /// The set in use and the files it came from.
    set: CaSet,
    files: CaFiles,
    /// The last set refused, so it is reported once.
    refused: Option<CaFiles>,
    /// Whether the files were last seen missing (reported once).
    missing: bool,
    /// The presented certificate and the CA it is from.
    leaf: CertKey,
    leaf_from: CaId,
    renew_at: Instant,
    /// The CAs this replica can issue from: the signing one, and the one
    /// its certificate is from until a rotation's switch.
    signers: HashMap<CaId, Arc<Ca>>,
    /// The CAs trusted now, as applied.
    trusted: Vec<CaId>,
    tls: RotatingTls,
}

fn bundle(set: &CaSet, now: SystemTime) -> (Vec<CaId>, String) {
    let trusted = set.trusted_at(now);
    (
        trusted.iter().map(|c| c.id.clone()).collect(),
        trusted.iter().map(|c| c.pem.as_str()).collect::<Vec<_>>().join("\n"),
    )
}

impl CaDirLoop {
    /// Checks the files read at start and builds the TLS they make.
    pub(super) fn start(
        dir: &Path,
        files: CaFiles,
        settings: &ClusterSettings,
        policy: &TlsPolicy,
    ) -> Result<(CaDirLoop, RotatingTls), PeerTlsError> {
        let origin = format!("peer CA directory {}", dir.display());
        let now = SystemTime::now();
        let set = authority::check(&origin, &files, now)?;
        let validity = settings.tls.cert_validity;
        let leaf = issue(&set.signer, settings, validity)?;
        let (trusted, pem) = bundle(&set, now);
        let tls = RotatingTls::new(pem.as_bytes(), leaf.clone(), policy)?;
        tracing::info!(dir = %dir.display(), ca = %set.cert.name, trusted = trusted.len(), "peer CA loaded");
        let watcher = CaDirLoop {
            dir: dir.to_path_buf(),
            origin,
            settings: settings.clone(),
            leaf_from: set.cert.id.clone(),
            signers: HashMap::from([(set.cert.id.clone(), set.signer.clone())]),
            set,
            files,
            refused: None,
            missing: false,
            leaf,
            renew_at: Instant::now() + validity * 2 / 3,
            trusted,
            tls: tls.clone(),
        };
        Ok((watcher, tls))
    }

    /// Reads the directory and applies what changed, and what the time changed.
    pub(super) fn tick(&mut self, now: SystemTime, instant: Instant) {
        let dir = self.dir.display().to_string();
        match mount::read(&self.dir) {
            Ok(Snapshot::Files(files)) => {
                self.missing = false;
                if files != self.files {
                    self.consider(files, now);
                }
            }
            Ok(Snapshot::Changing) => {}
            Ok(Snapshot::Absent) => {
                if !std::mem::replace(&mut self.missing, true) {
                    tracing::warn!(%dir, "the peer CA files are gone; keeping the current CA");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the peer CA; keeping the current CA"),
        }
        self.apply(now, instant);
    }

    /// The CA in use, as [`authority::classify`] compares against it.
    fn in_use(&self) -> InUse {
        InUse { active: self.set.cert.id.clone(), trusted: self.trusted.clone() }
    }

    fn consider(&mut self, files: CaFiles, now: SystemTime) {
        if self.refused.as_ref() == Some(&files) {
            return;
        }
        let checked = authority::check(&self.origin, &files, now).and_then(|next| {
            let change = authority::classify(&self.origin, &self.in_use(), &self.set.cert.name, &next)?;
            Ok((next, change))
        });
        match checked {
            Ok((next, change)) => {
                let schedule = next.previous.as_ref().map(|p| p.schedule.to_json());
                tracing::info!(ca = %next.cert.name, ?change, rotation = schedule, "peer CA changed");
                self.signers.insert(next.cert.id.clone(), next.signer.clone());
                self.set = next;
                self.files = files;
                self.refused = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "refused the changed peer CA; keeping the current one");
                self.refused = Some(files);
            }
        }
    }

    /// Brings the presented certificate and the trusted CAs to what the set
    /// says at `now`, renewing the certificate when due.
    fn apply(&mut self, now: SystemTime, instant: Instant) {
        let present = self.set.present_from(Some(&self.leaf_from), now).clone();
        let renew = instant >= self.renew_at || present.id != self.leaf_from;
        let (trusted, pem) = bundle(&self.set, now);
        if !renew && trusted == self.trusted {
            return;
        }
        let validity = self.settings.tls.cert_validity;
        let leaf = match (renew, self.signers.get(&present.id)) {
            (false, _) => self.leaf.clone(),
            (true, Some(ca)) => match issue(ca, &self.settings, validity) {
                Ok(leaf) => leaf,
                Err(e) => return tracing::warn!(error = %e, "could not issue a peer certificate"),
            },
            (true, None) => return tracing::warn!(ca = %present.name, "no key for the peer CA to present from"),
        };
        match self.tls.update(pem.as_bytes(), leaf.clone()) {
            Ok(()) => {
                if renew {
                    self.leaf = leaf;
                    self.leaf_from = present.id.clone();
                    self.renew_at = instant + validity * 2 / 3;
                }
                self.trusted = trusted;
                let keep = [self.set.cert.id.clone(), self.leaf_from.clone()];
                self.signers.retain(|id, _| keep.contains(id));
                tracing::info!(presenting = %present.name, trusted = self.trusted.len(), renewed = renew, "peer TLS updated");
            }
            Err(e) => tracing::warn!(error = %e, "peer TLS: could not apply the CA"),
        }
    }
}

#[cfg(test)]
mod tests;
