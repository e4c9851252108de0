//! core/v1 Secrets in the stand-in: get, create and update (no list, no
//! watch, no delete), with kube-apiserver's answers for the cases clients
//! rely on: 201 on create, 409 `AlreadyExists` when the name is taken, 409
//! `Conflict` on an update with a stale `metadata.resourceVersion`, 404
//! `NotFound`, 400 for a body that does not match the URL, 422 `Invalid`
//! for malformed data, all as `Status` bodies. `stringData` is folded into
//! `data` on write, as the API server does. A request needs an
//! authenticated user and, once an [`Access`] is set, a rule allowing it as
//! RBAC would (a rule naming Secrets never allows a create, whose URL names
//! none); a refusal is kube-apiserver's 403 `Forbidden`. Every request is
//! recorded with its user and answer, and every successful create and
//! update as a write, so tests can tell who touched which Secret.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::authn::UserInfo;
use super::objects;
use super::router::AppState;
use apimachinery::status::{Status, StatusDetails};

/// One successful write, as recorded for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWrite {
    pub namespace: String,
    pub name: String,
    /// `create` or `update`.
    pub verb: &'static str,
    pub user: String,
    pub resource_version: String,
}

/// One request, as recorded for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    /// `get`, `create` or `update`.
    pub verb: &'static str,
    pub namespace: String,
    /// The Secret's name (a create's is the body's, or empty).
    pub name: String,
    pub user: String,
    /// The HTTP status of the answer.
    pub code: u16,
}

/// Who may do what to Secrets: RBAC rules on `secrets` for a user or a
/// group, in one namespace, optionally limited to resource names.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub rules: Vec<AccessRule>,
}

/// One rule of an [`Access`].
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// A user name, or `group:<name>` for a group.
    pub subject: String,
    pub namespace: String,
    pub verbs: Vec<&'static str>,
    /// `resourceNames`; empty allows any name (and create).
    pub names: Vec<String>,
}

impl Access {
    /// Whether `user` may `verb` the Secret `name` (a create has none) in `ns`.
    pub fn allows(&self, user: &UserInfo, verb: &str, ns: &str, name: Option<&str>) -> bool {
        self.rules.iter().any(|r| {
            let subject = match r.subject.strip_prefix("group:") {
                Some(group) => user.groups.iter().any(|g| g == group),
                None => r.subject == user.username,
            };
            let named = r.names.is_empty() || name.is_some_and(|n| r.names.iter().any(|x| x == n));
            subject && r.namespace == ns && r.verbs.contains(&verb) && named
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// By (namespace, name).
    objects: BTreeMap<(String, String), Value>,
    writes: Vec<SecretWrite>,
    requests: Vec<SecretRequest>,
    /// `None`: every authenticated user may do anything.
    access: Option<Access>,
    /// Create requests answered 409 AlreadyExists.
    create_conflicts: u64,
}

/// The Secrets and their write log.
#[derive(Debug, Default)]
pub struct Secrets {
    inner: Mutex<Inner>,
}

fn details(name: &str) -> StatusDetails {
    StatusDetails { name: name.to_string(), group: String::new(), kind: "secrets".to_string() }
}

fn already_exists(name: &str) -> Status {
    Status::failure(StatusCode::CONFLICT, "AlreadyExists", format!("secrets \"{name}\" already exists"))
        .with_details(details(name))
}

fn conflict(name: &str) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again"
        ),
    )
    .with_details(details(name))
}

fn invalid(name: &str, why: String) -> Status {
    Status::failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("Secret \"{name}\" is invalid: {why}"))
        .with_details(StatusDetails { name: name.to_string(), group: String::new(), kind: "Secret".to_string() })
}

