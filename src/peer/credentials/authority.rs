//! The cluster CA as the peer CA Secret holds it (`ca.crt`, `ca.key` and,
//! during a rotation, `previous-ca.crt` and `rotation.json`), checked before
//! anything in it is trusted: `ca.crt` is exactly one certificate, a CA
//! (basicConstraints CA, keyUsage keyCertSign) valid now, and `ca.key` is
//! its key; a previous CA comes only with a bounded schedule. Then what a
//! running replica may take from a changed Secret ([`classify`]): the same
//! CA (perhaps renewed: same subject and key), or a rotation that names the
//! CA in use as the previous one; anything else is refused, so no root is
//! ever added silently. Pure: bytes and a time in, a checked set or an
//! error naming the Secret key (or file) and the cause out. Never reads
//! files, never talks to the API, never puts key bytes in an error.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tls::pki::Ca;

/// The key (file) holding the CA certificate (PEM).
pub const CA_CERT: &str = "ca.crt";
/// The key holding the CA's private key (PEM, PKCS#8).
pub const CA_KEY: &str = "ca.key";
/// During a rotation: the CA that `ca.crt` replaces (certificate only).
pub const PREVIOUS_CA_CERT: &str = "previous-ca.crt";
/// During a rotation: when replicas present certificates from the new CA
/// and when they stop trusting the previous one ([`Schedule`]).
pub const ROTATION: &str = "rotation.json";
/// The longest a rotation may keep a previous CA trusted, and how far ahead
/// its switch may be scheduled.
pub const MAX_OVERLAP: Duration = Duration::from_secs(24 * 3_600);
/// Clock skew allowed when checking a CA's validity period.
const SKEW: Duration = Duration::from_secs(300);

/// The keys of a peer CA Secret (or the files of a mounted one); `None`
/// where absent. Its `Debug` never shows the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CaFiles {
    pub ca_crt: Option<Vec<u8>>,
    pub ca_key: Option<Vec<u8>>,
    pub previous: Option<Vec<u8>>,
    pub rotation: Option<Vec<u8>>,
}

impl std::fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        f.debug_struct("CaFiles")
            .field("ca_crt", &text(&self.ca_crt))
            .field("ca_key", &self.ca_key.as_ref().map(|_| "<redacted>"))
            .field("previous", &text(&self.previous))
            .field("rotation", &text(&self.rotation))
            .finish()
    }
}

/// A CA set that is not usable, or not acceptable as a change: which
/// Secret or directory, which key in it, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}: {cause}")]
pub struct CaError {
    /// `peer Secret kube-system/x` or `peer CA directory /etc/...`.
    pub origin: String,
    pub key: &'static str,
    pub cause: String,
}

/// Who a CA is: its subject and public key. A renewed certificate keeps
/// both (certificates it issued still verify); a rotation changes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaId {
    subject: Vec<u8>,
    key: Vec<u8>,
}

/// A checked CA certificate.
#[derive(Debug, Clone)]
pub struct CaCert {
    /// The certificate, PEM, as read.
    pub pem: String,
    pub id: CaId,
    /// Its subject, for messages (`CN=...`).
    pub name: String,
}

/// When a rotation's phases end, in seconds since the Unix epoch:
/// replicas present certificates from the new CA from `switch_at`, and
/// trust the previous CA until `retire_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub switch_at: i64,
    pub retire_at: i64,
}

/// The CA a rotation replaces, and until when.
#[derive(Debug, Clone)]
pub struct Previous {
    pub cert: CaCert,
    pub schedule: Schedule,
}

/// A checked CA set: the signing CA and, during a rotation, the previous one.
#[derive(Clone)]
pub struct CaSet {
    pub cert: CaCert,
    pub signer: Arc<Ca>,
    pub previous: Option<Previous>,
}

