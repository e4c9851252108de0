//! The kubelet HTTP client: one pooled hyper client (HTTP/1.1 and HTTP/2 by
//! ALPN) that fetches a URL from a kubelet with metrics-server's TLS options
//! (`--kubelet-certificate-authority`, `--kubelet-insecure-tls`, client
//! certificate, `--deprecated-kubelet-completely-insecure`), the bearer token
//! re-read when its file changes, a per-request timeout and a body size cap.
//! It returns bytes and a countable error; parsing, addresses and scheduling
//! belong to the rest of `scrape`. [`KubeletClient::reach`] only connects
//! (TCP and the TLS handshake) and sends no request: how a replica checks
//! whether a kubelet it could not reach is back, without scraping it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, DATE};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use crate::token_file::{TokenFile, TokenFileError};
use tls::config::{CertKey, verifying_client_config};
use tls::pem::read_file;
use tls::verify::AcceptAnyServerCert;
use tls::{TlsError, TlsPolicy};

/// Default cap on a response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default interval between checks of the token file.
pub const DEFAULT_TOKEN_RECHECK: Duration = crate::token_file::DEFAULT_RECHECK;

/// How the kubelets' serving certificates are treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletTls {
    /// Verify against the CA bundle in this file (`--kubelet-certificate-authority`).
    CaFile(PathBuf),
    /// Verify against this CA bundle (PEM; the cluster CA from the kubeconfig).
    CaPem(Vec<u8>),
    /// Accept any certificate, still checking handshake signatures (`--kubelet-insecure-tls`).
    Insecure,
    /// Plain HTTP, no token (`--deprecated-kubelet-completely-insecure`).
    PlainHttp,
}

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct KubeletClientConfig {
    pub tls: KubeletTls,
    /// `--kubelet-client-certificate` and `--kubelet-client-key`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Bearer token file, re-read when it changes (ignored for plain HTTP).
    pub token_file: Option<PathBuf>,
    /// How often, at most, the token file is checked for a new token.
    pub token_recheck: Duration,
    /// Bound on one request, from connect to the last body byte.
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub pool_max_idle_per_host: usize,
    /// The source address of connections to kubelets: this replica's own
    /// address when it binds a specific one (so a kubelet, and a test, can
    /// tell replicas apart); `None` lets the OS choose.
    pub local_address: Option<std::net::IpAddr>,
}

impl KubeletClientConfig {
    /// metrics-server's defaults around the given TLS mode.
    pub fn new(tls: KubeletTls) -> KubeletClientConfig {
        KubeletClientConfig {
            tls,
            client_cert: None,
            token_file: None,
            token_recheck: DEFAULT_TOKEN_RECHECK,
            request_timeout: crate::config::defaults::KUBELET_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pool_max_idle_per_host: 2,
            local_address: None,
        }
    }
}

/// The client cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubelet client TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("kubelet client: {0}")]
    Invalid(String),
    #[error("kubelet client: {0}")]
    Token(#[from] TokenFileError),
}

/// A kubelet's answer and its clock when it sent it.
#[derive(Debug, Clone)]
pub struct Dated {
    pub body: Bytes,
    /// The `Date` header, if the kubelet sent a valid one (Unix nanoseconds,
    /// truncated to the second).
    pub date: Option<i64>,
}

/// Why one kubelet request failed; [`ScrapeError::reason`] is a label value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("request timed out")]
    Timeout,
    #[error("request failed, status: \"{}\"", status_text(*.0))]
    Status(u16),
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading response body: {0}")]
    Body(String),
    #[error("building request: {0}")]
    Request(String),
}

impl ScrapeError {
    /// A short, fixed label for counting failures.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Tls(_) => "tls",
            ScrapeError::Timeout => "timeout",
            ScrapeError::Status(_) => "status",
            ScrapeError::TooLarge(_) => "too_large",
            ScrapeError::Body(_) => "body",
            ScrapeError::Request(_) => "request",
        }
    }
}

fn status_text(code: u16) -> String {
    let reason = StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    format!("{code} {reason}").trim_end().to_string()
}

