//! Getting the cluster CA from the `--peer-secret` Secret at start, before
//! joining Raft: read it; when it does not exist, generate a CA and create
//! the Secret; when another replica created it first (409 AlreadyExists),
//! read theirs. Which call comes next is a pure function of the last
//! answer ([`decide`]); [`bootstrap`] runs it against the API. The CA key
//! only ever lives in the Secret and in this process's memory.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use tls::pki::Ca;

use crate::config::SecretRef;

/// The Secret's key holding the CA certificate (PEM).
pub const CA_CERT: &str = "ca.crt";
/// The Secret's key holding the CA private key (PEM).
pub const CA_KEY: &str = "ca.key";
/// The annotation naming the replica that created the Secret.
pub const CREATED_BY: &str = "ha-metrics-server.io/created-by";
/// How long start-up keeps retrying an apiserver that fails transiently.
const PATIENCE: Duration = Duration::from_secs(60);
/// Pause between retries.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// The cluster CA as the Secret holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct CaPem {
    /// `ca.crt`: the signing CA first, then any further CAs to trust.
    pub cert: String,
    /// `ca.key`: the key of the first certificate.
    pub key: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").field("cert", &self.cert).finish_non_exhaustive()
    }
}

/// Start-up could not get a usable CA.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("peer Secret {secret}: {why}")]
    Invalid { secret: String, why: String },
    #[error("peer Secret {secret}: {verb} refused: {why}")]
    Refused { secret: String, verb: &'static str, why: String },
    #[error("peer Secret {secret}: the apiserver kept failing for {waited:?}; last: {last}")]
    Unavailable { secret: String, waited: Duration, last: String },
    #[error("peer Secret {secret}: generating the cluster CA: {source}")]
    Generate { secret: String, source: tls::pki::PkiError },
}

/// Which call an [`Answer`] is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    Create,
}

/// What the apiserver answered, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// GET: the Secret, with its CA.
    Found(CaPem),
    /// GET: the Secret exists but does not hold a usable CA.
    Unusable(String),
    /// 404.
    NotFound,
    /// POST: 201.
    Created,
    /// POST: 409 AlreadyExists.
    AlreadyExists,
    /// 401, 403, or another 4xx that retrying will not change.
    Refused(String),
    /// 5xx, 429, a connection failure: worth retrying.
    Transient(String),
}

/// What to do after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Use this CA (read from the Secret).
    Use(CaPem),
    /// Use the CA this replica generated and created the Secret with.
    UseOwn,
    /// Generate a CA and create the Secret.
    Create,
    /// Read the Secret (again).
    Get,
    /// Repeat the same call after a pause.
    Retry,
    /// Give up.
    Fail(Failure),
}

/// Why start-up gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The Secret (or the answer) is not what it must be.
    Invalid(String),
    /// The apiserver refused the call (RBAC, validation).
    Refused(String),
}

/// The bootstrap decision.
pub fn decide(call: Call, answer: Answer) -> Next {
    match (call, answer) {
        (Call::Get, Answer::Found(ca)) => Next::Use(ca),
        // Also when it was deleted between a 409 and the read: create again.
        (Call::Get, Answer::NotFound) => Next::Create,
        (Call::Create, Answer::Created) => Next::UseOwn,
        // Another replica won the race: use its CA.
        (Call::Create, Answer::AlreadyExists) => Next::Get,
        (_, Answer::Unusable(why)) => Next::Fail(Failure::Invalid(why)),
        (_, Answer::Refused(why)) => Next::Fail(Failure::Refused(why)),
        (_, Answer::Transient(_)) => Next::Retry,
        (call, answer) => Next::Fail(Failure::Invalid(format!("unexpected answer {answer:?} to {call:?}"))),
    }
}

