//! Response headers the generic apiserver adds by flag:
//! `Strict-Transport-Security` (`--strict-transport-security-directives`)
//! and CORS (`--cors-allowed-origins`: an allowed `Origin` gets the
//! `Access-Control-*` headers and a preflight `OPTIONS` is answered 204;
//! other origins are served as if CORS were off).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

/// Adds the HSTS header to every response.
pub async fn hsts(State(value): State<HeaderValue>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value);
    response
}

const ALLOW_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE, PATCH";
const ALLOW_HEADERS: &str =
    "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, X-Requested-With, If-Modified-Since";

/// The CORS middleware over the compiled origin patterns.
pub async fn cors(State(origins): State<Arc<Vec<regex::Regex>>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = origin.filter(|o| o.to_str().is_ok_and(|o| origins.iter().any(|re| re.is_match(o))));
    let Some(origin) = allowed else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Date"));
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    response
}