type Body = Empty<Bytes>;

enum Transport {
    Https(Client<HttpsConnector<HttpConnector>, Body>),
    Http(Client<HttpConnector, Body>),
}

#[derive(Clone)]
enum Connector {
    Https(HttpsConnector<HttpConnector>),
    Http(HttpConnector),
}

/// A pooled client for all kubelets; cheap to clone.
#[derive(Clone)]
pub struct KubeletClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    /// The connector the pooled client wraps, for [`KubeletClient::reach`].
    connector: Connector,
    token: Option<TokenFile>,
    request_timeout: Duration,
    max_body_bytes: usize,
}

impl KubeletClient {
    pub fn new(config: KubeletClientConfig) -> Result<KubeletClient, ClientError> {
        if config.request_timeout.is_zero() {
            return Err(ClientError::Invalid("request timeout must be positive".into()));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.request_timeout));
        http.set_local_address(config.local_address);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.pool_max_idle_per_host);
        let plain = config.tls == KubeletTls::PlainHttp;
        let (transport, connector) = if plain {
            if config.client_cert.is_some() {
                return Err(ClientError::Invalid(
                    "a client certificate cannot be used with plain HTTP (--deprecated-kubelet-completely-insecure)"
                        .into(),
                ));
            }
            (Transport::Http(builder.build(http.clone())), Connector::Http(http))
        } else {
            http.enforce_http(false);
            let tls = tls_config(&config)?;
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .enable_http2()
                .wrap_connector(http);
            (Transport::Https(builder.build(https.clone())), Connector::Https(https))
        };
        let token = match (&config.token_file, plain) {
            (Some(path), false) => Some(TokenFile::open(path.clone(), config.token_recheck)?),
            _ => None,
        };
        Ok(KubeletClient {
            inner: Arc::new(Inner {
                transport,
                connector,
                token,
                request_timeout: config.request_timeout,
                max_body_bytes: config.max_body_bytes,
            }),
        })
    }

    /// GETs `url` from `node`'s kubelet and returns the whole body.
    pub async fn get(&self, url: &Uri, node: &str) -> Result<Bytes, ScrapeError> {
        self.get_dated(url, node).await.map(|d| d.body)
    }

    /// [`KubeletClient::get`], with the kubelet's clock from its `Date` header.
    pub async fn get_dated(&self, url: &Uri, node: &str) -> Result<Dated, ScrapeError> {
        let inner = &self.inner;
        let result = tokio::time::timeout(inner.request_timeout, self.fetch(url)).await;
        let result = result.unwrap_or(Err(ScrapeError::Timeout));
        if let Err(error) = &result {
            tracing::debug!(node, %url, reason = error.reason(), %error, "kubelet request failed");
        }
        result
    }

    /// Whether `url`'s kubelet can be reached: a new connection (TCP and,
    /// but for plain HTTP, the TLS handshake with the scrape's TLS
    /// settings), closed at once without a request, within the request
    /// timeout. The kubelet serves nothing and counts no request.
    pub async fn reach(&self, url: &Uri, node: &str) -> Result<(), ScrapeError> {
        use tower::ServiceExt;
        let inner = &self.inner;
        let connecting = async {
            match &inner.connector {
                Connector::Https(c) => c.clone().oneshot(url.clone()).await.map(drop).map_err(|e| classify_reach(&*e)),
                Connector::Http(c) => c.clone().oneshot(url.clone()).await.map(drop).map_err(|e| classify_reach(&e)),
            }
        };
        let result = tokio::time::timeout(inner.request_timeout, connecting).await.unwrap_or(Err(ScrapeError::Timeout));
        if let Err(error) = &result {
            tracing::debug!(node, %url, reason = error.reason(), %error, "kubelet not reached");
        }
        result
    }

    async fn fetch(&self, url: &Uri) -> Result<Dated, ScrapeError> {
        let inner = &self.inner;
        let mut req = Request::get(url.clone()).body(Empty::new()).map_err(|e| ScrapeError::Request(e.to_string()))?;
        if let Some(token) = &inner.token {
            req.headers_mut().insert(AUTHORIZATION, token.header());
        }
        let resp = match &inner.transport {
            Transport::Https(client) => client.request(req).await,
            Transport::Http(client) => client.request(req).await,
        }
        .map_err(classify)?;
        if resp.status() != StatusCode::OK {
            return Err(ScrapeError::Status(resp.status().as_u16()));
        }
        let date = resp
            .headers()
            .get(DATE)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok());
        let declared = resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > inner.max_body_bytes as u64) {
            return Err(ScrapeError::TooLarge(inner.max_body_bytes));
        }
        match Limited::new(resp.into_body(), inner.max_body_bytes).collect().await {
            Ok(body) => Ok(Dated { body: body.to_bytes(), date }),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(ScrapeError::TooLarge(inner.max_body_bytes))
            }
            Err(e) => Err(ScrapeError::Body(chain_text(&*e))),
        }
    }
}

