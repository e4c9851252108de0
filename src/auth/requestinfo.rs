//! What a request asks for, in the terms authorization speaks: resource
//! requests (`/apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`
//! and the legacy `/api/<version>/...`) with their verb, or non-resource paths.
//! Pure parsing that mirrors the generic apiserver's request-info resolver;
//! it must not look at headers or credentials.

use http::Method;

/// The attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// True for `/api/...` and `/apis/...` paths that name a resource.
    pub is_resource_request: bool,
    /// The URL path as received.
    pub path: String,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, ... (resource
    /// requests) or the lower-cased HTTP method (non-resource requests).
    pub verb: String,
    /// `api` or `apis` (resource requests only).
    pub api_prefix: String,
    /// API group; empty for the legacy core group.
    pub api_group: String,
    pub api_version: String,
    /// Namespace; empty for cluster-scoped requests.
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    /// Object name; empty for collections.
    pub name: String,
}

/// Parses a request's method, path and query string into its attributes.
pub fn parse(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
    let non_resource = RequestInfo {
        is_resource_request: false,
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let Some((&prefix, rest)) = parts.split_first() else {
        return non_resource;
    };
    let mut info = RequestInfo {
        is_resource_request: true,
        path: path.to_string(),
        api_prefix: prefix.to_string(),
        ..RequestInfo::default()
    };
    let mut current: &[&str] = match prefix {
        "apis" => {
            // group, version and resource are all needed.
            if rest.len() < 3 {
                return non_resource;
            }
            info.api_group = rest[0].to_string();
            info.api_version = rest[1].to_string();
            &rest[2..]
        }
        "api" => {
            if rest.len() < 2 {
                return non_resource;
            }
            info.api_version = rest[0].to_string();
            &rest[1..]
        }
        _ => return non_resource,
    };

    info.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    if info.verb.is_empty() {
        info.verb = method.as_str().to_ascii_lowercase();
    }

    // The deprecated `/watch/` path segment.
    if current.first() == Some(&"watch") {
        info.verb = "watch".to_string();
        current = &current[1..];
    }

    if current.first() == Some(&"namespaces") && current.len() > 1 {
        info.namespace = current[1].to_string();
        // `namespaces/<ns>` alone (or with a namespace subresource) is the
        // namespace object itself.
        if current.len() > 2 && !matches!(current[2], "status" | "finalize") {
            current = &current[2..];
        }
    }
    match current.len() {
        0 => {}
        1 => info.resource = current[0].to_string(),
        2 => {
            info.resource = current[0].to_string();
            info.name = current[1].to_string();
        }
        _ => {
            info.resource = current[0].to_string();
            info.name = current[1].to_string();
            info.subresource = current[2].to_string();
        }
    }

    if info.name.is_empty() && info.verb == "get" {
        let watch = query.is_some_and(query_says_watch);
        info.verb = if watch { "watch" } else { "list" }.to_string();
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    info
}

/// True when the query asks for a watch, read as the API reads it
/// ([`apimachinery::query::bool_param`]), so authorization checks the verb
/// the API then acts on.
fn query_says_watch(query: &str) -> bool {
    apimachinery::query::bool_param(apimachinery::query::first_value(query, "watch"))
}

#[cfg(test)]
mod tests;
