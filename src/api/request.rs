//! What a request brings besides its path (headers and query), read once by
//! an infallible extractor: query parameters, list options (selectors,
//! `watch`) and the way errors are written back. Also the generic 404/405
//! answers. No object selection here.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, StatusCode};

use super::encode;
use super::negotiate::{Endpoint, Negotiated, error_style, negotiate};
use super::types::{GROUP, Version};
use apimachinery::selector::{FieldSelector, LabelSelector};
use apimachinery::status::{Status, StatusDetails};

/// Headers and raw query of one request.
pub struct Req {
    pub headers: HeaderMap,
    pub query: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Req {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Req { headers: parts.headers.clone(), query: parts.uri.query().map(str::to_string) })
    }
}

impl Req {
    /// Writes `s` as the apiserver writes errors: negotiated without
    /// conversions, or indented raw JSON when nothing is acceptable.
    pub fn fail(&self, s: Status) -> Response {
        match error_style(&self.headers, self.query.as_deref()) {
            Some(style) => encode::status(&s, style),
            None => encode::raw_status(&s),
        }
    }

    /// The first value of a query parameter, decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_component(k) == key).then(|| decode_component(v))
        })
    }

    /// Negotiates the answer; the error is the written 406.
    pub fn negotiate(&self, endpoint: Endpoint) -> Result<Negotiated, Response> {
        negotiate(&self.headers, self.query.as_deref(), endpoint).map_err(|s| self.fail(s))
    }

    /// The served version named in the path and the negotiated answer, or the written error.
    pub fn resource_prelude(&self, version: Option<&str>) -> Result<(Version, Negotiated), Response> {
        let version = version.and_then(Version::parse).ok_or_else(|| self.fail(path_not_found()))?;
        Ok((version, self.negotiate(Endpoint::Resource)?))
    }
}

/// `application/x-www-form-urlencoded` decoding of one query component.
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(Ok(b))) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The selectors and flags of a list request (`limit`, `continue` and
/// `resourceVersion` are accepted and ignored, as metrics-server does).
pub struct ListOptions {
    pub label: LabelSelector,
    pub field: FieldSelector,
    /// The selectors as sent, for peers that filter with their own inventory.
    pub label_raw: String,
    pub field_raw: String,
    pub watch: bool,
}

impl ListOptions {
    pub fn parse(req: &Req) -> Result<ListOptions, Status> {
        let label_raw = req.param("labelSelector").unwrap_or_default();
        let field_raw = req.param("fieldSelector").unwrap_or_default();
        let label = if label_raw.is_empty() {
            LabelSelector::everything()
        } else {
            LabelSelector::parse(&label_raw).map_err(|e| e.to_status())?
        };
        let field = if field_raw.is_empty() {
            FieldSelector::default()
        } else {
            FieldSelector::parse(&field_raw).map_err(|e| e.to_status())?
        };
        let watch = apimachinery::query::bool_param(req.param("watch").as_deref());
        Ok(ListOptions { label, field, label_raw, field_raw, watch })
    }
}

/// The generic apiserver's 404 for a path it does not serve.
pub fn path_not_found() -> Status {
    Status::failure(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
        .with_details(StatusDetails::default())
}

/// The generic apiserver's answer to a watch on storage that cannot watch.
pub fn watch_not_supported(resource: &str) -> Status {
    Status::method_not_allowed(format!("watch is not supported on resources of kind \"{resource}.{GROUP}\""))
        .with_details(StatusDetails { name: String::new(), group: GROUP.into(), kind: resource.into() })
}

pub async fn fallback(req: Req) -> Response {
    req.fail(path_not_found())
}

pub async fn method_not_allowed(req: Req) -> Response {
    req.fail(
        Status::method_not_allowed("the server does not allow this method on the requested resource")
            .with_details(StatusDetails::default()),
    )
}

#[cfg(test)]
mod tests {
    use super::decode_component;

    #[test]
    fn query_components_are_form_decoded() {
        assert_eq!(decode_component("app%3Dx"), "app=x");
        assert_eq!(decode_component("a+in+%28x%2Cy%29"), "a in (x,y)");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz"), "%zz");
        assert_eq!(decode_component("%4"), "%4");
        assert_eq!(decode_component("%e2%82%ac"), "€");
    }
}
