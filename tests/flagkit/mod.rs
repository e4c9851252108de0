//! What the flag tests share: the flag table of metrics-server 0.9 read
//! from `tests/data/metrics-server-0.9-flags.tsv`, the files its example
//! values name (certificates, kubeconfigs, an audit policy, a webhook that
//! records what it receives), starting the real binary against a simulated
//! cluster and waiting for it to serve or to exit, and TLS clients with a
//! chosen ALPN, SNI, version, suite or group.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::env::{DevEnv, ReplicaProcess};

/// One row of the flag table.
#[derive(Debug, Clone)]
pub struct FlagRow {
    pub flag: String,
    pub short: String,
    pub ty: String,
    pub default: String,
    pub group: String,
    pub example: String,
}

/// The rows of `tests/data/metrics-server-0.9-flags.tsv`.
pub fn flag_table() -> Vec<FlagRow> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metrics-server-0.9-flags.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{}: a row needs 6 tab-separated fields: {line:?}", path.display());
        rows.push(FlagRow {
            flag: f[0].into(),
            short: f[1].into(),
            ty: f[2].into(),
            default: f[3].into(),
            group: f[4].into(),
            example: f[5].into(),
        });
    }
    rows
}

/// The files and addresses example values refer to (`{name}` placeholders).
pub struct Fixtures {
    pub dir: PathBuf,
    pub values: BTreeMap<&'static str, String>,
    /// Bodies the audit webhook received.
    pub webhook: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.display().to_string()
}