impl std::fmt::Debug for CaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSet").field("cert", &self.cert.name).field("previous", &self.previous).finish()
    }
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl Schedule {
    /// `rotation.json`: `{"switchAt": "<RFC 3339>", "retireAt": "<RFC 3339>"}`.
    pub fn to_json(&self) -> String {
        let t = |s: i64| apimachinery::format::format_time(s * 1_000_000_000);
        serde_json::json!({"switchAt": t(self.switch_at), "retireAt": t(self.retire_at)}).to_string()
    }

    fn parse(bytes: &[u8], now: i64) -> Result<Schedule, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not JSON ({e}); expected {{\"switchAt\", \"retireAt\"}}"))?;
        let time = |field: &str| -> Result<i64, String> {
            let text = value.get(field).and_then(|v| v.as_str()).ok_or_else(|| format!("no {field:?} time"))?;
            apimachinery::format::parse_time(text)
                .map(|ns| ns / 1_000_000_000)
                .ok_or_else(|| format!("{field} {text:?} is not an RFC 3339 UTC time (2006-01-02T15:04:05Z)"))
        };
        let s = Schedule { switch_at: time("switchAt")?, retire_at: time("retireAt")? };
        let max = MAX_OVERLAP.as_secs() as i64;
        if s.retire_at <= s.switch_at {
            return Err(format!("retireAt {} is not after switchAt {}", s.text(s.retire_at), s.text(s.switch_at)));
        }
        if s.retire_at - s.switch_at > max || s.switch_at > now + max {
            return Err(format!(
                "keeps the previous CA trusted until {}: a rotation's overlap is at most {max} s after a switch at \
                 most {max} s ahead",
                s.text(s.retire_at)
            ));
        }
        Ok(s)
    }

    fn text(&self, secs: i64) -> String {
        apimachinery::format::format_time(secs * 1_000_000_000)
    }
}

/// Checks one CA certificate (`key` names where it came from). With
/// `now`, it must also be valid then (give or take [`SKEW`]).
fn ca_cert(key: &'static str, pem: &[u8], now: Option<i64>) -> Result<CaCert, (&'static str, String)> {
    let fail = |cause: String| (key, cause);
    let text = std::str::from_utf8(pem).map_err(|_| fail("is not PEM text".into()))?;
    let ders = tls::pem::certs_from_pem(pem, key).map_err(|e| fail(format!("no PEM certificate: {e}")))?;
    if ders.len() != 1 {
        return Err(fail(format!(
            "holds {} certificates; exactly one CA is trusted from it (a further root is never taken from the \
             Secret: rotate with `ha-metrics-server certgen --rotate`)",
            ders.len()
        )));
    }
    let (_, cert) =
        x509_parser::parse_x509_certificate(&ders[0]).map_err(|e| fail(format!("not an X.509 certificate: {e}")))?;
    let name = cert.subject().to_string();
    let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
    if !is_ca {
        return Err(fail(format!("certificate {name:?} is not a CA (basicConstraints CA:TRUE is missing)")));
    }
    let signs = cert.key_usage().ok().flatten().is_some_and(|u| u.value.key_cert_sign());
    if !signs {
        return Err(fail(format!("CA {name:?} may not sign certificates (keyUsage lacks keyCertSign)")));
    }
    if let Some(now) = now {
        let skew = SKEW.as_secs() as i64;
        let (from, until) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
        if now + skew < from {
            return Err(fail(format!("CA {name:?} is not valid before {}", cert.validity().not_before)));
        }
        if now > until + skew {
            return Err(fail(format!("CA {name:?} expired at {}", cert.validity().not_after)));
        }
    }
    let id = CaId {
        subject: cert.tbs_certificate.subject.as_raw().to_vec(),
        key: cert.public_key().subject_public_key.data.to_vec(),
    };
    Ok(CaCert { pem: text.to_string(), id, name })
}

