//! What the certgen Job (`ha-metrics-server certgen`) does to the peer CA
//! Secret through the API, with the Job's own service account (the
//! replicas' may not touch Secrets): create it with a new CA; when it
//! already exists (409 AlreadyExists), read it and check it by the
//! replicas' own rules ([`authority::check`]) if the caller may read it.
//! The Job's service account may not (it may only create), so a node that
//! runs the Job's pod cannot learn the key either; the replicas check the
//! Secret when they mount it. With `--rotate` (an operator's rights: get
//! and update) the CA is replaced by a new one that keeps the old one as
//! `previous-ca.crt` with a bounded schedule. Which call comes next is a
//! pure function of the last answer ([`decide`]). The CA key is written
//! only into the Secret, never to a log or a file.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use tls::pki::Ca;

use super::authority::{self, CA_CERT, CA_KEY, CaFiles, CaSet, PREVIOUS_CA_CERT, ROTATION, Schedule};
use crate::config::SecretRef;

/// The annotation naming who created (or last rotated) the Secret.
pub const CREATED_BY: &str = "ha-metrics-server.io/created-by";
/// How long the Job keeps retrying an apiserver that fails transiently.
const PATIENCE: Duration = Duration::from_secs(60);
/// Pause between retries.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// The Job could not make or check the Secret.
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
    /// GET: the Secret's keys and its resourceVersion.
    Found(CaFiles, String),
    /// 404.
    NotFound,
    /// POST: 201.
    Created,
    /// POST: 409 AlreadyExists.
    AlreadyExists,
    /// 403: RBAC does not allow the call.
    Forbidden(String),
    /// 401, or another 4xx that retrying will not change.
    Refused(String),
    /// 5xx, 429, a connection failure: worth retrying.
    Transient(String),
}

/// What to do after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Check and use what the Secret holds.
    Use(CaFiles),
    /// The Secret now holds the CA this run generated.
    UseOwn,
    /// The Secret exists and this caller may not read it (the Job's own
    /// service account may only create): nothing to do.
    ExistsUnread,
    /// Generate a CA and create the Secret.
    Create,
    /// Read the Secret (again).
    Get,
    /// Repeat the same call after a pause.
    Retry,
    /// Give up.
    Fail(Failure),
}

/// Why the Job gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The answer is not one that can follow the call.
    Invalid(String),
    /// The apiserver refused the call (RBAC, validation).
    Refused(String),
}

/// The bootstrap decision; the first call is a create.
pub fn decide(call: Call, answer: Answer) -> Next {
    match (call, answer) {
        (Call::Create, Answer::Created) => Next::UseOwn,
        // It exists (made earlier, by hand, or by a concurrent run): check it if we may.
        (Call::Create, Answer::AlreadyExists) => Next::Get,
        (Call::Get, Answer::Found(files, _)) => Next::Use(files),
        (Call::Get, Answer::Forbidden(_)) => Next::ExistsUnread,
        // Deleted between the 409 and the read: create again.
        (Call::Get, Answer::NotFound) => Next::Create,
        (_, Answer::Refused(why) | Answer::Forbidden(why)) => Next::Fail(Failure::Refused(why)),
        (_, Answer::Transient(_)) => Next::Retry,
        (call, answer) => Next::Fail(Failure::Invalid(format!("unexpected answer {answer:?} to {call:?}"))),
    }
}

/// The keys of a Secret's data that make a CA set.
pub fn files_of(data: Option<&BTreeMap<String, ByteString>>) -> CaFiles {
    let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.clone());
    CaFiles { ca_crt: get(CA_CERT), ca_key: get(CA_KEY), previous: get(PREVIOUS_CA_CERT), rotation: get(ROTATION) }
}

/// An API error as an [`Answer`].
pub fn classify(error: &kube::Error) -> Answer {
    match error {
        kube::Error::Api(s) if s.code == 404 => Answer::NotFound,
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => Answer::AlreadyExists,
        kube::Error::Api(s) if s.code == 429 || s.code >= 500 => Answer::Transient(format!("{} {}", s.code, s.message)),
        kube::Error::Api(s) if s.code == 403 => Answer::Forbidden(format!("403 {}: {}", s.reason, s.message)),
        kube::Error::Api(s) => Answer::Refused(format!("{} {}: {}", s.code, s.reason, s.message)),
        other => Answer::Transient(other.to_string()),
    }
}

/// Reads the Secret (one GET).
async fn read(api: &Api<Secret>, name: &str) -> Answer {
    match api.get(name).await {
        Ok(secret) => {
            let rv = secret.metadata.resource_version.clone().unwrap_or_default();
            Answer::Found(files_of(secret.data.as_ref()), rv)
        }
        Err(e) => classify(&e),
    }
}