/// An audit policy: probes not at all, alice with bodies, the rest as metadata.
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: []
rules:
  - level: None
    nonResourceURLs: [\"/livez\", \"/readyz\", \"/healthz\"]
  - level: RequestResponse
    users: [\"alice\"]
  - level: Metadata
";

impl Fixtures {
    /// Writes every file under `dir` and starts the webhook on `webhook_addr`.
    pub async fn new(env: &DevEnv, dir: &Path, webhook_addr: std::net::IpAddr) -> Fixtures {
        std::fs::create_dir_all(dir).unwrap();
        let mut v: BTreeMap<&'static str, String> = BTreeMap::new();
        v.insert("kubeconfig", env.files.server_kubeconfig.display().to_string());
        v.insert("kubelet_ca", env.files.kubelet_ca.display().to_string());
        let client = tls::pki::Ca::new("kubelet-client-ca").unwrap().issue_client("metrics-server", &[]).unwrap();
        v.insert("client_cert", write(&dir.join("kubelet-client.crt"), &client.cert_pem));
        v.insert("client_key", write(&dir.join("kubelet-client.key"), &client.key_pem));
        let serving_ca = tls::pki::Ca::new("serving-ca").unwrap();
        v.insert("serving_ca", write(&dir.join("serving-ca.crt"), serving_ca.cert_pem()));
        let serving = serving_ca.issue_server("metrics-server", &["localhost".into(), "127.0.0.1".into()]).unwrap();
        v.insert("serving_cert", write(&dir.join("serving.crt"), &serving.cert_pem));
        v.insert("serving_key", write(&dir.join("serving.key"), &serving.key_pem));
        let sni = serving_ca.issue_server("sni.example.com", &["sni.example.com".into()]).unwrap();
        v.insert("sni_cert", write(&dir.join("sni.crt"), &sni.cert_pem));
        v.insert("sni_key", write(&dir.join("sni.key"), &sni.key_pem));
        v.insert("client_ca", write(&dir.join("client-ca.crt"), &env.apiserver.client_ca_pem()));
        v.insert("proxy_ca", write(&dir.join("front-proxy-ca.crt"), &env.apiserver.front_proxy_ca_pem()));
        v.insert("policy", write(&dir.join("audit-policy.yaml"), POLICY));
        let webhook = Arc::new(Mutex::new(Vec::new()));
        let addr = start_webhook(webhook_addr, webhook.clone()).await;
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: audit\n  cluster:\n    server: http://{addr}/audit\n\
             contexts:\n- name: audit\n  context:\n    cluster: audit\n    user: audit\ncurrent-context: audit\n\
             users:\n- name: audit\n  user:\n    token: audit-token\n"
        );
        v.insert("webhook_kubeconfig", write(&dir.join("audit-webhook.kubeconfig"), &kubeconfig));
        Fixtures { dir: dir.to_path_buf(), values: v, webhook }
    }

    /// `example` with its placeholders filled for a replica at `addr` with
    /// its own `dir`.
    pub fn fill(&self, example: &str, addr: SocketAddr, dir: &Path) -> String {
        let mut out = example.to_string();
        for (k, v) in &self.values {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out.replace("{bind}", &addr.ip().to_string())
            .replace("{port}", &addr.port().to_string())
            .replace("{dir}", &dir.display().to_string())
    }
}

/// An HTTP server that records the JSON bodies POSTed to `/audit`.
async fn start_webhook(ip: std::net::IpAddr, seen: Arc<Mutex<Vec<serde_json::Value>>>) -> SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/audit",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push(v);
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A started replica process and where it serves.
pub struct Started {
    pub process: ReplicaProcess,
    pub addr: SocketAddr,
}

/// How a start ended.
pub enum Outcome {
    /// `/livez` answered 200 within the deadline.
    Serving(Started),
    /// The process exited first, with its status and log.
    Exited(std::process::ExitStatus, String),
}

/// Starts the binary with `args` (logging to `log`) and waits until it
/// serves `/livez` at `addr` or exits.
pub async fn start(args: &[String], addr: SocketAddr, log: &Path) -> Outcome {
    let mut process = ReplicaProcess::spawn(&crate::common::binary(), args, log).expect("spawn the binary");
    let deadline = tokio::time::Instant::now() + crate::common::STARTUP;
    loop {
        if let Some(status) = process.try_wait() {
            return Outcome::Exited(status, process.log_text());
        }
        if let Ok((200, _)) = sim::client::try_get(addr, "/livez", None, &[]).await {
            return Outcome::Serving(Started { process, addr });
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{args:?}: neither serving nor exited after {:?}:\n{}", crate::common::STARTUP, process.log_text());
        }
        tokio::time::sleep(sim::wait::POLL).await;
    }
}

/// Waits for a process to exit (after a signal), returning its status.
pub async fn exited(p: &mut ReplicaProcess, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(s) = p.try_wait() {
            return Some(s);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(sim::wait::POLL).await;
    }
}

/// A TLS client that accepts any server certificate, with `alpn`, and
/// optionally only some versions, suites or groups.
pub fn client_config(
    alpn: &[&str],
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
    provider: Option<rustls::crypto::CryptoProvider>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(provider.unwrap_or_else(rustls::crypto::ring::default_provider));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
    let builder = match versions {
        Some(v) => builder.with_protocol_versions(v).unwrap(),
        None => builder.with_safe_default_protocol_versions().unwrap(),
    };
    let mut c = builder
        .dangerous()
        .with_custom_certificate_verifier(tls::verify::AcceptAnyServerCert::new(&provider))
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(c)
}

/// A TLS connection to `addr` asking for `server_name` (SNI).
pub async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

/// The CN of the certificate a TLS connection was served.
pub fn served_cn(stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let certs = stream.get_ref().1.peer_certificates().unwrap_or_default();
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
    cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string()
}

/// Any request to a replica (a client certificate optional), as
/// `sim::client::fetch` makes GETs; a refused connection is an `Err`.
pub async fn send(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    cert: Option<&tls::pki::CertPair>,
    headers: &[(&str, &str)],
) -> Result<sim::client::Reply, String> {
    use http_body_util::{BodyExt, Full};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(tls::verify::AcceptAnyServerCert::new(&provider));
    let config = match cert {
        Some(pair) => {
            let chain = tls::pem::certs_from_pem(pair.cert_pem.as_bytes(), "client cert").unwrap();
            let key = tls::pem::key_from_pem(pair.key_pem.as_bytes(), "client key").unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1().build();
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let mut req = http::Request::builder().method(method).uri(format!("https://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::default()).unwrap()).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok(sim::client::Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Starts the binary and insists that it serves.
pub async fn serving(args: &[String], addr: SocketAddr, log: &Path) -> Started {
    match start(args, addr, log).await {
        Outcome::Serving(s) => s,
        Outcome::Exited(status, log) => panic!("{args:?} exited ({status}):\n{log}"),
    }
}
