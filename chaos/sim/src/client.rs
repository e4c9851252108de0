//! Requests straight to a replica's port (not through the aggregation
//! proxy), with or without a client certificate and with any headers, for
//! the authentication tests.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tls::pki::CertPair;
use tls::verify::AcceptAnyServerCert;

/// GETs `https://addr/path`; returns the status code and body.
pub async fn direct_get(
    addr: SocketAddr,
    path: &str,
    cert: Option<&CertPair>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    try_get(addr, path, cert, headers).await.expect("request to the replica")
}

/// Like [`direct_get`], but a refused handshake or connection is an `Err`.
pub async fn try_get(
    addr: SocketAddr,
    path: &str,
    cert: Option<&CertPair>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    fetch(addr, path, cert, headers).await.map(|r| (r.status, r.body))
}

/// Like [`try_get`], with the response headers.
pub async fn fetch(
    addr: SocketAddr,
    path: &str,
    cert: Option<&CertPair>,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(AcceptAnyServerCert::new(&provider));
    let config = match cert {
        Some(pair) => {
            let chain = tls::pem::certs_from_pem(pair.cert_pem.as_bytes(), "client cert").unwrap();
            let key = tls::pem::key_from_pem(pair.key_pem.as_bytes(), "client key").unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = http::Request::get(format!("https://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Empty::new()).unwrap()).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// A whole answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The texts of every `Warning` header, unquoted (`299 - "text"` → `text`).
    pub fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WARNING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| {
                let t = v.strip_prefix("299 - ").unwrap_or(v);
                t.trim_matches('"').replace("\\\"", "\"").replace("\\\\", "\\")
            })
            .collect()
    }
}