/// Checks a CA set read from `origin` at `now`.
pub fn check(origin: &str, files: &CaFiles, now: SystemTime) -> Result<CaSet, CaError> {
    let now = unix(now);
    let err = |(key, cause): (&'static str, String)| CaError { origin: origin.to_string(), key, cause };
    let need = |key: &'static str, v: &Option<Vec<u8>>| v.clone().ok_or_else(|| err((key, "missing".into())));
    let cert = ca_cert(CA_CERT, &need(CA_CERT, &files.ca_crt)?, Some(now)).map_err(err)?;
    let key_bytes = need(CA_KEY, &files.ca_key)?;
    let key_text = std::str::from_utf8(&key_bytes).map_err(|_| err((CA_KEY, "is not PEM text".into())))?;
    let pair = rcgen::KeyPair::from_pem(key_text).map_err(|_| {
        let cause = if key_text.contains("BEGIN EC PRIVATE KEY") || key_text.contains("BEGIN RSA PRIVATE KEY") {
            "is not a PKCS#8 private key (cert-manager: set privateKey.encoding: PKCS8)"
        } else {
            "is not a PEM private key (PKCS#8: ECDSA P-256/P-384, Ed25519 or RSA)"
        };
        err((CA_KEY, cause.into()))
    })?;
    if pair.public_key_raw() != cert.id.key.as_slice() {
        return Err(err((CA_KEY, format!("is not the key of {CA_CERT} (CA {:?})", cert.name))));
    }
    let signer = Ca::from_pem(&cert.name, &cert.pem, key_text)
        .map_err(|e| err((CA_CERT, format!("cannot sign with it: {e}"))))?;
    let previous = match (&files.previous, &files.rotation) {
        (None, None) => None,
        (Some(_), None) => return Err(err((ROTATION, format!("missing beside {PREVIOUS_CA_CERT}")))),
        (None, Some(_)) => return Err(err((PREVIOUS_CA_CERT, format!("missing beside {ROTATION}")))),
        (Some(prev), Some(rotation)) => {
            let prev = ca_cert(PREVIOUS_CA_CERT, prev, None).map_err(err)?;
            if prev.id == cert.id {
                return Err(err((PREVIOUS_CA_CERT, format!("is the same CA as {CA_CERT} ({:?})", cert.name))));
            }
            let schedule = Schedule::parse(rotation, now).map_err(|cause| err((ROTATION, cause)))?;
            Some(Previous { cert: prev, schedule })
        }
    };
    Ok(CaSet { cert, signer: Arc::new(signer), previous })
}

/// What a running replica uses: the CA it presents a certificate from,
/// and every CA it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub active: CaId,
    pub trusted: Vec<CaId>,
}

/// How a newly read CA set relates to the one in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same CA (perhaps a renewed certificate, or a finished rotation's
    /// leftovers removed).
    Same,
    /// A deliberate rotation away from the CA in use.
    Rotation,
}

/// Whether a replica using `in_use` may take `next` (read from `origin`);
/// the error says why not and how a rotation is done.
pub fn classify(origin: &str, in_use: &InUse, active_name: &str, next: &CaSet) -> Result<Change, CaError> {
    let err = |key: &'static str, cause: String| CaError { origin: origin.to_string(), key, cause };
    let how = "a rotation is a deliberate step: `ha-metrics-server certgen --rotate` puts the new CA in ca.crt and \
               keeps the CA in use in previous-ca.crt for a bounded overlap";
    if next.cert.id == in_use.active {
        return match &next.previous {
            Some(p) if !in_use.trusted.contains(&p.cert.id) => Err(err(
                PREVIOUS_CA_CERT,
                format!(
                    "names CA {:?}, which this replica does not trust; a changed Secret cannot add a root",
                    p.cert.name
                ),
            )),
            _ => Ok(Change::Same),
        };
    }
    match &next.previous {
        Some(p) if p.cert.id == in_use.active => Ok(Change::Rotation),
        Some(p) => Err(err(
            PREVIOUS_CA_CERT,
            format!(
                "names CA {:?}, not {active_name:?} that this replica uses, so {CA_CERT} (CA {:?}) is not a rotation \
                 from it; {how}",
                p.cert.name, next.cert.name
            ),
        )),
        None => Err(err(
            CA_CERT,
            format!(
                "holds CA {:?} in place of {active_name:?} that this replica uses, without {PREVIOUS_CA_CERT}; {how}",
                next.cert.name
            ),
        )),
    }
}

impl CaSet {
    /// The CAs to trust at `now`: the signing CA, and the previous one
    /// until its rotation retires it.
    pub fn trusted_at(&self, now: SystemTime) -> Vec<&CaCert> {
        let mut all = vec![&self.cert];
        all.extend(self.previous.as_ref().filter(|p| unix(now) < p.schedule.retire_at).map(|p| &p.cert));
        all
    }

    /// The CA to present a certificate from at `now`, for a replica whose
    /// certificate is from `leaf_from`: the previous CA until the switch if
    /// that is where it comes from (every peer trusts the new CA by then),
    /// else the signing CA.
    pub fn present_from(&self, leaf_from: Option<&CaId>, now: SystemTime) -> &CaCert {
        match &self.previous {
            Some(p) if unix(now) < p.schedule.switch_at && leaf_from == Some(&p.cert.id) => &p.cert,
            _ => &self.cert,
        }
    }
}

#[cfg(test)]
mod tests;
