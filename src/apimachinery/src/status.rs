//! The Kubernetes `Status` error body, in one place. Every error the server
//! answers over HTTP (API, authentication, authorization) is one of these,
//! encoded as the generic apiserver does.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// `details` of a Status: which object the error is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// A `meta.k8s.io` Status with `status: Failure`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: EmptyMeta,
    status: &'static str,
    pub message: String,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EmptyMeta {}

impl Status {
    /// A failure with the given HTTP code, reason and message.
    pub fn failure(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message: message.into(),
            reason,
            details: None,
            code: code.as_u16(),
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for an object of `group`/`kind` (`kind` is the lower-case resource
    /// name Kubernetes prints, e.g. `nodemetrics`): `<kind>.<group> "<name>" not found`.
    pub fn not_found(group: &str, kind: &str, name: &str) -> Self {
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        Status::failure(StatusCode::NOT_FOUND, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(StatusDetails { name: name.into(), group: group.into(), kind: kind.into() })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Status::failure(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }

    /// The HTTP status code.
    pub fn http_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON body, as the generic apiserver writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let mut resp = (self.http_code(), self.to_json()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_not_found_matches_metrics_server_body() {
        let s = Status::not_found("metrics.k8s.io", "nodemetrics", "node-a");
        assert_eq!(
            s.to_json(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodemetrics.metrics.k8s.io \"node-a\" not found","reason":"NotFound","details":{"name":"node-a","group":"metrics.k8s.io","kind":"nodemetrics"},"code":404}"#
        );
    }
}