/// kube-apiserver's RBAC refusal.
fn forbidden(user: &str, verb: &str, ns: &str, name: Option<&str>) -> Status {
    let what = match name {
        Some(n) => format!("secrets \"{n}\""),
        None => "secrets".to_string(),
    };
    Status::failure(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!("{what} is forbidden: User \"{user}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\""),
    )
    .with_details(details(name.unwrap_or_default()))
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut resp = (code, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Checks a written Secret and puts it in the stored shape: `stringData`
/// folded into `data`, `type` defaulted, `data` values valid base64, and
/// the keys `kubernetes.io/tls` requires present.
fn normalize(mut body: Value, ns: &str, url_name: Option<&str>) -> Result<(String, Value), Status> {
    if !body.is_object() {
        return Err(Status::bad_request("the body is not a JSON object"));
    }
    let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(url_name) = url_name
        && name != url_name
    {
        return Err(Status::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({url_name})"
        )));
    }
    if name.is_empty() {
        return Err(invalid("", "metadata.name: Required value: name or generateName is required".into()));
    }
    match body.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != ns => {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => body["metadata"]["namespace"] = json!(ns),
    }
    let mut data = match body.get("data") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Status::bad_request("data: not an object")),
    };
    for (key, value) in &data {
        if value.as_str().and_then(tls::pki::base64_decode).is_none() {
            return Err(invalid(&name, format!("data[{key}]: Invalid value: not base64-encoded bytes")));
        }
    }
    if let Some(Value::Object(strings)) = body.get("stringData") {
        for (key, value) in strings {
            let text = value.as_str().ok_or_else(|| Status::bad_request(format!("stringData[{key}]: not a string")))?;
            data.insert(key.clone(), json!(tls::pki::base64(text.as_bytes())));
        }
    }
    let object = body.as_object_mut().ok_or_else(|| Status::bad_request("the body is not a JSON object"))?;
    object.remove("stringData");
    let ty = object.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or("Opaque").to_string();
    if ty == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if !data.contains_key(key) {
                return Err(invalid(&name, format!("data[{key}]: Required value")));
            }
        }
    }
    object.insert("type".into(), json!(ty));
    object.insert("data".into(), Value::Object(data));
    object.insert("kind".into(), json!("Secret"));
    object.insert("apiVersion".into(), json!("v1"));
    Ok((name, body))
}

impl Secrets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One Secret as stored.
    pub fn get(&self, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Every successful write, oldest first.
    pub fn writes(&self) -> Vec<SecretWrite> {
        self.lock().writes.clone()
    }

    /// How many creates were answered 409 AlreadyExists.
    pub fn create_conflicts(&self) -> u64 {
        self.lock().create_conflicts
    }

    /// Every request, oldest first.
    pub fn requests(&self) -> Vec<SecretRequest> {
        self.lock().requests.clone()
    }

    /// Sets who may do what (`None`: every authenticated user anything).
    pub fn set_access(&self, access: Option<Access>) {
        self.lock().access = access;
    }

    /// Answers a request of `user`: checks the access, runs `op` if allowed,
    /// and records the request and its answer.
    fn serve(
        &self,
        user: &UserInfo,
        verb: &'static str,
        ns: &str,
        name: Option<&str>,
        op: impl FnOnce() -> Response,
    ) -> Response {
        let allowed = self.lock().access.as_ref().is_none_or(|a| a.allows(user, verb, ns, name));
        let response = if allowed { op() } else { forbidden(&user.username, verb, ns, name).into_response() };
        self.lock().requests.push(SecretRequest {
            verb,
            namespace: ns.to_string(),
            name: name.unwrap_or_default().to_string(),
            user: user.username.clone(),
            code: response.status().as_u16(),
        });
        response
    }

    /// Creates the Secret; `rv` gives it a fresh resourceVersion.
    fn create(&self, ns: &str, body: Value, user: &str, rv: u64) -> Result<Value, Status> {
        let (name, mut object) = normalize(body, ns, None)?;
        let mut inner = self.lock();
        let key = (ns.to_string(), name.clone());
        if inner.objects.contains_key(&key) {
            inner.create_conflicts += 1;
            return Err(already_exists(&name));
        }
        let meta = &mut object["metadata"];
        meta["uid"] = json!(objects::uid(rv));
        meta["creationTimestamp"] = json!(objects::rfc3339(objects::now_secs()));
        meta["resourceVersion"] = json!(rv.to_string());
        inner.writes.push(SecretWrite {
            namespace: ns.into(),
            name: name.clone(),
            verb: "create",
            user: user.into(),
            resource_version: rv.to_string(),
        });
        inner.objects.insert(key, object.clone());
        Ok(object)
    }

    /// Replaces the Secret; a given `metadata.resourceVersion` must be the
    /// stored one. uid and creationTimestamp are kept.
    fn update(&self, ns: &str, name: &str, body: Value, user: &str, rv: u64) -> Result<Value, Status> {
        let (_, mut object) = normalize(body, ns, Some(name))?;
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let Some(current) = inner.objects.get(&key) else {
            return Err(Status::not_found("", "secrets", name));
        };
        let given = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        let stored = current.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        if !given.is_empty() && given != stored {
            return Err(conflict(name));
        }
        for field in ["uid", "creationTimestamp"] {
            object["metadata"][field] = current["metadata"][field].clone();
        }
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner.writes.push(SecretWrite {
            namespace: ns.into(),
            name: name.into(),
            verb: "update",
            user: user.into(),
            resource_version: rv.to_string(),
        });
        inner.objects.insert(key, object.clone());
        Ok(object)
    }

    /// Creates or replaces `ns/name` with `data` (raw bytes) as `user`,
    /// bypassing HTTP: what a test or an operator's `kubectl apply` does.
    pub fn put(&self, ns: &str, name: &str, ty: &str, data: &BTreeMap<String, Vec<u8>>, user: &str, rv: u64) -> Value {
        let encoded: serde_json::Map<String, Value> =
            data.iter().map(|(k, v)| (k.clone(), json!(tls::pki::base64(v)))).collect();
        let body = json!({"metadata": {"name": name, "namespace": ns}, "type": ty, "data": encoded});
        let exists = self.get(ns, name).is_some();
        let written = if exists { self.update(ns, name, body, user, rv) } else { self.create(ns, body, user, rv) };
        // The body is built here from valid parts, so neither write can refuse it.
        written.unwrap_or_else(|status| panic!("stand-in refused its own Secret {ns}/{name}: {status}"))
    }
}

