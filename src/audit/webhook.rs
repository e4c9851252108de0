//! The webhook backend (`--audit-webhook-config-file`): events are POSTed
//! as an `audit.k8s.io/v1` `EventList` to the server the kubeconfig-format
//! file names, with its CA, client certificate or bearer token. A failed
//! call (no answer, 429 or 5xx) is retried with a growing backoff from
//! `--audit-webhook-initial-backoff`, as client-go's webhook does.

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::backend::Sink;
use super::event::{Event, EventList};

/// Attempts per batch (the first and four retries).
const ATTEMPTS: u32 = 5;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The webhook.
pub struct WebhookSink {
    url: http::Uri,
    token: Option<String>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<bytes::Bytes>>,
    initial_backoff: Duration,
}

/// The webhook's kubeconfig cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--audit-webhook-config-file {path}: {reason}")]
pub struct WebhookError {
    path: String,
    reason: String,
}

impl WebhookSink {
    /// Reads the kubeconfig-format file and builds the client.
    pub async fn from_kubeconfig(path: &Path, initial_backoff: Duration) -> Result<WebhookSink, WebhookError> {
        use kube::client::ConfigExt;
        let err = |reason: String| WebhookError { path: path.display().to_string(), reason };
        let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        let tls = config.rustls_client_config().map_err(|e| err(format!("TLS settings: {e}")))?;
        let token = match (&config.auth_info.token, &config.auth_info.token_file) {
            (Some(t), _) => Some(secrecy::ExposeSecret::expose_secret(t).to_string()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file).map_err(|e| err(format!("token file {file}: {e}")))?.trim().to_string(),
            ),
            (None, None) => None,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(WebhookSink { url: config.cluster_url, token, client, initial_backoff })
    }

    async fn call(&self, body: bytes::Bytes) -> Result<(), (bool, String)> {
        let mut req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(body)).map_err(|e| (false, e.to_string()))?;
        let resp = match tokio::time::timeout(CALL_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err((true, e.to_string())),
            Err(_) => return Err((true, format!("no answer within {CALL_TIMEOUT:?}"))),
        };
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            let retry = status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            Err((retry, format!("the webhook answered {status}")))
        }
    }
}

impl Sink for WebhookSink {
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&EventList::of(events)).map_err(|e| e.to_string())?;
            let body = bytes::Bytes::from(body);
            let mut backoff = self.initial_backoff;
            let mut attempt = 1;
            loop {
                match self.call(body.clone()).await {
                    Ok(()) => return Ok(()),
                    Err((true, why)) if attempt < ATTEMPTS => {
                        tracing::debug!(attempt, %why, "audit webhook call failed; retrying");
                        let jitter = 1.0 + fastrand::f64() * 0.2;
                        tokio::time::sleep(backoff.mul_f64(jitter)).await;
                        backoff = backoff.mul_f64(1.5);
                        attempt += 1;
                    }
                    Err((_, why)) => return Err(why),
                }
            }
        })
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}
