//! The audit event, as `audit.k8s.io/v1` `Event` JSON (the field names and
//! order kube-apiserver writes, which Kubernetes tooling reads), the
//! `EventList` the webhook receives, and the legacy one-line text format.
//! Pure data and encoding.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::policy::{Level, Stage};
use crate::auth::UserInfo;
use crate::model::UnixNanos;

/// `authentication.k8s.io/v1` `UserInfo` as the event carries it.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct EventUser {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for EventUser {
    fn from(u: &UserInfo) -> Self {
        EventUser { username: u.name.clone(), uid: u.uid.clone(), groups: u.groups.clone(), extra: u.extra.clone() }
    }
}

/// What object a resource request is about.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The response's `metav1.Status`: the code, and for a Status body its
/// status, message and reason.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ResponseStatus {
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    pub code: u16,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: &'static str,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: &'static str,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: EventUser,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the webhook receives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventList<'a> {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: BTreeMap<String, String>,
    pub items: &'a [Event],
}

impl<'a> EventList<'a> {
    pub fn of(items: &'a [Event]) -> EventList<'a> {
        EventList { kind: "EventList", api_version: super::API_VERSION, metadata: BTreeMap::new(), items }
    }
}

impl Event {
    /// A new event at `stage` with the request's metadata.
    #[allow(clippy::too_many_arguments)] // the fields every event carries
    pub fn new(
        level: Level,
        stage: Stage,
        audit_id: &str,
        request_uri: &str,
        verb: &str,
        user: EventUser,
        source_ips: Vec<String>,
        user_agent: &str,
        object_ref: Option<ObjectReference>,
        received: UnixNanos,
        now: UnixNanos,
    ) -> Event {
        Event {
            kind: "Event",
            api_version: super::API_VERSION,
            level: level.as_str(),
            audit_id: audit_id.to_string(),
            stage: stage.as_str(),
            request_uri: request_uri.to_string(),
            verb: verb.to_string(),
            user,
            source_ips,
            user_agent: user_agent.to_string(),
            object_ref,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: micro_time(received),
            stage_timestamp: micro_time(now),
            annotations: BTreeMap::new(),
        }
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// kube-apiserver's legacy text line.
    pub fn to_legacy_line(&self) -> String {
        let quote = |s: &str| format!("{s:?}");
        let groups = if self.user.groups.is_empty() {
            "<none>".to_string()
        } else {
            self.user.groups.iter().map(|g| quote(g)).collect::<Vec<_>>().join(",")
        };
        let namespace = self.object_ref.as_ref().map(|o| o.namespace.as_str()).filter(|n| !n.is_empty());
        let response = self.response_status.as_ref().map_or("<deferred>".to_string(), |s| s.code.to_string());
        format!(
            "{} AUDIT: id={} stage={} ip={} method={} user={} groups={} as=<self> asgroups=<lookup> user-agent={} namespace={} uri={} response=\"{}\"\n",
            self.request_received_timestamp,
            quote(&self.audit_id),
            quote(self.stage),
            quote(&self.source_ips.first().cloned().unwrap_or_else(|| "<unknown>".into())),
            quote(&self.verb),
            quote(if self.user.username.is_empty() { "<none>" } else { &self.user.username }),
            quote(&groups),
            quote(&self.user_agent),
            quote(namespace.unwrap_or("<none>")),
            quote(&self.request_uri),
            response,
        )
    }
}

/// `metav1.MicroTime`: RFC 3339 in UTC with microseconds.
pub fn micro_time(t: UnixNanos) -> String {
    let seconds = apimachinery::format::format_time(t);
    let micros = t.rem_euclid(1_000_000_000) / 1_000;
    format!("{}.{micros:06}Z", seconds.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_encode_with_kube_apiservers_field_names() {
        let mut e = Event::new(
            Level::Metadata,
            Stage::ResponseComplete,
            "id-1",
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "list",
            EventUser { username: "alice".into(), groups: vec!["ops".into()], ..EventUser::default() },
            vec!["10.0.0.1".into()],
            "kubectl/v1.32",
            Some(ObjectReference {
                resource: "nodes".into(),
                api_group: "metrics.k8s.io".into(),
                api_version: "v1beta1".into(),
                ..ObjectReference::default()
            }),
            1_700_000_000_123_456_789,
            1_700_000_000_223_456_789,
        );
        e.response_status = Some(ResponseStatus { code: 200, ..ResponseStatus::default() });
        e.annotations.insert("authorization.k8s.io/decision".into(), "allow".into());
        let v: Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["kind"], "Event");
        assert_eq!(v["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(v["auditID"], "id-1");
        assert_eq!(v["requestURI"], "/apis/metrics.k8s.io/v1beta1/nodes");
        assert_eq!(v["sourceIPs"][0], "10.0.0.1");
        assert_eq!(v["objectRef"]["apiGroup"], "metrics.k8s.io");
        assert_eq!(v["responseStatus"], serde_json::json!({"metadata": {}, "code": 200}));
        assert_eq!(v["requestReceivedTimestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["stageTimestamp"], "2023-11-14T22:13:20.223456Z");
        assert!(v.get("requestObject").is_none());
        let legacy = e.to_legacy_line();
        assert!(
            legacy.starts_with("2023-11-14T22:13:20.123456Z AUDIT: id=\"id-1\" stage=\"ResponseComplete\""),
            "{legacy}"
        );
        assert!(legacy.ends_with("response=\"200\"\n"), "{legacy}");
    }
}