/// The Secret's data for `files` (absent keys left out).
fn data_of(files: &CaFiles) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT, &files.ca_crt),
        (CA_KEY, &files.ca_key),
        (PREVIOUS_CA_CERT, &files.previous),
        (ROTATION, &files.rotation),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), ByteString(v.clone()?))))
    .collect()
}

fn secret_object(name: &str, me: &str, files: &CaFiles, resource_version: Option<String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            resource_version,
            annotations: Some(BTreeMap::from([(CREATED_BY.to_string(), me.to_string())])),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "ha-metrics-server".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(data_of(files)),
        ..Secret::default()
    }
}

/// A new cluster CA for `secret`, as the files of a Secret.
fn generate(secret: &str) -> Result<CaFiles, BootstrapError> {
    let when = apimachinery::format::format_time(authority::unix(SystemTime::now()) * 1_000_000_000);
    let ca = Ca::new(&format!("ha-metrics-server peer CA {secret} {when}"))
        .map_err(|source| BootstrapError::Generate { secret: secret.to_string(), source })?;
    Ok(CaFiles {
        ca_crt: Some(ca.cert_pem().as_bytes().to_vec()),
        ca_key: Some(ca.key_pem().into_bytes()),
        ..CaFiles::default()
    })
}

/// What [`ensure`] found or did.
#[derive(Debug)]
pub enum Ensured {
    /// This run created the Secret with this CA.
    Created(CaSet),
    /// The Secret exists and holds this usable CA.
    Checked(CaSet),
    /// The Secret exists; this caller may not read it.
    Exists,
}

/// Makes sure `secret` exists: creates it (as `me`) with a new CA, or,
/// when it exists, checks it by the replicas' rules if the caller may read
/// it. A Secret that exists and is not usable is an error, never overwritten.
pub async fn ensure(client: kube::Client, secret: &SecretRef, me: &str) -> Result<Ensured, BootstrapError> {
    let api: Api<Secret> = Api::namespaced(client, &secret.namespace);
    let name = secret.to_string();
    let origin = format!("peer Secret {name}");
    let started = tokio::time::Instant::now();
    let mut call = Call::Create;
    let mut own: Option<CaFiles> = None;
    loop {
        let answer = match call {
            Call::Get => read(&api, &secret.name).await,
            Call::Create => {
                let files = match &own {
                    Some(f) => f,
                    None => own.insert(generate(&name)?),
                };
                match api.create(&PostParams::default(), &secret_object(&secret.name, me, files, None)).await {
                    Ok(_) => Answer::Created,
                    Err(e) => classify(&e),
                }
            }
        };
        let last = format!("{answer:?}");
        let (files, created) = match decide(call, answer) {
            Next::Use(files) => (files, false),
            Next::UseOwn => (own.take().unwrap_or_default(), true),
            Next::ExistsUnread => return Ok(Ensured::Exists),
            Next::Create => {
                call = Call::Create;
                continue;
            }
            Next::Get => {
                call = Call::Get;
                continue;
            }
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
                continue;
            }
        };
        let set = authority::check(&origin, &files, SystemTime::now())
            .map_err(|e| BootstrapError::Invalid { secret: name.clone(), why: format!("{}: {}", e.key, e.cause) })?;
        return Ok(if created { Ensured::Created(set) } else { Ensured::Checked(set) });
    }
}