fn parse(body: &Bytes) -> Result<Value, Status> {
    serde_json::from_slice(body).map_err(|e| Status::bad_request(format!("the body is not a Secret: {e}")))
}

/// A fresh resourceVersion from the stand-in's one sequence.
fn next_rv(state: &AppState) -> u64 {
    state.store.bump()
}

/// `GET /api/v1/namespaces/{ns}/secrets/{name}`.
pub async fn get_secret(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Extension(user): Extension<UserInfo>,
) -> Response {
    state.secrets.serve(&user, "get", &ns, Some(&name), || match state.secrets.get(&ns, &name) {
        Some(object) => json_response(StatusCode::OK, &object),
        None => Status::not_found("", "secrets", &name).into_response(),
    })
}

/// `POST /api/v1/namespaces/{ns}/secrets`.
pub async fn create_secret(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Extension(user): Extension<UserInfo>,
    body: Bytes,
) -> Response {
    state.secrets.serve(&user, "create", &ns, None, || {
        match parse(&body).and_then(|b| state.secrets.create(&ns, b, &user.username, next_rv(&state))) {
            Ok(object) => json_response(StatusCode::CREATED, &object),
            Err(status) => status.into_response(),
        }
    })
}

/// `PUT /api/v1/namespaces/{ns}/secrets/{name}`.
pub async fn update_secret(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Extension(user): Extension<UserInfo>,
    body: Bytes,
) -> Response {
    state.secrets.serve(&user, "update", &ns, Some(&name), || {
        match parse(&body).and_then(|b| state.secrets.update(&ns, &name, b, &user.username, next_rv(&state))) {
            Ok(object) => json_response(StatusCode::OK, &object),
            Err(status) => status.into_response(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str, data: Value) -> Value {
        json!({"metadata": {"name": name}, "data": data})
    }

    #[test]
    fn a_second_create_is_already_exists_and_a_stale_update_a_conflict() {
        let s = Secrets::default();
        let first = s.create("ns", body("peer", json!({"ca.crt": "YQ=="})), "alice", 10).unwrap();
        assert_eq!(first["metadata"]["resourceVersion"], "10");
        assert_eq!(first["type"], "Opaque");
        let taken = s.create("ns", body("peer", json!({})), "bob", 11).unwrap_err();
        assert_eq!((taken.code, taken.reason), (409, "AlreadyExists"));
        assert_eq!(taken.message, "secrets \"peer\" already exists");
        assert_eq!(s.create_conflicts(), 1);
        let mut stale = body("peer", json!({"ca.crt": "Yg=="}));
        stale["metadata"]["resourceVersion"] = json!("9");
        let refused = s.update("ns", "peer", stale, "bob", 12).unwrap_err();
        assert_eq!((refused.code, refused.reason), (409, "Conflict"));
        let mut fresh = body("peer", json!({"ca.crt": "Yg=="}));
        fresh["metadata"]["resourceVersion"] = json!("10");
        let updated = s.update("ns", "peer", fresh, "bob", 13).unwrap();
        assert_eq!(updated["metadata"]["uid"], first["metadata"]["uid"]);
        assert_eq!(updated["metadata"]["resourceVersion"], "13");
        let writes: Vec<(&str, String)> = s.writes().iter().map(|w| (w.verb, w.user.clone())).collect();
        assert_eq!(writes, [("create", "alice".to_string()), ("update", "bob".to_string())]);
    }

    #[test]
    fn bodies_that_do_not_match_the_url_or_are_malformed_are_refused_as_the_api_server_does() {
        let s = Secrets::default();
        let missing = s.update("ns", "nope", body("nope", json!({})), "u", 1).unwrap_err();
        assert_eq!((missing.code, missing.reason), (404, "NotFound"));
        let other_ns = json!({"metadata": {"name": "x", "namespace": "elsewhere"}});
        assert_eq!(s.create("ns", other_ns, "u", 2).unwrap_err().code, 400);
        let not_base64 = s.create("ns", body("x", json!({"k": "%%%"})), "u", 3).unwrap_err();
        assert_eq!((not_base64.code, not_base64.reason), (422, "Invalid"));
        let tls_without_key = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}});
        assert_eq!(s.create("ns", tls_without_key, "u", 4).unwrap_err().code, 422);
        s.create("ns", body("x", json!({})), "u", 5).unwrap();
        let renamed = s.update("ns", "x", body("y", json!({})), "u", 6).unwrap_err();
        assert_eq!(renamed.code, 400);
    }

    #[test]
    fn access_rules_match_rbac_names_never_allow_a_create_and_groups_count() {
        let access = Access {
            rules: vec![
                AccessRule {
                    subject: "certgen".into(),
                    namespace: "ns".into(),
                    verbs: vec!["get"],
                    names: vec!["peer".into()],
                },
                AccessRule { subject: "certgen".into(), namespace: "ns".into(), verbs: vec!["create"], names: vec![] },
                AccessRule {
                    subject: "group:system:masters".into(),
                    namespace: "ns".into(),
                    verbs: vec!["get", "create", "update"],
                    names: vec![],
                },
            ],
        };
        let certgen = UserInfo::new("certgen", &[]);
        assert!(access.allows(&certgen, "get", "ns", Some("peer")));
        assert!(!access.allows(&certgen, "get", "ns", Some("other")));
        assert!(!access.allows(&certgen, "get", "elsewhere", Some("peer")));
        assert!(access.allows(&certgen, "create", "ns", None));
        assert!(!access.allows(&certgen, "update", "ns", Some("peer")));
        let named_create = Access { rules: vec![AccessRule { verbs: vec!["create"], ..access.rules[0].clone() }] };
        assert!(!named_create.allows(&certgen, "create", "ns", None), "resourceNames never match a create");
        assert!(access.allows(&UserInfo::new("root", &["system:masters"]), "update", "ns", Some("x")));
        assert!(!access.allows(&UserInfo::new("system:serviceaccount:ns:replica", &[]), "get", "ns", Some("peer")));
        let denied = forbidden("u", "get", "ns", Some("peer"));
        assert_eq!((denied.code, denied.reason), (403, "Forbidden"));
        assert_eq!(
            denied.message,
            "secrets \"peer\" is forbidden: User \"u\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns\""
        );
        assert!(
            forbidden("u", "create", "ns", None).message.starts_with("secrets is forbidden: User \"u\" cannot create")
        );
    }

    #[test]
    fn string_data_is_folded_into_data() {
        let s = Secrets::default();
        let b = json!({"metadata": {"name": "x"}, "data": {"a": "YQ=="}, "stringData": {"b": "foo"}});
        let stored = s.create("ns", b, "u", 1).unwrap();
        assert_eq!(stored["data"], json!({"a": "YQ==", "b": "Zm9v"}));
        assert!(stored.get("stringData").is_none());
    }
}
