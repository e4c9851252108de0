//! The aggregation proxy for `/apis/metrics.k8s.io/<version>/...`, as
//! kube-aggregator's `handler_proxy.go` does it: the caller is already
//! authenticated; the request goes over TLS (HTTP/2 or 1.1 by ALPN) to one of
//! the configured backends (Service endpoints: round-robin, skipping those
//! that refuse connections), presenting the front-proxy client certificate,
//! with `X-Remote-User`/`X-Remote-Group`/`X-Remote-Extra-*` set from the
//! caller's identity (incoming ones and `Authorization` stripped) and the
//! query re-encoded. Server certificates are not verified unless a CA
//! bundle is set (`insecureSkipTLSVerify: true`). No backend → 503
//! `service unavailable` in plain text. It never authenticates anyone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;

use super::authn::UserInfo;
use super::router::AppState;
use tls::TlsError;
use tls::pem::{certs_from_pem, key_from_pem, roots_from_pem};
use tls::pki::CertPair;
use tls::verify::AcceptAnyServerCert;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Largest request body relayed (metrics requests are bodiless GETs).
const MAX_BODY: usize = 16 << 20;

/// Backends, TLS settings and the client built from them.
pub struct Aggregator {
    backends: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
    server_name: ServerName<'static>,
    settings: Mutex<(CertPair, Option<String>)>,
    client: RwLock<Arc<HttpsClient>>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

fn build_client(cert: &CertPair, ca_bundle: Option<&str>, name: &ServerName<'static>) -> Result<HttpsClient, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let what = "the aggregation proxy";
    let rustls_err = |source| TlsError::Rustls { what: what.into(), source };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match ca_bundle {
        Some(pem) => builder.with_root_certificates(roots_from_pem(pem.as_bytes(), "the APIService caBundle")?),
        // APIService `insecureSkipTLSVerify: true`; handshake signatures are still checked.
        None => builder.dangerous().with_custom_certificate_verifier(AcceptAnyServerCert::new(&provider)),
    };
    let config = builder
        .with_client_auth_cert(
            certs_from_pem(cert.cert_pem.as_bytes(), "the front-proxy client certificate")?,
            key_from_pem(cert.key_pem.as_bytes(), "the front-proxy client key")?,
        )
        .map_err(rustls_err)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone()))
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

