//! Test support for the simulated kubelets: a strict checker of the
//! Prometheus text a 1.32 kubelet emits, and a small HTTPS client. Test-only;
//! the server code never depends on it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use apimachinery::gofloat::write_go_float;
use tls::pki::CertPair;

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parsed text: family name → (type, samples).
pub type Families = BTreeMap<String, (String, Vec<Sample>)>;

fn parse_labels(s: &str) -> Result<(Vec<(String, String)>, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find("=\"").ok_or_else(|| format!("label without =\" in {s:?}"))?;
        let name = &rest[..eq];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {s:?}")),
            }
        };
        labels.push((name.to_string(), value));
        rest = &rest[eq + 2 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses `text` and checks the rules a kubelet's output follows: every
/// family has HELP then TYPE then samples of its own name, families sorted by
/// name, labels sorted by name, values in Go's `'g'` shortest form,
/// timestamps integer milliseconds, a final newline.
pub fn parse_strict(text: &str) -> Result<Families, String> {
    if !text.ends_with('\n') {
        return Err("text does not end with a newline".into());
    }
    let mut families = Families::new();
    let mut order = Vec::new();
    let mut current: Option<(String, bool)> = None; // (name, TYPE seen)
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, doc) = help.split_once(' ').ok_or_else(|| format!("HELP without text: {line}"))?;
            if doc.is_empty() {
                return Err(format!("empty HELP: {line}"));
            }
            order.push(name.to_string());
            current = Some((name.to_string(), false));
            continue;
        }
        if let Some(ty) = line.strip_prefix("# TYPE ") {
            let (name, kind) = ty.split_once(' ').ok_or_else(|| format!("TYPE without type: {line}"))?;
            match &mut current {
                Some((n, seen)) if n == name && !*seen => *seen = true,
                _ => return Err(format!("TYPE not right after its HELP: {line}")),
            }
            if !["counter", "gauge"].contains(&kind) {
                return Err(format!("unexpected type {kind}"));
            }
            families.insert(name.to_string(), (kind.to_string(), Vec::new()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(format!("unexpected line {line:?}"));
        }
        let (name_end, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                let (labels, rest) = parse_labels(&line[i + 1..])?;
                (i, labels, rest)
            }
            Some(i) => (i, Vec::new(), &line[i..]),
            None => return Err(format!("sample without value: {line}")),
        };
        let name = &line[..name_end];
        match &current {
            Some((n, true)) if n == name => {}
            _ => return Err(format!("sample outside its family: {line}")),
        }
        if !labels.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(format!("labels not sorted: {line}"));
        }
        let rest = rest.strip_prefix(' ').ok_or_else(|| format!("no space before value: {line}"))?;
        let mut fields = rest.split(' ');
        let value_text = fields.next().unwrap_or("");
        let value: f64 = value_text.parse().map_err(|_| format!("bad value {value_text:?}"))?;
        let mut canonical = String::new();
        write_go_float(&mut canonical, value);
        if canonical != value_text {
            return Err(format!("value {value_text:?} is not Go's form {canonical:?}"));
        }
        let timestamp_ms = match fields.next() {
            Some(ts) => Some(ts.parse::<i64>().map_err(|_| format!("bad timestamp {ts:?}"))?),
            None => None,
        };
        if fields.next().is_some() {
            return Err(format!("trailing fields: {line}"));
        }
        if let Some(family) = families.get_mut(name) {
            family.1.push(Sample { labels, value, timestamp_ms });
        }
    }
    if !order.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("families not sorted: {order:?}"));
    }
    if let Some((name, _)) = families.iter().find(|(_, (_, s))| s.is_empty()) {
        return Err(format!("family {name} has no samples"));
    }
    Ok(families)
}

/// An HTTPS client trusting `ca_pem`, optionally with a client certificate.
pub fn client(ca_pem: &str, client_cert: Option<&CertPair>) -> Client<HttpsConnector<HttpConnector>, Empty<Bytes>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client_cert {
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>();
            let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).expect("client key");
            builder.with_client_auth_cert(chain.expect("client cert"), key).expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// GETs `url` with an optional bearer token; status and body, or the error text.
pub async fn get(
    client: &Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: &str,
    token: Option<&str>,
) -> Result<(StatusCode, String), String> {
    let mut req = Request::get(url);
    if let Some(token) = token {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The bearer token test fleets accept.
pub const TOKEN: &str = "kubelet-test-token";

/// A running fleet on its own address block.
pub struct Fixture {
    pub spec: crate::cluster::ClusterSpec,
    pub fleet: crate::kubelet::KubeletFleet,
    pub client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// Held so no other test process takes the addresses.
    pub _block: crate::addr::Block,
}

impl Fixture {
    /// A fleet of `nodes` generated nodes accepting [`TOKEN`], unless `opts` says otherwise.
    pub async fn start(nodes: usize, opts: Option<crate::kubelet::FleetOptions>) -> Fixture {
        use crate::cluster::{GenerateOptions, generate};
        let block = crate::addr::Block::acquire().expect("address block");
        let spec = generate(
            &block,
            &GenerateOptions { nodes, pods_per_node: 4, max_containers: 2, kubelet_port: 10250, seed: 7 },
        );
        let opts = opts.unwrap_or_else(|| crate::kubelet::FleetOptions::with_tokens([TOKEN]));
        let fleet = crate::kubelet::KubeletFleet::start(&spec, opts, tokio_util::sync::CancellationToken::new())
            .await
            .expect("fleet starts");
        let client = client(fleet.ca_pem(), None);
        Fixture { spec, fleet, client, _block: block }
    }

    /// Scrapes node `node` with the test token; status and body or the error.
    pub async fn scrape(&self, node: &str) -> Result<(StatusCode, String), String> {
        get(&self.client, &self.fleet.url(node).expect("known node"), Some(TOKEN)).await
    }

    /// Scrapes node `node`, expecting 200 and well-formed text.
    pub async fn scrape_ok(&self, node: &str) -> Families {
        let (status, body) = self.scrape(node).await.expect("scrape answers");
        assert_eq!(status, StatusCode::OK, "{node}: {body}");
        parse_strict(&body).unwrap_or_else(|e| panic!("{node}: {e}\n{body}"))
    }
}

/// The one sample of an unlabelled family.
pub fn single(f: &Families, name: &str) -> Sample {
    f.get(name).and_then(|(_, s)| s.first().cloned()).unwrap_or_else(|| panic!("no {name}"))
}

/// The sample of a container family for `namespace/pod/container`.
pub fn container_sample(f: &Families, family: &str, namespace: &str, pod: &str, container: &str) -> Option<Sample> {
    f.get(family)?
        .1
        .iter()
        .find(|s| {
            s.label("namespace") == Some(namespace)
                && s.label("pod") == Some(pod)
                && s.label("container") == Some(container)
        })
        .cloned()
}