/// The CA in a Secret's data, checked to be a usable CA.
pub fn ca_of(data: Option<&BTreeMap<String, ByteString>>) -> Result<(CaPem, Ca), String> {
    let text = |key: &str| -> Result<String, String> {
        let bytes = data.and_then(|d| d.get(key)).ok_or_else(|| format!("has no {key:?} key"))?;
        String::from_utf8(bytes.0.clone()).map_err(|_| format!("{key:?} is not PEM text"))
    };
    let pem = CaPem { cert: text(CA_CERT)?, key: text(CA_KEY)? };
    // The key is never part of an error message.
    let ca = Ca::from_pem("the peer CA", &pem.cert, &pem.key)
        .map_err(|_| format!("{CA_CERT:?} and {CA_KEY:?} are not a CA certificate and its key"))?;
    Ok((pem, ca))
}

/// An API error as an [`Answer`].
pub fn classify(error: &kube::Error) -> Answer {
    match error {
        kube::Error::Api(s) if s.code == 404 => Answer::NotFound,
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => Answer::AlreadyExists,
        kube::Error::Api(s) if s.code == 429 || s.code >= 500 => Answer::Transient(format!("{} {}", s.code, s.message)),
        kube::Error::Api(s) => Answer::Refused(format!("{} {}: {}", s.code, s.reason, s.message)),
        other => Answer::Transient(other.to_string()),
    }
}

/// Reads the Secret (one GET).
pub async fn read(api: &Api<Secret>, name: &str) -> (Answer, Option<Ca>) {
    match api.get(name).await {
        Ok(secret) => match ca_of(secret.data.as_ref()) {
            Ok((pem, ca)) => (Answer::Found(pem), Some(ca)),
            Err(why) => (Answer::Unusable(why), None),
        },
        Err(e) => (classify(&e), None),
    }
}