impl Aggregator {
    /// A proxy that presents `client_cert` and verifies backends as
    /// `server_name` (e.g. `metrics-server.kube-system.svc`) once a CA bundle is set.
    pub fn new(server_name: &str, client_cert: CertPair) -> Result<Aggregator, TlsError> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError::Invalid { what: format!("server name {server_name:?}"), message: e.to_string() })?;
        let client = build_client(&client_cert, None, &name)?;
        Ok(Aggregator {
            backends: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            server_name: name,
            settings: Mutex::new((client_cert, None)),
            client: RwLock::new(Arc::new(client)),
        })
    }

    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
    }

    /// Sets or clears the CA bundle that backends' certificates must chain to.
    pub fn set_ca_bundle(&self, ca_bundle: Option<String>) -> Result<(), TlsError> {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let client = build_client(&settings.0, ca_bundle.as_deref(), &self.server_name)?;
        settings.1 = ca_bundle;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
        Ok(())
    }

    /// Presents a new front-proxy client certificate from now on.
    pub fn set_client_cert(&self, cert: CertPair) -> Result<(), TlsError> {
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        let client = build_client(&cert, settings.1.as_deref(), &self.server_name)?;
        settings.0 = cert;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(client);
        Ok(())
    }

    /// Backends in the order to try them, starting one further each call.
    fn rotation(&self) -> Vec<SocketAddr> {
        let backends = self.backends.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if backends.is_empty() {
            return backends;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % backends.len();
        backends.iter().cycle().skip(start).take(backends.len()).copied().collect()
    }

    fn client(&self) -> Arc<HttpsClient> {
        self.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`; `None` on a bad escape (Go drops such pairs).
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `req.URL.Query().Encode()`: pairs sorted by key, values in order, re-escaped.
pub fn reencode_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((query_unescape(k)?, query_unescape(v)?))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect::<Vec<_>>().join("&")
}

/// client-go's `headerKeyEscape`: bytes that are not token characters, and `%`, become `%XX`.
fn header_key_escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let token = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if token { out.push(b as char) } else { out.push_str(&format!("%{b:02X}")) }
    }
    out
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers sent to the backend: the caller's, minus hop-by-hop, `Host`,
/// credentials and any identity headers, plus the caller's identity.
pub fn forwarded_headers(incoming: &HeaderMap, user: &UserInfo) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        let n = name.as_str();
        let dropped = HOP_BY_HOP.contains(&n)
            || n == "host"
            || n == "authorization"
            || n.starts_with("impersonate-")
            || n.starts_with("x-remote-");
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            out.append(n, v);
        }
    };
    add("x-remote-user", &user.username);
    for g in &user.groups {
        add("x-remote-group", g);
    }
    for (key, values) in &user.extra {
        let name = format!("x-remote-extra-{}", header_key_escape(key));
        for v in values {
            add(&name, v);
        }
    }
    out
}

fn service_unavailable(message: &str) -> Response {
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// Any method under `/apis/metrics.k8s.io/<version>/`.
pub async fn proxy(State(state): State<AppState>, Extension(user): Extension<UserInfo>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(error) => {
            return apimachinery::status::Status::bad_request(format!("reading request body: {error}")).into_response();
        }
    };
    let query = parts.uri.query().map(reencode_query).filter(|q| !q.is_empty());
    let path_and_query = match &query {
        Some(q) => format!("{}?{q}", parts.uri.path()),
        None => parts.uri.path().to_string(),
    };
    let headers = forwarded_headers(&parts.headers, &user);
    let client = state.proxy.client();
    for addr in state.proxy.rotation() {
        let mut out = http::Request::new(Full::new(body.clone()));
        *out.method_mut() = parts.method.clone();
        *out.headers_mut() = headers.clone();
        match format!("https://{addr}{path_and_query}").parse() {
            Ok(uri) => *out.uri_mut() = uri,
            Err(error) => {
                return apimachinery::status::Status::bad_request(format!("bad proxied URI: {error}")).into_response();
            }
        }
        match client.request(out).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                for h in HOP_BY_HOP {
                    parts.headers.remove(h);
                }
                return Response::from_parts(parts, Body::new(body));
            }
            Err(error) if error.is_connect() => {
                tracing::debug!(backend = %addr, %error, "metrics backend unreachable, trying the next one");
            }
            Err(error) => {
                tracing::debug!(backend = %addr, %error, "metrics backend request failed");
                return service_unavailable(&format!("Error trying to reach service: '{error}'"));
            }
        }
    }
    service_unavailable("service unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_sorted_and_reencoded_like_go() {
        assert_eq!(
            reencode_query("labelSelector=app%3Dx&fieldSelector=a%3Db"),
            "fieldSelector=a%3Db&labelSelector=app%3Dx"
        );
        assert_eq!(reencode_query("b=1&a=x+y&b=0"), "a=x+y&b=1&b=0");
    }

    #[test]
    fn identity_headers_replace_forged_ones() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", HeaderValue::from_static("forged"));
        h.insert("x-remote-group", HeaderValue::from_static("system:masters"));
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let mut user = UserInfo::new("alice", &["devs", "system:authenticated"]);
        user.extra.insert("authentication.kubernetes.io/credential-id".into(), vec!["X509SHA256=ab".into()]);
        let out = forwarded_headers(&h, &user);
        assert_eq!(out.get_all("x-remote-user").iter().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(out.get_all("x-remote-group").iter().collect::<Vec<_>>(), ["devs", "system:authenticated"]);
        assert!(out.get("authorization").is_none());
        assert_eq!(out["accept"], "application/json");
        assert_eq!(out["x-remote-extra-authentication.kubernetes.io%2fcredential-id"], "X509SHA256=ab");
    }
}