/// The rustls config for the chosen mode.
fn tls_config(config: &KubeletClientConfig) -> Result<ClientConfig, ClientError> {
    let client = match &config.client_cert {
        Some((cert, key)) => Some(CertKey::load(cert, key)?),
        None => None,
    };
    let policy = TlsPolicy::default();
    let mut tls = match &config.tls {
        KubeletTls::CaFile(path) => verifying_client_config(&read_file(path)?, client, &policy)?,
        KubeletTls::CaPem(pem) => verifying_client_config(pem, client, &policy)?,
        KubeletTls::Insecure => insecure_config(client, &policy)?,
        KubeletTls::PlainHttp => {
            return Err(ClientError::Invalid("plain HTTP has no TLS config".into()));
        }
    };
    // One resumable session per kubelet: rustls keeps 256 by default, so with
    // thousands of kubelets a reconnect (a kubelet restart, an adopted node)
    // paid a full handshake with a signature check instead of a resumption.
    tls.resumption = rustls::client::Resumption::in_memory_sessions(KUBELET_SESSIONS);
    Ok(tls)
}

/// Kubelet servers whose TLS sessions are kept for resumption.
const KUBELET_SESSIONS: usize = 16_384;

fn insecure_config(client: Option<CertKey>, policy: &TlsPolicy) -> Result<ClientConfig, TlsError> {
    let provider = policy.provider();
    let verifier = AcceptAnyServerCert::new(&provider);
    let rustls_err = |source| TlsError::Rustls { what: "the kubelet client".into(), source };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(policy.versions())
        .map_err(rustls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    // No ALPN: hyper-rustls sets it from the HTTP versions it enables and
    // refuses a config that already has some.
    match client {
        Some(ck) => builder.with_client_auth_cert(ck.chain, ck.key).map_err(rustls_err),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Sorts a client error into a reason: any rustls error in the chain is a
/// TLS failure; other connection failures are connect errors.
fn classify(error: hyper_util::client::legacy::Error) -> ScrapeError {
    if let Some(tls) = tls_in_chain(&error) {
        return tls;
    }
    if error.is_connect() { ScrapeError::Connect(chain_text(&error)) } else { ScrapeError::Body(chain_text(&error)) }
}

/// Sorts a connector error like [`classify`]: TLS if rustls is in the
/// chain, otherwise a connect error.
fn classify_reach(error: &(dyn std::error::Error + 'static)) -> ScrapeError {
    tls_in_chain(error).unwrap_or_else(|| ScrapeError::Connect(chain_text(error)))
}

/// The first rustls error in `error`'s chain, as a TLS failure.
fn tls_in_chain(error: &(dyn std::error::Error + 'static)) -> Option<ScrapeError> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(ScrapeError::Tls(tls.to_string()));
        }
        cause = next_cause(e);
    }
    None
}

/// The next error in a chain. `io::Error::source` skips the error it wraps
/// (it returns that error's source), so descend into it explicitly.
fn next_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        return Some(inner);
    }
    error.source()
}

/// An error and its causes on one line.
fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = next_cause(error);
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = next_cause(e);
    }
    text
}

pub mod credentials;

#[cfg(test)]
mod tests;