/// Replaces the CA in `secret` by a new one (as `me`): the new CA signs
/// from `overlap` after now, and the old one, kept as `previous-ca.crt`,
/// stays trusted for `overlap` more. Refused while a rotation is under way.
pub async fn rotate(
    client: kube::Client,
    secret: &SecretRef,
    me: &str,
    overlap: Duration,
) -> Result<(CaSet, Schedule), BootstrapError> {
    let api: Api<Secret> = Api::namespaced(client, &secret.namespace);
    let name = secret.to_string();
    let invalid = |why: String| BootstrapError::Invalid { secret: name.clone(), why };
    let (current, rv) = match read(&api, &secret.name).await {
        Answer::Found(files, rv) => (files, rv),
        Answer::NotFound => {
            return Err(invalid("does not exist: nothing to rotate (run certgen without --rotate)".into()));
        }
        Answer::Refused(why) | Answer::Forbidden(why) | Answer::Transient(why) => {
            return Err(BootstrapError::Refused { secret: name, verb: "get", why });
        }
        other => return Err(invalid(format!("unexpected answer {other:?}"))),
    };
    let now = SystemTime::now();
    let set = authority::check(&format!("peer Secret {name}"), &current, now)
        .map_err(|e| invalid(format!("{}: {}; fix it before rotating", e.key, e.cause)))?;
    if let Some(p) = &set.previous
        && authority::unix(now) < p.schedule.retire_at
    {
        return Err(invalid(format!(
            "a rotation is under way until {}: rotate again after it",
            apimachinery::format::format_time(p.schedule.retire_at * 1_000_000_000)
        )));
    }
    let step = overlap.as_secs().max(1) as i64;
    let switch_at = authority::unix(now) + step;
    let schedule = Schedule { switch_at, retire_at: switch_at + step };
    let fresh = generate(&name)?;
    let next = CaFiles { previous: current.ca_crt.clone(), rotation: Some(schedule.to_json().into_bytes()), ..fresh };
    let checked = authority::check(&format!("peer Secret {name}"), &next, now)
        .map_err(|e| invalid(format!("the rotated CA does not check: {e}")))?;
    let object = secret_object(&secret.name, me, &next, Some(rv));
    match api.replace(&secret.name, &PostParams::default(), &object).await {
        Ok(_) => Ok((checked, schedule)),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Err(invalid("changed while it was being rotated; run the rotation again".into()))
        }
        Err(e) => Err(BootstrapError::Refused { secret: name, verb: "update", why: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> CaFiles {
        CaFiles { ca_crt: Some(b"cert".to_vec()), ..CaFiles::default() }
    }

    #[test]
    fn the_secret_is_created_and_an_existing_one_read_only_by_who_may() {
        assert_eq!(decide(Call::Create, Answer::Created), Next::UseOwn);
        assert_eq!(decide(Call::Create, Answer::AlreadyExists), Next::Get);
        assert_eq!(decide(Call::Get, Answer::Found(files(), "7".into())), Next::Use(files()));
        // The Job's own service account may only create: an existing Secret is left unread.
        assert_eq!(decide(Call::Get, Answer::Forbidden("403".into())), Next::ExistsUnread);
        assert_eq!(decide(Call::Get, Answer::NotFound), Next::Create, "deleted since the 409");
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_end_the_run() {
        assert_eq!(decide(Call::Get, Answer::Transient("503".into())), Next::Retry);
        assert_eq!(decide(Call::Create, Answer::Transient("connection reset".into())), Next::Retry);
        let refused = Next::Fail(Failure::Refused("403 Forbidden".into()));
        assert_eq!(decide(Call::Get, Answer::Refused("403 Forbidden".into())), refused);
        assert_eq!(decide(Call::Create, Answer::Forbidden("403 Forbidden".into())), refused);
        // Answers that cannot follow the call are not trusted.
        assert!(matches!(decide(Call::Get, Answer::Created), Next::Fail(_)));
        assert!(matches!(decide(Call::Create, Answer::Found(files(), "1".into())), Next::Fail(_)));
        assert!(matches!(decide(Call::Create, Answer::NotFound), Next::Fail(_)));
    }

    #[test]
    fn a_generated_ca_passes_the_replicas_checks_and_its_secret_holds_only_ca_keys() {
        let files = generate("kube-system/peer").unwrap();
        let set = authority::check("test", &files, SystemTime::now()).unwrap();
        assert!(set.cert.name.contains("kube-system/peer"), "{}", set.cert.name);
        let object = secret_object("peer", "certgen", &files, None);
        let keys: Vec<&String> = object.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["ca.crt", "ca.key"]);
        assert!(!format!("{files:?}").contains("PRIVATE KEY"), "Debug must not show the key");
    }

    #[test]
    fn api_errors_are_classified_as_kube_apiserver_sends_them() {
        let api = |code: u16, reason: &str| {
            kube::Error::Api(kube::core::Status::failure("m", reason).with_code(code).boxed())
        };
        assert_eq!(classify(&api(404, "NotFound")), Answer::NotFound);
        assert_eq!(classify(&api(409, "AlreadyExists")), Answer::AlreadyExists);
        assert!(matches!(classify(&api(409, "Conflict")), Answer::Refused(_)));
        assert!(matches!(classify(&api(403, "Forbidden")), Answer::Forbidden(_)));
        assert!(matches!(classify(&api(401, "Unauthorized")), Answer::Refused(_)));
        assert!(matches!(classify(&api(503, "ServiceUnavailable")), Answer::Transient(_)));
        assert!(matches!(classify(&api(429, "TooManyRequests")), Answer::Transient(_)));
    }
}