fn new_secret(name: &str, me: &str, ca: &Ca) -> Secret {
    let data = [(CA_CERT, ca.cert_pem().to_string()), (CA_KEY, ca.key_pem())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(BTreeMap::from([(CREATED_BY.to_string(), me.to_string())])),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "ha-metrics-server".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Gets the cluster CA from `secret`, creating it (as replica `me`) when
/// it does not exist. Returns the CA and whether this replica created it.
pub async fn bootstrap(
    client: kube::Client,
    secret: &SecretRef,
    me: &str,
) -> Result<(CaPem, Ca, bool), BootstrapError> {
    let api: Api<Secret> = Api::namespaced(client, &secret.namespace);
    let name = secret.to_string();
    let started = tokio::time::Instant::now();
    let mut call = Call::Get;
    let mut own: Option<Ca> = None;
    loop {
        if started.elapsed() > PATIENCE {
            let last = "no usable answer yet (the Secret keeps appearing and disappearing)".to_string();
            return Err(BootstrapError::Unavailable { secret: name, waited: started.elapsed(), last });
        }
        let (answer, found) = match call {
            Call::Get => read(&api, &secret.name).await,
            Call::Create => {
                let ca = match &own {
                    Some(ca) => ca,
                    None => own.insert(
                        Ca::new(&format!("ha-metrics-server peer CA ({name})"))
                            .map_err(|source| BootstrapError::Generate { secret: name.clone(), source })?,
                    ),
                };
                match api.create(&PostParams::default(), &new_secret(&secret.name, me, ca)).await {
                    Ok(_) => (Answer::Created, None),
                    Err(e) => (classify(&e), None),
                }
            }
        };
        let last = format!("{answer:?}");
        match decide(call, answer) {
            Next::Use(pem) => {
                let ca = found.ok_or_else(|| BootstrapError::Invalid { secret: name.clone(), why: last })?;
                tracing::info!(secret = %name, "using the peer CA from the Secret");
                return Ok((pem, ca, false));
            }
            Next::UseOwn => {
                let ca = own.take().ok_or_else(|| BootstrapError::Invalid { secret: name.clone(), why: last })?;
                let pem = CaPem { cert: ca.cert_pem().to_string(), key: ca.key_pem() };
                tracing::info!(secret = %name, "created the peer Secret with a new cluster CA");
                return Ok((pem, ca, true));
            }
            Next::Create => call = Call::Create,
            Next::Get => call = Call::Get,
            Next::Fail(Failure::Invalid(why)) => return Err(BootstrapError::Invalid { secret: name, why }),
            Next::Fail(Failure::Refused(why)) => {
                let verb = if call == Call::Get { "get" } else { "create" };
                return Err(BootstrapError::Refused { secret: name, verb, why });
            }
            Next::Retry => {
                if started.elapsed() + RETRY_EVERY > PATIENCE {
                    return Err(BootstrapError::Unavailable { secret: name, waited: started.elapsed(), last });
                }
                tracing::warn!(secret = %name, answer = %last, "peer Secret: apiserver failed; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> CaPem {
        CaPem { cert: "cert".into(), key: "key".into() }
    }

    #[test]
    fn a_missing_secret_is_created_and_a_lost_race_reads_the_winner() {
        assert_eq!(decide(Call::Get, Answer::NotFound), Next::Create);
        assert_eq!(decide(Call::Create, Answer::Created), Next::UseOwn);
        assert_eq!(decide(Call::Create, Answer::AlreadyExists), Next::Get);
        assert_eq!(decide(Call::Get, Answer::Found(ca())), Next::Use(ca()));
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_or_bad_secrets_end_the_start() {
        assert_eq!(decide(Call::Get, Answer::Transient("503".into())), Next::Retry);
        assert_eq!(decide(Call::Create, Answer::Transient("connection reset".into())), Next::Retry);
        let refused = Next::Fail(Failure::Refused("403 Forbidden".into()));
        assert_eq!(decide(Call::Get, Answer::Refused("403 Forbidden".into())), refused);
        assert_eq!(decide(Call::Create, Answer::Refused("403 Forbidden".into())), refused);
        let why = "has no \"ca.key\" key".to_string();
        assert_eq!(decide(Call::Get, Answer::Unusable(why.clone())), Next::Fail(Failure::Invalid(why)));
        // Answers that cannot follow the call are not trusted.
        assert!(matches!(decide(Call::Get, Answer::Created), Next::Fail(_)));
        assert!(matches!(decide(Call::Create, Answer::Found(ca())), Next::Fail(_)));
        assert!(matches!(decide(Call::Create, Answer::NotFound), Next::Fail(_)));
    }

    #[test]
    fn a_secret_without_a_usable_ca_is_named_without_showing_the_key() {
        let real = Ca::new("t").unwrap();
        let data = |cert: &str, key: &str| {
            BTreeMap::from([
                (CA_CERT.to_string(), ByteString(cert.as_bytes().to_vec())),
                (CA_KEY.to_string(), ByteString(key.as_bytes().to_vec())),
            ])
        };
        let (pem, _) = ca_of(Some(&data(real.cert_pem(), &real.key_pem()))).unwrap();
        assert_eq!(pem.cert, real.cert_pem());
        let key = real.key_pem();
        let err = ca_of(Some(&data("garbage", &key))).err().expect("garbage is refused");
        assert!(!err.contains(&key) && err.contains("ca.crt"), "{err}");
        assert!(ca_of(None).err().expect("no data is refused").contains("ca.crt"));
        assert!(!format!("{pem:?}").contains("PRIVATE KEY"), "Debug must not show the key");
    }

    #[test]
    fn api_errors_are_classified_as_kube_apiserver_sends_them() {
        let api = |code: u16, reason: &str| {
            kube::Error::Api(kube::core::Status::failure("m", reason).with_code(code).boxed())
        };
        assert_eq!(classify(&api(404, "NotFound")), Answer::NotFound);
        assert_eq!(classify(&api(409, "AlreadyExists")), Answer::AlreadyExists);
        assert!(matches!(classify(&api(409, "Conflict")), Answer::Refused(_)));
        assert!(matches!(classify(&api(403, "Forbidden")), Answer::Refused(_)));
        assert!(matches!(classify(&api(503, "ServiceUnavailable")), Answer::Transient(_)));
        assert!(matches!(classify(&api(429, "TooManyRequests")), Answer::Transient(_)));
    }
}
